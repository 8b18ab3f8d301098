"""The documentation site: the generated pages under docs/, the generated `nav:` and the mkdocs build.

One module per concern: `site` writes everything (`generate_docs`), `pages` the home, phase,
run-history, changelog and timeline pages, `chart` the SVG charts (timeline, burn-up, step durations), `links` rewrites the links
of copied reports, `reference` the actions and command-line reference, `nav` the nav splice into
mkdocs.yml, `runner` the real mkdocs (`build_site`, `serve_site`). The stylesheet ships as the
package resource `assets/runbook.css`. Nothing here imports the CLI: it hands the command tree in.
"""

from __future__ import annotations

from .chart import RunSpan, run_spans, timeline_chart
from .links import LinkMap
from .nav import page_title, site_nav, write_nav
from .reference import CommandDoc, ParamDoc, actions_reference, cli_reference, type_text
from .runner import DocsBuildFailed, build_site, serve_site
from .site import generate_docs, stylesheet_text

__all__ = [
    "CommandDoc",
    "DocsBuildFailed",
    "LinkMap",
    "ParamDoc",
    "RunSpan",
    "actions_reference",
    "build_site",
    "cli_reference",
    "generate_docs",
    "page_title",
    "run_spans",
    "serve_site",
    "site_nav",
    "stylesheet_text",
    "timeline_chart",
    "type_text",
    "write_nav",
]
