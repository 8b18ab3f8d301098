"""Authored report material, read against the run: templated text, checked claims, addressed cells.

What a person wrote under `report:` is rendered with the run's registered values in the sandbox the
steps use (`runbook.templating`): `{{ image.model }}` in a root cause names what discovery found. The
values come from the run record (already redacted): `vars`, each step's registered output, `steps`,
`phase`, `run`, `target` (its public settings) and `target_name`; never secrets or the environment.
A name the runbook can never define is a validate-time problem (`checks.report_names`); a name the
record cannot answer at render time (a typo in an attribute) is a `TemplateError` located at the
authored text. A value the run did not register (its step did not run) renders as a visible
"not known in this run" marker, never as the literal template.

A root cause or lesson may carry `expect:` (expressions over the same values); when one is false the
report shows "⚠️ contradicted by discovery: …" beside the claim instead of repeating it silently.

`report.cells` and `report.cells_detail` address cells as steps do (`notebooks.cells.to_address`,
resolved by `Notebook.select`, the steps' own resolver) against the notebook the run worked on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..checks import REPORT_NAMES, cell_problems, declared_notebook, read_notebook
from ..errors import NotebookError, SecurityViolation, TemplateError
from ..loader import LoadedRunbook
from ..model import Expectation, Runbook
from ..notebooks.cells import CellRef, to_address
from ..record import RunRecord

__all__ = [
    "REPORT_NAMES",
    "AuthoredText",
    "authored_context",
    "cell_problems",
    "resolve_cell",
    "run_notebook",
]


class NotKnown:
    """A registered name this run has no value for: renders as a marker, is falsy and empty."""

    def __init__(self, name: str, step: str | None, *, why: str | None = None) -> None:
        self.name, self.step, self.touched, self.why = name, step, False, why

    def __getattr__(self, _attr: str) -> NotKnown:
        if _attr.startswith("_"):
            raise AttributeError(_attr)
        self.touched = True
        return self

    def __getitem__(self, _key: Any) -> NotKnown:
        self.touched = True
        return self

    def __iter__(self) -> Iterator[Any]:
        self.touched = True
        return iter(())

    def __len__(self) -> int:
        self.touched = True
        return 0

    def __bool__(self) -> bool:
        self.touched = True
        return False

    def __str__(self) -> str:
        self.touched = True
        why = self.why or (f"step `{self.step}` did not run" if self.step else "it was not registered")
        return f"*(not known in this run: {why})*"


def authored_context(
    loaded: LoadedRunbook, record: RunRecord | None, views: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The names authored text sees: the executor's context, rebuilt from the (redacted) record.

    Without a record (a phase whose resolving run is not at hand), only the runbook's `vars` are known.
    """
    runbook = loaded.runbook
    started = record.run_started if record is not None else None
    variables = dict(started.vars) if started is not None else dict(runbook.vars)
    context: dict[str, Any] = {
        **variables,
        "vars": variables,
        "target": _RecordedSettings(started.target_settings or {} if started is not None else {}),
        "target_name": started.target if started is not None else None,
        "phase": runbook.phase,
        "run": {
            "id": record.run_id if record is not None else None,
            "started_at": started.time if started is not None else None,
        },
        "steps": {},
    }
    registers = {step.id: step.register_ for _stage, step in runbook.all_steps() if step.register_}
    for step_id, name in registers.items():
        context[name] = NotKnown(name, step_id)
    for view in views:  # execution order: a later stage's output replaces an earlier one, as in the run
        if view["status"] in ("not_run", "skipped", "running") or view["output"] is None:
            continue
        context["steps"][view["id"]] = {"output": view["output"], "status": view["status"]}
        registered = registers.get(view["id"])
        if registered:
            context[registered] = view["output"]
    return context


class _RecordedSettings(dict[str, Any]):
    """The target's settings as the record has them: a setting it lacks is not known, not an error.

    A run records its target's public settings when it starts; an emulator fills `gateway_url` in
    only when a step first needs it, and secret settings are never recorded, so `{{ target.gateway_url }}`
    (which the steps can read) must not fail the report of a run that succeeded.
    """

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.unknown: dict[str, NotKnown] = {}

    def __missing__(self, key: str) -> NotKnown:
        if key not in self.unknown:
            why = f"the run record does not have the target setting `{key}`"
            self.unknown[key] = NotKnown(f"target.{key}", None, why=why)
        return self.unknown[key]

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        return self[key]


class AuthoredText:
    """Renders authored strings and checks claims against one run's values, with located errors."""

    def __init__(self, loaded: LoadedRunbook, context: Mapping[str, Any]) -> None:
        self.doc, self.context = loaded.doc, context

    def _located(self, exc: TemplateError | SecurityViolation, loc: Sequence[str | int]) -> TemplateError:
        where = self.doc.location(list(loc))
        hint = exc.hint
        if exc.message.startswith("undefined value"):
            # not the steps' hint (--var does not change a recorded run): what the report text can read
            hint = (
                "report text reads the run's recorded values: check the name against the step's output in the "
                "run record (`runbook report` renders it again), or guard it with `{% if … is defined %}`"
            )
        return TemplateError(f"report text: {exc.message}", location=where, hint=hint)

    def text(self, value: str | None, loc: Sequence[str | int]) -> str | None:
        """`value` rendered (stripped), or None; an undefined value is a TemplateError at `loc`."""
        from ..templating import render_string

        if value is None:
            return None
        self._missing()
        try:
            rendered = render_string(value, self.context)
        except (TemplateError, SecurityViolation) as exc:  # a sandbox refusal is located too
            raise self._located(exc, loc) from None
        touched = [v for v in self._missing(reset=False) if v.touched]
        if touched:  # a text that reads a value this run lacks is not shown half-rendered
            return "; ".join(dict.fromkeys(str(v) for v in touched))
        return str(rendered).strip()

    def _missing(self, *, reset: bool = True) -> list[NotKnown]:
        """The values this run lacks (registered names, target settings read so far); `reset` marks them untouched."""
        missing = [v for v in self.context.values() if isinstance(v, NotKnown)]
        target = self.context.get("target")
        if isinstance(target, _RecordedSettings):
            missing += list(target.unknown.values())
        if reset:
            for value in missing:
                value.touched = False
        return missing

    def texts(self, values: Iterable[str], loc: Sequence[str | int]) -> list[str]:
        return [self.text(v, [*loc, i]) or "" for i, v in enumerate(values)]

    def claim(self, checks: Sequence[str | Expectation], loc: Sequence[str | int]) -> dict[str, Any] | None:
        """None when there is nothing to check; else {status: held|contradicted|unknown, note}."""
        from ..templating import evaluate

        if not checks:
            return None
        contradicted: list[str] = []
        unknown: list[str] = []
        for i, item in enumerate(checks):
            that, message = (item, None) if isinstance(item, str) else (item.that, item.message)
            where = [*loc, "expect", i] if isinstance(item, str) else [*loc, "expect", i, "that"]
            self._missing()
            try:
                result = evaluate(that, self.context)
            except (TemplateError, SecurityViolation) as exc:
                raise self._located(exc, where) from None
            missing = self._missing(reset=False)
            if any(v.touched for v in missing):
                unknown.extend(sorted({v.name for v in missing if v.touched}))
                continue
            if not result:
                said: str | None = self.text(message, [*loc, "expect", i, "message"]) if message else None
                contradicted.append(said or f"`{that.strip()}` is false")
        if contradicted:
            return {"status": "contradicted", "note": "⚠️ contradicted by discovery: " + "; ".join(contradicted)}
        if unknown:
            names = ", ".join(f"`{n}`" for n in dict.fromkeys(unknown))
            return {"status": "unknown", "note": f"⏭️ not checked: this run has no value for {names}"}
        return {"status": "held", "note": None}


# ---------------------------------------------------------------- cells, as steps address them


def run_notebook(root: Path, views: Sequence[Mapping[str, Any]], runbook: Runbook, notebooks: Sequence[str]) -> Path | None:
    """The notebook the run worked on: the one its notebook steps name, else the workspace's first."""
    for view in views:
        output = view["output"]
        name = output.get("notebook") if isinstance(output, Mapping) else None
        if isinstance(name, str) and name.endswith(".ipynb"):
            return root / name
    declared = declared_notebook(runbook)
    if declared:
        return root / declared
    return root / notebooks[0] if notebooks else None


def resolve_cell(ref: CellRef, notebook: Any, directory: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """An authored cell address as the report shows it: {number, id, tags, address, found}.

    Resolved by the notebook's own `select` (what a step would address) as the run left it; when it
    names no cell there (a pattern for text the fix replaced, a record rendered elsewhere), by the
    cells the run's record saw: number, id, tag, or a pattern found in the lines discovery listed.
    """
    address = to_address(ref)
    cell: dict[str, Any] = {"number": address.number, "id": address.id, "tags": [], "address": address, "found": False}
    if notebook is not None:
        try:
            found = notebook.address(address)
        except NotebookError:
            found = None
        if found is not None:
            cell.update(number=found.number, id=found.id, tags=list(found.tags), found=True)
            return cell
    regex = re.compile(address.pattern, re.MULTILINE) if address.pattern is not None else None
    for known in directory:
        if (
            (address.number is not None and known.get("number") == address.number)
            or (address.id is not None and known.get("id") == address.id)
            or (address.tag is not None and address.tag in (known.get("tags") or []))
            or (regex is not None and any(regex.search(line) for line in known.get("lines") or []))
        ):
            cell["number"] = known.get("number") if cell["number"] is None else cell["number"]
            cell["id"] = cell["id"] or known.get("id")
            cell["tags"] = list(dict.fromkeys([*cell["tags"], *(known.get("tags") or [])]))
            cell["found"] = True
    if address.tag is not None and address.tag not in cell["tags"]:
        cell["tags"].append(address.tag)
    return cell


def notebook_for(root: Path, views: Sequence[Mapping[str, Any]], runbook: Runbook, notebooks: Sequence[str]) -> Any:
    """The run's notebook, parsed, or None when it is not there (a record rendered elsewhere)."""
    return read_notebook(run_notebook(root, views, runbook, notebooks))


# ---------------------------------------------------------------- the authored sections, rendered


def root_causes(text: AuthoredText, runbook: Runbook) -> list[dict[str, Any]]:
    """`report.root_causes` rendered, each with its claim check (None when it states no `expect`)."""
    from ..text import code

    causes = []
    for index, cause in enumerate(runbook.report.root_causes):
        loc: list[str | int] = ["report", "root_causes", index]

        def shown(value: str | list[str] | None, key: str, loc: list[str | int] = loc) -> str | None:
            if value is None:
                return None
            if isinstance(value, list):
                return ", ".join(str(code(v)) for v in text.texts(value, [*loc, key]))
            return text.text(value, [*loc, key])

        causes.append(
            {
                "title": text.text(cause.title, [*loc, "title"]),
                "expected": shown(cause.expected, "expected"),
                "actual": shown(cause.actual, "actual"),
                "detail": shown(cause.detail, "detail"),
                "claim": text.claim(cause.expect, loc),
            }
        )
    return causes


def lessons(text: AuthoredText, runbook: Runbook) -> list[dict[str, Any]]:
    """`report.lessons` rendered: {text, claim} (a plain string states nothing to check)."""
    shown: list[dict[str, Any]] = []
    for index, lesson in enumerate(runbook.report.lessons):
        loc: list[str | int] = ["report", "lessons", index]
        if isinstance(lesson, str):
            shown.append({"text": text.text(lesson, loc), "claim": None})
        else:
            shown.append({"text": text.text(lesson.text, [*loc, "text"]), "claim": text.claim(lesson.expect, loc)})
    return shown


def postmortem(text: AuthoredText, runbook: Runbook) -> dict[str, Any] | None:
    """The optional postmortem fields, rendered; None when the runbook authors none of them."""
    material = runbook.report
    items = [
        {
            "action": text.text(item.action, ["report", "action_items", i, "action"]),
            "owner": text.text(item.owner, ["report", "action_items", i, "owner"]),
            "ticket": text.text(item.ticket, ["report", "action_items", i, "ticket"]),
            "done": item.done,
        }
        for i, item in enumerate(material.action_items)
    ]
    fields = {
        key: text.text(getattr(material, key), ["report", key]) for key in ("trigger", "impact", "detection")
    }
    if not items and not any(fields.values()):
        return None
    return {**fields, "action_items": items}


def cell_sections(
    text: AuthoredText, runbook: Runbook, fix: Sequence[Mapping[str, Any]], notebook: Any, directory: Any
) -> list[dict[str, Any]]:
    """One report section per `report.cells_detail` entry; an Azure fix step gives its az CLI and portal path."""
    by_id = {view["id"]: view for view in fix}
    sections = []
    for index, detail in enumerate(runbook.report.cells_detail):
        loc: list[str | int] = ["report", "cells_detail", index]
        view = by_id.get(detail.step) if detail.step else None
        output = view.get("output") if view is not None else None
        output = output if isinstance(output, dict) else {}
        cell = resolve_cell(detail.cell, notebook, directory)
        address = cell["address"]
        label = f"Cell {cell['number']}" if cell["number"] is not None else address.describe()
        if address.tag is not None and cell["number"] is not None:
            label += f", `{address.tag}`"
        sections.append(
            {
                "cell": cell["number"] if cell["number"] is not None else cell["id"],
                "label": label,
                "title": text.text(detail.title, [*loc, "title"]) or label,
                "issue": text.text(detail.issue, [*loc, "issue"]),
                "root_cause": text.text(detail.root_cause, [*loc, "root_cause"]),
                "fix": text.text(detail.fix, [*loc, "fix"]),
                "az_cli": output.get("az_cli") or text.text(detail.az_cli, [*loc, "az_cli"]),
                "portal": output.get("portal") or text.text(detail.portal, [*loc, "portal"]),
                "step": detail.step,
                "status": view["status"] if view is not None else None,
                "icon": view["icon"] if view is not None else None,
            }
        )
    return sections
