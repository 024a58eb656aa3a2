"""The dashboard in a real headless browser (Debian's chromium + chromedriver, driven by
Selenium; no browser download) against the running system: broker, builder, server.

Skips with the reason when Chromium or chromedriver is not installed, unless
RECSVC_TEST_REQUIRE_BROWSER is set (CI sets it, after installing them). The README's picture
is not this test's: tests/benchmarks/dashboard_screenshot.py takes it from ``recsvc demo``.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid

import pytest

from recommendation_service.common.files import write_atomic
from recommendation_service.sandbox.brokers import ensure_topic

from ..conftest import planted_events, skip_or_fail
from ..processes import (
    builder,
    chromium_missing,
    free_port,
    get,
    headless_chromium,
    post,
    recsvc,
    stop,
    wait_healthy,
)
from .test_builder_integration import produce, wait_until

pytestmark = pytest.mark.integration

TOKEN = "dashboard-token-0123456789"


def browser():
    """A headless Chromium, or a skip (a failure in CI) saying what is missing."""
    skip_or_fail(chromium_missing(), "RECSVC_TEST_REQUIRE_BROWSER")
    return headless_chromium()


@pytest.fixture
def system(tmp_path):
    """Apache Kafka, `recsvc builder` over planted tastes, and `recsvc serve` (2 workers)."""
    from ..conftest import new_broker

    broker = new_broker(tmp_path / "broker")
    with broker:
        topic = f"dash-{uuid.uuid4().hex[:8]}"
        impressions = f"imp-{topic}"
        ensure_topic(broker.bootstrap_servers, topic)
        ensure_topic(broker.bootstrap_servers, impressions)
        events = planted_events(3000)
        produce(broker, topic, [f"{e.user}:{e.item}".encode() for e in events[:2000]])
        produce(broker, topic, [b"not an event"] * 5)
        model_dir = tmp_path / "models"
        builder_proc = builder(broker.bootstrap_servers, topic, model_dir, "--window", "10000",
                               "--retrain-every", "500", "--group-id", f"g-{topic}",
                               "--impressions-topic", impressions)  # fmt: skip
        port = free_port()
        server = recsvc(
            "serve", "--model-dir", str(model_dir), "--port", str(port), "--workers", "2",
            "--no-access-log", "--bootstrap-servers", broker.bootstrap_servers, "--topic", topic,
            "--impressions-topic", impressions, log_path=tmp_path / "server.log",
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, timeout=90)
            yield {"url": url, "model_dir": model_dir, "events": events, "broker": broker,
                   "topic": topic}  # fmt: skip
        finally:
            stop(server)
            stop(builder_proc)


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def js(driver, expression: str):
    return driver.execute_script(f"return {expression};")


def test_the_dashboard_shows_the_running_system(system, tmp_path):
    from selenium.webdriver.common.by import By

    url, events = system["url"], system["events"]
    driver = browser()
    try:
        driver.get(f"{url}/dashboard")
        # Events keep flowing while the page is open: the charts get points.
        for k in range(3):
            more = events[2000 + 300 * k :][:300]
            produce(
                system["broker"], system["topic"], [f"{e.user}:{e.item}".encode() for e in more]
            )
            time.sleep(4)
        wait_until(lambda: js(driver, "window.dashboard.charts['chart-stream'].data[0].length")
                   >= 2, timeout=30, what="points in the stream chart")  # fmt: skip
        lists = [get(f"{url}/recommend?user={events[0].user}&n=5")[1] for _ in range(5)]
        # One of the five lists gets a click on its second item: the models panel shows it.
        click = {"user_id": events[0].user, "item_id": lists[0]["items"][1],
                 "action_type": "click", "recommendation_id": lists[0]["recommendation_id"]}
        assert post(f"{url}/online/data/add", {"samples": [click]})[0] == 200
        wait_until(lambda: "click-through 20.0%" in driver.find_element(
            By.ID, "attribution-facts").text, timeout=30, what="the list's click")  # fmt: skip
        assert "0 / 1 / 0" in driver.find_element(By.ID, "attribution").text
        wait_until(lambda: js(driver, "window.dashboard.charts['chart-serving'].data[0].length")
                   >= 1, timeout=15, what="points in the serving chart")  # fmt: skip
        wait_until(lambda: js(driver, "window.dashboard.charts['chart-models'].data[0].length")
                   >= 1, timeout=15, what="refits in the models chart")  # fmt: skip
        assert js(driver, "window.dashboard.errors.length") == 0, js(
            driver, "window.dashboard.errors"
        )
        assert driver.find_element(By.ID, "malformed").text == "5"
        assert driver.find_element(By.ID, "banner").is_displayed() is False

        # Try a user: their items in the window and ten recommendations, then an item.
        user = events[0].user
        driver.find_element(By.ID, "try-user").send_keys(user)
        driver.find_element(By.CSS_SELECTOR, "#try-form button").click()
        rows = "#try-recommendations tbody tr"
        wait_until(lambda: len(driver.find_elements(By.CSS_SELECTOR, rows)) == 10,
                   timeout=10, what="the user's recommendations")  # fmt: skip
        first = driver.find_element(By.CSS_SELECTOR, f"{rows} a.item")
        first_item = first.text
        first.click()
        wait_until(lambda: first_item in driver.find_element(By.ID, "item-result").text
                   and "similar items" in driver.find_element(By.ID, "item-result").text,
                   timeout=10, what="the item's similar items")  # fmt: skip
        shot = tmp_path / "dashboard.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000

        # A refused model version shows in the banner.
        model_dir = system["model_dir"]
        current = (model_dir / "CURRENT").read_text().strip()
        bad = f"v{int(current[1:]) + 1000:08d}"
        shutil.copytree(model_dir / "versions" / current, model_dir / "versions" / bad)
        (model_dir / "versions" / bad / "manifest.json").write_bytes(b"\x00{not json")
        write_atomic(model_dir / "CURRENT", f"{bad}\n".encode())
        wait_until(lambda: "refused" in driver.find_element(By.ID, "banner").text,
                   timeout=15, what="the refused version in the banner")  # fmt: skip
        assert bad in driver.find_element(By.ID, "refits").text
        assert console_errors(driver) == []
    finally:
        driver.quit()


def test_with_an_admin_token_the_page_asks_for_it(tmp_path, planted_model):
    from selenium.webdriver.common.by import By

    from recommendation_service.artifacts.store import ModelStore

    model_dir = tmp_path / "models"
    ModelStore(model_dir).publish(planted_model)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = recsvc("serve", "--model-dir", str(model_dir), "--port", str(port),
                    "--no-access-log", "--admin-token", TOKEN)  # fmt: skip
    driver = browser()
    try:
        wait_healthy(url, timeout=60)
        status, body = get(f"{url}/dashboard/api/models")
        assert status == 401 and "Bearer" in body["message"]
        driver.get(f"{url}/dashboard")
        login = driver.find_element(By.ID, "login")
        wait_until(login.is_displayed, timeout=10, what="the login form")
        driver.find_element(By.ID, "token").send_keys("wrong-token-wrong-token")
        driver.find_element(By.CSS_SELECTOR, "#login button").click()
        wait_until(lambda: "wrong token" in driver.find_element(By.ID, "login-error").text,
                   timeout=10, what="the wrong token refused")  # fmt: skip
        driver.find_element(By.ID, "token").clear()
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.CSS_SELECTOR, "#login button").click()
        wait_until(lambda: not login.is_displayed(), timeout=10, what="the login accepted")
        wait_until(lambda: js(driver, "window.dashboard.renderedAt") is not None, timeout=10,
                   what="the page rendering with the token")  # fmt: skip
        assert TOKEN not in driver.current_url
        assert "v1" in driver.find_element(By.ID, "served").text
        # 401s from before the login are the only console errors.
        assert all("401" in e for e in console_errors(driver)), console_errors(driver)
        assert json.loads(json.dumps(js(driver, "window.dashboard.errors"))) == []
    finally:
        driver.quit()
        stop(server)
