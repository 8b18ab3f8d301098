"""Authored report material read against the run, through the real CLI on copies of the sample workspace.

`report.cells` addresses cells as steps do (id, bare id, tag, pattern, number): each row shows the
resolved number, once. Authored text is rendered with the run's registered values in the steps'
sandbox (never a literal `{{ … }}`); a claim discovery contradicts is flagged; postmortem fields
appear only when authored; verified cells show what was expected and what they printed; changed
cells are one diff; long discovery tables fold. Bad addresses and undefined names are located
errors, exit 2.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import copy_sample, invoke

RUNBOOK = Path("runbooks/phase-1.5.yaml")


def _report_section(root: Path, new_material: str) -> None:
    """Replace the `cells:` list of phase 1.5's report material with `new_material` (YAML lines)."""
    path = root / RUNBOOK
    text = path.read_text(encoding="utf-8")
    start = text.index("  cells:\n", text.index("\nreport:\n"))
    end = text.index("  expected_fix:", start)
    path.write_text(text[:start] + new_material + text[end:], encoding="utf-8")


def _add_material(root: Path, lines: str) -> None:
    path = root / RUNBOOK
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("  expected_fix:", lines + "  expected_fix:", 1), encoding="utf-8")


def _table(text: str, heading: str) -> list[list[str]]:
    """The rows of the first table after `heading` (cells stripped), header and rule excluded."""
    section = text[text.index(heading) :]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    rows = []
    for line in lines[2:]:
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
        if section[section.index(line) + len(line) :].startswith("\n\n"):
            break
    return rows


ADDRESSED = """\
  cells:
    - cell: {id: cell_12_4d03dc89}
      description: Deployment discovery (by id)
    - cell: cell_14_f21837aa
      description: Image config (bare id, as steps write it)
    - cell: {pattern: "openai/deployments/dall-e-3"}
      description: Image generation tests (by pattern)
    - cell: 19
      description: Minimal image test (by number)
    - cell: {tag: image-config}
      description: the image config cell again, by tag (one row, not two)
"""


@pytest.fixture(scope="module")
def addressed(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = copy_sample(tmp_path_factory.mktemp("addressed") / "lab")
    _report_section(root, ADDRESSED)
    _add_material(
        root,
        """\
  trigger: The lab's image deployments were replaced by FLUX models; the notebook still named {{ 'DALL-E' }}.
  impact: Every image cell failed with HTTP 404 ({{ image_cells.count }} cells).
  detection: The A-L protocol run of the image cells.
  action_items:
    - {action: "Add {{ image.model }} to the lab's model inventory", owner: lab-team, ticket: LAB-42}
    - {action: Alert on 404s from the image route, owner: sre, ticket: "https://tracker.example/SRE-7", done: true}
""",
    )
    assert invoke(["validate"], cwd=root).exit_code == 0
    result = invoke(["run", "phase-1.5"], cwd=root)
    assert result.exit_code == 0, result.output
    return (root / "reports" / "phase-1.5.md").read_text(encoding="utf-8")


def test_report_cells_accept_every_address_steps_accept(addressed: str) -> None:
    rows = _table(addressed, "## Cells to Fix")
    # Resolved numbers, each cell once: the tag address names cell 15 again, so no second row.
    assert [row[0] for row in rows] == ["13", "15", "17", "19"]
    assert [row[1] for row in rows] == ["`cell_12_4d03dc89`", "`cell_14_f21837aa`", "`cell_16_7c6d3839`", "`cell_18_0dfde023`"]
    assert rows[1][2] == "Image config (bare id, as steps write it)"
    modified = _table(addressed, "### Cells Modified")
    numbers = [re.match(r"\d+", row[0]).group(0) for row in modified]  # type: ignore[union-attr]
    assert sorted(numbers) == ["13", "15", "17", "19"] and len(set(numbers)) == len(numbers)


def test_authored_text_uses_the_runs_values(addressed: str) -> None:
    assert "{{" not in addressed and "}}" not in addressed
    assert "**Actual**: `FLUX.1-Kontext-pro`, `FLUX-1.1-pro` (found by discovery)" in addressed
    assert "Only **foundry1-pavavy6pu5hpa** has image generation models" in addressed
    assert "to the discovered FLUX-1.1-pro, with deployment-style URLs" in addressed
    assert "contradicted by discovery" not in addressed  # the claims hold in the sample's estate


def test_postmortem_fields_render_when_authored(addressed: str) -> None:
    assert "**Trigger**: The lab's image deployments were replaced by FLUX models; the notebook still named DALL-E." in addressed
    assert "## Impact\n\nEvery image cell failed with HTTP 404 (4 cells)." in addressed
    assert "## Detection\n\nThe A-L protocol run of the image cells." in addressed
    rows = _table(addressed, "## Action Items")
    assert rows == [
        ["⏭️", "Add FLUX-1.1-pro to the lab's model inventory", "lab-team", "LAB-42"],
        ["✅", "Alert on 404s from the image route", "sre", "https://tracker.example/SRE-7"],
    ]


def test_verified_cells_show_expected_and_actual_output(addressed: str) -> None:
    section = addressed[addressed.index("### Expected and Actual Output") :]
    assert (
        "**Cell 15 (`image-config`)** should print “[image] Primary image generated” without error: ✅ it did. "
        "It printed:\n\n```text\n[config] image model: FLUX-1.1-pro\n[image] Primary image generated from 'FLUX-1.1-pro'"
    ) in section
    assert "**Cell 17 (`image-test`)** should print text matching /3/3 images generated/ without error" in section


def test_changed_cells_are_one_diff_each(addressed: str) -> None:
    changes = addressed[addressed.index("### Key Changes Summary") : addressed.index("## Testing Results")]
    assert "# Before:" not in changes and "```python" not in changes
    assert changes.count("```diff\n--- a/cell ") == 3
    assert '\n-image_model = os.getenv("DALL_E_DEPLOYMENT", "gpt-image-1") or "gpt-image-1"\n' in changes
    assert '\n+image_model = os.getenv("IMAGE_MODEL_DEPLOYMENT", "FLUX-1.1-pro") or "FLUX-1.1-pro"\n' in changes


def test_postmortem_sections_are_absent_unless_authored(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    assert invoke(["run", "phase-1.5"], cwd=root).exit_code == 0
    text = (root / "reports" / "phase-1.5.md").read_text(encoding="utf-8")
    for heading in ("## Impact", "## Detection", "## Action Items", "**Trigger**"):
        assert heading not in text
    # The changelog's authored lines are report material too: rendered with the resolving run's values.
    changelog = (root / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "Image generation cells call the discovered FLUX-1.1-pro deployment" in changelog and "{{" not in changelog


def test_a_claim_discovery_contradicts_is_flagged(tmp_path: Path) -> None:
    """Image models on two accounts: "only one account has image models" is not repeated silently."""
    from runbook.azure.estate import default_estate_path

    root = copy_sample(tmp_path / "lab")
    estate = default_estate_path().read_text(encoding="utf-8")
    flux = next(line for line in estate.splitlines() if "{name: FLUX-1.1-pro," in line)
    lines = estate.replace(flux + "\n", "").splitlines()
    lines.insert(lines.index("          - name: foundry2-pavavy6pu5hpa") + 4, flux)
    (root / "estate.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = (root / "runbook.yaml").read_text(encoding="utf-8")
    (root / "runbook.yaml").write_text(config.replace("    kind: emulator\n", "    kind: emulator\n    estate: estate.yaml\n", 1))
    result = invoke(["run", "phase-1.5"], cwd=root)
    assert result.exit_code == 0, result.output
    text = (root / "reports" / "phase-1.5.md").read_text(encoding="utf-8")
    note = "⚠️ contradicted by discovery: image models are on foundry1-pavavy6pu5hpa, foundry2-pavavy6pu5hpa"
    cause = text[text.index("### 2. Deployment Location") : text.index("### 3.")]
    assert f"> {note}" in cause
    lessons = text[text.index("## Lessons Learned") :]
    assert f"only one Foundry account serves image models, not all of them. ({note})" in lessons


@pytest.mark.parametrize(
    ("cell", "words"),
    [
        ("{idd: cell_12_4d03dc89}", "unknown key 'idd': did you mean 'id'?"),
        ("image-config", "no cell has id 'image-config'; did you mean {tag: image-config}?"),
        ("{tag: image-konfig}", "tag 'image-konfig' matches no cell"),
        ("{id: cell_14_f21837ab}", "no cell has id 'cell_14_f21837ab'; did you mean 'cell_14_f21837aa' (cell 15)"),
        ("{id: cell_14_f21837aa, tag: image-config}", "report.cells.0.cell: a cell address needs exactly one of id, number, tag, pattern (got id, tag)"),
        ("999", "there is no cell number 999"),
    ],
)
def test_bad_report_cell_addresses_are_located_errors(tmp_path: Path, cell: str, words: str) -> None:
    root = copy_sample(tmp_path / "lab")
    _report_section(root, f"  cells:\n    - cell: {cell}\n      description: x\n")
    line = next(n for n, text in enumerate((root / RUNBOOK).read_text().splitlines(), 1) if text == f"    - cell: {cell}")
    for command in (["validate"], ["run", "phase-1.5", "--dry-run"]):
        result = invoke(command, cwd=root)
        if command[0] == "run" and "unknown key" not in words and "exactly one" not in words:
            continue  # the schema is checked when a run loads the runbook; addresses by `validate`
        assert result.exit_code == 2, result.output
        assert f"runbooks/phase-1.5.yaml:{line}:" in result.output and words in result.output, result.output
        assert "Traceback" not in result.output


def test_undefined_name_in_report_text_is_a_validate_error(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    _add_material(root, "  impact: The cells called {{ imagee.model }}.\n")
    line = next(n for n, text in enumerate((root / RUNBOOK).read_text().splitlines(), 1) if "imagee" in text)
    result = invoke(["validate"], cwd=root)
    assert result.exit_code == 2
    assert f"runbooks/phase-1.5.yaml:{line}:" in result.output
    assert "undefined name 'imagee' in report text: did you mean 'image'?" in result.output


def test_undefined_value_at_render_time_is_a_located_error(tmp_path: Path) -> None:
    """`image.modle` passes validate (image is registered) but the run's value has no such key."""
    root = copy_sample(tmp_path / "lab")
    _add_material(root, "  impact: The cells called {{ image.modle }}.\n")
    line = next(n for n, text in enumerate((root / RUNBOOK).read_text().splitlines(), 1) if "modle" in text)
    assert invoke(["validate"], cwd=root).exit_code == 0
    result = invoke(["run", "phase-1.5"], cwd=root)
    assert result.exit_code == 2, result.output
    assert f"runbooks/phase-1.5.yaml:{line}:" in result.output and "modle" in result.output
    assert "Traceback" not in result.output
    for report in (root / "reports").rglob("*.md"):
        assert "{{" not in report.read_text(encoding="utf-8")


EXTRA_DISCOVERY = """\
  - id: flux-deployments
    title: List the FLUX deployments only
    uses: azure.deployments
    with: {model: "FLUX*"}

  - id: all-code-cells
    title: List every code cell
    uses: notebook.cells
    with: {path: "{{ notebook }}", cell_type: code}

fix:
"""


def test_one_discovery_sentence_and_long_tables_fold_on_the_site(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "lab")
    path = root / RUNBOOK
    path.write_text(path.read_text(encoding="utf-8").replace("\nfix:\n", "\n" + EXTRA_DISCOVERY, 1), encoding="utf-8")
    result = invoke(["run", "phase-1.5"], cwd=root)
    assert result.exit_code == 0, result.output
    text = (root / "reports" / "phase-1.5.md").read_text(encoding="utf-8")
    summary = text[text.index("## Summary") : text.index("## Root Causes")]
    assert summary.count("Discovery found") == 1
    assert (
        "Discovery found 16 deployments in 3 accounts (`deployments`) and 2 deployments in 3 accounts "
        "(`flux-deployments`); image models: `FLUX.1-Kontext-pro`, `FLUX-1.1-pro`, only in foundry1-pavavy6pu5hpa."
    ) in summary
    listing = text[text.index("### List every code cell") :]
    match = re.search(r'\?\?\? note "Cells found \((\d+) rows\)"\n\n    \| Cell \| ID \| Tags \| Matching lines \|', listing)
    assert match is not None and int(match.group(1)) > 10, listing[:400]
    short = text[text.index("### Find the cells that assume DALL-E") : text.index("### List the FLUX")]
    assert "???" not in short  # 4 rows: shown as a plain table
    # The site builds with `mkdocs build --strict` and folds the long table into <details>.
    built = invoke(["docs", "build"], cwd=root)
    assert built.exit_code == 0, built.output
    page = next((root / "site" / "runs" / "1.5").glob("*.html")).read_text(encoding="utf-8")
    folded = re.search(r'<details class="note">\s*<summary>Cells found \(\d+ rows\)</summary>\s*<table>', page)
    assert folded is not None


def test_values_a_run_did_not_register_are_marked_not_guessed(tmp_path: Path) -> None:
    """A run of one step: text reading `image` says it is not known; claims say they were not checked."""
    root = copy_sample(tmp_path / "lab")
    assert invoke(["run", "phase-1.5", "--step", "accounts"], cwd=root).exit_code == 0
    run_id = next((root / "reports" / "runs" / "1.5").glob("*.jsonl")).stem
    result = invoke(["report", "phase-1.5", "--run", run_id, "-o", "-"], cwd=root)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "{{" not in text and "{%" not in text
    assert "**Actual**: *(not known in this run: step `image-models` did not run)*" in text
    assert "**B. Expected Fix**: *(not known in this run: step `image-models` did not run)*" in text
    assert "> ⏭️ not checked: this run has no value for `deployments`" in text
    assert "discovery found none" not in text  # an unknown value is never read as an empty one


def test_header_expectations_read_as_words() -> None:
    from runbook.reports.sentences import expect_sentence

    assert (
        expect_sentence({"status": 200, "headers": {"x-ms-region": ".+", "x-ms-backend-id": ".+"}})
        == "answers HTTP 200 with headers x-ms-region set and x-ms-backend-id set"
    )
    assert expect_sentence({"headers": {"content-type": "json"}}) == "with header content-type matching /json/"
