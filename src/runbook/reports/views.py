"""Step views: what a run record says about each step and about the run, as plain dicts.

This is the one place that reads run-record events (`record.started`, `record.finished`,
the typed events of `runbook.record`); every document (resolution report, JUnit, changelog,
commit message) reads the views built here. A step view joins the record (what happened: the last
`step_finished`/`step_restored` of each step wins) with the runbook (titles, descriptions, declared
cells and `expect`). When run-record events become typed models, only this module changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..loader import LoadedRunbook
from ..model import Step
from ..record import RunRecord, RunResumed, StepFinished, StepRestored, StepStarted, parse_time
from ..text import duration_text
from .markdown import first_line, plural
from .outputs import output_excerpt, output_observed

StepEvent = StepStarted | StepFinished | StepRestored | None


def _field(event: StepEvent, name: str) -> Any:
    """A field of a step event, None when the event (or that kind of event) has none."""
    return getattr(event, name, None)


def _error(event: StepEvent) -> dict[str, Any] | None:
    error = _field(event, "error")
    return error.model_dump(exclude_unset=True) if error is not None else None


__all__ = [
    "STAGE_ORDER",
    "as_number",
    "changed_fix_titles",
    "is_partial",
    "record_events",
    "run_facts",
    "step_results",
]

STAGE_ORDER = ("discovery", "reproduce", "fix", "verify")
STEP_ICONS = {
    "ok": "✅",
    "changed": "✅",
    "failed": "❌",
    "error": "⛔",
    "skipped": "⏭️",
    "interrupted": "⏸️",
    "running": "⏳",
    "not_run": "⏭️",
}


def as_number(value: Any) -> int | None:
    """A cell number from an int or a string of digits; None for anything else (and for bools)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _cell_refs(decl: Step | None, event: StepEvent) -> list[dict[str, Any]]:
    """The cells a step touched (its changes, its output's `cell`) or declared (`cells:`)."""
    refs: list[dict[str, Any]] = []

    addressed = decl.with_.get("cell") if decl is not None else None
    tag = addressed.get("tag") if isinstance(addressed, Mapping) else None
    tags = [tag] if isinstance(tag, str) and "{" not in tag else []

    def add(number: Any, ident: Any, description: Any = None, more_tags: Any = ()) -> None:
        number = as_number(number)
        ident = str(ident) if ident not in (None, "") else None
        if number is None and ident is None:
            return
        found_tags = [str(t) for t in more_tags or () if isinstance(t, str)]
        for ref in refs:
            if (number is not None and ref["number"] == number) or (ident is not None and ref["id"] == ident):
                ref["number"] = ref["number"] if ref["number"] is not None else number
                ref["id"] = ref["id"] or ident
                ref["description"] = ref["description"] or description
                ref["tags"].extend(t for t in found_tags if t not in ref["tags"])
                return
        ref = {
            "number": number,
            "id": ident,
            "description": str(description) if description else None,
            "tags": list(dict.fromkeys([*tags, *found_tags])),
        }
        refs.append(ref)

    for change in _field(event, "changes") or []:
        if isinstance(change, Mapping) and change.get("kind") == "cell":
            add(change.get("number"), change.get("id"), change.get("description"))
    output = _field(event, "output")
    if isinstance(output, Mapping) and isinstance(output.get("cell"), Mapping):
        add(output["cell"].get("number"), output["cell"].get("id"), None, output["cell"].get("tags"))
    for cell in decl.cells if decl is not None else []:
        number = as_number(cell)
        add(number, None if number is not None else cell)
    return refs


def _step_files(decl: Step | None, event: StepEvent) -> list[str]:
    files: list[str] = []
    for change in _field(event, "changes") or []:
        if isinstance(change, Mapping):
            for key in ("path", "notebook", "file"):
                if isinstance(change.get(key), str) and change[key] not in files:
                    files.append(change[key])
    output = _field(event, "output")
    if isinstance(output, Mapping):
        for key in ("notebook", "path", "file"):
            value = output.get(key)
            if isinstance(value, str) and value not in files and not value.startswith(("http:", "https:")):
                files.append(value)
    if not files and decl is not None:
        for key in ("notebook", "path", "file"):
            value = decl.with_.get(key)
            if isinstance(value, str) and "{" not in value and value not in files:
                files.append(value)
    return files


def _observed(stage: str, uses: str, event: StepEvent, status: str) -> str:
    """One line saying what a step got: `HTTP 404`, `cell 109: KeyError: …`, an error, or ok."""
    said = output_observed(uses, _field(event, "output"))
    if said is not None:
        return said
    error = _error(event)
    if error is not None:
        return first_line(error.get("message") or error.get("type") or "failed")
    if status in ("ok", "changed"):
        expectations = _field(event, "expectations") or []
        if expectations:
            return f"{plural(len(expectations), 'expectation')} held"
        return "already applied" if status == "ok" and stage == "fix" else "ok"
    if status == "skipped":
        reason = _field(event, "reason")
        return f"skipped: {reason}" if reason else "skipped"
    return status.replace("_", " ")


def declared_expect(value: Any, depth: int = 0) -> str:
    """An action's own `with.expect` in a few words: `status 200; json data[0].b64_json exists True`."""
    if isinstance(value, Mapping) and depth < 3:
        return "; ".join(f"{k} {declared_expect(v, depth + 1)}".strip() for k, v in value.items())
    if isinstance(value, list) and depth < 3:
        return "; ".join(declared_expect(v, depth + 1) for v in value)
    return str(value)


def step_results(loaded: LoadedRunbook, record: RunRecord) -> list[dict[str, Any]]:
    """Every step of the run in execution order (discovery, reproduce, fix, verify), as plain dicts.

    The record says what happened (the last `step_finished`/`step_restored` of each step wins, so a
    resumed run shows its final state); the runbook adds descriptions, declared cells and `expect`.
    Steps the record never reached are `not_run`; a step started but never finished is `running`.
    """
    runbook = loaded.runbook
    finished: dict[tuple[str, str], StepFinished | StepRestored] = {}
    pending: dict[tuple[str, str], StepStarted] = {}
    seen: dict[tuple[str, str], None] = {}  # execution order, with constant-time membership
    for line in record.events:
        if not isinstance(line, StepStarted | StepFinished | StepRestored):
            continue
        key = (line.stage, line.step)
        seen.setdefault(key, None)
        if isinstance(line, StepStarted):
            pending[key] = line
        else:
            finished[key] = line
            pending.pop(key, None)
    declared = {"discovery": runbook.discovery, "fix": runbook.fix, "verify": runbook.verify}
    reproduce_ran = any(stage == "reproduce" for stage, _ in seen) or record.options.reproduce
    ended = record.run_finished is not None
    views: list[dict[str, Any]] = []
    for stage in STAGE_ORDER:
        if stage == "reproduce" and not reproduce_ran:
            continue
        steps = declared["verify" if stage == "reproduce" else stage]
        by_id = {s.id: s for s in steps}
        ids = [s.id for s in steps] + [sid for st, sid in seen if st == stage and sid not in by_id]
        for step_id in ids:
            key = (stage, step_id)
            decl = by_id.get(step_id)
            event: StepEvent
            if key in pending:
                event, status = pending[key], "interrupted" if ended else "running"
            elif key in finished:
                event = finished[key]
                status = event.status or "ok"
            else:
                event, status = None, "not_run"
            views.append(_view(stage, step_id, decl, event, status, ended))
    for index, view in enumerate(views, start=1):
        view["number"] = index
    return views


def _view(
    stage: str, step_id: str, decl: Step | None, event: StepEvent, status: str, ended: bool
) -> dict[str, Any]:
    error = _error(event)
    reason = _field(event, "reason")
    if status == "not_run":
        reason = "not in this run (the runbook gained it later)" if ended else "the record ends before this step"
    elif status == "running":
        reason = "started, but the record ends before it finished"
    expect = []
    for item in decl.expect if decl is not None else []:
        that, message = (item, None) if isinstance(item, str) else (item.that, item.message)
        expect.append({"that": that, "message": message})
    uses = str(_field(event, "uses") or (decl.uses if decl is not None else ""))
    signature = _field(event, "signature")
    icon = STEP_ICONS.get(status, "•")
    if stage == "reproduce":
        icon = {
            "failed": "❌ (expected)",
            "error": "⛔ (could not check)",
            "ok": "⚠️ passed",
            "changed": "⚠️ passed",
        }.get(status, icon)
        if status == "failed" and isinstance(signature, dict) and not signature.get("matched"):
            icon = "❌ (not as the fault)"
    view: dict[str, Any] = {
        "stage": stage,
        "id": step_id,
        "title": (decl.label if decl is not None else None) or str(_field(event, "title") or step_id),
        "description": (decl.description.strip() if decl is not None and decl.description else None),
        "uses": uses,
        "declared": decl is not None,
        "status": status,
        "icon": icon,
        "restored": isinstance(event, StepRestored),
        "started_at": _field(event, "started_at") or _field(event, "time"),
        "finished_at": _field(event, "finished_at"),
        "duration_s": _field(event, "duration_s"),
        "duration": duration_text(_field(event, "duration_s"))
        if status in ("ok", "changed", "failed", "error", "interrupted")
        else "—",
        "attempts": _field(event, "attempts"),
        "output": _field(event, "output"),
        "output_excerpt": output_excerpt(uses, _field(event, "output")),
        "error": error or None,
        "expect": expect,
        "signature": signature,
        "declared_expect": declared_expect(decl.with_["expect"])
        if decl is not None and decl.with_.get("expect")
        else None,
        "expectations": [e.model_dump(exclude_unset=True) for e in _field(event, "expectations") or []],
        "diff": _field(event, "diff"),
        "changes": [dict(c) for c in _field(event, "changes") or [] if isinstance(c, Mapping)],
        "reason": reason,
        "message": _field(event, "message"),
        "warnings": list(_field(event, "warnings") or []),
        "dry_run": bool(_field(event, "dry_run")),
    }
    view["observed"] = _observed(stage, uses, event, status) if status != "not_run" else "did not run"
    view["cells"] = _cell_refs(decl, event)
    view["files"] = _step_files(decl, event)
    return view


# ---------------------------------------------------------------- the run as a whole


def is_partial(record: RunRecord) -> bool:
    """A run of `--only` or `--step`: it resolves nothing and does not replace the phase's report."""
    return record.options.partial


def run_facts(record: RunRecord) -> dict[str, Any]:
    """What the record says about the run: status, options, times, duration, counts, resumes."""
    started, finished, options = record.run_started, record.run_finished, record.options
    partial = f"--only {options.only}" if options.only else f"--step {options.step}" if options.step else None
    resumed = sum(1 for e in record.events if isinstance(e, RunResumed))
    start_time = started.time if started is not None else None
    last_time = next(
        (t for e in reversed(record.events) if (t := getattr(e, "time", None) or getattr(e, "finished_at", None))),
        None,
    )
    end_time = finished.time if finished is not None else last_time
    duration: float | None = None
    if finished is not None and not resumed and isinstance(finished.duration_s, int | float):
        duration = float(finished.duration_s)
    elif start_time and end_time:
        try:
            duration = (parse_time(str(end_time)) - parse_time(str(start_time))).total_seconds()
        except ValueError:
            duration = None
    return {
        "id": record.run_id,
        "status": record.status,
        "partial": partial,
        "resumed": resumed,
        "restored": sum(1 for e in record.events if isinstance(e, StepRestored)),
        "target": started.target if started is not None else None,
        "runbook": started.runbook if started is not None else None,
        "digest": started.digest if started is not None else None,
        "warnings": len(record.warnings),
        "started_at": start_time,
        "finished_at": end_time,
        "ended": finished is not None,
        "duration_s": duration,
        "reproduced": finished.reproduced if finished is not None else None,
        "changed_files": list(finished.changed_files) if finished is not None else [],
        "counts": dict(finished.counts or {}) if finished is not None else {},
        "failed_step": finished.failed_step if finished is not None else None,
        "vars": dict(started.vars) if started is not None else {},
    }


def changed_fix_titles(record: RunRecord) -> list[str]:
    """Titles of the fix steps that changed something, from the record alone (no runbook at hand)."""
    titles: list[str] = []
    for event in record.step_outcomes():
        if event.stage == "fix" and event.status == "changed" and event.title not in titles:
            titles.append(str(event.title))
    return titles


def record_events(record: RunRecord) -> list[dict[str, Any]]:
    """The (already redacted) events as written, for templates that want them."""
    return [event.as_record() for event in record.events]
