"""JUnit XML of a run: reproduce and verify results as test cases, for CI dashboards.

One testsuite per stage (`phase-<id>.reproduce`, `phase-<id>.verify`, and `.discovery` / `.fix` only
when a step there failed); built from the step views, so it says what the report says.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from ..loader import LoadedRunbook
from ..record import RunRecord
from ..text import clean_text, utc_text
from .views import run_facts, step_results

__all__ = ["render_junit"]

_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _testcase(parent: ET.Element, classname: str, name: str, seconds: Any) -> ET.Element:
    case = ET.SubElement(parent, "testcase", classname=classname, name=name)
    case.set("time", f"{float(seconds) if isinstance(seconds, int | float) else 0.0:.3f}")
    return case


def _xml_text(text: str) -> str:
    return _XML_ILLEGAL.sub("?", clean_text(text))


def _expectation_lines(view: Mapping[str, Any]) -> str:
    return "\n".join(
        f"{'PASS' if item.get('passed') else 'FAIL'} {item.get('that')}"
        + (f" ({item['message']})" if item.get("message") else "")
        for item in view["expectations"]
    )


def _failure_text(view: Mapping[str, Any]) -> str:
    lines = [_expectation_lines(view)] if view["expectations"] else []
    error = view["error"] or {}
    if error.get("hint"):
        lines.append(f"hint: {error['hint']}")
    if view["output_excerpt"]:
        lines.extend(["output:", view["output_excerpt"]])
    return _xml_text("\n".join(lines))


def render_junit(loaded: LoadedRunbook, record: RunRecord) -> str:
    """Reproduce and verify results as JUnit XML, one testcase per step.

    `phase-<id>.verify`: a passing step passes; a failed one is a <failure> (message + expectations
    + output excerpt); an interrupted one an <error>; a skipped or unreached one is <skipped>.
    `phase-<id>.reproduce`: each verify step run before the fix is a "fault reproduced" check, so the
    expected pre-fix failure is a PASS; a check that already passed before the fix is <skipped>
    ("fault not reproduced") rather than a failure, since the run itself goes on and may succeed.
    A failed discovery or fix step is reported as a failing testcase of `phase-<id>.<stage>`, so a run
    that stopped before verifying is red in CI.
    """
    phase = loaded.runbook.phase
    views = step_results(loaded, record)
    run_time = run_facts(record)["duration_s"] or 0.0
    root = ET.Element("testsuites", name=f"phase-{phase}")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    suites: dict[str, ET.Element] = {}
    counts: dict[str, dict[str, float]] = {}

    def suite(stage: str) -> ET.Element:
        if stage not in suites:
            suites[stage] = _suite(root, f"phase-{phase}.{stage}", stage, views, loaded, record)
            counts[stage] = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
        return suites[stage]

    def count(stage: str, key: str, seconds: Any) -> None:
        counts[stage]["tests"] += 1
        totals["tests"] += 1
        if key:
            counts[stage][key] += 1
            totals[key] += 1
        if isinstance(seconds, int | float):
            counts[stage]["time"] += float(seconds)

    for view in views:
        stage = view["stage"]
        if stage in ("discovery", "fix"):
            if view["status"] not in ("failed", "error", "interrupted", "running"):
                continue
            name, fill = f"{view['id']}: {view['title']}", _failed_step_case
        elif stage == "reproduce":
            name, fill = f"{view['id']}: fault reproduced", _reproduce_case
        else:
            name, fill = f"{view['id']}: {view['title']}", _verify_case
        case = _testcase(suite(stage), f"phase-{phase}.{stage}", name, view["duration_s"])
        count(stage, fill(case, view), view["duration_s"])
    for stage, element in suites.items():
        numbers = counts[stage]
        for key in ("tests", "failures", "errors", "skipped"):
            element.set(key, str(int(numbers[key])))
        element.set("time", f"{numbers['time']:.3f}")
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{float(run_time):.3f}")
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _suite(
    root: ET.Element, name: str, stage: str, views: list[dict[str, Any]], loaded: LoadedRunbook, record: RunRecord
) -> ET.Element:
    """A stage's <testsuite>, stamped with its first step's start and the run's identity."""
    element = ET.SubElement(root, "testsuite", name=name)
    first = next((v["started_at"] for v in views if v["stage"] == stage and v["started_at"]), None)
    if first:
        element.set("timestamp", utc_text(first).rstrip("Z"))
    properties = ET.SubElement(element, "properties")
    ET.SubElement(properties, "property", name="run_id", value=record.run_id)
    ET.SubElement(properties, "property", name="runbook", value=loaded.doc.display)
    return element


# Each filler completes a step's <testcase> and returns the count it adds to ("" for a pass).


def _failed_step_case(case: ET.Element, view: Mapping[str, Any]) -> str:
    """A discovery or fix step that failed, errored or was interrupted."""
    status = view["status"]
    tag = "failure" if status == "failed" else "error"
    error = view["error"] or {}
    node = ET.SubElement(
        case, tag, message=_xml_text(error.get("message") or status), type=str(error.get("type") or status)
    )
    node.text = _failure_text(view)
    return "failures" if tag == "failure" else "errors"


def _reproduce_case(case: ET.Element, view: Mapping[str, Any]) -> str:
    """A verify step run before the fix: its failure is the fault reproduced, so a pass."""
    status = view["status"]
    if status == "failed":
        out = ET.SubElement(case, "system-out")
        out.text = _xml_text(f"before the fix: {view['observed']}")
        return ""
    if status in ("ok", "changed"):
        ET.SubElement(case, "skipped", message="fault not reproduced: the check already passed before the fix")
        return "skipped"
    if status == "error":
        error = view["error"] or {}
        ET.SubElement(
            case, "error", message=_xml_text(error.get("message") or "could not check the fault"), type="error"
        )
        return "errors"
    if status in ("interrupted", "running"):
        ET.SubElement(case, "error", message=_xml_text(view["reason"] or "interrupted"), type=status)
        return "errors"
    ET.SubElement(case, "skipped", message=_xml_text(view["reason"] or "did not run"))
    return "skipped"


def _verify_case(case: ET.Element, view: Mapping[str, Any]) -> str:
    """A verify step after the fix."""
    status = view["status"]
    if status in ("ok", "changed"):
        if view["expectations"]:
            out = ET.SubElement(case, "system-out")
            out.text = _xml_text(_expectation_lines(view))
        return ""
    if status == "failed":
        error = view["error"] or {}
        node = ET.SubElement(
            case,
            "failure",
            message=_xml_text(error.get("message") or "failed"),
            type=str(error.get("type") or "failed"),
        )
        node.text = _failure_text(view)
        return "failures"
    if status in ("interrupted", "running"):
        ET.SubElement(case, "error", message=_xml_text(view["reason"] or "interrupted by the user"), type=status)
        return "errors"
    ET.SubElement(case, "skipped", message=_xml_text(view["reason"] or "did not run"))
    return "skipped"
