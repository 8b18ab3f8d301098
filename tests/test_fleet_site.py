"""The docs site's Fleets section: fleet runs of the workspace as pages, built by the real strict mkdocs.

A fleet record in the sample workspace's reports/fleet/ (written with the fleet record's own writer)
becomes `docs/fleets/index.md` and one page per fleet run with the per-member table and the SVG
chart of the fleet report, in the nav between Runs and Changelog; `mkdocs build --strict` passes.
The browser test opens the built page in headless Chromium and keeps a screenshot.
"""

from __future__ import annotations

import functools
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import invoke
from runbook.fleet.record import (
    EmulatorStarted,
    EmulatorStopped,
    FleetFinished,
    FleetHalted,
    FleetRecordWriter,
    FleetStarted,
    MemberFinished,
    MemberSkipped,
    MemberStarted,
)
from test_browser import _browser_available, _QuietHandler, _screenshot, _wait_for, browser  # noqa: F401 - the fixture
from test_docs import nav_pages, read_mkdocs

RUN_ID = "20261201T090000000Z-f1ee75"


def write_fleet_record(workspace: Path) -> Path:
    path = workspace / "reports" / "fleet" / "1.5" / f"{RUN_ID}.jsonl"
    writer = FleetRecordWriter(path)
    members = ["member-01", "member-02", "member-03"]
    stamp = "2026-12-01T09:00:0{}.000Z"
    writer.write(FleetStarted(fleet_run_id=RUN_ID, fleet="demo", phase="1.5", fleet_file="fleet.yaml", engine="local",
                              members=members, options={}, time=stamp.format(0)))
    writer.write(EmulatorStarted(estate="estate.yaml", arm_url="http://127.0.0.1:1", gateway_url="http://127.0.0.1:2", time=stamp.format(0)))
    for name in members[:2]:
        writer.write(MemberStarted(member=name, mode="start", time=stamp.format(1)))
    writer.write(MemberFinished(member="member-01", status="success", duration_s=4.2, cells_changed=[15, 17, 19], run_id="r-01",
                                record="/elsewhere/member-01/reports/runs/1.5/r-01.jsonl", time=stamp.format(5)))
    writer.write(MemberFinished(member="member-02", status="failed", duration_s=1.6, failed_step="deployments", run_id="r-02",
                                error="GET …/deployments: throttled by ARM (429) after 2 retries | {x} <b>", time=stamp.format(3)))
    writer.write(FleetHalted(reason="1 members failed, more than --max-errors 0", errors=1, max_errors=0, time=stamp.format(5)))
    writer.write(EmulatorStopped(requests=41, arm_requests=21, gateway_requests=20,
                                 subscriptions={"5f3c0102-0000-4000-8000-00000000f1ee": {"granted": 3, "throttled": 6}}, time=stamp.format(6)))
    writer.write(MemberSkipped(member="member-03", reason="--max-errors exceeded", time=stamp.format(6)))
    writer.write(FleetFinished(status="failed", totals={}, duration_s=6.0, time=stamp.format(6)))
    return path


def build(root: Path) -> str:
    result = invoke(["docs", "build", "--site-dir", str(root / "site")], cwd=root)
    assert result.exit_code == 0, result.output
    return result.output


def test_fleet_runs_are_a_section_of_the_site_built_strict(sample: Path) -> None:
    write_fleet_record(sample)
    output = build(sample)  # `mkdocs build --strict`: a broken link or a page outside the nav fails it
    assert "WARNING" not in output
    config = read_mkdocs(sample)
    sections = [next(iter(entry)) for entry in config["nav"]]
    assert sections.index("Fleets") == sections.index("Runs") + 1 and sections.index("Changelog") == sections.index("Fleets") + 1
    fleets = next(entry["Fleets"] for entry in config["nav"] if "Fleets" in entry)
    assert nav_pages(fleets) == ["fleets/index.md", f"fleets/1.5/{RUN_ID}.md"]
    assert f"fleets/1.5/{RUN_ID}.md" not in nav_pages([e for e in config["nav"] if "Guide" in e])

    index = (sample / "docs" / "fleets" / "index.md").read_text(encoding="utf-8")
    assert f"[{RUN_ID}](1.5/{RUN_ID}.md)" in index and "| demo | 1.5 |" in index and "**failed**" in index
    page = (sample / "docs" / "fleets" / "1.5" / f"{RUN_ID}.md").read_text(encoding="utf-8")
    assert "# Fleet demo: phase 1.5" in page
    assert "| member-01 | success | 4.2s | 15, 17, 19 | - | - | `r-01` |" in page
    # the error keeps its words but cannot break the table or become markup
    assert "throttled by ARM (429) after 2 retries \\| \\{x} &lt;b>" in page
    assert "| member-03 | not started |" in page and "--max-errors exceeded" in page
    assert "ARM throttled (429): 6 in subscription `5f3c0102-0000-4000-8000-00000000f1ee`" in page
    assert '<svg class="rb-fleet-chart"' in page and "/elsewhere/" not in page  # no links out of the site

    html = (sample / "site" / "fleets" / "1.5" / f"{RUN_ID}.html").read_text(encoding="utf-8")
    assert html.count("<rect") >= 3 and "member-02" in html
    assert (sample / "site" / "fleets" / "index.html").is_file()

    # generating again changes nothing; removing the record removes the section and its pages
    before = page
    build(sample)
    assert (sample / "docs" / "fleets" / "1.5" / f"{RUN_ID}.md").read_text(encoding="utf-8") == before
    (sample / "reports" / "fleet" / "1.5" / f"{RUN_ID}.jsonl").unlink()
    build(sample)
    assert "Fleets" not in [next(iter(entry)) for entry in read_mkdocs(sample)["nav"]]
    assert not list((sample / "docs" / "fleets").rglob("*.md"))


@pytest.fixture
def fleet_site(sample: Path) -> Iterator[str]:
    _browser_available()
    write_fleet_record(sample)
    build(sample)
    handler = functools.partial(_QuietHandler, directory=str(sample / "site"))
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.browser
def test_the_fleet_page_in_a_browser(fleet_site: str, browser: object) -> None:  # noqa: F811 - the fixture
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(fleet_site + "fleets/index.html")  # type: ignore[attr-defined]
    _wait_for(driver, "article table")
    link = driver.find_element(By.LINK_TEXT, RUN_ID)  # type: ignore[attr-defined]
    driver.execute_script("arguments[0].click()", link)  # type: ignore[attr-defined]
    chart = _wait_for(driver, "article svg.rb-fleet-chart")
    bars = chart.find_elements(By.CSS_SELECTOR, "rect title")  # type: ignore[attr-defined]
    assert len(bars) == 3
    rows = driver.find_elements(By.CSS_SELECTOR, "article table tbody tr")  # type: ignore[attr-defined]
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == ["success", "failed", "not started"]
    assert _screenshot(driver, "site-fleet.png").stat().st_size > 10_000
