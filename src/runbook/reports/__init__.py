"""Reports: the resolution report, CHANGELOG.md, TIMELINE.md and JUnit XML, rendered from run records.

One module per concern:

- `markdown`: report prose (excerpts, plurals, cell wording) on top of `runbook.text`'s primitives;
- `environment`: the sandboxed Jinja environment (workspace `templates/` over the packaged ones);
- `views`: step views and run facts, the only reader of run-record events;
- `outputs`: one renderer per action name, looked up by the event's `uses` (generic for plug-ins);
- `changes`: before/after blocks from fix diffs, cells to fix and cells modified;
- `resolution`: the report context and the report file;
- `junit`, `changelog`, `timeline`: the other documents;
- `runbooks`, `paths`: the authored runbooks a document needs (parsed at most once), output paths.

Everything here is a pure function of the workspace, the loaded runbook, the run record and the
timestamp log: the same inputs give byte-identical output. Records are already redacted by the
executor; nothing here reads a secret. Reports never commit, run actions or import `gitops`:
publishing a run and committing it is `runbook.publish`'s job.
"""

from __future__ import annotations

from ..text import Markdown
from .changelog import build_changelog_context, changelog_is_current, phase_version, render_changelog, write_changelog
from .environment import REPORT_TEMPLATE, report_environment
from .history import resolving_run_id, run_report_path, write_phase_report, write_run_report
from .junit import render_junit
from .outputs import OutputRenderer, discovery_item, register_renderer, renderer_for
from .paths import CHANGELOG_NAME, TIMELINE_NAME, relative_path, report_path
from .resolution import build_report_context, render_report, report_heading, resolution_title, write_report
from .runbooks import PhaseRunbooks
from .timeline import build_timeline_context, render_timeline, write_timeline
from .views import is_partial, step_results

__all__ = [
    "CHANGELOG_NAME",
    "REPORT_TEMPLATE",
    "TIMELINE_NAME",
    "Markdown",
    "OutputRenderer",
    "PhaseRunbooks",
    "build_changelog_context",
    "build_report_context",
    "build_timeline_context",
    "changelog_is_current",
    "discovery_item",
    "is_partial",
    "phase_version",
    "register_renderer",
    "relative_path",
    "render_changelog",
    "render_junit",
    "render_report",
    "render_timeline",
    "renderer_for",
    "report_environment",
    "report_heading",
    "report_path",
    "resolution_title",
    "resolving_run_id",
    "run_report_path",
    "step_results",
    "write_changelog",
    "write_phase_report",
    "write_report",
    "write_run_report",
    "write_timeline",
]
