"""Step views: what a run record says about each step and about the run, as plain dicts.

This is the one place that reads run-record events (`record.started`, `record.finished`,
`record.raw_events` and the keys of each event); every document (resolution report, JUnit, changelog,
commit message) reads the views built here. A step view joins the record (what happened: the last
`step_finished`/`step_restored` of each step wins) with the runbook (titles, descriptions, declared
cells and `expect`). When run-record events become typed models, only this module changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..loader import LoadedRunbook
from ..model import Step
from ..record import RunRecord, parse_time
from ..text import duration_text
from .markdown import first_line, plural
from .outputs import output_excerpt, output_observed

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


def _cell_refs(decl: Step | None, event: Mapping[str, Any]) -> list[dict[str, Any]]:
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

    for change in event.get("changes") or []:
        if isinstance(change, Mapping) and change.get("kind") == "cell":
            add(change.get("number"), change.get("id"), change.get("description"))
    output = event.get("output")
    if isinstance(output, Mapping) and isinstance(output.get("cell"), Mapping):
        add(output["cell"].get("number"), output["cell"].get("id"), None, output["cell"].get("tags"))
    for cell in decl.cells if decl is not None else []:
        number = as_number(cell)
        add(number, None if number is not None else cell)
    return refs


def _step_files(decl: Step | None, event: Mapping[str, Any]) -> list[str]:
    files: list[str] = []
    for change in event.get("changes") or []:
        if isinstance(change, Mapping):
            for key in ("path", "notebook", "file"):
                if isinstance(change.get(key), str) and change[key] not in files:
                    files.append(change[key])
    output = event.get("output")
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


def _observed(stage: str, uses: str, event: Mapping[str, Any], status: str) -> str:
    """One line saying what a step got: `HTTP 404`, `cell 109: KeyError: …`, an error, or ok."""
    said = output_observed(uses, event.get("output"))
    if said is not None:
        return said
    error = event.get("error") if isinstance(event.get("error"), Mapping) else None
    if error is not None:
        return first_line(error.get("message") or error.get("type") or "failed")
    if status in ("ok", "changed"):
        expectations = event.get("expectations") or []
        if expectations:
            return f"{plural(len(expectations), 'expectation')} held"
        return "already applied" if status == "ok" and stage == "fix" else "ok"
    if status == "skipped":
        return f"skipped: {event.get('reason')}" if event.get("reason") else "skipped"
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
    finished: dict[tuple[str, str], dict[str, Any]] = {}
    pending: dict[tuple[str, str], dict[str, Any]] = {}
    seen: dict[tuple[str, str], None] = {}  # execution order, with constant-time membership
    for event in record.raw_events:
        kind = event.get("event")
        if kind not in ("step_started", "step_finished", "step_restored"):
            continue
        key = (str(event.get("stage")), str(event.get("step")))
        seen.setdefault(key, None)
        if kind == "step_started":
            pending[key] = event
        else:
            finished[key] = event
            pending.pop(key, None)
    declared = {"discovery": runbook.discovery, "fix": runbook.fix, "verify": runbook.verify}
    options = record.started.get("options") or {}
    reproduce_ran = any(stage == "reproduce" for stage, _ in seen) or bool(options.get("reproduce"))
    ended = record.finished is not None
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
            if key in pending:
                event, status = pending[key], "interrupted" if ended else "running"
            elif key in finished:
                event = finished[key]
                status = str(event.get("status") or "ok")
            else:
                event, status = {}, "not_run"
            views.append(_view(stage, step_id, decl, event, status, ended))
    for index, view in enumerate(views, start=1):
        view["number"] = index
    return views


def _view(
    stage: str, step_id: str, decl: Step | None, event: Mapping[str, Any], status: str, ended: bool
) -> dict[str, Any]:
    error = event.get("error") if isinstance(event.get("error"), Mapping) else None
    reason = event.get("reason")
    if status == "not_run":
        reason = "not in this run (the runbook gained it later)" if ended else "the record ends before this step"
    elif status == "running":
        reason = "started, but the record ends before it finished"
    expect = []
    for item in decl.expect if decl is not None else []:
        that, message = (item, None) if isinstance(item, str) else (item.that, item.message)
        expect.append({"that": that, "message": message})
    uses = str(event.get("uses") or (decl.uses if decl is not None else ""))
    icon = STEP_ICONS.get(status, "•")
    if stage == "reproduce":
        icon = {
            "failed": "❌ (expected)",
            "error": "⛔ (could not check)",
            "ok": "⚠️ passed",
            "changed": "⚠️ passed",
        }.get(status, icon)
        if status == "failed" and isinstance(event.get("signature"), dict) and not event["signature"].get("matched"):
            icon = "❌ (not as the fault)"
    view: dict[str, Any] = {
        "stage": stage,
        "id": step_id,
        "title": (decl.label if decl is not None else None) or str(event.get("title") or step_id),
        "description": (decl.description.strip() if decl is not None and decl.description else None),
        "uses": uses,
        "declared": decl is not None,
        "status": status,
        "icon": icon,
        "restored": event.get("event") == "step_restored",
        "started_at": event.get("started_at") or event.get("time"),
        "finished_at": event.get("finished_at"),
        "duration_s": event.get("duration_s"),
        "duration": duration_text(event.get("duration_s"))
        if status in ("ok", "changed", "failed", "error", "interrupted")
        else "—",
        "attempts": event.get("attempts"),
        "output": event.get("output"),
        "output_excerpt": output_excerpt(uses, event.get("output")),
        "error": dict(error) if error else None,
        "expect": expect,
        "signature": event.get("signature"),
        "declared_expect": declared_expect(decl.with_["expect"])
        if decl is not None and decl.with_.get("expect")
        else None,
        "expectations": [dict(e) for e in event.get("expectations") or [] if isinstance(e, Mapping)],
        "diff": event.get("diff") if isinstance(event.get("diff"), str) else None,
        "changes": [dict(c) for c in event.get("changes") or [] if isinstance(c, Mapping)],
        "reason": reason,
        "message": event.get("message"),
        "warnings": list(event.get("warnings") or []),
        "dry_run": bool(event.get("dry_run")),
    }
    view["observed"] = _observed(stage, uses, event, status) if status != "not_run" else "did not run"
    view["cells"] = _cell_refs(decl, event)
    view["files"] = _step_files(decl, event)
    return view


# ---------------------------------------------------------------- the run as a whole


def is_partial(record: RunRecord) -> bool:
    """A run of `--only` or `--step`: it resolves nothing and does not replace the phase's report."""
    options = record.started.get("options") or {}
    return bool(options.get("only") or options.get("step"))


def run_facts(record: RunRecord) -> dict[str, Any]:
    """What the record says about the run: status, options, times, duration, counts, resumes."""
    started = record.started
    finished = record.finished or {}
    options = started.get("options") or {}
    partial = next(
        (f"--{name} {options[key]}" for key, name in (("only", "only"), ("step", "step")) if options.get(key)), None
    )
    resumed = sum(1 for e in record.raw_events if e.get("event") == "run_resumed")
    start_time = started.get("time")
    last_time = next(
        (
            e.get("time") or e.get("finished_at")
            for e in reversed(record.raw_events)
            if e.get("time") or e.get("finished_at")
        ),
        None,
    )
    end_time = finished.get("time") if record.finished else last_time
    duration: float | None = None
    if record.finished is not None and not resumed and isinstance(finished.get("duration_s"), int | float):
        duration = float(finished["duration_s"])
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
        "restored": sum(1 for e in record.raw_events if e.get("event") == "step_restored"),
        "target": started.get("target"),
        "runbook": started.get("runbook"),
        "digest": started.get("digest"),
        "warnings": len(record.warnings),
        "started_at": start_time,
        "finished_at": end_time,
        "ended": record.finished is not None,
        "duration_s": duration,
        "reproduced": finished.get("reproduced"),
        "changed_files": list(finished.get("changed_files") or []),
        "counts": dict(finished.get("counts") or {}),
        "failed_step": finished.get("failed_step"),
        "vars": dict(started.get("vars") or {}),
    }


def changed_fix_titles(record: RunRecord) -> list[str]:
    """Titles of the fix steps that changed something, from the record alone (no runbook at hand)."""
    titles: list[str] = []
    for event in record.raw_events:
        finished = event.get("event") in ("step_finished", "step_restored") and event.get("stage") == "fix"
        if finished and event.get("status") == "changed" and event.get("title") not in titles:
            titles.append(str(event.get("title")))
    return titles


def record_events(record: RunRecord) -> list[dict[str, Any]]:
    """The raw (already redacted) events, for templates that want them."""
    return record.raw_events
