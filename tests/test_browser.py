"""A real browser opens a generated report: no console errors, the verdict table present, every figure loaded, no
sideways scrolling; a full-page screenshot is saved for a person to look at. Checks structure, never pixels.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them). Without them the test skips,
except under CI (``CI`` set), where a missing browser is a failure.
"""

import base64
import os
import shutil
from pathlib import Path

import pytest

from aligntriage.diagnose.kinds import INNER
from aligntriage.report.html import write_report
from test_report import make_scripted_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,900")


def _require_browser():
    missing = [name for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if not path]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if missing:
        reason = f"browser test needs {', '.join(missing)}; install with apt-get install chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set, so this is a failure, not a skip)")
        pytest.skip(reason)


@pytest.fixture
def browser(tmp_path):
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS + (f"--user-data-dir={tmp_path / 'profile'}",):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_report_opens_in_chromium_without_errors_and_every_figure_loads(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    report = write_report(make_scripted_run(tmp_path / "run", metrics=True))
    browser.get(report.resolve().as_uri())
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"))

    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, severe

    table = browser.find_element(By.ID, "verdict-table")
    diagnosed = len(list(report.parent.glob("diagnosis-*.json")))
    assert table.is_displayed() and len(table.find_elements(By.CSS_SELECTOR, "tbody tr")) == diagnosed == 1
    assert INNER in table.text

    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.src.slice(0, 22)])")
    assert len(images) >= 10
    broken = [alt for alt, complete, width, _ in images if not (complete and width > 0)]
    assert not broken, broken
    assert all(src.startswith("data:image/") for *_, src in images)

    for anchor in ("summary", "verdicts", "training", "evidence", "outcomes", "goals", "values", "where", "episodes",
                   "per-seed", "glossary"):
        assert browser.find_element(By.ID, anchor).is_displayed()
    overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"

    shot = base64.b64decode(browser.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"])
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    targets = [tmp_path / "report.png"]
    if os.environ.get("ALIGNTRIAGE_SCREENSHOT_DIR"):
        targets.append(Path(os.environ["ALIGNTRIAGE_SCREENSHOT_DIR"]) / "report.png")
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(shot)
