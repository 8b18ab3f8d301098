"""Fitting the tools people already use: schemas, `validate` catching mistakes early, CLI conventions
(colour, JSON, GitHub annotations, -q, completion, RUNBOOK_WORKSPACE) and `runbook init`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import REPO, copy_sample, invoke
from runbook import schemas


def write_runbook(root: Path, phase: str, text: str) -> Path:
    path = root / "runbooks" / f"phase-{phase}.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [line for line in result.stderr.splitlines() if ": " in line and not line.startswith(("error", "  hint"))]


# ------------------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("kind", schemas.kinds())
def test_every_property_of_every_schema_has_a_description(kind: str) -> None:
    document = schemas.schema(kind)
    jsonschema.Draft202012Validator.check_schema(document)
    assert schemas.missing_descriptions(document) == []


def test_schema_kinds_on_the_command_line() -> None:
    for kind in ("runbook", "config", "estate"):
        result = invoke(["schema", "--kind", kind])
        assert result.exit_code == 0
        assert json.loads(result.stdout) == json.loads(schemas.schema_text(kind))
    assert json.loads(invoke(["schema"]).stdout)["title"] == "runbook"
    wrong = invoke(["schema", "--kind", "estat"])
    assert wrong.exit_code == 2 and "did you mean 'estate'?" in wrong.stderr


def test_runbook_schema_accepts_templates_and_describes_actions() -> None:
    document = schemas.runbook_schema()
    validator = jsonschema.Draft202012Validator(document)
    runbook = {
        "phase": "1.1",
        "title": "t",
        "verify": [
            {"id": "cells", "uses": "notebook.run", "with": {"path": "n.ipynb", "cells": [1], "timeout": "{{ cell_timeout }}"}},
            {"id": "wait", "uses": "http.request", "with": {"url": "http://x", "follow_redirects": "{{ follow }}"}},
        ],
    }
    assert list(validator.iter_errors(runbook)) == []
    runbook["verify"][0]["with"]["timeout"] = "soon"  # neither a number nor a template
    assert list(validator.iter_errors(runbook))
    uses = document["$defs"]["Step"]["properties"]["uses"]
    by_name = {item["const"]: item["description"] for item in uses["anyOf"]}
    assert by_name["file.replace"].startswith("Literal or regex replacements")
    assert "(read-only)" in by_name["azure.deployments"]
    snippet = document["$defs"]["Step"]["defaultSnippets"][0]["body"]
    assert {"id", "uses", "with"} <= set(snippet)


def test_config_schema_types_emulator_settings() -> None:
    validator = jsonschema.Draft202012Validator(schemas.config_schema())
    config = yaml.safe_load((REPO / "runbook.yaml").read_text(encoding="utf-8"))
    assert list(validator.iter_errors(config)) == []
    config["targets"]["emulator"]["settings"] = {"page_sise": 5}
    assert any("page_sise" in error.message for error in validator.iter_errors(config))
    config["targets"]["emulator"]["settings"] = {"page_size": 5}
    assert list(validator.iter_errors(config)) == []


def test_committed_schemas_are_current_and_the_sample_points_at_them() -> None:
    for kind in ("runbook", "config", "estate"):
        committed = (REPO / schemas.FILE_NAMES[kind]).read_text(encoding="utf-8")
        assert committed == schemas.schema_text(kind), f"run `runbook schema --kind {kind} -o {schemas.FILE_NAMES[kind]}`"
    packaged = REPO / "src" / "runbook" / "azure"
    assert (packaged / "estate.schema.json").read_text(encoding="utf-8") == schemas.schema_text("estate")
    assert (REPO / "runbook.yaml").read_text().startswith("# yaml-language-server: $schema=config.schema.json\n")
    assert (REPO / "runbooks" / "phase-1.5.yaml").read_text().startswith("# yaml-language-server: $schema=../runbook.schema.json\n")
    assert (packaged / "default_estate.yaml").read_text().startswith("# yaml-language-server: $schema=estate.schema.json\n")


def test_init_and_new_write_the_schemas_their_modelines_point_at(tmp_path: Path) -> None:
    assert invoke(["init", str(tmp_path / "ws")]).exit_code == 0
    root = tmp_path / "ws"
    for yaml_file, kind in (("runbook.yaml", "config"), ("runbooks/phase-1.1.yaml", "runbook")):
        first = (root / yaml_file).read_text().splitlines()[0]
        assert first == schemas.modeline(kind, root / yaml_file, root)
        pointed = (root / yaml_file).parent / first.split("$schema=")[1]
        assert json.loads(pointed.read_text()) == schemas.schema(kind)
    (root / "runbook.schema.json").unlink()
    created = invoke(["new", "1.2", "--title", "Second"], cwd=root)
    assert created.exit_code == 0, created.output
    assert (root / "runbooks" / "phase-1.2.yaml").read_text().startswith("# yaml-language-server: $schema=../runbook.schema.json")
    assert (root / "runbook.schema.json").read_text() == schemas.schema_text("runbook")


def test_validate_warns_when_a_committed_schema_is_stale(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    (root / "runbook.schema.json").write_text('{"title": "an old one"}\n')
    result = invoke(["validate"], cwd=root)
    assert result.exit_code == 0
    assert "warning: runbook.schema.json is out of date" in result.stderr
    assert "runbook schema --kind runbook -o runbook.schema.json" in result.stderr


# --------------------------------------------------------------------------- validate catches


def test_validate_checks_notebook_paths_and_template_names(local_workspace: Path) -> None:
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        vars: {cell_timeout: 30}
        discovery:
          - id: cells
            uses: notebook.cells
            with: {path: notebooks/missing.ipynb}
            register: found
          - id: use
            uses: set
            with: {a: "{{ cel_timeout }}", b: "{{ found.cells }}", c: "{% for x in [1] %}{{ x }}{% endfor %}"}
            expect: "outptu.a == 1"
        """,
    )
    result = invoke(["validate"], cwd=local_workspace)
    assert result.exit_code == 2
    lines = problems_of(result)
    assert lines[0].startswith("runbooks/phase-1.1.yaml:7:18: notebook 'notebooks/missing.ipynb' does not exist")
    assert lines[1].startswith("runbooks/phase-1.1.yaml:11:15: undefined name 'cel_timeout' in a template: did you mean 'cell_timeout'?")
    assert lines[2].startswith("runbooks/phase-1.1.yaml:12:13: undefined name 'outptu' in a template: did you mean 'output'?")
    assert len(lines) == 3, lines


def test_validate_checks_config_notebooks_target_settings_and_estates(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    config = root / "runbook.yaml"
    text = config.read_text()
    text = text.replace("  - notebooks/master-ai-gateway-fix-MCP.ipynb\n", "  - notebooks/master-ai-gateway-fix-MCP.ipynb\n  - notebooks/gone.ipynb\n")
    text = text.replace(
        "  emulator:\n    kind: emulator\n",
        "  emulator:\n    kind: emulator\n    settings: {page_sise: 5}\n  broken:\n    kind: emulator\n    estate: broken-estate.yaml\n",
    )
    config.write_text(text)
    (root / "broken-estate.yaml").write_text("subscriptions:\n  - id: not-a-guid\n    nme: lab\n")
    result = invoke(["validate"], cwd=root)
    assert result.exit_code == 2
    out = result.stderr
    assert "runbook.yaml:9:5: notebook 'notebooks/gone.ipynb' does not exist" in out
    assert "runbook.yaml:47:16: unknown key 'page_sise': did you mean 'page_size'?" in out
    assert "broken-estate.yaml:2:9:" in out and "GUID" in out
    assert "broken-estate.yaml:3:5:" in out and "'nme'" in out and "'name'" in out
    # `run` refuses the misspelt setting too, instead of ignoring it.
    ran = invoke(["run", "1.5", "--dry-run"], cwd=root)
    assert ran.exit_code == 2 and "unknown setting 'page_sise': did you mean 'page_size'?" in ran.stderr


def test_run_rejects_undeclared_vars_with_a_suggestion(local_workspace: Path) -> None:
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        vars: {mode: slow}
        inputs: {region: {default: uksouth}}
        fix:
          - {id: a, uses: set, with: {m: "{{ mode }} {{ region }}"}}
        """,
    )
    result = invoke(["run", "1.1", "--var", "mdoe=fast"], cwd=local_workspace)
    assert result.exit_code == 2
    assert "--var mdoe: runbooks/phase-1.1.yaml declares no variable or input 'mdoe'" in result.stderr
    assert "did you mean 'mode'? declared: mode, region" in result.stderr
    assert not (local_workspace / "reports" / "runs").exists()  # nothing ran, nothing half-written
    assert invoke(["run", "1.1", "--var", "mode=fast", "--var", "region=eastus"], cwd=local_workspace).exit_code == 0


def test_nested_unknown_keys_get_that_places_keys_and_no_union_noise(local_workspace: Path) -> None:
    (local_workspace / "n.ipynb").write_text("{}")
    write_runbook(
        local_workspace,
        "1.1",
        """\
        phase: "1.1"
        title: t
        fix:
          - id: edit
            uses: notebook.set_source
            with: {path: n.ipynb, cell: {tg: x}, source: y}
          - id: check
            uses: set
            with: {a: 1}
            expect:
              - tht: "output.a == 1"
          - id: ref
            uses: notebook.set_source
            with: {path: n.ipynb, cell: [1], source: y}
        """,
    )
    result = invoke(["validate"], cwd=local_workspace)
    lines = problems_of(result)
    assert lines == [
        "runbooks/phase-1.1.yaml:6:34: notebook.set_source: unknown key 'tg': did you mean 'tag'?",
        "runbooks/phase-1.1.yaml:11:9: unknown key 'tht': did you mean 'that'?",
        "runbooks/phase-1.1.yaml:14:33: notebook.set_source: fix.2.with.cell: expected an integer, a string or a "
        "mapping with keys id, number, tag, pattern, all, cell_type, not a list",
    ]
    assert "valid integer" not in result.stderr and "known keys: \n" not in result.stderr + "\n"
    (local_workspace / "runbook.yaml").write_text(
        (local_workspace / "runbook.yaml").read_text().replace("    kind: local\n", "    kind: local\n    estat: x.yaml\n")
    )
    config = invoke(["validate"], cwd=local_workspace)
    assert "runbook.yaml:12:5: unknown key 'estat': did you mean 'estate'?" in config.stderr


# ------------------------------------------------------------------------------ CLI conventions


def test_colour_follows_the_conventions(local_workspace: Path) -> None:
    write_runbook(local_workspace, "1.1", 'phase: "1.1"\ntitle: t\nfix:\n  - {id: a, uses: set, with: {x: 1}}\n')
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "CLICOLOR_FORCE")}

    def status(**env: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", "from runbook.cli import main; main()", "run", "1.1", "--no-report"],
            cwd=local_workspace,
            env={**base, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    assert "\033[" not in status()  # not a terminal
    assert "\033[" in status(FORCE_COLOR="1")
    assert "\033[" in status(CLICOLOR_FORCE="1")
    assert "\033[" in status(FORCE_COLOR="1", NO_COLOR="")  # an empty NO_COLOR does not count
    assert "\033[" not in status(FORCE_COLOR="1", NO_COLOR="1")


def test_validate_json_and_github_annotations(local_workspace: Path) -> None:
    write_runbook(local_workspace, "1.1", 'phase: "1.1"\ntitle: t\nsummry: x\nfix:\n  - {id: a, uses: shel}\n')
    as_json = invoke(["validate", "--json"], cwd=local_workspace)
    assert as_json.exit_code == 2
    event = json.loads(as_json.stdout)
    assert event["event"] == "error" and event["exit_code"] == 2
    assert event["problems"][0] == {
        "file": "runbooks/phase-1.1.yaml",
        "line": 3,
        "column": 1,
        "message": "unknown key 'summry': did you mean 'summary'?",
    }
    github = invoke(["validate", "--format", "github"], cwd=local_workspace)
    assert github.exit_code == 2
    annotations = [line for line in github.stdout.splitlines() if line.startswith("::")]
    assert annotations[0] == "::error file=runbooks/phase-1.1.yaml,line=3,col=1::unknown key 'summry': did you mean 'summary'?"
    assert annotations[1].startswith("::error file=runbooks/phase-1.1.yaml,line=5,col=19::unknown action 'shel'")
    write_runbook(local_workspace, "1.1", 'phase: "1.1"\ntitle: t\n')
    good = json.loads(invoke(["validate", "--json"], cwd=local_workspace).stdout)
    assert good == {"event": "validated", "files": 1, "problems": [], "warnings": []}


def test_errors_are_json_events_under_json(local_workspace: Path) -> None:
    missing = invoke(["run", "9.9", "--json"], cwd=local_workspace)
    assert missing.exit_code == 2
    event = json.loads(missing.stdout.strip().splitlines()[-1])
    assert event["event"] == "error" and event["kind"] == "UnknownPhase" and "hint" in event
    usage = invoke(["status", "--json", "--bogus"], cwd=local_workspace)
    assert usage.exit_code == 2 and json.loads(usage.stdout)["kind"] == "UsageError"


def test_quiet_prints_only_the_result(local_workspace: Path) -> None:
    write_runbook(local_workspace, "1.1", 'phase: "1.1"\ntitle: t\nfix:\n  - {id: a, uses: set, with: {x: 1}}\n')
    loud = invoke(["run", "1.1"], cwd=local_workspace)
    quiet = invoke(["-q", "run", "1.1"], cwd=local_workspace)
    assert loud.exit_code == quiet.exit_code == 0
    assert "wrote " in loud.stdout and " a " in loud.stdout
    assert quiet.stdout.splitlines() == [line for line in quiet.stdout.splitlines() if line.startswith("SUCCESS: run ")]
    assert len(quiet.stdout.splitlines()) == 1
    assert invoke(["--quiet", "validate"], cwd=local_workspace).stdout == ""


def test_workspace_from_the_environment_and_a_missing_folder(tmp_path: Path, local_workspace: Path) -> None:
    result = invoke(["status", "--json"], cwd=tmp_path, env={"RUNBOOK_WORKSPACE": str(local_workspace)})
    assert result.exit_code == 0 and json.loads(result.stdout)
    gone = invoke(["-w", str(tmp_path / "nowhere"), "status"], cwd=tmp_path)
    assert gone.exit_code == 2
    assert f"error: workspace folder {tmp_path / 'nowhere'} does not exist" in gone.stderr
    assert "no runbook.yaml" not in gone.stderr


def complete(words: str, cwd: Path) -> list[str]:
    """What bash completion offers for the command line `words` (the cursor at its end)."""
    env = {**os.environ, "_RUNBOOK_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    done = subprocess.run(
        [sys.executable, "-c", "from runbook.cli import main; main()"], cwd=cwd, env=env, capture_output=True, text=True
    )
    pairs = [line.split(",", 1) for line in done.stdout.splitlines() if "," in line]
    return [value for kind, value in pairs if kind == "plain"]


def test_completion_offers_phases_steps_targets_and_actions(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    assert "1.5" in complete("runbook run ", root)
    assert complete("runbook run 1.5 --step list-", root) == ["list-deployments"] or all(
        v.startswith("list-") for v in complete("runbook run 1.5 --step list-", root)
    )
    assert complete("runbook run 1.5 --target az", root) == ["azure"]
    assert complete("runbook actions file.", root) == ["file.replace"]
    assert complete("runbook schema --kind es", root) == ["estate"]
    cli_guide = (REPO / "docs" / "guide" / "cli.md").read_text(encoding="utf-8")
    assert "_RUNBOOK_COMPLETE=bash_source" in cli_guide and "FORCE_COLOR" in cli_guide


# ---------------------------------------------------------------------------------------- init


def test_init_writes_a_real_check_and_no_placeholders(tmp_path: Path) -> None:
    assert invoke(["init", str(tmp_path / "ws")]).exit_code == 0
    root = tmp_path / "ws"
    config_text = (root / "runbook.yaml").read_text()
    assert "https://github.com/" not in config_text and "goes here" not in (root / "runbooks" / "phase-1.1.yaml").read_text()
    # .env.example names only what the generated targets read.
    config = yaml.safe_load(config_text)
    wanted = {var for target in config["targets"].values() for var in (target.get("from_env") or {}).values()}
    listed = {line.split("=")[0] for line in (root / ".env.example").read_text().splitlines() if "=" in line and not line.startswith("#")}
    assert listed == wanted
    ran = invoke(["run", "1.1", "--no-report"], cwd=root)
    assert ran.exit_code == 0, ran.output
    assert "expected failure (pre-fix): expectation failed: service.conf must contain the line `retries = 3`" in ran.stdout
    assert "undefined" not in ran.stdout
    assert "retries = 3\n" in (root / "service.conf").read_text()
    assert invoke(["validate"], cwd=root).exit_code == 0


# ------------------------------------------------------------------------------------ reference


def test_config_reference_lists_every_key_and_target_kind() -> None:
    from runbook.checks import EmulatorSettings, TargetSettings
    from runbook.docs.config_reference import config_reference
    from runbook.workspace import Paths, PlanGroup, PlanPhase, TargetConfig, WorkspaceConfig

    page = config_reference()
    for model in (WorkspaceConfig, Paths, PlanGroup, PlanPhase, TargetConfig, EmulatorSettings, TargetSettings):
        for name, info in model.model_fields.items():
            assert f"| `{info.alias or name}` |" in page, (model.__name__, name)
    for kind in ("emulator", "azure", "local"):
        assert f"### `{kind}`" in page
    assert "| `APIM_GATEWAY_URL` |" in page
    assert (REPO / "docs" / "reference" / "config.md").read_text(encoding="utf-8") == page
