"""The built docs site in a real headless Chromium: progress, a phase report's tables, the nav, the SVG
charts, no request leaving 127.0.0.1, navigation from file://, and screenshots to look at.

Skipped only when Chromium is missing on a developer machine; under CI (CI set) a missing browser
fails the test, since .ci/run installs it. Screenshots go to test-artifacts/ at the repository root.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, invoke

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = REPO / "test-artifacts"



def _browser_available() -> bool:
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return True
    if os.environ.get("CI"):
        pytest.fail(f"CI needs {CHROMIUM} and {CHROMEDRIVER}: .ci/run installs chromium and chromium-driver")
    pytest.skip(f"no headless browser here ({CHROMIUM}, {CHROMEDRIVER}): apt-get install chromium chromium-driver")
    return False


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site(sample: Path) -> Iterator[tuple[Path, str]]:
    """The sample with 5 of 8 phases resolved, its site built and served on 127.0.0.1."""
    _browser_available()
    for phase in ("1.1", "1.2", "1.3", "1.4"):
        assert invoke(["log", phase, "complete", "-m", f"phase {phase} verified"], cwd=sample).exit_code == 0
    ran = invoke(["run", "phase-1.5"], cwd=sample)  # the real run against the emulator writes the report
    assert ran.exit_code == 0, ran.output
    assert invoke(["checkpoint"], cwd=sample).exit_code == 0
    assert invoke(["log", "1.6", "fail", "-m", "cell 154 still answers 500"], cwd=sample).exit_code == 0
    assert invoke(["checkpoint"], cwd=sample).exit_code == 0
    built = invoke(["docs", "build", "--site-dir", str(sample / "site")], cwd=sample)
    assert built.exit_code == 0, built.output

    handler = functools.partial(_QuietHandler, directory=str(sample / "site"))
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sample, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    _browser_available()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # DevTools network events
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot(driver: object, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    height = driver.execute_script(  # type: ignore[attr-defined]
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
    )
    driver.set_window_size(1400, min(max(int(height), 800), 4000))  # type: ignore[attr-defined]
    driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    driver.set_window_size(1400, 1000)  # type: ignore[attr-defined]
    print(f"screenshot: {path}")
    return path


def _wait_for(driver: object, css: str, timeout: float = 10.0) -> object:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(  # type: ignore[arg-type]
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def test_home_page_shows_the_percentage_of_runbook_status(site: tuple[Path, str], browser: object) -> None:
    from selenium.webdriver.common.by import By

    root, url = site
    data = json.loads(invoke(["status", "--json"], cwd=root).stdout)
    (group,) = data["groups"]
    driver = browser
    driver.get(url)  # type: ignore[attr-defined]
    label = _wait_for(driver, ".rb-progress__label")
    expected = f"{group['percent_text']}% ({group['resolved']}/{group['total']} subphases complete)"
    assert label.text == expected == "62.5% (5/8 subphases complete)"  # type: ignore[attr-defined]
    bar = driver.find_element(By.CSS_SELECTOR, ".rb-progress")  # type: ignore[attr-defined]
    fill = driver.find_element(By.CSS_SELECTOR, ".rb-progress__fill")  # type: ignore[attr-defined]
    assert bar.get_attribute("aria-valuenow") == group["percent_text"]
    ratio = fill.size["width"] / bar.size["width"]
    assert abs(ratio - group["percent"] / 100) < 0.02, ratio  # the bar is drawn, at the right length
    body = driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
    assert group["line"] in body
    rows = driver.find_elements(By.CSS_SELECTOR, "article table tbody tr")  # type: ignore[attr-defined]
    states = {
        row.find_elements(By.TAG_NAME, "td")[0].text: row.find_elements(By.TAG_NAME, "td")[2].text for row in rows
    }
    assert states == {p["id"]: p["label"] for p in group["phases"]}
    _screenshot(driver, "docs-home.png")


def test_a_phase_page_shows_its_tables(site: tuple[Path, str], browser: object) -> None:
    from selenium.webdriver.common.by import By

    _root, url = site
    driver = browser
    driver.get(url + "phases/phase-1.5.html")  # type: ignore[attr-defined]
    _wait_for(driver, "article table")
    assert "Phase 1.5 - Image Generation Deployment Resolution" in driver.find_element(By.TAG_NAME, "h1").text  # type: ignore[attr-defined]
    table = driver.find_element(  # type: ignore[attr-defined]
        By.XPATH, "//h2[contains(normalize-space(.), 'Cells to Fix')]/following::table[1]"
    )
    headers = [th.text for th in table.find_elements(By.TAG_NAME, "th")]
    assert headers == ["Cell", "ID", "Description", "Change Required"]
    rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")] for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert [row[1] for row in rows] == ["cell_12_4d03dc89", "cell_14_f21837aa", "cell_16_7c6d3839", "cell_18_0dfde023"]
    body = driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
    assert "FLUX-1.1-pro" in body and "← IMAGE MODEL" in body  # discovery tables from the run itself
    assert "Phase 1 Progress: 62.5% (5/8 subphases complete)" in body
    _screenshot(driver, "docs-phase-1.5.png")

    driver.get(url + "runs/phase-1.5.html")  # type: ignore[attr-defined]
    _wait_for(driver, "article table")
    log_table = driver.find_elements(By.CSS_SELECTOR, "article table")[-1]  # type: ignore[attr-defined]
    actions = [
        tr.find_elements(By.TAG_NAME, "td")[1].text for tr in log_table.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]
    assert actions == ["start", "complete"]
    _screenshot(driver, "docs-runs-1.5.png")


def test_the_navigation_reaches_every_phase_page(site: tuple[Path, str], browser: object) -> None:
    from selenium.webdriver.common.by import By

    root, url = site
    data = json.loads(invoke(["status", "--json"], cwd=root).stdout)
    phases = [p for g in data["groups"] for p in g["phases"]]
    driver = browser
    driver.get(url)  # type: ignore[attr-defined]
    _wait_for(driver, "nav.md-nav--primary")

    # A person's way: open the Phases section of the nav and click a phase.
    section = driver.find_element(  # type: ignore[attr-defined]
        By.XPATH, "//nav[contains(@class,'md-nav--primary')]//label[contains(normalize-space(.), 'Phases')]"
    )
    section.click()
    link = driver.find_element(  # type: ignore[attr-defined]
        By.CSS_SELECTOR, "nav.md-nav--primary a.md-nav__link[href$='phases/phase-1.6.html']"
    )
    deadline = time.monotonic() + 5
    while not link.is_displayed() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert link.text == "1.6 Backend Services"
    link.click()
    _wait_for(driver, "article h1")
    assert driver.current_url.endswith("/phases/phase-1.6.html")  # type: ignore[attr-defined]
    assert "Phase 1.6 - Backend Services" in driver.find_element(By.TAG_NAME, "h1").text  # type: ignore[attr-defined]

    # And every phase page the nav links to loads and is the right phase.
    hrefs = {
        a.get_attribute("href")
        for a in driver.find_elements(By.CSS_SELECTOR, "nav.md-nav--primary a.md-nav__link[href]")  # type: ignore[attr-defined]
    }
    phase_links = sorted(h for h in hrefs if "/phases/phase-" in h and "#" not in h)
    run_links = sorted(h for h in hrefs if "/runs/phase-" in h and "#" not in h)
    assert [h.removesuffix(".html").rsplit("phase-", 1)[1] for h in phase_links] == sorted(p["id"] for p in phases)
    assert len(run_links) == len(phases)
    for href in phase_links:
        driver.get(href)  # type: ignore[attr-defined]
        heading = _wait_for(driver, "article h1")
        phase_id = href.removesuffix(".html").rsplit("phase-", 1)[1]
        assert f"Phase {phase_id}" in heading.text, href  # type: ignore[attr-defined]
        assert "404" not in driver.title  # type: ignore[attr-defined]
    _screenshot(driver, "docs-phase-last.png")


def _requests(driver: object) -> list[str]:
    """URLs the page asked for since the last call, from Chrome's DevTools performance log."""
    urls = []
    for entry in driver.get_log("performance"):  # type: ignore[attr-defined]
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _local(url: str) -> bool:
    """A request that stays on this machine: http(s)/ws only to 127.0.0.1; file:, data:, blob: and the
    browser's own chrome:// resources never touch the network."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme in ("http", "https", "ws", "wss"):
        return parts.hostname == "127.0.0.1"
    return parts.scheme in ("file", "data", "blob", "about", "chrome", "chrome-extension", "devtools")


def _pages(root: Path) -> dict[str, str]:
    run_page = next((root / "docs" / "runs" / "1.5").glob("*.md")).with_suffix(".html").name
    checkpoint = sorted((root / "docs" / "status").glob("*.md"))[-1].with_suffix(".html").name
    return {
        "home": "index.html",
        "phase": "phases/phase-1.5.html",
        "runs": "runs/phase-1.5.html",
        "run": f"runs/1.5/{run_page}",
        "timeline": "timeline.html",
        "checkpoint": f"status/{checkpoint}",
        "guide": "guide/progress.html",
    }


def test_charts_are_svg_with_bars_and_nothing_leaves_127_0_0_1(site: tuple[Path, str], browser: object) -> None:
    from selenium.webdriver.common.by import By

    root, url = site
    driver = browser
    pages = _pages(root)
    _requests(driver)
    seen: list[str] = []
    for name, page in pages.items():
        driver.get(url + page)  # type: ignore[attr-defined]
        _wait_for(driver, "article h1")
        time.sleep(0.3)  # let late requests (fonts, scripts) start
        seen.extend(_requests(driver))
        body = driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
        assert "```" not in body and "gantt" not in body and "stateDiagram" not in body, name  # no raw chart code
        charts = driver.find_elements(By.CSS_SELECTOR, "article svg.rb-chart")  # type: ignore[attr-defined]
        if name in ("home", "timeline", "runs"):
            assert charts, f"{name} has no chart"
        for chart in charts:
            bars = chart.find_elements(By.CSS_SELECTOR, ".rb-bar")
            assert bars, f"a chart on {name} has no bars"
            assert all(b.size["width"] > 0 and b.size["height"] > 0 for b in bars)
            for label in chart.find_elements(By.CSS_SELECTOR, "text"):
                size = driver.execute_script(  # type: ignore[attr-defined]
                    "return parseFloat(getComputedStyle(arguments[0]).fontSize)", label
                )
                assert size >= 11, (name, label.text, size)
            ticks = [t.text for t in chart.find_elements(By.CSS_SELECTOR, "text.rb-tick")]
            assert len(ticks) == len(set(ticks)), ticks  # every tick reads differently
    assert any(u.startswith("http://127.0.0.1:") for u in seen)  # the log did capture the pages' requests
    assert all(_local(u) for u in seen), sorted({u for u in seen if not _local(u)})
    # The guide's state diagram is an image that loads (an SVG file, no script).
    driver.get(url + pages["guide"])  # type: ignore[attr-defined]
    image = _wait_for(driver, "article img[src$='phase-states.svg']")
    assert driver.execute_script("return arguments[0].naturalWidth", image) > 0  # type: ignore[attr-defined]


def test_a_link_clicked_from_file_opens_a_page(site: tuple[Path, str], browser: object) -> None:
    from selenium.webdriver.common.by import By

    root, _url = site
    driver = browser
    driver.get((root / "site" / "index.html").as_uri())  # type: ignore[attr-defined]
    _wait_for(driver, "article h1")
    _requests(driver)
    link = driver.find_element(By.CSS_SELECTOR, "article a[href='phases/phase-1.5.html']")  # type: ignore[attr-defined]
    link.click()
    heading = _wait_for(driver, "article h1")
    assert driver.current_url.startswith("file://") and driver.current_url.endswith("/phases/phase-1.5.html")  # type: ignore[attr-defined]
    assert "Phase 1.5" in heading.text  # type: ignore[attr-defined]
    timeline = driver.find_element(By.XPATH, "//nav[contains(@class,'md-nav--primary')]//a[normalize-space(.)='Timeline']")  # type: ignore[attr-defined]
    driver.execute_script("arguments[0].click()", timeline)  # type: ignore[attr-defined]
    _wait_for(driver, "article svg.rb-chart")
    assert driver.current_url.endswith("/timeline.html")  # type: ignore[attr-defined]
    assert all(_local(u) for u in _requests(driver))


def test_screenshots_of_the_pages_people_read(site: tuple[Path, str], browser: object) -> None:
    root, url = site
    driver = browser
    for name, page in _pages(root).items():
        driver.get(url + page)  # type: ignore[attr-defined]
        _wait_for(driver, "article h1")
        assert _screenshot(driver, f"site-{name}.png").stat().st_size > 10_000
