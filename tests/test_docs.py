"""`runbook docs build` on a copy of the sample workspace: the real strict mkdocs build, nav, references."""

from __future__ import annotations

import ast
import json
import re
from importlib import resources
from pathlib import Path

import pytest
from ruamel.yaml import YAML

import runbook.docs
from conftest import invoke
from runbook import actions
from runbook.cli import command_reference
from runbook.docs import LinkMap, generate_docs, run_spans, site_nav
from runbook.progress import compute_progress
from runbook.record import read_log
from runbook.text import duration_text
from runbook.workspace import load_workspace

REPORT = """\
# Phase 1.5 - Image Generation Deployment Resolution

**Status**: RESOLVED ✅ ([run record](runs/1.5/20251114T041500000Z-abc123.jsonl),
[changelog](../CHANGELOG.md), notebook [cells](../notebooks/master-ai-gateway-fix-MCP.ipynb))

## Cells to Fix

| Cell | Description | Change Required |
|------|-------------|-----------------|
| 107 | Deployment discovery | Update to find FLUX models |
| 109 | Image config/validation | Set FLUX-1.1-pro as default |

```python
print("[not a link](nowhere.md)")
```
"""


def nav_pages(nav: list) -> list[str]:
    pages: list[str] = []
    for entry in nav:
        for value in entry.values():
            pages.extend(nav_pages(value) if isinstance(value, list) else [value])
    return pages


def read_mkdocs(root: Path) -> dict:
    return YAML(typ="rt").load((root / "mkdocs.yml").read_text(encoding="utf-8"))


@pytest.fixture
def logged(sample: Path) -> Path:
    """The sample with phases 1.1-1.5 resolved, 1.6 failed, a report and a changelog."""
    for phase in ("1.1", "1.2", "1.3", "1.4"):
        assert invoke(["log", phase, "complete", "-m", f"phase {phase} verified"], cwd=sample).exit_code == 0
    assert invoke(["log", "1.5", "start", "-m", "discovery"], cwd=sample).exit_code == 0
    assert invoke(["log", "1.5", "complete", "-m", "FLUX", "--cells", "109,130,171"], cwd=sample).exit_code == 0
    assert invoke(["log", "1.6", "fail", "-m", "cell 154 still 500s"], cwd=sample).exit_code == 0
    (sample / "reports" / "phase-1.5.md").write_text(REPORT, encoding="utf-8")
    (sample / "CHANGELOG.md").write_text(
        "# Changelog\n\n## [Unreleased]\n\n### Fixed\n\n- Image generation uses FLUX ([phase 1.5](reports/phase-1.5.md))\n",
        encoding="utf-8",
    )
    return sample


def build(root: Path) -> str:
    result = invoke(["docs", "build", "--site-dir", str(root / "site")], cwd=root)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_strict_build_passes_without_a_warning_and_the_nav_reaches_every_phase(logged: Path) -> None:
    output = build(logged)
    assert "WARNING" not in output
    assert (logged / "site" / "index.html").is_file()

    workspace = load_workspace(logged)
    phase_ids = [p.id for g in compute_progress(workspace) for p in g.phases]
    assert phase_ids == ["1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "1.8"]
    config = read_mkdocs(logged)
    pages = nav_pages(config["nav"])
    assert [next(iter(entry)) for entry in config["nav"]] == [
        "Home",
        "Phases",
        "Runs",
        "Changelog",
        "Timeline",
        "Guide",
        "Reference",
    ]
    for phase in phase_ids:
        assert f"phases/phase-{phase}.md" in pages and f"runs/phase-{phase}.md" in pages
        # The offline plugin turns folder URLs off, so pages open from file:// (no folder listings).
        assert (logged / "site" / "phases" / f"phase-{phase}.html").is_file()
    every_page = sorted(p.relative_to(logged / "docs").as_posix() for p in (logged / "docs").rglob("*.md"))
    assert sorted(pages) == every_page  # nothing omitted, nothing missing


def test_the_actions_reference_lists_every_registered_action_and_parameter(logged: Path) -> None:
    build(logged)
    text = (logged / "docs" / "reference" / "actions.md").read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    documented = {re.match(r"`([^`]+)`", s).group(1): s for s in sections}  # type: ignore[union-attr]
    assert sorted(documented) == actions.names()
    for spec in actions.all_specs():
        section = documented[spec.name]
        assert spec.summary.split("`")[0].strip() in section
        assert ("Read-only" in section) == (not spec.changes and spec.changes_when is None)
        assert ("Depends on its parameters" in section) == (spec.changes_when is not None)
        for name, info in spec.params.model_fields.items():
            assert f"| `{info.alias or name}` |" in section, (spec.name, name)


def test_the_cli_reference_lists_every_command(logged: Path) -> None:
    build(logged)
    text = (logged / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    names = [command["name"] for command in command_reference()]
    assert {"runbook status", "runbook docs build", "runbook docs serve", "runbook log"} <= set(names)
    for name in names:
        assert f"## `{name}`" in text
    assert "`--site-dir`" in text and "`--json`" in text


def test_the_home_page_shows_the_numbers_of_runbook_status(logged: Path) -> None:
    build(logged)
    data = json.loads(invoke(["status", "--json"], cwd=logged).stdout)
    (group,) = data["groups"]
    home = (logged / "docs" / "index.md").read_text(encoding="utf-8")
    assert group["line"] == "Phase 1 Progress: 62.5% (5/8 subphases complete)"
    assert f"**{group['line']}**" in home
    assert 'aria-valuenow="62.5"' in home and "62.5% (5/8 subphases complete)</span>" in home
    html = (logged / "site" / "index.html").read_text(encoding="utf-8")
    assert "62.5% (5/8 subphases complete)" in html and 'href="phases/phase-1.5.html"' in html


def test_copied_reports_get_their_links_fixed(logged: Path) -> None:
    build(logged)
    page = (logged / "docs" / "phases" / "phase-1.5.md").read_text(encoding="utf-8")
    assert "[run record](../runs/phase-1.5.md)" in page
    assert "[changelog](../changelog.md)" in page
    assert "cells (`notebooks/master-ai-gateway-fix-MCP.ipynb`)" in page  # not in the site: shown as a path
    assert 'print("[not a link](nowhere.md)")' in page  # code is left alone
    changelog = (logged / "docs" / "changelog.md").read_text(encoding="utf-8")
    assert "([phase 1.5](phases/phase-1.5.md))" in changelog
    stub = (logged / "docs" / "phases" / "phase-1.7.md").read_text(encoding="utf-8")
    assert "No resolution report yet" in stub and "runbook new 1.7" in stub


def test_a_broken_link_fails_the_build_with_mkdocs_warning(logged: Path) -> None:
    (logged / "docs" / "guide" / "broken.md").parent.mkdir(exist_ok=True)
    (logged / "docs" / "guide" / "broken.md").write_text("# Broken\n\n[gone](nowhere.md)\n", encoding="utf-8")
    result = invoke(["docs", "build", "--site-dir", str(logged / "site")], cwd=logged)
    assert result.exit_code == 1
    assert "WARNING" in result.stderr and "nowhere.md" in result.stderr


def test_hand_written_pages_join_the_nav_and_the_rest_of_mkdocs_yml_is_kept(logged: Path) -> None:
    build(logged)
    config_path = logged / "mkdocs.yml"
    config_path.write_text(
        config_path.read_text(encoding="utf-8") + "# my comment\ncopyright: gateway-team\n", encoding="utf-8"
    )
    (logged / "docs" / "reliability.md").write_text("# Reliability\n\nKill -9 safe.\n", encoding="utf-8")
    (logged / "docs" / "guide" / "zz-faq.md").write_text("# FAQ\n\nAsk.\n", encoding="utf-8")
    (logged / "docs" / "phases" / "phase-9.9.md").write_text("# stale\n", encoding="utf-8")
    build(logged)
    config = read_mkdocs(logged)
    guide = next(entry["Guide"] for entry in config["nav"] if "Guide" in entry)
    assert {"Reliability": "reliability.md"} in guide and {"FAQ": "guide/zz-faq.md"} in guide
    assert config["copyright"] == "gateway-team"
    assert "# my comment" in config_path.read_text(encoding="utf-8")
    assert not (logged / "docs" / "phases" / "phase-9.9.md").exists()


def test_generating_twice_gives_byte_identical_pages(logged: Path) -> None:
    workspace = load_workspace(logged)
    first = {p: p.read_bytes() for p in generate_docs(workspace, commands=command_reference())}
    config = (logged / "mkdocs.yml").read_bytes()
    second = {p: p.read_bytes() for p in generate_docs(workspace, commands=command_reference())}
    assert first == second and (logged / "mkdocs.yml").read_bytes() == config


def test_the_timeline_has_an_svg_chart_of_phase_runs(logged: Path) -> None:
    build(logged)
    timeline = (logged / "docs" / "timeline.md").read_text(encoding="utf-8")
    assert "```mermaid" not in timeline and '<div class="rb-chart-box"><svg' in timeline
    assert 'class="rb-bar rb-bar--resolved"' in timeline and "1.5 Image Generation Deployment" in timeline
    assert 'class="rb-bar rb-bar--failed"' in timeline  # 1.6 was logged as a fail
    lines, _ = read_log(logged / "reports" / "timestamps" / "execution-log.jsonl")
    spans = run_spans(lines)
    assert [s.outcome for s in spans if s.phase == "1.5"] == ["resolved"]


def test_link_map_leaves_urls_and_anchors_alone(sample: Path) -> None:
    links = LinkMap(load_workspace(sample))
    source = sample / "reports" / "phase-1.5.md"
    text = "[a](https://example.com/x) [b](#cells) [c](`code`) `[d](phase-1.4.md)` [e](phase-1.4.md#root-causes)\n"
    out = links.rewrite(text, source, "phases/phase-1.5.md")
    assert out == (
        "[a](https://example.com/x) [b](#cells) [c](`code`) `[d](phase-1.4.md)` [e](phase-1.4.md#root-causes)\n"
    )


def test_the_nav_of_an_empty_docs_dir(tmp_path: Path) -> None:
    assert site_nav(tmp_path, []) == [{"Home": "index.md"}, {"Changelog": "changelog.md"}, {"Timeline": "timeline.md"}]


def test_the_repository_generated_pages_and_nav_are_current(sample: Path) -> None:
    """This repository's committed pages (reference, home, phases, runs, stylesheet) match the code.

    So the reference cannot drift, and a plain `mkdocs build --strict` in the repository works.
    """
    from conftest import REPO
    from runbook.docs import actions_reference, cli_reference

    docs = REPO / "docs"
    fix = "run `runbook docs build` in a copy of the repository and commit its docs/ and mkdocs.yml"
    assert (docs / "reference" / "actions.md").read_text(encoding="utf-8") == actions_reference(
        list(actions.all_specs())
    ), fix
    assert (docs / "reference" / "cli.md").read_text(encoding="utf-8") == cli_reference(command_reference()), fix
    pages = sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*.md"))
    assert sorted(nav_pages(read_mkdocs(REPO)["nav"])) == pages, fix
    # the sample is this repository's workspace without reports: its generated pages are the committed ones
    for page in generate_docs(load_workspace(sample), commands=command_reference()):
        relative = page.relative_to(sample / "docs").as_posix()
        assert (docs / relative).read_bytes() == page.read_bytes(), f"docs/{relative}: {fix}"
    assert (REPO / "mkdocs.yml").read_bytes() == (sample / "mkdocs.yml").read_bytes(), fix

def _table_row(page: str, first_cell: str) -> list[str]:
    """The cells of the markdown table row of `page` whose first cell is `first_cell`."""
    for line in page.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row starting with {first_cell!r}")


def _screen_row(screen: str, first_cell: str) -> list[str]:
    """The columns of the `runbook status` row starting with `first_cell` (columns are 2+ spaces apart)."""
    for line in screen.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no status row starting with {first_cell!r}")


def test_the_site_and_runbook_status_show_the_same_duration_for_the_same_run(sample: Path) -> None:
    ran = invoke(["run", "phase-1.5"], cwd=sample)  # a real run against the emulator
    assert ran.exit_code == 0, ran.output
    log = sample / "reports" / "timestamps" / "execution-log.jsonl"
    by_hand = {"timestamp": "2025-11-14T04:15:00.000Z", "phase": "1.2", "action": "complete"}
    with log.open("a", encoding="utf-8") as out:  # a phase done by hand in 75 s, logged with its duration
        out.write(json.dumps({**by_hand, "description": "checked by hand", "duration_s": 75}) + "\n")
    generate_docs(load_workspace(sample), commands=command_reference())
    (run,) = json.loads(invoke(["status", "1.5", "--json"], cwd=sample).stdout)["runs"]
    expected = duration_text(run["duration_s"])

    runs_page = (sample / "docs" / "runs" / "phase-1.5.md").read_text(encoding="utf-8")
    screen = invoke(["status", "1.5"], cwd=sample).stdout
    # Runs table: Run, Target, Status, Started, Duration, Steps / RUN ID, TARGET, STATUS, STARTED, DURATION, ...
    # The run id links to the run's own page (its kept report).
    assert _table_row(runs_page, f"[`{run['run_id']}`](1.5/{run['run_id']}.md)")[4] == expected
    assert _screen_row(screen, run["run_id"])[4] == expected

    home = (sample / "docs" / "index.md").read_text(encoding="utf-8")
    overview = invoke(["status"], cwd=sample).stdout
    for phase, shown in (("1.5", expected), ("1.2", "1 minute 15 s")):
        # Phase, Title, State, Last run, Duration / PHASE, TITLE, STATE, LAST RUN, DURATION
        assert _table_row(home, phase)[4] == shown, phase
        assert _screen_row(overview, phase)[4] == shown, phase
    assert f"**Resolution Time**: {expected}" in (sample / "docs" / "phases" / "phase-1.5.md").read_text(
        encoding="utf-8"
    )  # the report copied into the site says the same


DOCS_PACKAGE = Path(runbook.docs.__file__).parent


def _imported_modules(path: Path, package: str) -> set[str]:
    """Every module `path` imports (also inside functions and TYPE_CHECKING blocks), resolved to full names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_no_module_of_the_docs_package_imports_the_cli() -> None:
    modules = sorted(DOCS_PACKAGE.glob("*.py"))
    assert {path.stem for path in modules} >= {"__init__", "site", "pages", "links", "reference", "nav", "runner"}
    for path in modules:
        imported = _imported_modules(path, "runbook.docs")
        cli = sorted(name for name in imported if name == "runbook.cli" or name.startswith("runbook.cli."))
        assert not cli, f"{path.name} imports {cli}: hand the command tree in instead"


def test_the_stylesheet_is_one_package_resource_written_into_the_site(logged: Path) -> None:
    from conftest import REPO
    from runbook.docs import stylesheet_text

    source = resources.files("runbook.docs").joinpath("assets", "runbook.css").read_text(encoding="utf-8")
    assert ".rb-progress" in source and stylesheet_text() == source
    fix = "run `runbook docs build` in a copy of the repository and commit its docs/assets/runbook.css"
    assert (REPO / "docs" / "assets" / "runbook.css").read_text(encoding="utf-8") == source, fix
    generate_docs(load_workspace(logged), commands=command_reference())
    assert (logged / "docs" / "assets" / "runbook.css").read_text(encoding="utf-8") == source
    for module in DOCS_PACKAGE.glob("*.py"):
        assert ".rb-progress" not in module.read_text(encoding="utf-8"), f"CSS belongs in the resource: {module}"


def test_the_actions_reference_lists_every_declared_output_field() -> None:
    from runbook import actions
    from runbook.docs.reference import actions_reference

    page = actions_reference([actions.get(name) for name in actions.names()])
    for name in actions.names():
        section = page.split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]
        assert "**Output**" in section, name
        for field in actions.describe_outputs(name):
            assert f"`{field.path}`" in section, (name, field.path)
