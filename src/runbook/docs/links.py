"""Links of the files copied into the site (reports, changelog, timeline), rewritten for their pages.

A report links to its run records, the changelog, the notebook: files that sit next to it in the
workspace. On the site those are other pages, an image copied under docs/assets/reports/, or no
page at all, and `LinkMap` knows which.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote

from ..text import code
from ..workspace import Workspace
from .layout import (
    CHANGELOG_PAGE,
    IMAGE_SUFFIXES,
    REPORT_ASSETS_DIR,
    TIMELINE_PAGE,
    phase_page_path,
    run_page_path,
    runs_page_path,
)
from .markdown import outside_code


class LinkMap:
    """Rewrites links of files copied into the site (reports, changelog, timeline) to site pages.

    A link to `reports/phase-1.5.md` becomes the phase page, a link to a run record the phase's
    runs page, `CHANGELOG.md` / `TIMELINE.md` their pages, a link into docs/ stays a relative link,
    an image is copied under docs/assets/reports/, and a link to any other file of the workspace
    (the notebook, .env) becomes its path in code, since the site does not carry it.
    """

    _INLINE = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*(<[^>]*>|[^)\s]+)((?:\s+\"[^\"]*\")?)\s*\)")
    _DEFINITION = re.compile(r"^( {0,3}\[[^\]]+\]:\s*)(\S+)(.*)$")
    _FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
    _REPORT = re.compile(r"^phase-(.+)\.md$")

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.root = workspace.root.resolve()
        self.docs_dir = workspace.docs_dir.resolve()
        self.reports_dir = workspace.reports_dir.resolve()
        self.assets: dict[str, Path] = {}

    def rewrite(self, text: str, source: Path, page: str) -> str:
        """`text` read from `source`, with links fixed for the site page `page` (relative to docs/)."""
        out: list[str] = []
        fence: str | None = None
        for line in text.splitlines(keepends=True):
            match = self._FENCE.match(line)
            if fence is not None:
                if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                    fence = None
                out.append(line)
                continue
            if match:
                fence = match.group(1)
                out.append(line)
                continue
            out.append(self._rewrite_line(line, source, page))
        return "".join(out)

    def _rewrite_line(self, line: str, source: Path, page: str) -> str:
        definition = self._DEFINITION.match(line)
        if definition:
            target = self._target(definition.group(2), source, page)
            if target is not None:
                return f"{definition.group(1)}{target}{definition.group(3)}" + ("\n" if line.endswith("\n") else "")
            return line

        def inline(match: re.Match[str]) -> str:
            bang, label, raw, title = match.groups()
            target = self._target(raw.strip("<>"), source, page)
            if target is not None:
                return f"{bang}[{label}]({target}{title})"
            shown = self._shown_path(raw.strip("<>"), source)
            return code(shown) if label.strip("`") == shown or not label else f"{label} ({code(shown)})"

        return outside_code(line, lambda part: self._INLINE.sub(inline, part))

    def _shown_path(self, raw: str, source: Path) -> str:
        """A dropped link's file, named from the workspace root when it is inside it."""
        path = (source.parent / unquote(raw.split("#", 1)[0])).resolve()
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else unquote(raw)

    def _target(self, raw: str, source: Path, page: str) -> str | None:
        """The new link target, the old one when it needs no change, or None to drop the link."""
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", raw) or raw.startswith(("#", "/")):
            return raw  # URLs, mail, in-page anchors, site-absolute links stay as written
        path_text, _, fragment = raw.partition("#")
        path_text = path_text.split("?", 1)[0]
        if not path_text:
            return raw
        resolved = (source.parent / unquote(path_text)).resolve()
        site_path = self._site_path(resolved)
        if site_path is None:
            return None
        page_dir = (self.docs_dir / page).parent
        relative = Path(os.path.relpath(self.docs_dir / site_path, page_dir)).as_posix()
        return relative + (f"#{fragment}" if fragment else "")

    def _site_path(self, resolved: Path) -> str | None:
        if resolved.is_relative_to(self.docs_dir):
            return resolved.relative_to(self.docs_dir).as_posix()
        if resolved.parent == self.reports_dir:
            report = self._REPORT.match(resolved.name)
            if report:
                return phase_page_path(report.group(1))
        runs = self.reports_dir / "runs"
        if resolved.is_relative_to(runs) and len(resolved.relative_to(runs).parts) >= 1:
            parts = resolved.relative_to(runs).parts
            if len(parts) == 2 and resolved.with_suffix(".md").is_file():
                return run_page_path(parts[0], Path(parts[1]).stem)  # a run's report (or record): its page
            return runs_page_path(parts[0])
        if resolved == self.root / "CHANGELOG.md":
            return CHANGELOG_PAGE
        if resolved == self.root / "TIMELINE.md":
            return TIMELINE_PAGE
        if resolved.suffix.lower() in IMAGE_SUFFIXES and resolved.is_file() and resolved.is_relative_to(self.root):
            relative = f"{REPORT_ASSETS_DIR}/{resolved.relative_to(self.root).as_posix()}"
            self.assets[relative] = resolved
            return relative
        return None
