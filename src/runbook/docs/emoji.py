"""Emoji on the site without a CDN: Material's icons inlined as SVG, Unicode emoji as local icons.

mkdocs.yml names `runbook.docs.emoji.to_svg` as pymdownx.emoji's generator. Material's own generator
inlines its bundled icons (`:material-check-circle:`) but sends every Unicode emoji to a CDN image;
this one keeps those as their character instead. `icon_emoji` turns the few emoji the reports use
(✅ ❌ ⚠️ ⏭️ …) into Material icon shortcodes first, so they render as images without a colour-emoji
font and without a network.
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree.ElementTree import Element

from .markdown import outside_code

ICONS = {
    "✅": ":material-check-circle:{ .rb-icon .rb-icon--ok title=\"done\" }",
    "✔️": ":material-check:{ .rb-icon .rb-icon--ok title=\"done\" }",
    "❌": ":material-close-circle:{ .rb-icon .rb-icon--failed title=\"failed\" }",
    "⚠️": ":material-alert:{ .rb-icon .rb-icon--warn title=\"warning\" }",
    "⚠": ":material-alert:{ .rb-icon .rb-icon--warn title=\"warning\" }",
    "⏭️": ":material-skip-next-circle:{ .rb-icon .rb-icon--next title=\"to do\" }",
    "⏳": ":material-timer-sand:{ .rb-icon .rb-icon--next title=\"in progress\" }",
    "ℹ️": ":material-information:{ .rb-icon title=\"note\" }",
    "🔁": ":material-repeat:{ .rb-icon title=\"re-run\" }",
    "🔎": ":material-magnify:{ .rb-icon title=\"investigated\" }",
}
_PATTERN = re.compile("|".join(re.escape(key) for key in sorted(ICONS, key=len, reverse=True)))
_FENCE = re.compile(r"^(```|~~~)")


def icon_emoji(text: str) -> str:
    """`text` with the reports' emoji as icon shortcodes, except inside code fences and code spans."""
    out: list[str] = []
    fenced = False
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
            out.append(line)
            continue
        out.append(line if fenced else outside_code(line, lambda part: _PATTERN.sub(lambda m: ICONS[m.group(0)], part)))
    return "".join(out)


def to_svg(
    index: str, shortname: str, alias: str, uc: str | None, alt: str, title: str, category: str, options: Any, md: Any
) -> Element:
    """Material's icons inlined; a Unicode emoji as its own character (never an image from a CDN)."""
    if uc:
        element = Element("span", {"class": "rb-emoji", "title": title})
        element.text = alt
        return element
    from material.extensions.emoji import to_svg as material_svg  # type: ignore[import-untyped]

    element = material_svg(index, shortname, alias, uc, alt, title, category, options, md)
    assert isinstance(element, Element)
    return element
