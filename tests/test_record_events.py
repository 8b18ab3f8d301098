"""Typed run-record events: records written before the types read back whole, into their models.

The two records under tests/fixtures/records/ were written by a real `runbook run phase-1.5` of the
sample (the code of commit 8d6b246, before the events were typed): `phase-1.5-resumed.jsonl` is a run
cut after its first fix step and finished with `--resume` (run_resumed, step_restored), and
`phase-1.5-rerun.jsonl` a second run on the fixed notebook (the `fault_not_reproduced` note).
"""

from __future__ import annotations

import enum
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runbook.console import ConsolePrinter, JsonPrinter
from runbook.record import (
    EVENT_KINDS,
    Note,
    OtherEvent,
    RecordWriter,
    RunFinished,
    RunResumed,
    RunStarted,
    StepErrorRecord,
    StepFinished,
    StepRestored,
    StepStarted,
    iso,
    iso_us,
    now_us,
    parse_event,
    read_record,
    redact_event,
    utc_now,
)
from runbook.record_lines import LineEncoder, record_line
from runbook.secrets import Redactor
from runbook.status import run_summary

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "records"
RESUMED = FIXTURES / "phase-1.5-resumed.jsonl"
RERUN = FIXTURES / "phase-1.5-rerun.jsonl"


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("path", [RESUMED, RERUN], ids=["resumed", "rerun"])
def test_records_written_before_the_types_read_into_their_models(path: Path) -> None:
    record = read_record(path)
    assert record.warnings == []
    assert not [e for e in record.events if isinstance(e, OtherEvent)]
    # Every line reads back to exactly the object on disk: same keys, same values.
    assert [e.as_record() for e in record.events] == _lines(path)
    assert record.status == "success"
    assert record.phase == "1.5"
    assert record.run_id == path.read_text().split('"run_id":"', 1)[1].split('"', 1)[0]
    header = record.run_started
    assert isinstance(header, RunStarted)
    assert header.options.dry_run is False and header.options.partial is False
    end = record.run_finished
    assert isinstance(end, RunFinished) and end.counts and end.failed_step is None
    finished = record.step_results()
    assert finished and all(isinstance(e, StepFinished) for e in finished)
    assert {e.stage for e in finished} <= {"discovery", "reproduce", "fix", "verify"}
    probe = next(e for e in record.step_outcomes() if e.stage == "reproduce" and e.step == "gateway-probe")
    # Before the fix the probe fails (the fault reproduced); on the fixed notebook it passes.
    assert end.reproduced is (probe.status == "failed")
    if probe.status == "failed":
        assert isinstance(probe.error, StepErrorRecord) and probe.error.message


def test_the_resumed_record_has_its_restored_steps_typed() -> None:
    record = read_record(RESUMED)
    kinds = [type(e) for e in record.events]
    assert kinds.count(RunStarted) == 1 and kinds.count(RunResumed) == 1
    restored = [e for e in record.events if isinstance(e, StepRestored)]
    assert restored and all(e.time for e in restored)
    assert all(e.succeeded or e.stage == "reproduce" for e in restored)
    fixed = next(e for e in restored if e.step == "fix-config-cell")
    assert fixed.status == "changed" and fixed.changed_paths() == ["notebooks/master-ai-gateway-fix-MCP.ipynb"]
    # The newest result of each step wins: nothing of the first attempt is left unfinished.
    outcomes = {(e.stage, e.step): e.status for e in record.step_outcomes()}
    assert outcomes[("verify", "run-image-cells")] == "ok"
    summary = run_summary(record, FIXTURES)
    assert summary.status == "success" and summary.steps["failed"] == 0 and summary.target == "emulator"


def test_the_note_of_a_fault_that_did_not_reproduce_is_typed() -> None:
    (note,) = [e for e in read_record(RERUN).events if isinstance(e, Note)]
    assert note.kind == "fault_not_reproduced" and note.message and note.time


def test_unknown_fields_and_kinds_do_not_break_reading(tmp_path: Path) -> None:
    lines = _lines(RERUN)
    for line in lines:
        line["added_by_a_newer_runbook"] = {"x": 1}
    lines.insert(1, {"event": "step_retried", "step": "accounts", "attempt": 2})
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    record = read_record(path)
    assert record.warnings == []
    other = record.events[1]
    assert isinstance(other, OtherEvent) and other.event == "step_retried" and other.get("attempt") == 2
    assert record.status == "success" and len(record.step_results()) == len(read_record(RERUN).step_results())
    # Unknown keys are kept (and carried into a restored step), not dropped.
    step = record.step_results()[0]
    assert step.model_extra == {"added_by_a_newer_runbook": {"x": 1}}
    restored = StepRestored.of(step, "2025-11-14T04:25:00.000Z")
    assert restored.as_record()["added_by_a_newer_runbook"] == {"x": 1}
    assert restored.as_record()["event"] == "step_restored"


def test_a_known_kind_with_bad_fields_is_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    good = {"event": "step_started", "stage": "fix", "step": "a", "time": "2025-11-14T04:15:00.000Z"}
    bad = {"event": "step_finished", "stage": "fix", "step": ["not", "a", "string"], "status": "ok"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    record = read_record(path)
    assert [type(e) for e in record.events] == [StepStarted]
    (warning,) = record.warnings
    assert warning.startswith(f"{path}:2: not a valid step_finished event: step:") and warning.endswith("ignored")


def test_events_are_written_through_the_models(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    writer = RecordWriter(path)
    for line in _lines(RERUN):
        writer.write(parse_event(line))
    # Byte for byte what the code before the types wrote (the same compact JSON, the same key order).
    assert path.read_bytes() == RERUN.read_bytes()


def test_unset_fields_are_not_written() -> None:
    skipped = StepFinished(stage="fix", step="s", status="skipped", duration_s=0.0, reason="--only discovery")
    assert skipped.as_record() == {
        "event": "step_finished", "stage": "fix", "step": "s", "status": "skipped", "duration_s": 0.0,
        "reason": "--only discovery",
    }  # fmt: skip
    assert StepFinished(stage="v", step="s", status="ok", output=None).as_record()["output"] is None
    assert sorted(EVENT_KINDS) == sorted({"run_started", "run_resumed", "step_started", "step_finished",
                                          "step_restored", "note", "target_address", "run_finished",
                                          "warning"})  # fmt: skip


def test_redaction_keeps_the_model_and_its_fields() -> None:
    redactor = Redactor(["hunter2-secret"])
    event = StepFinished(
        stage="verify",
        step="probe",
        status="failed",
        output={"url": "https://x/?k=hunter2-secret"},
        error=StepErrorRecord(type="ActionError", message="bad key hunter2-secret", hint=None),
    )
    masked = redact_event(event, redactor)
    assert isinstance(masked, StepFinished)
    assert "hunter2-secret" not in json.dumps(masked.as_record())
    assert masked.output == {"url": "https://x/?k=***"}
    assert masked.error is not None and masked.error.message == "bad key ***"
    assert set(masked.as_record()) == set(event.as_record())


def test_console_and_json_printers_take_the_typed_events() -> None:
    out = io.StringIO()
    printer = ConsolePrinter(out, colour=False)
    for event in read_record(RESUMED).events:
        printer(event)
    text = out.getvalue()
    assert text.startswith("runbook: phase 1.5 - ")
    assert "runbook: resuming run " in text and "changed (restored)" in text
    assert "    expected failure (pre-fix): " in text
    assert text.rstrip().splitlines()[-1].startswith("SUCCESS: run ")
    stream = io.StringIO()
    json_printer = JsonPrinter(stream)
    json_printer(read_record(RERUN).events[0])
    json_printer.warning("gateway-probe: attempt 1 failed (503); retrying in 1s")
    first, warning = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first == _lines(RERUN)[0]
    assert warning == {"event": "warning", "message": "gateway-probe: attempt 1 failed (503); retrying in 1s"}


# ---------------------------------------------------------------- the fast paths write what the models write


@dataclass
class _Point:
    x: int


class _Kind(enum.Enum):
    A = "a"


def _sample_events() -> list[Any]:
    """Events as the executor emits them and as records read back: plain ones (the fast path) and
    ones holding what `model_dump` changes or `default=str` prints (the model's own path)."""
    events: list[Any] = [*read_record(RESUMED).events, *read_record(RERUN).events]
    odd_outputs = [
        {"value": 8, "label": "step 1"},
        {"nested": {"list": [1, 2.5, None, True, "é ☃ \u2028"], "deep": [[[{"a": "b"}]]]}},
        {"floats": [1e16, 1e-7, 0.1 + 0.2, float("inf"), float("-inf"), float("nan"), -0.0]},
        {"big": 2**80, "negative": -(2**70)},
        {1: "int key", "s": "str key"},
        {"tuple": (1, 2), "set": {3}, "path": Path("/tmp/x"), "point": _Point(1), "kind": _Kind.A},
        [1, "two", {"three": 3}],
        "a string output",
        None,
        _Point(2),
    ]
    for index, output in enumerate(odd_outputs):
        events.append(
            StepFinished(
                stage="fix",
                step=f"s{index}",
                title="t",
                uses="set",
                status="ok",
                started_at="2025-11-14T04:15:00.000Z",
                finished_at="2025-11-14T04:15:00.001Z",
                duration_s=0.001,
                attempts=1,
                output=output,
            )
        )
    events.append(
        StepStarted(stage="fix", step="s", title='a "quoted" title\n', uses="shell", time="2025-11-14T04:15:00.000Z")
    )
    events.append(
        StepFinished(
            stage="fix",
            step="e",
            status="failed",
            error=StepErrorRecord(type="CheckFailed", message="m"),
            expectations=[{"that": "x", "passed": False}],
            output={"checked": []},
        )
    )
    events.append(StepFinished.model_validate({"stage": "fix", "step": "x", "status": "ok", "extra_key": {"k": [1]}}))
    events.append(StepFinished.model_validate({"stage": "fix", "step": "x", "status": "ok", "extra": (1, 2)}))
    events.append(RunFinished(run_id="r", status="success", counts={"ok": 2}, changed_files=["a"], duration_s=1.5))
    for duration in (float("nan"), float("inf"), float("-inf"), 1e16, 2.5e-7, 2**70, True):
        events.append(
            StepFinished(
                stage="fix", step="d", status="ok", duration_s=duration, attempts=2**70, message="\x00\x1f\ud800"[:2]
            )
        )
    events.append(Note(kind="k", time="2025-11-14T04:15:00.000Z", message="m"))
    return events


def _old_line(event: Any) -> bytes:
    """How a record line was written before the fast path: model_dump, then json.dumps."""
    data = event.model_dump(mode="python", by_alias=True, exclude_unset=True)
    record = {"event": event.event, **{k: v for k, v in data.items() if k != "event"}}
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode("utf-8")


def test_record_lines_are_byte_identical_to_the_models_dump() -> None:
    encode = LineEncoder()
    events = _sample_events()
    for event in events:
        assert encode(record_line(event)) == _old_line(event), event
        assert encode.event(event) == _old_line(event), event
    # a writer writes the same bytes
    assert encode(record_line(events[0])) == _old_line(events[0])


def test_the_line_encoder_fails_as_json_dumps_and_goes_on(tmp_path: Path) -> None:
    encode = LineEncoder()
    loop: dict[str, Any] = {"a": 1}
    loop["self"] = loop
    with pytest.raises(ValueError, match="Circular reference"):
        json.dumps(loop, default=str)
    with pytest.raises(ValueError, match="Circular reference"):
        encode(loop)
    shared = {"x": 1}
    assert encode({"a": shared, "b": shared}) == b'{"a":{"x":1},"b":{"x":1}}\n'  # marked no more
    writer = RecordWriter(tmp_path / "r.jsonl")
    writer.write(StepStarted(stage="fix", step="a", time="2025-11-14T04:15:00.000Z"))
    writer.close()
    assert (
        tmp_path / "r.jsonl"
    ).read_bytes() == b'{"event":"step_started","stage":"fix","step":"a","time":"2025-11-14T04:15:00.000Z"}\n'


def test_step_times_read_off_the_clock_as_datetimes_would() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    now = now_us()
    samples = [
        now,
        now + 1,
        0,
        999,
        1_000,
        999_999,
        1_000_000,
        1_763_093_700_999_999,
        1_763_093_701_000_000,
        253_402_300_799_999_999,
    ]
    samples += [now + step * 37_123 for step in range(300)]
    for micros in samples:
        assert iso_us(micros) == iso(epoch + timedelta(microseconds=micros)), micros
    start, end = 1_763_093_700_123_456, 1_763_093_702_654_321
    assert (end - start) / 1_000_000 == (
        epoch + timedelta(microseconds=end) - (epoch + timedelta(microseconds=start))
    ).total_seconds()
    before, reading, after = utc_now(), now_us(), utc_now()
    assert (before - epoch) // timedelta(microseconds=1) <= reading <= (after - epoch) // timedelta(microseconds=1)


def _old_redact(event: Any, redactor: Redactor) -> Any:
    data = redactor(event.model_dump(by_alias=True, exclude_unset=True))
    return type(event).model_validate({**data, "event": event.event})


def test_redaction_masks_what_it_masked_and_keeps_events_without_secrets() -> None:
    redactor = Redactor(["hunter2-secret", "tok-abcdef123456"])
    for event in _sample_events():
        masked = redact_event(event, redactor)
        assert _old_line(masked) == _old_line(_old_redact(event, redactor))
    for event in [*read_record(RESUMED).events, *read_record(RERUN).events]:
        assert redact_event(event, redactor) is event  # no secret in it: the event itself, not a copy
    secret_events = [
        StepStarted(stage="fix", step="s", title="uses hunter2-secret", uses="set", time="2025-11-14T04:15:00.000Z"),
        StepFinished(
            stage="fix",
            step="s",
            status="ok",
            output={"h": "Bearer tok-abcdef123456", "n": [("hunter2-secret",)]},
            message="aHVudGVyMi1zZWNyZXQ= is base64",
            reason="r hunter2-secret",
        ),
        StepFinished(
            stage="verify",
            step="p",
            status="failed",
            error=StepErrorRecord(type="E", message="bad hunter2-secret", hint="h"),
            expectations=[{"that": "x == 'hunter2-secret'", "passed": False}],
        ),
        StepFinished.model_validate({"stage": "fix", "step": "x", "status": "ok", "extra_key": "hunter2-secret"}),
        Note(kind="k", message="tok-abcdef123456"),
        RunFinished(run_id="r", status="failed", failed_step="s", changed_files=["hunter2-secret.txt"]),
    ]
    for event in secret_events:
        masked = redact_event(event, redactor)
        assert masked is not event and type(masked) is type(event)
        assert _old_line(masked) == _old_line(_old_redact(event, redactor))
        assert b"hunter2-secret" not in _old_line(masked) and b"tok-abcdef123456" not in _old_line(masked)


def test_without_jsons_c_encoder_lines_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    encode = LineEncoder()
    for event in _sample_events()[-12:]:
        assert encode.event(event) == _old_line(event)


def test_a_field_written_under_an_alias_goes_the_models_way() -> None:
    from pydantic import Field

    class Aliased(StepStarted):
        origin: str | None = Field(default=None, alias="from")

    event = Aliased.model_validate({"stage": "fix", "step": "a", "from": "b"})
    assert LineEncoder().event(event) == _old_line(event) and b'"from":"b"' in _old_line(event)
    assert record_line(event) == event.as_record()
