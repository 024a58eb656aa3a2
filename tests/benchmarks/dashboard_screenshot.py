"""The README's picture of the dashboard, taken from ``recsvc demo`` after minutes of its traffic.

    .venv/bin/python -m tests.benchmarks.dashboard_screenshot [--minutes 4] [--out FILE.png]

(``bash img/render.sh dashboard`` runs it.) Starts ``recsvc demo`` exactly as a user would
(only its ports are chosen free), lets its producers and shoppers run for ``--minutes`` while a
visitor asks for a few lists of each kind (``/recommend``, ``/similar``, ``/popular``), then
opens ``/dashboard`` in headless Chromium (Debian's, through Selenium), signs in with the
admin token the demo printed, looks up one user and one of their items in the "try" panel,
and saves the page.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from ..conftest import free_port
from ..processes import chromium_missing, headless_chromium, is_healthy, stop

USER = "user-00000"


def _visitor(url: str, done: threading.Event) -> None:
    """A few lists of every kind, so the serving table shows more than one endpoint."""
    paths = [f"/recommend?user={USER}&n=5", "/popular?n=5", "/similar?item=toys-0001&n=5",
             "/recommend?user=someone-new&n=5", "/items/toys-0001/associations?n=5"]  # fmt: skip
    while not done.wait(0.5):
        for path in paths:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url + path, timeout=5).read()


def _token(demo: subprocess.Popen, deadline: float) -> str:
    for raw in demo.stdout:
        line = raw.decode(errors="replace")
        sys.stdout.write(line)
        found = re.search(r"admin token for this run [^:]*: ([0-9a-f]+)", line)
        if found:
            return found.group(1)
        if time.monotonic() > deadline:
            break
    raise SystemExit("the demo did not print its admin token")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=Path("img/dashboard.png"))
    args = parser.parse_args()
    if (reason := chromium_missing()) is not None:
        raise SystemExit(reason)
    from selenium.webdriver.common.by import By

    http = free_port()
    url = f"http://127.0.0.1:{http}"
    demo = subprocess.Popen(
        [sys.executable, "-m", "recommendation_service", "demo", "--port", str(free_port()),
         "--http-port", str(http), "--metrics-port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    done = threading.Event()
    try:
        token = _token(demo, time.monotonic() + 300)
        # Keep reading the demo's output, or its pipe fills and it blocks.
        threading.Thread(target=lambda: [None for _ in demo.stdout], daemon=True).start()
        threading.Thread(target=_visitor, args=(url, done), daemon=True).start()
        print(f"letting the demo run for {args.minutes:g} minutes ...", flush=True)
        time.sleep(args.minutes * 60)
        if not is_healthy(url):
            raise SystemExit("the demo is not healthy")
        driver = headless_chromium()
        try:
            driver.get(f"{url}/dashboard")
            driver.find_element(By.ID, "token").send_keys(token)
            driver.find_element(By.CSS_SELECTOR, "#login button").click()
            time.sleep(8)  # a few 2 s polls: every panel drawn, the charts' newest points in
            driver.find_element(By.ID, "try-user").send_keys(USER)
            driver.find_element(By.CSS_SELECTOR, "#try-form button").click()
            time.sleep(2)
            first = driver.find_elements(By.CSS_SELECTOR, "#try-recommendations tbody tr a.item")
            if first:
                first[0].click()
                time.sleep(2)
            errors = driver.execute_script("return window.dashboard.errors;")
            if errors:
                raise SystemExit(f"the dashboard reported errors: {errors}")
            # The whole page in one picture, from its top.
            height = driver.execute_script("return document.documentElement.scrollHeight;")
            driver.set_window_size(1400, min(int(height) + 120, 4000))
            driver.execute_script("window.scrollTo(0, 0);")
            time.sleep(1)
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
    finally:
        done.set()
        stop(demo, timeout=90)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
