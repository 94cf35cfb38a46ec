"""App cold start, as a user sees it: `streamlit run app.py` → the first answer on screen.

    .venv/bin/python docs/cold_start.py [--runs 3] [--index index/] [--app-dir .] [--json]

Chromium (Playwright, /usr/bin/chromium) is started first and stays open, like a browser a
user already has. Then the clock starts, the server is started, and the page is requested
again and again until the server answers; the question is typed as soon as the question box
is on the page, and the clock stops when the answer ("2000 soldats") is visible. Each run is
a new server process (a new Python, nothing cached in memory; the OS file cache stays warm).
The index must exist already (`python -m qa build`).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
QUESTION = "Combien de soldats la Russie a-t-elle déployés en janvier 2022 ?"
ANSWER = "2000 soldats"
TIMEOUT_MS = 120_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def one_run(browser, app_dir: Path, index: Path, log: Path) -> dict[str, float]:
    """Seconds from the server's start to: the page answering, the question box shown, the answer shown."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "QA_INDEX": str(index)}
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true"]
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    with log.open("w") as output:
        started = time.perf_counter()
        server = subprocess.Popen(command, cwd=app_dir, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        while True:
            try:
                page.goto(url, timeout=TIMEOUT_MS)
                break
            except PlaywrightError:  # connection refused: the server is not listening yet
                if server.poll() is not None or time.perf_counter() - started > TIMEOUT_MS / 1000:
                    raise RuntimeError(f"streamlit did not start:\n{log.read_text('utf-8', 'replace')}")
                time.sleep(0.05)
        page_loaded = time.perf_counter() - started
        box = page.get_by_placeholder("Votre question…")
        box.wait_for(timeout=TIMEOUT_MS)
        box_shown = time.perf_counter() - started
        box.fill(QUESTION)
        box.press("Enter")
        expect(page.get_by_test_id("stChatMessage").last.get_by_text(ANSWER).first).to_be_visible(timeout=TIMEOUT_MS)
        answered = time.perf_counter() - started
    finally:
        page.close()
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return {"page_loaded_s": round(page_loaded, 2), "question_box_s": round(box_shown, 2), "first_answer_s": round(answered, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--index", type=Path, default=ROOT / "index")
    parser.add_argument("--app-dir", type=Path, default=ROOT, help="the checkout whose app.py to start (another version, to compare)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for number in range(args.runs):
                load_before = os.getloadavg()[0]
                figures = one_run(browser, args.app_dir.resolve(), args.index.resolve(), Path(f"/tmp/cold-start-{os.getpid()}-{number}.log"))
                runs.append({**figures, "load_average_before": round(load_before, 2)})
                if not args.json:
                    print(f"run {number + 1}: page {figures['page_loaded_s']:.2f} s, question box {figures['question_box_s']:.2f} s, "
                          f"first answer {figures['first_answer_s']:.2f} s (load average {load_before:.2f})")
        finally:
            browser.close()
    if args.json:
        print(json.dumps(runs))
    else:
        answers = sorted(run["first_answer_s"] for run in runs)
        print(f"server start → first answer: median {answers[len(answers) // 2]:.2f} s over {len(answers)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
