"""The resolution report: the context its template sees, and rendering and writing it.

`build_report_context` is a pure function of the workspace (plan, timestamp log), the loaded
runbook (authored material) and the run record (through the step views of `views`): the same
inputs give byte-identical output, with no wall clock and no absolute paths. The report follows the
hand-written seed report: summary, root causes, discovery details, resolution steps, cells to fix,
the A-L testing plan, environment variables, files, results, lessons, progress and the next phase.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ..atomic import write_if_changed
from ..loader import LoadedRunbook
from ..model import Runbook
from ..progress import compute_progress, group_of
from ..record import RunRecord, parse_time, read_log
from ..text import Markdown, code, duration_text, fence
from ..workspace import Workspace
from . import authored
from .changes import cell_directory, cells_modified, cells_to_fix, key_changes
from .environment import REPORT_TEMPLATE, render_template
from .markdown import cells_text, excerpt, first_line, join_words, plural
from .outputs import cell_results, discovery_item
from .paths import relative_path, report_path
from .runbooks import PhaseRunbooks
from .sentences import expect_sentence, verified_cells
from .views import STAGE_ORDER, record_events, run_facts, step_results

__all__ = [
    "build_report_context",
    "render_report",
    "report_heading",
    "resolution_title",
    "run_info",
    "write_report",
]

STATUS_LABELS = {
    "success": "RESOLVED ✅",
    "failed": "FAILED ❌",
    "interrupted": "INTERRUPTED ⏸️",
    "incomplete": "IN PROGRESS ⏳",
}
_HTTP_CODE = re.compile(r"\b([45]\d{2})\b")


def resolution_title(title: str) -> str:
    """`Image Generation Deployment Resolution`: the runbook's title, ending in "Resolution" once."""
    return title if title.rstrip().lower().endswith("resolution") else f"{title} Resolution"


def report_heading(runbook: Runbook) -> str:
    """`Phase 1.5 - Image Generation Deployment Resolution` (the seed's first line, without `#`)."""
    return f"Phase {runbook.phase} - {resolution_title(runbook.title)}"


def run_info(
    ws: Workspace, loaded: LoadedRunbook, record: RunRecord, views: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The `run` of the report context: the record's facts plus labels and the failing step's view."""
    facts = run_facts(record)
    status, partial = facts["status"], facts["partial"]
    label = STATUS_LABELS.get(status, status.upper())
    if status == "success" and partial:
        label = f"PARTIAL RUN ✅ ({partial}: not a resolution)"
    digest = facts["digest"]
    failed_id = facts["failed_step"]
    failing = next(
        (
            v
            for v in views
            if (v["stage"] != "reproduce" and v["status"] in ("failed", "error", "interrupted", "running"))
            or (v["stage"] == "reproduce" and v["id"] == failed_id and v["status"] in ("failed", "error"))
        ),
        None,
    )
    if failed_id:
        failing = next((v for v in views if v["id"] == failed_id and v["stage"] != "reproduce"), failing)
    return {
        "id": facts["id"],
        "status": status,
        "status_label": label,
        "resolved": status == "success" and not partial,
        "partial": partial,
        "resumed": facts["resumed"],
        "restored": facts["restored"],
        "target": facts["target"],
        "runbook": facts["runbook"] or loaded.doc.display,
        "digest": digest,
        "runbook_changed": bool(digest) and digest != loaded.digest,
        "record": relative_path(ws, record.path),
        "record_warnings": facts["warnings"],
        "started_at": facts["started_at"],
        "finished_at": facts["finished_at"],
        "ended": facts["ended"],
        "duration_s": facts["duration_s"],
        "duration_text": duration_text(facts["duration_s"]),
        "time_label": "Resolution Time" if status == "success" and not partial else "Run Time",
        "reproduced": facts["reproduced"],
        "changed_files": facts["changed_files"],
        "counts": facts["counts"],
        "failed_step": failing,
        "vars": facts["vars"],
    }


def _pre_fix_state(_run: Mapping[str, Any], reproduce: Sequence[Mapping[str, Any]], verify_cells: list[Any]) -> str:
    if not reproduce:
        return "Not reproduced in this run (reproduce was off: `--no-reproduce`, a partial run, or no verify steps)."
    ran = [v for v in reproduce if v["status"] not in ("skipped", "not_run", "running", "interrupted")]
    if not ran:
        return "The reproduce checks did not run."
    errored = [v for v in ran if v["status"] == "error"]
    if errored:
        first = errored[0]
        why = first_line((first["error"] or {}).get("message") or "it could not run")
        return (
            f"The runbook could not check the fault: step {code(first['id'])} errored before the fix ({why}). "
            "An error says the runbook or the machine is wrong, not that the fault is there; no fix was applied."
        )
    unlike = [v for v in ran if v["status"] == "failed" and v["signature"] and not v["signature"].get("matched")]
    if unlike:
        first = unlike[0]
        unmet = "; ".join(str(code(r["that"])) for r in first["signature"]["results"] if not r["passed"])
        return (
            f"Step {code(first['id'])} failed before the fix, but not the way the fault does: expected {unmet}; "
            f"seen: {first['observed']}. No fix was applied."
        )
    failed = [v for v in ran if v["status"] == "failed"]
    seen = [_HTTP_CODE.search(v["observed"]) for v in failed]
    codes = {m.group(1) for m in seen if m} if all(seen) else set()
    subject = plural(len(ran), "verify check")
    if verify_cells:
        subject += f" (on {cells_text(verify_cells).lower()})"
    if failed and len(failed) == len(ran):
        lead = f"All {subject}" if len(ran) > 1 else f"The verify check{subject[len('1 verify check') :]}"
        if len(codes) == 1:
            return f"{lead} failed before the fix with HTTP {codes.pop()}: the fault is reproduced." + _signature_text(
                failed
            )
        return f"{lead} failed before the fix: the fault is reproduced." + _signature_text(failed)
    if failed:
        return f"{len(failed)} of {len(ran)} verify checks failed before the fix; the others already passed."
    return "The fault did not reproduce: every verify check already passed before the fix."


def _signature_text(failed: Sequence[Mapping[str, Any]]) -> str:
    """' Each matched its expected failure signature: …' for steps that declared one."""
    declared = [v for v in failed if v.get("signature")]
    if not declared:
        return ""
    def said(result: Mapping[str, Any]) -> str:
        return str(result.get("message") or code(result["that"]))

    shown = "; ".join(f"{code(v['id'])}: " + ", ".join(said(r) for r in v["signature"]["results"]) for v in declared)
    return f" Each failure matched its expected signature ({shown})."


def _summary_sentence(
    phase: str,
    run: Mapping[str, Any],
    views: Sequence[Mapping[str, Any]],
    discovery: Sequence[Mapping[str, Any]],
    cells_changed: Sequence[Mapping[str, Any]],
) -> str:
    sentences: list[str] = []
    found = _discovery_sentence(discovery)
    if found:
        sentences.append(found)
    reproduce = [v for v in views if v["stage"] == "reproduce"]
    verify = [v for v in views if v["stage"] == "verify"]
    passed = [v for v in verify if v["status"] in ("ok", "changed")]
    changed_files = list(run["changed_files"])
    parts: list[str] = []
    ran_before = [v for v in reproduce if v["status"] in ("ok", "changed", "failed", "error")]
    if any(v["status"] == "error" for v in ran_before):
        parts.append("could not check the fault before the fix (a reproduce step errored)")
    elif ran_before:
        failed_before = sum(1 for v in ran_before if v["status"] == "failed")
        if failed_before:
            parts.append(f"reproduced the fault ({failed_before} of {len(reproduce)} checks failed before the fix)")
        else:
            parts.append("did not reproduce the fault (every check passed before the fix)")
    if cells_changed:
        numbers = [str(c["number"] if c["number"] is not None else c["id"]) for c in cells_changed]
        parts.append(f"changed {plural(len(numbers), 'cell')} ({', '.join(numbers)})")
    if changed_files:
        parts.append(f"changed {plural(len(changed_files), 'file')} ({', '.join(changed_files)})")
    elif run["status"] == "success" and any(v["stage"] == "fix" for v in views):
        parts.append("changed nothing (every fix was already applied)")
    status = run["status"]
    lead = f"Run {code(run['id'])}"
    if status == "success":
        if verify:
            parts.append(f"passed {len(passed)} of {len(verify)} verify checks")
        sentences.append(f"{lead} {join_words(parts)} in {run['duration_text']}.")
    elif status == "failed":
        failing = run["failed_step"]
        where = f" at step {code(failing['id'])} ({failing['stage']}): {failing['observed']}" if failing else ""
        not_run = sum(1 for v in views if v["status"] in ("skipped", "not_run") and v["stage"] != "reproduce")
        done = f"{join_words(parts)}, then " if parts else ""
        sentences.append(
            f"{lead} {done}failed{where}; {plural(not_run, 'step')} did not run and the phase is not resolved."
        )
    elif status == "interrupted":
        failing = run["failed_step"]
        where = f" during step {code(failing['id'])}" if failing else ""
        sentences.append(f"{lead} was interrupted{where}; resume it with {code(f'runbook run {phase} --resume')}.")
    else:
        failing = run["failed_step"]
        where = f" (last step: {code(failing['id'])})" if failing else ""
        sentences.append(f"{lead} has no end in its record{where}: it is still running, or was killed.")
    return " ".join(sentences)


def _discovery_sentence(discovery: Sequence[Mapping[str, Any]]) -> str | None:
    """One sentence for every deployment listing of the discovery stage (not one per step)."""
    listings = [item for item in discovery if item["kind"] == "deployments"]
    if not listings:
        return None
    parts = []
    for item in listings:
        facts = item["facts"]
        count = plural(facts["deployments"], "deployment") if facts["deployments"] else "no deployments"
        part = f"{count} in {plural(facts['accounts'], 'account')}"
        if len(listings) > 1:
            part += f" ({code(item['step']['id'])})"
        parts.append(part)
    images = [n for item in listings for n in item["facts"]["image_models"]]
    accounts = [a for item in listings for a in item["facts"]["image_accounts"]]
    text = "Discovery found " + join_words(parts)
    if images:
        names = ", ".join(str(code(n)) for n in dict.fromkeys(images))
        where = f", only in {join_words(list(dict.fromkeys(accounts)))}" if accounts else ""
        text += f"; image models: {names}{where}"
    return text + "."


def _environment(views: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for view in views:
        if view["stage"] == "reproduce":
            continue
        for change in view["changes"]:
            if change.get("kind") == "env" and change.get("key"):
                path = str(change.get("path") or ".env")
                found[(path, str(change["key"]))] = {
                    "key": str(change["key"]),
                    "value": change.get("value"),
                    "action": str(change.get("action") or "set"),
                    "path": path,
                    "step": view["id"],
                }
        output = view["output"]
        if view["uses"] == "env.set" and isinstance(output, Mapping) and isinstance(output.get("values"), Mapping):
            path = str(output.get("path") or ".env")
            for key, value in output["values"].items():
                found.setdefault(
                    (path, str(key)),
                    {"key": str(key), "value": value, "action": "already set", "path": path, "step": view["id"]},
                )
    return list(found.values())


def _environment_block(entries: Sequence[Mapping[str, Any]]) -> Markdown:
    parts: list[str] = []
    for path in dict.fromkeys(e["path"] for e in entries):
        mine = [e for e in entries if e["path"] == path]
        lines = [f"{e['key']}={'' if e['value'] is None else e['value']}" for e in mine]
        actions: dict[str, list[str]] = {}
        for entry in mine:
            actions.setdefault(entry["action"], []).append(str(code(entry["key"])))
        how = "; ".join(f"{action}: {', '.join(keys)}" for action, keys in actions.items())
        parts.append(f"In {code(path)} ({how}):\n\n{fence(chr(10).join(lines), 'bash')}")
    return Markdown("\n\n".join(parts))


def _test_method(verify: Sequence[Mapping[str, Any]], cells: list[Any]) -> str:
    if not verify:
        return "No verify steps."
    titles = "; ".join(v["title"] for v in verify)
    if cells:
        return f"Execute {cells_text(cells).lower()} sequentially ({titles})."
    return f"Run {plural(len(verify), 'verify step')} in order: {titles}."


def _verify_cells(verify: Sequence[Mapping[str, Any]]) -> list[Any]:
    cells: list[Any] = []
    for view in verify:
        for ref in view["cells"]:
            value = ref["number"] if ref["number"] is not None else ref["id"]
            if value not in cells:
                cells.append(value)
        for result in cell_results(view["uses"], view["output"]) or []:
            if result.get("number") is not None and result["number"] not in cells and not result.get("setup"):
                cells.append(result["number"])
    return cells


def _success_criteria(
    text: authored.AuthoredText, loaded: LoadedRunbook, verify: Sequence[Mapping[str, Any]]
) -> list[str]:
    criteria = text.texts(loaded.runbook.report.success_criteria, ["report", "success_criteria"])
    for view in verify:
        wanted = [item["message"] or str(code(item["that"].strip())) for item in view["expect"]]
        if not wanted and view.get("declared_expect"):
            wanted = [view["declared_expect"]]
        if not wanted and view["cells"]:
            numbers = [c["number"] if c["number"] is not None else c["id"] for c in view["cells"]]
            wanted = [f"{cells_text(numbers).lower()} run{'s' if len(numbers) == 1 else ''} without error"]
        for wish in wanted:
            line = f"{view['title']}: {wish}"
            if line not in criteria:
                criteria.append(line)
    return criteria


def _expectation_text(view: Mapping[str, Any]) -> str:
    results = view["expectations"]
    if results:
        held = [e for e in results if e.get("passed")]
        if len(held) == len(results):
            return "; ".join(str(e.get("message") or e.get("that")) for e in results)
        return "; ".join(
            f"{e.get('message') or e.get('that')}" + ("" if e.get("passed") else " (did not hold)") for e in results
        )
    rows = view.get("verified_cells")
    if rows and len(rows) > 2:  # the per-cell sentences follow under "Expected and Actual Output"
        return f"{cells_text([row['cell'] for row in rows]).lower()} print what they should, without error (below)"
    if rows:
        return "; ".join(
            f"cell {row['cell']}" + (f" ({row['tag']})" if row["tag"] else "") + f" should {row['expected']}"
            for row in rows
        )
    if view["expect"]:
        return "; ".join(str(e["message"] or e["that"]) for e in view["expect"])
    declared = view.get("declared_expect")
    return declared or "the step succeeds"


VERIFIED_OUTPUT_LINES = 12  # lines of a verified cell's output shown beside what was expected


def _verified_cells(view: Mapping[str, Any], declared: Any) -> list[dict[str, Any]]:
    """notebook.run's checked cells: the expectation as a sentence, the actual output as a fenced excerpt."""
    if view["uses"] != "notebook.run" or view["stage"] == "reproduce":
        return []
    rows = verified_cells(view["output"], declared)
    for row in rows:
        row["label"] = f"Cell {row['cell']}" + (f" ({code(row['tag'])})" if row["tag"] else "")
        row["icon"] = "✅" if row["passed"] else "❌"
        row["verdict"] = "it did" if row["passed"] else "it did not: " + "; ".join(row["failed"])
        shown = excerpt(row["excerpt"], lines=VERIFIED_OUTPUT_LINES) if row["excerpt"].strip() else ""
        row["actual"] = fence(shown, "text") if shown else None
    return rows


def _files(authored: Sequence[str], changed: Sequence[str], azure_changes: int = 0) -> list[dict[str, Any]]:
    """Files to modify (authored, maybe `path (what)`) and files the run changed, once each.

    An entry that is not a path ("Azure: Cosmos DB firewall, …") is shown as written; one about
    Azure says whether the run changed Azure resources.
    """
    files: dict[str, dict[str, Any]] = {}
    for entry in authored:
        match = re.match(r"^(?P<path>\S+)(?:\s+\((?P<note>.*)\))?\s*$", entry.strip())
        path, note = (match.group("path"), match.group("note")) if match else (entry.strip(), None)
        item = {"path": path, "note": note, "changed": False, "plain": match is None}
        if match is None and path.lower().startswith("azure"):
            item["changed"] = azure_changes > 0
            item["note"] = plural(azure_changes, "resource") if azure_changes else None
        files.setdefault(path, item)
    for path in changed:
        files.setdefault(path, {"path": path, "note": None, "changed": False, "plain": False})["changed"] = True
    return list(files.values())


def _next_phase(ws: Workspace, runbook: Runbook, runbooks: PhaseRunbooks) -> dict[str, Any] | None:
    """The phase after this one, with the cells it will touch, from the plan's `cells:`.

    The next runbook is not parsed for this line when the plan knows the phase (it may be thousands
    of steps); only a `next:` phase outside the plan is looked up for its title and cells.
    """
    next_id = runbook.next or ws.next_phase(runbook.phase)
    if not next_id:
        return None
    title = ws.phase_title(next_id)
    cells: list[Any] = []
    if next_id in ws.phases:
        cells = list(ws.phases[next_id][1].cells)
    else:
        following = runbooks.get(next_id)
        if following is not None:
            title = following.runbook.title
            for note in following.runbook.report.cells:
                shown = note.cell if isinstance(note.cell, int | str) else note.cell.number or note.cell.describe()
                if shown not in cells:
                    cells.append(shown)
            for _stage, step in following.runbook.all_steps():
                cells.extend(c for c in step.cells if c not in cells)
    text = f"{next_id} - {title}" + (f" ({cells_text(cells)})" if cells else "")
    return {"id": next_id, "title": title, "cells": cells, "text": text}


def _progress(ws: Workspace, record: RunRecord, phase: str, end_time: Any) -> dict[str, Any] | None:
    """Progress as of the end of this run: the timestamp log up to then, plus this run's own lines."""
    lines, _warnings = read_log(ws.timestamp_log)
    cutoff: datetime | None = None
    if end_time:
        try:
            cutoff = parse_time(str(end_time))
        except ValueError:
            cutoff = None
    kept = [line for line in lines if cutoff is None or line.timestamp <= cutoff or line.run_id == record.run_id]
    group = group_of(compute_progress(ws, log=(kept, [])), phase)
    if group is None:
        return None
    label, _, value = group.line.partition(": ")
    return {
        "line": group.line,
        "label": label,
        "value": value,
        "markdown": f"**{label}**: {value}",
        "group": group.group,
        "resolved": group.resolved,
        "total": group.total,
        "percent": group.percent_text,
    }


def build_report_context(
    ws: Workspace, loaded: LoadedRunbook, record: RunRecord, *, runbooks: PhaseRunbooks | None = None
) -> dict[str, Any]:
    """Everything a report template may use (plain dicts, lists and strings; see the keys below).

    heading, phase{id,title,group}, run{id,status,status_label,resolved,partial,target,runbook,
    record,started_at,finished_at,duration_s,duration_text,time_label,reproduced,changed_files,
    counts,failed_step,runbook_changed,...}, summary{authored,generated}, root_causes[title,expected,
    actual,detail], discovery[step,kind,markdown,facts], steps/reproduce/fix/verify (step views:
    stage,id,title,description,uses,status,icon,observed,started_at,duration,output,output_excerpt,
    error,expect,expectations,diff,changes,cells[number,id],files,reason), resolution_steps,
    cells_to_fix[number,cell,id,description,change], cells_modified[number,id,change,status,state],
    key_changes[subject,title,before,after,diff,markdown], testing_plan{pre_fix_state,expected_fix,
    test_method,success_criteria}, environment[key,value,action,path] + environment_markdown,
    testing_results, comparison[title,before,after], failure, not_run, files, lessons, notes,
    progress{line,label,value,markdown,...}, next_phase{id,title,cells,text}, report (authored
    material as a dict), events (the raw, redacted record).

    `runbooks`: the phases' runbooks already loaded (only consulted for a `next:` phase outside the plan).
    """
    runbook = loaded.runbook
    views = step_results(loaded, record)
    by_stage: dict[str, list[dict[str, Any]]] = {stage: [] for stage in STAGE_ORDER}
    declared = {step.id: step for step in (*runbook.discovery, *runbook.fix, *runbook.verify)}
    for view in views:
        step = declared.get(view["id"])
        raw = step.with_.get("expect") if step is not None and isinstance(step.with_, dict) else None
        sentence = expect_sentence(raw) if raw is not None else None
        if sentence:
            view["declared_expect"] = sentence
        view["verified_cells"] = _verified_cells(view, raw)
        view["expectation_text"] = _expectation_text(view)
        messages = [str(item["message"] or item["that"]) for item in view["expect"]]
        if messages and re.fullmatch(r"\d+ expectations? held", str(view.get("observed", ""))):
            view["observed"] = "as expected: " + "; ".join(messages)  # not "1 expectation held"
        signature = view.get("signature")
        if view["stage"] == "reproduce" and view["status"] == "failed" and isinstance(signature, Mapping):
            said = [str(r.get("message")) for r in signature.get("results") or [] if r.get("message")]
            if signature.get("matched") and len(said) == 1:
                view["observed"] = f"{view['observed']}: {said[0]}"  # "HTTP 200: … without a region header"
        if view["stage"] == "reproduce" and view["status"] in ("ok", "changed"):
            # Not "⚠️ passed 1 expectation held": say what it means for the fault.
            view["icon"] = "⚠️"
            view["observed"] = "already passed before the fix, so this check does not show the fault"
        by_stage.setdefault(view["stage"], []).append(view)
    run = run_info(ws, loaded, record, views)
    text = authored.AuthoredText(loaded, authored.authored_context(loaded, record, views))
    notebook = authored.notebook_for(ws.root, views, runbook, ws.config.notebooks)
    discovery = [discovery_item(v) for v in by_stage["discovery"]]
    fix = by_stage["fix"]
    verify = by_stage["verify"]
    reproduce = by_stage["reproduce"]
    cells_changed = [c for v in fix if v["status"] == "changed" for c in v["cells"]]
    directory = cell_directory(views)
    verify_cells = _verify_cells(verify)
    environment = _environment(views)
    material = runbook.report
    authored_summary = (
        text.text(material.summary, ["report", "summary"]) if material.summary else text.text(runbook.summary, ["summary"])
    ) or None
    fix_titles = [v["title"] for v in fix]
    before = {v["id"]: v for v in reproduce}
    comparison = [
        {
            "id": v["id"],
            "title": v["title"],
            "before": before[v["id"]]["observed"] if v["id"] in before else "not reproduced",
            "before_icon": before[v["id"]]["icon"] if v["id"] in before else "—",
            "after": v["observed"],
            "after_icon": v["icon"],
        }
        for v in verify
    ]
    not_run = [v for v in views if v["stage"] != "reproduce" and v["status"] in ("skipped", "not_run")]
    failure = None
    if run["status"] != "success" and run["failed_step"] is not None:
        failure = run["failed_step"]
    azure_changes = sum(1 for v in fix if v["status"] == "changed" for c in v["changes"] if c.get("kind") == "azure")
    files = _files(material.files, run["changed_files"], azure_changes)
    if cells_changed:
        implementation = "ALL CELLS FIXED"
    elif any(v["status"] == "changed" for v in fix):
        implementation = "ALL FIXES APPLIED"
    elif fix:
        implementation = "NO CHANGES NEEDED (already applied)"
    else:
        implementation = "NOTHING TO FIX"
    investigation = record.options.only == "discovery" and run["status"] == "success"
    return {
        "investigation": investigation,
        "next_steps": _next_steps(runbook.phase, views, run["status"], investigation),
        "next_action": _next_action(runbook.phase, fix, investigation),
        "heading": report_heading(runbook),
        "phase": {
            "id": runbook.phase,
            "title": runbook.title,
            "group": runbook.phase.split(".")[0],
            "plan_title": ws.phase_title(runbook.phase),
        },
        "runbook": {
            "title": runbook.title,
            "summary": runbook.summary,
            "next": runbook.next,
            "path": loaded.doc.display,
        },
        "run": run,
        "summary": {
            "authored": authored_summary,
            "generated": _summary_sentence(runbook.phase, run, views, discovery, cells_changed),
        },
        "root_causes": authored.root_causes(text, runbook),
        "discovery": discovery,
        "steps": views,
        "reproduce": reproduce,
        "fix": fix,
        "verify": verify,
        "resolution_steps": fix,
        "cells_to_fix": cells_to_fix(loaded, fix, directory, notebook, text),
        "cell_sections": authored.cell_sections(text, runbook, fix, notebook, directory),
        "cells_modified": cells_modified(loaded, fix, directory, notebook, text),
        "cells_changed": cells_changed,
        "key_changes": key_changes(fix),
        "implementation_status": implementation,
        "testing_plan": {
            "pre_fix_state": _pre_fix_state(run, reproduce, verify_cells),
            "pre_fix_checks": reproduce,
            "expected_fix": text.text(material.expected_fix, ["report", "expected_fix"])
            or (join_words(fix_titles) if fix_titles else "—"),
            "test_method": _test_method(verify, verify_cells),
            "success_criteria": _success_criteria(text, loaded, verify),
        },
        "environment": environment,
        "environment_markdown": _environment_block(environment) if environment else Markdown(""),
        "testing_results": verify,
        "comparison": comparison,
        "failure": failure,
        "not_run": not_run,
        "files": files,
        "lessons": authored.lessons(text, runbook),
        "postmortem": authored.postmortem(text, runbook),
        "notes": text.text(material.notes, ["report", "notes"]) or None,
        "progress": _progress(ws, record, runbook.phase, run["finished_at"]),
        "next_phase": _next_phase(ws, runbook, runbooks or PhaseRunbooks(ws, [loaded])),
        "report": material.model_dump(),
        "events": record_events(record),
    }


def render_report(
    ws: Workspace,
    loaded: LoadedRunbook,
    record: RunRecord,
    *,
    template: str = REPORT_TEMPLATE,
    runbooks: PhaseRunbooks | None = None,
) -> str:
    """The markdown report of one run, from `template` (workspace templates/ first, then the default)."""
    text = render_template(ws, template, build_report_context(ws, loaded, record, runbooks=runbooks))
    return text if text.endswith("\n") else text + "\n"


def write_report(
    ws: Workspace,
    loaded: LoadedRunbook,
    record: RunRecord,
    *,
    template: str = REPORT_TEMPLATE,
    path: Path | None = None,
    runbooks: PhaseRunbooks | None = None,
) -> Path:
    """Write the report (default: reports/phase-<id>.md); unchanged files are not rewritten."""
    target = path or report_path(ws, loaded.runbook.phase)
    write_if_changed(target, render_report(ws, loaded, record, template=template, runbooks=runbooks))
    return target


def _next_steps(phase: str, views: list[dict[str, Any]], status: str, investigation: bool) -> list[dict[str, Any]]:
    """The seed's "Next Steps" checklist: what this run did (done) and what is left, stage by stage."""
    steps: list[dict[str, Any]] = []
    discovery = [v for v in views if v["stage"] == "discovery"]
    if discovery:
        steps.append({"done": all(v["status"] in ("ok", "changed") for v in discovery), "text": "Document findings (discovery)"})
    for view in (v for v in views if v["stage"] == "fix"):
        steps.append({"done": view["status"] in ("ok", "changed") and not investigation, "text": view["title"]})
    verify = [v for v in views if v["stage"] == "verify"]
    if verify:
        steps.append(
            {"done": not investigation and all(v["status"] == "ok" for v in verify), "text": f"Run the {len(verify)} verify checks"}
        )
    resolved = status == "success" and not investigation
    steps.append({"done": resolved, "text": "Update the timestamp log"})
    steps.append({"done": resolved, "text": f"Mark Phase {phase} complete"})
    return steps


def _next_action(phase: str, fix: list[dict[str, Any]], investigation: bool) -> str | None:
    """After an investigation: the first fix to apply, and the command that applies it."""
    if not investigation:
        return None
    first = fix[0]["title"] if fix else "apply the fixes"
    return f"{first} (`runbook run phase-{phase}` applies every fix and verifies it)"
