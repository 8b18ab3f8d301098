"""The documents people keep by hand, read as they write them: the timestamp log with their status
words, backdated lines, messages and their own keys, through the CLI and onto the site's pages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import pytest

from conftest import invoke
from runbook import charts
from runbook.docs.chart import burnup, run_spans, timeline_chart
from runbook.docs.links import LinkMap
from runbook.docs.pages import home_page, phase_page, runs_page
from runbook.progress import PhaseProgress, compute_progress
from runbook.record import read_log, status_outcome
from runbook.workspace import load_workspace

LOG = Path("reports") / "timestamps" / "execution-log.jsonl"

# The shape of a log people keep by hand: their own status words (with emoji), extra keys, no run ids.
USER_LOG = [
    {"timestamp": "2025-11-14T01:00:00Z", "phase": "1.1", "action": "start", "description": "Env loading"},
    {"timestamp": "2025-11-14T01:12:00Z", "phase": "1.1", "action": "complete", "status": "COMPLETE",
     "description": "Env loads, gateway answers", "cells_fixed": [3, 5]},
    {"timestamp": "2025-11-14T02:00:00Z", "phase": "1.2", "action": "start", "description": "MCP servers"},
    {"timestamp": "2025-11-14T02:40:00Z", "phase": "1.2", "action": "complete", "status": "RESOLVED ✅",
     "description": "All 8 MCP servers verified", "servers_verified": 8},
    {"timestamp": "2025-11-14T03:00:00Z", "phase": "1.4", "action": "complete", "status": "Done!",
     "description": "Caching checked"},
    {"timestamp": "2025-11-14T03:30:00Z", "phase": "1.6", "action": "complete", "status": "blocked on quota",
     "description": "Backend services wait for quota"},
]


def write_log(root: Path, lines: list[dict[str, object]]) -> Path:
    path = root / LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return path


def phases(root: Path) -> dict[str, PhaseProgress]:
    return {p.id: p for g in compute_progress(load_workspace(root)) for p in g.phases}


@pytest.mark.parametrize(
    ("word", "outcome"),
    [
        ("SUCCESS", "success"), ("resolved", "success"), ("RESOLVED ✅", "success"), ("Complete", "success"),
        ("COMPLETED.", "success"), ("done!", "success"), ("OK", "success"), ("✅ PASS", "success"),
        ("**Done**", "success"), ("FAIL", "failure"), ("failed ❌", "failure"), ("Error", "failure"),
        ("blocked", "unknown"), ("", "unknown"), ("✅", "unknown"), ("PARTIAL", "unknown"),
    ],
)
def test_status_words_as_people_write_them(word: str, outcome: str) -> None:
    assert status_outcome(word) == outcome


def test_user_shaped_log_gives_the_right_progress_and_durations(sample: Path) -> None:
    path = write_log(sample, USER_LOG)
    lines, warnings = read_log(path)
    assert len(lines) == len(USER_LOG)
    # The unknown word warns with file:line and is never silently a failure.
    assert len(warnings) == 1 and f"{path}:6" in warnings[0] and "blocked on quota" in warnings[0]
    got = phases(sample)
    assert got["1.1"].state == "resolved" and got["1.1"].duration_s == 12 * 60 and got["1.1"].cells_fixed == [3, 5]
    assert got["1.2"].state == "resolved" and got["1.2"].duration_s == 40 * 60
    assert got["1.2"].notes == {"servers_verified": 8}
    assert got["1.4"].state == "resolved" and got["1.4"].duration_s is None  # no start: duration unknown
    assert got["1.6"].state == "unknown" and got["1.6"].label == "UNKNOWN"
    group = next(g for g in compute_progress(load_workspace(sample)) if g.group == "1")
    assert group.resolved == 3 and group.line.startswith("Phase 1 Progress: 37.5% (3/8")


def test_log_backdates_with_at_and_started(sample: Path) -> None:
    result = invoke(
        ["log", "1.3", "complete", "-m", "Embeddings fixed", "--cells", "21,23",
         "--started", "2025-11-14T03:00:00Z", "--at", "2025-11-14 03:25"],
        cwd=sample,
    )
    assert result.exit_code == 0, result.output
    lines, warnings = read_log(sample / LOG)
    assert warnings == []
    assert [(line.action, line.timestamp.isoformat()) for line in lines] == [
        ("start", "2025-11-14T03:00:00+00:00"),
        ("complete", "2025-11-14T03:25:00+00:00"),
    ]
    got = phases(sample)["1.3"]
    assert got.state == "resolved" and got.duration_s == 25 * 60 and got.cells_fixed == [21, 23]
    # A backdated start without a pair also lands at its own time.
    assert invoke(["log", "1.4", "start", "-m", "x", "--at", "2025-11-14T05:00:00+01:00"], cwd=sample).exit_code == 0
    assert phases(sample)["1.4"].started_at.isoformat() == "2025-11-14T04:00:00+00:00"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--at", "yesterday"], "--at 'yesterday' is not a time"),
        (["--at", "2099-01-01T00:00:00Z"], "in the future"),
        (["--started", "2025-11-14T04:00Z", "--at", "2025-11-14T03:00Z"], "is after the line's own time"),
    ],
)
def test_bad_log_times_are_refused_and_nothing_is_written(sample: Path, args: list[str], words: str) -> None:
    result = invoke(["log", "1.3", "complete", "-m", "x", *args], cwd=sample)
    assert result.exit_code == 2 and words in result.output and "Traceback" not in result.output
    assert not (sample / LOG).exists()


def test_started_goes_with_a_terminal_line(sample: Path) -> None:
    result = invoke(["log", "1.3", "start", "-m", "x", "--started", "2025-11-14T03:00Z"], cwd=sample)
    assert result.exit_code == 2 and "--started goes with a complete or fail line" in result.output


def test_pages_show_the_message_keys_and_agree_on_run_counts(sample: Path) -> None:
    write_log(sample, USER_LOG)
    ws = load_workspace(sample)
    lines, warnings = read_log(ws.timestamp_log)
    groups = compute_progress(ws, log=(lines, warnings))
    got = {p.id: p for g in groups for p in g.phases}
    page = phase_page(ws, got["1.2"], LinkMap(ws))
    assert "All 8 MCP servers verified" in page and "| Servers verified | 8 |" in page
    assert "RESOLVED ✅ (read as RESOLVED)" in page
    home = home_page(ws, groups, warnings)
    assert "[1 run (logged by hand)](runs/phase-1.2.md)" in home
    runs = runs_page(ws, got["1.2"], [line for line in lines if line.phase == "1.2"])
    assert "1 run (logged by hand): done without `runbook run`" in runs and "No run" not in runs
    assert "Servers verified: 8" in runs
    assert "UNKNOWN" in home and "blocked on quota" in home  # the warning is on the home page too


# ---------------------------------------------------------------- charts (static SVG)


SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2025, 11, 14, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "span",
    [timedelta(seconds=5), timedelta(seconds=50), timedelta(minutes=3), timedelta(minutes=40), timedelta(hours=5), timedelta(hours=30), timedelta(days=9),
     timedelta(days=120), timedelta(days=800)],
)
def test_axis_ticks_fit_the_span_and_read_differently(span: timedelta) -> None:
    low, high, marks = charts.ticks(T0, T0 + span, width=400)
    labels = [text for _mark, text in marks]
    assert len(labels) == len(set(labels)), labels
    assert 2 <= len(labels) <= 400 // charts.TICK_PX + 1
    assert low <= T0 and high >= T0 + span


def test_timeline_is_an_svg_with_one_bar_per_run_coloured_by_outcome(sample: Path) -> None:
    write_log(sample, USER_LOG)
    lines, _ = read_log(sample / LOG)
    svg = timeline_chart(run_spans(lines), {"1.1": "Env", "1.2": "MCP"})
    root = ElementTree.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    bars = [e for e in root.iter() if "rb-bar" in (e.get("class") or "")]
    assert len(bars) == 4  # 1.1 and 1.2 are spans; 1.4 and 1.6 are lines without a start (markers)
    fills = {e.get("class", "").split("--")[-1]: e.get("fill") for e in bars}
    assert fills["resolved"] == charts.COLOURS["resolved"] and fills["unknown"] == charts.COLOURS["unknown"]
    assert int(root.get("font-size")) >= 11
    assert all(float(e.get("font-size", root.get("font-size"))) >= 11 for e in root.iter(f"{SVG}text"))


def test_burnup_counts_resolved_phases_in_time_order(sample: Path) -> None:
    write_log(sample, USER_LOG)
    lines, _ = read_log(sample / LOG)
    points = burnup(lines, [f"1.{n}" for n in range(1, 9)])
    assert [(p.time.strftime("%H:%M"), p.done, p.total) for p in points] == [
        ("01:12", 1, 8), ("02:40", 2, 8), ("03:00", 3, 8)
    ]
    root = ElementTree.fromstring(charts.burnup_svg(points))
    assert len(list(root.iter(f"{SVG}circle"))) == 3


def test_burnup_is_one_fold_and_agrees_with_folding_every_prefix(tmp_path: Path) -> None:
    """The burn-up folds the log once (it folded the whole prefix at every terminal line: quadratic,
    minutes for 10,000 runs); on random logs (starts, successes, failures, unknown words, lines
    without a start, other groups' phases, equal timestamps) it gives the points the prefix folds give."""
    import json
    import random

    from runbook.progress import phase_states

    def reference(lines: list, phase_ids: list[str]) -> list:
        ordered = sorted(lines, key=lambda item: (item.timestamp, item.line))
        points: list = []
        for index, line in enumerate(ordered):
            if line.action == "start" or line.phase not in phase_ids:
                continue
            states = phase_states(ordered[: index + 1])
            done = sum(1 for phase in phase_ids if phase in states and states[phase].state == "resolved")
            if not points or points[-1].done != done:
                points.append(charts.Point(line.timestamp, done, len(phase_ids)))
        return points

    rng = random.Random(20261201)
    for case in range(30):
        rows = []
        for _ in range(rng.randrange(1, 120)):
            phase = rng.choice(["1.1", "1.2", "1.3", "1.4", "2.1", "2.2"])
            action = rng.choice(["start", "start", "complete", "fail"])
            row = {"phase": phase, "action": action, "timestamp": f"2026-11-14T0{rng.randrange(10)}:{rng.randrange(60):02d}:00Z"}
            if action == "complete":
                row["status"] = rng.choice(["SUCCESS", "RESOLVED", "PARTIAL"])
            rows.append(json.dumps(row))
        log = tmp_path / f"log-{case}.jsonl"
        log.write_text("\n".join(rows) + "\n", encoding="utf-8")
        lines, _ = read_log(log)
        wanted = ["1.1", "1.2", "1.3", "1.4"]
        assert burnup(lines, wanted) == reference(lines, wanted), case


def test_step_durations_scale_to_the_longest_step() -> None:
    svg = charts.durations_svg([charts.Duration("a", 1.0, "ok"), charts.Duration("b", 4.0, "changed"),
                                charts.Duration("c", None, "skipped")])
    bars = [e for e in ElementTree.fromstring(svg).iter(f"{SVG}rect") if "rb-bar" in (e.get("class") or "")]
    widths = [float(e.get("width")) for e in bars]
    assert widths[1] == pytest.approx(4 * widths[0], rel=0.01) and widths[2] == 2.0
    assert "—" in svg  # an unknown duration is written as unknown, not 0


def test_report_emoji_become_local_icons_outside_code() -> None:
    from runbook.docs.emoji import icon_emoji

    text = "Status: RESOLVED ✅\n\n`✅ in code`\n\n```\n❌ in a fence\n```\n| ❌ | x |\n"
    out = icon_emoji(text)
    assert ":material-check-circle:" in out.splitlines()[0]
    assert "`✅ in code`" in out and "❌ in a fence" in out and ":material-close-circle:" in out.splitlines()[-1]


def test_zensical_builds_the_same_pages_from_mkdocs_yml(sample: Path, tmp_path: Path) -> None:
    """Zensical (Material's successor) reads our mkdocs.yml: every page mkdocs builds, it builds too."""
    import shutil
    import subprocess

    zensical = shutil.which("zensical")
    if zensical is None:
        pytest.skip("zensical is not installed (pip install zensical)")
    write_log(sample, USER_LOG[:4])
    built = invoke(["docs", "build", "--site-dir", str(tmp_path / "mkdocs-site")], cwd=sample)
    assert built.exit_code == 0, built.output
    config = sample / "mkdocs-zensical.yml"
    config.write_text(
        "site_dir: zensical-site\n" + (sample / "mkdocs.yml").read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    done = subprocess.run([zensical, "build", "-f", str(config)], cwd=sample, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    def pages(site: Path) -> set[str]:
        return {p.relative_to(site).as_posix() for p in site.rglob("*.html") if p.name != "404.html"}

    mkdocs_pages, zensical_pages = pages(tmp_path / "mkdocs-site"), pages(sample / "zensical-site")
    assert "timeline.html" in mkdocs_pages and "phases/phase-1.5.html" in mkdocs_pages
    assert mkdocs_pages <= zensical_pages, sorted(mkdocs_pages - zensical_pages)
    timeline = (sample / "zensical-site" / "timeline.html").read_text(encoding="utf-8")
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="rb-chart"' in timeline


def test_a_scaffolded_site_loads_no_google_fonts_and_no_cdn(tmp_path: Path) -> None:
    assert invoke(["init", str(tmp_path / "new")]).exit_code == 0
    root = tmp_path / "new"
    config = (root / "mkdocs.yml").read_text(encoding="utf-8")
    assert "font: false" in config and "offline" in config and "mermaid" not in config
    built = invoke(["docs", "build", "--site-dir", str(root / "site")], cwd=root)
    assert built.exit_code == 0, built.output
    for page in (root / "site").rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "fonts.googleapis" not in text and "unpkg.com" not in text and "cdn.jsdelivr" not in text, page
    assert (root / "site" / "assets" / "iframe-worker-shim.js").is_file()


# ---------------------------------------------------------------- reports per run


def test_a_rerun_never_loses_the_resolving_report(sample: Path) -> None:
    first = invoke(["run", "phase-1.5"], cwd=sample)
    assert first.exit_code == 0, first.output
    phase_report = sample / "reports" / "phase-1.5.md"
    (resolver,) = sorted((sample / "reports" / "runs" / "1.5").glob("*.md"))
    resolving = resolver.read_text(encoding="utf-8")
    assert phase_report.read_text(encoding="utf-8") == resolving
    assert "**Cells Fixed**: 3 (15, 17, 19)" in resolving and "1. ✅ Document findings (discovery)" in resolving
    # Written for people: checks and expectations as sentences, a heading that matches what is there.
    for machine in ("expectation held", "⚠️ passed", "status 200; json", "exists True", "cell tag ", "(A-L Protocol)"):
        assert machine not in resolving, machine
    assert "answers HTTP 200 with data[0].b64_json in its JSON" in resolving
    assert "already passed before the fix, so this check does not show the fault" in resolving
    assert resolving.count("Discovery found") == 1

    again = invoke(["run", "phase-1.5"], cwd=sample)
    assert again.exit_code == 0, again.output
    runs = sorted((sample / "reports" / "runs" / "1.5").glob("*.md"))
    assert len(runs) == 2 and runs[0].read_text(encoding="utf-8") == resolving  # kept, never replaced
    text = phase_report.read_text(encoding="utf-8")
    assert text.startswith(resolving.rstrip("\n")) and "**Cells Fixed**: 3 (15, 17, 19)" in text
    assert f"| [{runs[1].stem}](runs/1.5/{runs[1].name}) | re-verified |" in text


def test_a_discovery_only_run_is_an_investigation(sample: Path) -> None:
    ran = invoke(["run", "phase-1.5", "--only", "discovery"], cwd=sample)
    assert ran.exit_code == 0, ran.output
    text = (sample / "reports" / "phase-1.5.md").read_text(encoding="utf-8")
    assert "## Investigation Complete 🔎" in text and "Investigation complete, fixes ready to implement" in text
    assert "**Next Action**: Image configuration cell" in text and "`runbook run phase-1.5` applies every fix" in text
    assert "## Testing Results" not in text  # nothing was tested yet
    assert "Implementation Complete" not in text and "NO CHANGES NEEDED" not in text
    assert "## Phase 1.5 Investigated" in text and "2. ⏭️ Image configuration cell" in text
    status = json.loads(invoke(["status", "--json"], cwd=sample).stdout)
    (phase,) = [p for g in status["groups"] for p in g["phases"] if p["id"] == "1.5"]
    assert phase["state"] == "investigated" and phase["label"] == "INVESTIGATED"
