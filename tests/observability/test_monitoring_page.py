"""The /monitoring panel in headless Chromium: after real traffic it shows non-zero numbers that agree with
/metrics, fits a phone-sized screen, and a screenshot of it is written under the test's tmp dir.

Needs Debian's ``chromium`` and ``chromium-driver`` (``scripts/dev test`` installs them). Without them the
test is skipped on a developer machine and fails under CI (``CI`` set), where they must be there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.observability.conftest import mixed_run

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# The flags the machine notes give for Chromium here (no background connections to a closed network).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def _require_chromium() -> None:
    if shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER):
        return
    message = f"headless Chromium is missing ({CHROMIUM}, {CHROMEDRIVER}): apt-get install -y chromium chromium-driver"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class PageReading:
    tool_calls: str
    success_rate: str
    request_rate: str
    p95: str
    doors: dict[str, str]  # door -> calls shown
    tools: dict[str, str]
    errors_listed: int
    coze_breaker: str
    coze_groups: dict[str, str]  # Coze API group -> attempts shown
    coze_quota: str
    upstream_state: str
    console_errors: list[str]
    overflow_px: int  # how far the page is wider than a phone screen


def _read_page(url: str, shots: Path) -> PageReading:
    """Blocking (selenium): run on a worker thread while the event loop serves the page."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=shots)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1280,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(url)
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.loaded === 'true'"))

        def text(element_id: str) -> str:
            return str(driver.find_element(By.ID, element_id).text)

        def column(table: str, key: str) -> dict[str, str]:
            cells = driver.find_elements(By.CSS_SELECTOR, f"#{table} td[data-{key}]")
            return {str(cell.get_attribute(f"data-{key}")): str(cell.find_element(By.XPATH, "following-sibling::td[1]").text)
                    for cell in cells}

        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        driver.set_window_size(1280, height)
        driver.save_screenshot(str(shots / "monitoring.png"))
        reading = PageReading(
            tool_calls=text("tool-calls-total"), success_rate=text("success-rate"), request_rate=text("request-rate"),
            p95=text("p95-ms"), doors=column("doors", "door"), tools=column("tools", "tool"),
            errors_listed=len(driver.find_elements(By.CSS_SELECTOR, "#recent-errors tbody tr")),
            coze_breaker=text("coze-breaker"), coze_groups=column("coze-groups", "group"),
            coze_quota=text("coze-quota-state"), upstream_state=driver.find_element(By.CSS_SELECTOR, "#upstreams td[data-state]").text,
            console_errors=[entry["message"] for entry in driver.get_log("browser")  # type: ignore[no-untyped-call]
                            if entry["level"] == "SEVERE"],
            overflow_px=0,
        )
        driver.set_window_size(390, 844)  # a phone
        driver.refresh()
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.loaded === 'true'"))
        reading.overflow_px = int(driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"))
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        driver.set_window_size(390, height)
        driver.save_screenshot(str(shots / "monitoring-phone.png"))
        return reading
    finally:
        driver.quit()


def _number(shown: str) -> float:
    return float(shown.replace(",", "").rstrip("%"))


async def test_the_panel_shows_the_numbers_of_metrics_after_real_traffic(tmp_path: Path) -> None:
    _require_chromium()
    async with mixed_run(tmp_path) as run:
        async with httpx2.AsyncClient(timeout=10) as http:
            scrape = (await http.get(run.base + "/metrics")).text
        reading = await anyio.to_thread.run_sync(_read_page, run.base + "/monitoring", tmp_path)
    calls = [s for f in text_string_to_metric_families(scrape) for s in f.samples if s.name == "kai_bridge_tool_calls_total"]
    total = sum(s.value for s in calls)
    ok = sum(s.value for s in calls if s.labels["outcome"] == "ok")
    by_door: dict[str, float] = {}
    by_tool: dict[str, float] = {}
    for sample in calls:
        by_door[sample.labels["door"]] = by_door.get(sample.labels["door"], 0) + sample.value
        by_tool[sample.labels["tool"]] = by_tool.get(sample.labels["tool"], 0) + sample.value

    assert (tmp_path / "monitoring.png").stat().st_size > 10_000
    assert (tmp_path / "monitoring-phone.png").stat().st_size > 10_000
    assert total > 0
    assert _number(reading.tool_calls) == total
    assert _number(reading.success_rate) == pytest.approx(100 * ok / total, abs=0.05)
    assert {door: _number(shown) for door, shown in reading.doors.items()} == by_door
    assert {tool: _number(shown) for tool, shown in reading.tools.items()} == by_tool
    assert {"mcp-http", "cli", "requires_action"} <= set(reading.doors)
    assert _number(reading.request_rate) > 0
    assert _number(reading.p95) > 0
    assert reading.errors_listed >= 3  # refused input, the upstream's failure, the Coze 5000s
    assert reading.coze_breaker == "closed"
    coze = [s for f in text_string_to_metric_families(scrape) for s in f.samples if s.name == "kai_bridge_coze_requests_total"]
    by_group: dict[str, float] = {}
    for sample in coze:
        by_group[sample.labels["group"]] = by_group.get(sample.labels["group"], 0) + sample.value
    assert {group: _number(shown) for group, shown in reading.coze_groups.items()} == by_group
    assert {"chat", "bot"} <= set(reading.coze_groups)
    assert reading.coze_quota == "off"
    assert reading.upstream_state == "connected"
    assert reading.console_errors == []
    assert reading.overflow_px <= 0  # tables scroll inside their cards; the page itself does not
