"""A clean `runbook validate` is remembered in reports/.index/validate.json and answered from there
while none of its inputs changed (runbook.validation_cache); any change validates afresh.

Runs the real entry point in subprocesses on a copy of the sample workspace: the remembered answer
prints what the validation printed and imports no pydantic, Jinja or YAML code; every kind of input
the key covers (a runbook's bytes, a notebook that disappears, a new runbook, the config) brings the
validators back with their located problems.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import copy_sample

# `runbook ARGS` through the console script's entry point; then whether heavy code was imported.
ENTRY = """
import json, sys
sys.argv = ['runbook', *json.loads(sys.argv[1])]
from runbook.__main__ import main
try:
    main()
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in ('pydantic', 'jinja2', 'ruamel')})
sys.stderr.write('\\n' + json.dumps({'code': code, 'heavy': heavy}))
"""


def validate(workspace: Path, *args: str) -> tuple[int, str, str, list[str]]:
    env = {key: value for key, value in os.environ.items() if key != "RUNBOOK_WORKSPACE"}
    result = subprocess.run(
        [sys.executable, "-c", ENTRY, json.dumps(["validate", *args])],
        cwd=workspace,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    stderr, _, tail = result.stderr.rpartition("\n")
    outcome = json.loads(tail)
    return outcome["code"], result.stdout, stderr, outcome["heavy"]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return copy_sample(tmp_path / "lab")


@pytest.mark.parametrize("args", [(), ("--json",), ("--format", "github")])
def test_a_clean_validation_is_answered_again_without_the_validators(sample: Path, args: tuple[str, ...]) -> None:
    first = validate(sample, *args)
    assert first[0] in (0, None) and first[3] == ["jinja2", "pydantic", "ruamel"]
    assert (sample / "reports" / ".index" / "validate.json").is_file()
    again = validate(sample, *args)
    assert again[:3] == first[:3]
    assert again[3] == []


def test_any_changed_input_validates_afresh(sample: Path) -> None:
    assert validate(sample)[0] in (0, None)
    runbook = sample / "runbooks" / "phase-1.5.yaml"
    text = runbook.read_text(encoding="utf-8")
    # the same length, written at once: only the bytes differ
    broken = text.replace("uses:", "usez:", 1)
    assert len(broken) == len(text)
    runbook.write_text(broken, encoding="utf-8")
    code, _out, err, heavy = validate(sample)
    assert code == 2 and "phase-1.5.yaml:" in err and "usez" in err and heavy
    runbook.write_text(text, encoding="utf-8")
    assert validate(sample)[0] in (0, None)
    assert validate(sample)[3] == []
    # a notebook a runbook names disappears: only its folder's listing says so
    notebook = next((sample / "notebooks").glob("*.ipynb"))
    moved = notebook.rename(sample / "elsewhere.ipynb")
    code, _out, err, heavy = validate(sample)
    assert code == 2 and "does not exist" in err and heavy
    moved.rename(notebook)
    assert validate(sample)[0] in (0, None)
    # a new runbook file, then the config
    (sample / "runbooks" / "phase-1.7.yaml").write_text("phase: '1.7'\ntitle: New\nbogus: 1\n", encoding="utf-8")
    code, _out, err, heavy = validate(sample)
    assert code == 2 and "phase-1.7.yaml:3:1" in err and heavy
    (sample / "runbooks" / "phase-1.7.yaml").unlink()
    assert validate(sample)[0] in (0, None)
    config = sample / "runbook.yaml"
    config.write_text(config.read_text(encoding="utf-8") + "\nbogus_key: 1\n", encoding="utf-8")
    code, _out, err, heavy = validate(sample)
    assert code == 2 and "runbook.yaml:" in err and heavy


def test_problems_are_never_remembered(sample: Path) -> None:
    runbook = sample / "runbooks" / "phase-1.5.yaml"
    runbook.write_text(runbook.read_text(encoding="utf-8").replace("uses:", "usez:", 1), encoding="utf-8")
    first = validate(sample)
    assert first[0] == 2
    assert not (sample / "reports" / ".index" / "validate.json").exists()
    assert validate(sample)[:3] == first[:3]
