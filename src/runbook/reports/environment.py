"""The Jinja environment of report templates, and rendering a template into text.

Sandboxed, `StrictUndefined` (a misspelt variable is an error, never an empty string), no
autoescape (the output is markdown). A workspace's `templates/` folder is searched first, so a
template there overrides the packaged default of the same name in `runbook/templates/`. Workspace
templates stay inside the workspace: a symlink resolving outside it (unless `allowed_paths` names the
place) and an include climbing out with `..` are refused with a clear error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    FunctionLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.exceptions import SecurityError
from jinja2.loaders import split_template_path
from jinja2.sandbox import SandboxedEnvironment

from ..errors import InputError, TemplateError
from ..text import Markdown, code, duration_text, fence, md_cell, md_table, utc_text
from ..workspace import Workspace
from .markdown import excerpt, first_line, plain_text

__all__ = ["CHANGELOG_TEMPLATE", "REPORT_TEMPLATE", "TIMELINE_TEMPLATE", "render_template", "report_environment"]

REPORT_TEMPLATE = "resolution.md"
CHANGELOG_TEMPLATE = "changelog.md"
TIMELINE_TEMPLATE = "timeline.md"


def _package_template(name: str) -> tuple[str, str, Callable[[], bool]] | None:
    node = resources.files("runbook").joinpath("templates", *split_template_path(name))
    if not node.is_file():
        return None
    return node.read_text(encoding="utf-8"), f"runbook/templates/{name}", lambda: True


class TemplateOutsideWorkspace(InputError):
    """A report template (or an include) would be read from outside the workspace."""


class _ConfinedLoader(FileSystemLoader):
    """The workspace's templates/, refusing names that climb out and files that resolve outside."""

    def __init__(self, folder: Path, home: Path, allowed: tuple[Path, ...]) -> None:
        super().__init__(str(folder))
        self._folder, self._home, self._allowed = folder, home.resolve(), allowed

    def get_source(self, environment: Any, template: str) -> tuple[str, str, Callable[[], bool]]:
        parts = template.replace("\\", "/").split("/")
        if ".." in parts or "\0" in template or template.startswith("/"):
            raise TemplateOutsideWorkspace(
                f"report template {template!r}: template names stay inside templates/ (no '..', no absolute path)",
                hint="put the template in the workspace's templates/ folder and name it from there",
            )
        candidate = self._folder.joinpath(*parts)
        if candidate.exists():
            real = candidate.resolve()
            if not any(real.is_relative_to(place) for place in (self._home, *self._allowed)):
                raise TemplateOutsideWorkspace(
                    f"report template {template!r} resolves to {real}, outside the workspace",
                    hint="copy the template into templates/ instead of linking it, or list its folder under `allowed_paths:`",
                )
        return super().get_source(environment, template)


def report_environment(ws: Workspace | None = None) -> SandboxedEnvironment:
    """The sandboxed environment for report templates: the workspace's templates/, then the defaults."""
    loaders: list[BaseLoader] = []
    if ws is not None and ws.templates_dir.is_dir():
        loaders.append(_ConfinedLoader(ws.templates_dir, ws.root, ws.allowed_paths))
    loaders.append(FunctionLoader(_package_template))
    env = SandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=plain_text,  # machine text (errors, outputs) never becomes live HTML on the site
    )
    env.filters.update(
        md_table=md_table,
        md_cell=md_cell,
        md=Markdown,
        code=code,
        fence=fence,
        duration=duration_text,
        utc=utc_text,
        excerpt=excerpt,
        first_line=first_line,
        to_json=lambda value, indent=None: json.dumps(value, indent=indent, ensure_ascii=False, default=str),
    )
    env.globals.update(md_table=md_table, fence=fence, code=code)
    for unsafe in ("cycler", "joiner"):
        env.globals.pop(unsafe, None)
    return env


def render_template(ws: Workspace | None, template: str, context: Mapping[str, Any]) -> str:
    """`template` rendered with `context`; a missing template, bad syntax or unknown name is a clear error."""
    env = report_environment(ws)
    try:
        tmpl = env.get_template(template)
    except TemplateNotFound:
        where = f"{ws.config.paths.templates}/ or " if ws is not None else ""
        raise InputError(
            f"no report template {template!r} in {where}the packaged defaults",
            hint=f"packaged templates: {', '.join(packaged_templates())}",
        ) from None
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.filename or template}:{exc.lineno}: template syntax error: {exc.message}") from None
    try:
        return tmpl.render(**context)
    except TemplateNotFound as exc:
        raise InputError(
            f"{template}: includes {exc.name!r}, which is not in templates/ or the packaged defaults",
            hint="check the include's name (names are relative to templates/, without '..')",
        ) from None
    except (UndefinedError, SecurityError) as exc:
        raise TemplateError(
            f"{template}: {exc}",
            hint="see the template variables in runbook.reports.build_report_context",
        ) from None


def packaged_templates() -> list[str]:
    """Names of the default templates shipped in `runbook/templates/`."""
    folder = resources.files("runbook").joinpath("templates")
    return sorted(item.name for item in folder.iterdir() if item.is_file())
