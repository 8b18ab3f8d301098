"""Hostile and careless input against the documents of issue 17, through the real CLI on sample copies.

Machine text (a cell's error, an HTTP body) never becomes live HTML on the site and control bytes
never reach a report raw; report text that a sandbox refuses is a located error; target settings a
record lacks are "not known", not a failed report; a secret input cannot be named in report text; a
hand-kept log with odd durations or secret-named keys neither crashes nor publishes the secret; a
corrupt previous checkpoint is a located error; `runbook changelog` keeps hand-written link
references; `runbook report` after a rerun keeps the resolving report.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import copy_sample, invoke

RUNBOOK = Path("runbooks/phase-1.5.yaml")
NOTEBOOK = Path("notebooks/master-ai-gateway-fix-MCP.ipynb")
HOSTILE_ERROR = "<img src=x onerror=alert(3)> <b>bold</b> | pipe"


def _hostile_notebook(root: Path) -> None:
    """The image config cell's error quotes HTML; the discovery cell prints NUL, BEL, OSC and a bidi override."""
    path = root / NOTEBOOK
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cells = notebook["cells"]
    config = next(c for c in cells if "image-config" in c.get("metadata", {}).get("tags", []))
    source = "".join(config["source"]).replace(
        'raise RuntimeError(f"image generation failed:', f'raise RuntimeError(f"{HOSTILE_ERROR} image generation failed:'
    )
    config["source"] = source.splitlines(keepends=True)
    discovery = next(c for c in cells if "image-discovery" in c.get("metadata", {}).get("tags", []))
    printed = 'print("NUL\\x00 bell\\x07 \\x1b]0;pwned title\\x07osc \\u202eRTL \\x1b[31mred\\x1b[0m")\n'
    discovery["source"] = [printed, *discovery["source"]]
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_sample(tmp_path_factory.mktemp("hostile") / "lab")
    _hostile_notebook(root)
    result = invoke(["run", "phase-1.5"], cwd=root)
    assert result.exit_code == 0, result.output
    return root


def _copy(root: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "lab"
    shutil.copytree(root, dest)
    return dest


def _add_material(root: Path, lines: str) -> None:
    path = root / RUNBOOK
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("  expected_fix:", lines + "  expected_fix:", 1), encoding="utf-8")


def _line_of(root: Path, words: str) -> int:
    return next(n for n, text in enumerate((root / RUNBOOK).read_text(encoding="utf-8").splitlines(), 1) if words in text)


# ---------------------------------------------------------------- markup and bytes from outside


def test_html_in_a_cells_error_never_becomes_live_html(hostile: Path) -> None:
    text = (hostile / "reports" / "phase-1.5.md").read_text(encoding="utf-8")
    assert "&lt;img src=x onerror=alert(3)> &lt;b>bold&lt;/b>" in text  # in the pre-fix list and the table
    assert "<img src=x" not in text and "\\<img" not in text
    built = invoke(["docs", "build"], cwd=hostile)
    assert built.exit_code == 0, built.output  # mkdocs build --strict
    page = (hostile / "site" / "phases" / "phase-1.5.html").read_text(encoding="utf-8")
    assert "onerror=alert(3)" in page and "<img src=x" not in page and "<b>bold</b>" not in page


def test_control_bytes_in_outputs_are_shown_as_escapes(hostile: Path) -> None:
    for path in [hostile / "reports" / "phase-1.5.md", *(hostile / "reports" / "runs" / "1.5").glob("*.md")]:
        data = path.read_bytes()
        for byte in (b"\x00", b"\x07", b"\x1b", "\u202e".encode()):
            assert byte not in data, (path, byte)
    text = (hostile / "reports" / "phase-1.5.md").read_text(encoding="utf-8")
    assert "NUL\\x00 bell\\x07 osc \\u202eRTL red" in text  # the OSC title sequence is gone whole


# ---------------------------------------------------------------- authored report text


def test_a_sandbox_refusal_in_report_text_is_located(hostile: Path, tmp_path: Path) -> None:
    root = _copy(hostile, tmp_path)
    before = (root / "reports" / "phase-1.5.md").read_bytes()
    _add_material(root, "  impact: \"{{ lipsum.__globals__ }}\"\n")
    result = invoke(["report", "phase-1.5"], cwd=root)
    assert result.exit_code == 2, result.output
    assert f"runbooks/phase-1.5.yaml:{_line_of(root, 'lipsum')}:" in result.output
    assert "refused by the sandbox" in result.output and "Traceback" not in result.output
    assert (root / "reports" / "phase-1.5.md").read_bytes() == before  # nothing half-written


def test_a_target_setting_the_record_lacks_is_not_known(hostile: Path, tmp_path: Path) -> None:
    """The steps read `target.gateway_url`; the record has only the settings known when the run started."""
    root = _copy(hostile, tmp_path)
    _add_material(root, "  impact: The cells called {{ target.gateway_url }}.\n  detection: State in {{ target.state_file }}.\n")
    assert invoke(["validate"], cwd=root).exit_code == 0
    result = invoke(["report", "phase-1.5", "-o", "-"], cwd=root)
    assert result.exit_code == 0, result.output
    assert "## Impact\n\n*(not known in this run: the run record does not have the target setting `gateway_url`)*" in result.stdout
    assert "## Detection\n\nState in .runbook/emulator-state.json." in result.stdout


def test_action_item_owner_and_ticket_are_rendered(hostile: Path, tmp_path: Path) -> None:
    root = _copy(hostile, tmp_path)
    _add_material(root, '  action_items:\n    - {action: Inventory, owner: "{{ image.model }} team", ticket: "LAB-{{ phase }}"}\n')
    result = invoke(["report", "phase-1.5", "-o", "-"], cwd=root)
    assert result.exit_code == 0, result.output
    assert "| ⏭️ | Inventory | FLUX-1.1-pro team | LAB-1.5 |" in result.stdout


def test_a_claims_syntax_error_is_located_at_the_same_place_by_validate_and_report(hostile: Path, tmp_path: Path) -> None:
    root = _copy(hostile, tmp_path)
    path = root / RUNBOOK
    text = path.read_text(encoding="utf-8")
    old = "        - that: deployments.deployments | selectattr('image') | map(attribute='account') | unique | list | length == 1\n"
    path.write_text(text.replace(old, '        - that: "deployments.deployments |||"\n', 1), encoding="utf-8")
    where = f"runbooks/phase-1.5.yaml:{_line_of(root, 'deployments.deployments |||')}:17:"
    checked = invoke(["validate"], cwd=root)
    assert checked.exit_code == 2 and where in checked.output, checked.output
    rendered = invoke(["report", "phase-1.5"], cwd=root)
    assert rendered.exit_code == 2 and where in rendered.output, rendered.output


def test_a_secret_input_in_report_text_is_a_validate_error(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    path = root / RUNBOOK
    text = path.read_text(encoding="utf-8").replace("\nvars:\n", "\ninputs:\n  token: {secret: true, required: false}\n\nvars:\n", 1)
    path.write_text(text, encoding="utf-8")
    _add_material(root, "  trigger: The token {{ token }} expired.\n")
    result = invoke(["validate"], cwd=root)
    assert result.exit_code == 2, result.output
    assert f"runbooks/phase-1.5.yaml:{_line_of(root, 'token }} expired')}:" in result.output
    assert "'token' is a secret input: report text cannot show it" in result.output


# ---------------------------------------------------------------- the hand-kept log


ODD_LINES = [
    {"timestamp": "2025-11-14T03:00:00Z", "phase": "1.2", "action": "start", "description": "s"},
    {"timestamp": "2025-11-14T03:30:00Z", "phase": "1.2", "action": "complete", "description": "c", "duration_s": float("nan"),
     "status": "RESOLVED ✅", "api_key": "sk-live-SECRET1234", "servers_verified": 8},
    {"timestamp": "2025-11-14T04:00:00Z", "phase": "1.3", "action": "complete", "description": "d", "duration_s": 1e308, "status": "done"},
    {"timestamp": "2025-11-14T05:00:00Z", "phase": "1.1", "action": "complete", "description": "e", "duration_s": -50, "status": "ok"},
]


def test_odd_logged_durations_and_secret_keys(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    log = root / "reports" / "timestamps" / "execution-log.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("".join(json.dumps(line) + "\n" for line in ODD_LINES), encoding="utf-8")  # NaN as people's tools write it
    status = invoke(["status", "--json"], cwd=root)
    assert status.exit_code == 0, status.output
    phases = {p["id"]: p for g in json.loads(status.stdout)["groups"] for p in g["phases"]}
    assert phases["1.2"]["duration_s"] == 1800.0  # NaN is no duration: the start/complete pair's is used
    assert phases["1.3"]["duration_s"] is None and phases["1.1"]["duration_s"] is None
    assert phases["1.2"]["notes"] == {"api_key": "***", "servers_verified": 8}
    for command in (["checkpoint"], ["timeline"], ["status"]):
        result = invoke(command, cwd=root)
        assert result.exit_code == 0 and "internal error" not in result.output, (command, result.output)
    built = invoke(["docs", "build"], cwd=root)
    assert built.exit_code == 0, built.output
    pages = list((root / "site").rglob("*.html"))
    assert not [p for p in pages if "SECRET1234" in p.read_text(encoding="utf-8")]
    assert "Servers verified" in (root / "site" / "phases" / "phase-1.2.html").read_text(encoding="utf-8")


# ---------------------------------------------------------------- checkpoints


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"progress": \n', ":2:1: the previous checkpoint is not JSON"),
        ("[1, 2]\n", ":1:1: the previous checkpoint is a JSON list"),
        ('{"progress": {"resolved": "x", "total": 8}}\n', ":1:1: the previous checkpoint is missing the facts"),
    ],
)
def test_a_corrupt_previous_checkpoint_is_a_located_error(tmp_path: Path, content: str, words: str) -> None:
    root = copy_sample(tmp_path / "lab")
    assert invoke(["log", "1.1", "complete", "-m", "Env loads"], cwd=root).exit_code == 0
    assert invoke(["checkpoint"], cwd=root).exit_code == 0
    status = root / "reports" / "status"
    previous = next(status.glob("*.json"))
    previous.write_text(content, encoding="utf-8")
    result = invoke(["checkpoint"], cwd=root)
    assert result.exit_code == 2, result.output
    assert f"{previous}{words}" in result.output and "delete it" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in status.iterdir()) == sorted([previous.name, previous.with_suffix(".md").name])


def test_checkpoint_lessons_are_rendered_and_only_from_phases_worked_on(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    path = root / RUNBOOK
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("  lessons:\n", "  lessons:\n    - \"Discovery found {{ image.model }}: ask it, do not assume.\"\n", 1), encoding="utf-8")
    assert invoke(["run", "phase-1.5"], cwd=root).exit_code == 0
    data = json.loads(invoke(["checkpoint", "--json"], cwd=root).stdout)
    lessons = [lesson["text"] for lesson in data["lessons"]]
    assert "Discovery found FLUX-1.1-pro: ask it, do not assume." in lessons
    assert not any("{{" in lesson for lesson in lessons)
    assert {lesson["phase"] for lesson in data["lessons"]} == {"1.5"}  # 1.6 has lessons but was never started


# ---------------------------------------------------------------- changelog and report commands


def test_changelog_keeps_hand_written_link_references(hostile: Path, tmp_path: Path) -> None:
    root = _copy(hostile, tmp_path)
    path = root / "CHANGELOG.md"
    text = path.read_text(encoding="utf-8").replace(
        "## [Unreleased]\n",
        "## [Unreleased]\n\n### Added\n\n- Retry on 429, see [#42] and [the docs][docs].\n\n"
        "[#42]: https://tracker.example/42\n[docs]: https://docs.example/retry\n",
        1,
    )
    path.write_text(text, encoding="utf-8")
    assert invoke(["changelog"], cwd=root).exit_code == 0
    written = path.read_text(encoding="utf-8")
    assert "[#42]: https://tracker.example/42\n" in written and "[docs]: https://docs.example/retry\n" in written
    assert invoke(["changelog", "--check"], cwd=root).exit_code == 0

    import kacl

    assert kacl.load(str(path)).is_valid()


def test_report_command_after_a_rerun_keeps_the_resolving_report(hostile: Path, tmp_path: Path) -> None:
    root = _copy(hostile, tmp_path)
    assert invoke(["run", "phase-1.5"], cwd=root).exit_code == 0  # a rerun: changes nothing
    phase_report = root / "reports" / "phase-1.5.md"
    resolving = phase_report.read_text(encoding="utf-8")
    assert "**Cells Fixed**: 3 (15, 17, 19)" in resolving and "## Later Runs" in resolving
    result = invoke(["report", "phase-1.5"], cwd=root)  # re-render the latest (the rerun)
    assert result.exit_code == 0, result.output
    assert phase_report.read_text(encoding="utf-8") == resolving
    latest = sorted((root / "reports" / "runs" / "1.5").glob("*.md"))[-1]
    assert f"wrote {latest}" in result.output and "**Cells Fixed**: 0" in latest.read_text(encoding="utf-8")


def test_logged_html_never_becomes_live_html_in_a_checkpoint(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    assert invoke(["log", "1.2", "fail", "-m", "<img src=x onerror=alert(1)> | pipe"], cwd=root).exit_code == 0
    assert invoke(["log", "1.1", "complete", "-m", "<script>alert(2)</script> done"], cwd=root).exit_code == 0
    result = invoke(["checkpoint"], cwd=root)
    assert result.exit_code == 0, result.output
    text = next((root / "reports" / "status").glob("*.md")).read_text(encoding="utf-8")
    assert "<img" not in text and "<script" not in text
    assert "| &lt;img src=x onerror=alert(1)> \\| pipe |" in text and "known issue: &lt;img src=x" in text
    assert invoke(["docs", "build"], cwd=root).exit_code == 0
    page = next((root / "site" / "status").glob("*.html")).read_text(encoding="utf-8")
    assert "onerror=alert(1)" in page and "<img src=x" not in page and "<script>alert(2)" not in page


def test_a_logged_phase_id_cannot_name_pages_outside_the_docs_folder(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "deep" / "lab")
    log = root / "reports" / "timestamps" / "execution-log.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    line = {"timestamp": "2025-11-14T05:00:00Z", "phase": "9/../../../../pwned", "action": "complete", "description": "x"}
    log.write_text(json.dumps(line) + "\n", encoding="utf-8")
    status = invoke(["status"], cwd=root)
    assert status.exit_code == 0 and "pwned" not in status.output, status.output
    built = invoke(["docs", "build"], cwd=root)
    assert built.exit_code == 0, built.output
    assert not list(tmp_path.rglob("pwned*"))


def test_other_files_in_the_status_folder_are_not_checkpoints(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    assert invoke(["checkpoint"], cwd=root).exit_code == 0
    (root / "reports" / "status" / "notes.json").write_text('{"mine": true}\n', encoding="utf-8")
    result = invoke(["checkpoint", "--json"], cwd=root)
    assert result.exit_code == 0, result.output
    first = sorted(p.stem for p in (root / "reports" / "status").glob("2*.json"))[0]
    assert json.loads(result.stdout)["previous"]["checkpoint"] == first


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("    - cell: {tag: image-discovery}\n      description: Deployment discovery\n", "    - cell: 0\n      description: x\n"),
        ("      cell: {tag: image-test}\n", "      cell: -3\n"),
    ],
    ids=["report-cells", "step"],
)
def test_a_cell_number_below_1_is_a_located_error_not_a_crash(tmp_path: Path, old: str, new: str) -> None:
    root = copy_sample(tmp_path / "lab")
    path = root / RUNBOOK
    path.write_text(path.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    line = _line_of(root, new.split("\n")[0].strip())
    result = invoke(["validate"], cwd=root)
    assert result.exit_code == 2, result.output
    assert f"runbooks/phase-1.5.yaml:{line}:13:" in result.output and "cell numbers start at 1" in result.output
    assert "internal error" not in result.output and "ValidationError" not in result.output


def test_clean_text_keeps_what_an_unterminated_osc_sequence_precedes() -> None:
    from runbook.text import clean_text

    assert clean_text("a\x1b]0;title\x07b \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ c\x1b]cut\nnext\x00") == "ab link c\nnext\\x00"


def test_logged_html_is_text_in_timeline_md(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    logged = ["log", "1.2", "complete", "-m", "<img src=x onerror=alert(9)> `code` a | b", "--started", "2025-11-14T02:00Z", "--at", "2025-11-14T02:20Z"]
    assert invoke(logged, cwd=root).exit_code == 0
    assert invoke(["timeline"], cwd=root).exit_code == 0
    text = (root / "TIMELINE.md").read_text(encoding="utf-8")
    assert "| &lt;img src=x onerror=alert(9)> `code` a \\| b *(logged by hand)* |" in text and "<img" not in text


def test_a_logged_time_out_of_range_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    """0001-01-01T00:00:00+14:00 parses but overflows when turned into UTC: one bad line, not an internal error."""
    root = copy_sample(tmp_path / "lab")
    log = root / "reports" / "timestamps" / "execution-log.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    lines = [*ODD_LINES[:2], {"timestamp": "0001-01-01T00:00:00+14:00", "phase": "1.4", "action": "complete", "status": "ok"}]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    for command in (["status"], ["checkpoint"], ["timeline"], ["changelog"]):
        result = invoke(command, cwd=root)
        assert result.exit_code == 0 and "internal error" not in result.output, (command, result.output)
    assert "execution-log.jsonl:3" in invoke(["status"], cwd=root).output
    bad = invoke(["log", "1.4", "complete", "--at", "0001-01-01T00:00:00+14:00"], cwd=root)
    assert bad.exit_code == 2 and "internal error" not in bad.output, bad.output


def test_report_text_problems_stop_a_run_before_any_step(tmp_path: Path) -> None:
    """What validate finds in the report text stops `runbook run` up front, not after the fix was applied."""
    root = copy_sample(tmp_path / "lab")
    path = root / "runbooks" / "phase-1.5.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("Only **{{ image.account }}**", "Only **{{ imagee.account }}**"), encoding="utf-8")
    notebook = (root / "notebooks" / "master-ai-gateway-fix-MCP.ipynb").read_bytes()
    result = invoke(["run", "1.5"], cwd=root)
    assert result.exit_code == 2, result.output
    assert "phase-1.5.yaml:" in result.output and "did you mean 'image'" in result.output, result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    assert not list((root / "reports").rglob("*.jsonl"))  # no record, no log line: nothing ran
    assert (root / "notebooks" / "master-ai-gateway-fix-MCP.ipynb").read_bytes() == notebook
    assert invoke(["run", "1.5", "--no-report", "--only", "discovery"], cwd=root).exit_code == 0  # no report, no check


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["complete", "-m", "x", "--status", "FAILED"], "contradicts the action 'complete'"),
        (["fail", "-m", "x", "--status", "SUCCESS"], "contradicts the action 'fail'"),
        (["start", "-m", "x", "--status", "DONE"], "contradicts the action 'start'"),
        (["complete", "-m", "x", "--status", "meh"], "not a status word the log reads"),
        (["complete", "-m", "  "], "-m/--message is empty"),
    ],
)
def test_runbook_log_refuses_status_words_it_would_not_read_as_meant(
    tmp_path: Path, args: list[str], words: str
) -> None:
    root = copy_sample(tmp_path / "lab")
    result = invoke(["log", "1.3", *args], cwd=root)
    assert result.exit_code == 2 and words in result.output, result.output
    assert not (root / "reports" / "timestamps" / "execution-log.jsonl").exists()  # nothing written


def test_runbook_log_masks_a_secret_pasted_into_the_message(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    (root / ".env").write_text("APIM_SUBSCRIPTION_KEY=k3y-0f-the-lab-9d8e7f\n", encoding="utf-8")
    result = invoke(["log", "1.3", "complete", "-m", "fixed with key k3y-0f-the-lab-9d8e7f", "--status", "RESOLVED ✅"], cwd=root)
    assert result.exit_code == 0, result.output
    log = (root / "reports" / "timestamps" / "execution-log.jsonl").read_text(encoding="utf-8")
    assert "k3y-0f-the-lab-9d8e7f" not in log and "k3y-0f-the-lab-9d8e7f" not in result.output
    assert "fixed with key ***" in log
