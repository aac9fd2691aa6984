"""The web page under load: the arrival rate it keeps up with, its server's CPU, its frames, and memory after browsing.

    python benchmarks/web.py [--seconds 10] [--rates 1000,5000,10000] [--history 360000]

Needs the ``web`` extra, ``selenium`` and Debian's ``chromium`` and ``chromium-driver``. Against one server it
starts, for each arrival rate R (records per second, paced: the pacing is the scenario), for SECONDS:

- a child process logs R records a second through ``RedisHandler``;
- the page (headless Chromium, following the key) counts the rows it receives, and measures the gaps between
  its animation frames (``requestAnimationFrame``): the longest pause a user would see while records arrive;
- ``redis-log-handler tail -f > /dev/null`` follows the same key beside it: the baseline, measured in the same
  run, for what following costs a reader.

Printed per rate: the share of the records logged that the page received (1.00: none missed), the lag from
the moment the last record was in Redis to the moment the page had it, the web server's CPU over the window
and its ratio to ``tail -f``'s, and the page's longest and 99th percentile frame gap, beside its longest gap
over two idle seconds just before (the baseline: a headless browser's own frame rate).

Then the history: HISTORY records (an hour at 100 a second by default) are written, the page's server reads
them all back in 200-record pages as a user scrolling back to the start would, three times over, and its
resident memory is printed before and after (and the ratio).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis_log_handler.testing import EmbeddedRedis, _free_port

_PRODUCER = """
import logging, sys, time
from redis_log_handler import RedisHandler
url, key, rate, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
handler = RedisHandler(url=url, key=key)
log = logging.getLogger("bench.web")
log.addHandler(handler)
log.setLevel(logging.INFO)
began = time.monotonic()
sent = 0
while (now := time.monotonic()) - began < seconds:
    due = int((now - began) * rate)
    while sent < due:
        log.info("GET /orders/%d 200 in %d ms", sent, sent % 50, extra={"user": f"user{sent % 97}"})
        sent += 1
    time.sleep(0.001)
handler.flush(30)
print(sent)
"""

_IDLE_SECONDS = 2.0
_FRAMES = """
window.__gaps = [];
let last = performance.now();
function tick(now) { window.__gaps.push(now - last); last = now; requestAnimationFrame(tick); }
requestAnimationFrame(tick);
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _wait_for(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own loopback server
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the page's server did not answer at {url}")


def _browser() -> Any:
    from selenium import webdriver  # noqa: PLC0415 - only this benchmark needs it

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"))


def _serve(url: str, key: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [sys.executable, "-m", "redis_log_handler", "web", "--url", url, "--key", key, "--port", str(port)]
    server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    _wait_for(f"{base}/static/page.css")
    return server, base


def arrival(url: str, rate: int, seconds: float, browser: Any) -> dict[str, float]:
    """One rate: what the page received, the servers' CPU, the page's frame gaps."""
    key = f"bench:web:{rate}:{time.time_ns()}"
    server, base = _serve(url, key)
    tail_command = [sys.executable, "-m", "redis_log_handler", "tail", "--url", url, "--key", key, "-f", "-n", "0"]
    tail = subprocess.Popen(tail_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        browser.get(base)
        deadline = time.monotonic() + 30
        while browser.find_element("id", "state").text != "live" and time.monotonic() < deadline:
            time.sleep(0.05)
        browser.execute_script(_FRAMES)
        time.sleep(_IDLE_SECONDS)  # the idle page's frames: the baseline for its frames under load
        idle_gaps = sorted(float(gap) for gap in browser.execute_script("return window.__gaps.splice(0);")[1:])
        cpu_before = {pid: _cpu_seconds(pid) for pid in (server.pid, tail.pid)}
        producer = subprocess.run(
            [sys.executable, "-c", _PRODUCER, url, key, str(rate), str(seconds)],
            capture_output=True,
            text=True,
            check=True,
        )
        logged = int(producer.stdout.split()[-1])
        flushed = time.monotonic()  # every record is in Redis
        while browser.execute_script("return view.received;") < logged and time.monotonic() - flushed < 30:
            time.sleep(0.01)
        lag = time.monotonic() - flushed
        received = int(browser.execute_script("return view.received;"))
        gaps = sorted(float(gap) for gap in browser.execute_script("return window.__gaps;")[1:])
        cpu = {pid: _cpu_seconds(pid) - before for pid, before in cpu_before.items()}
    finally:
        for process in (server, tail):
            process.terminate()
            process.wait(timeout=30)
    return {
        "rate": rate,
        "logged": logged,
        "kept_up": received / logged if logged else float("nan"),
        "lag_s": lag,
        "web_cpu_s": cpu[server.pid],
        "tail_cpu_s": cpu[tail.pid],
        "longest_frame_gap_ms": gaps[-1] if gaps else float("nan"),
        "idle_longest_frame_gap_ms": idle_gaps[-1] if idle_gaps else float("nan"),
        "p99_frame_gap_ms": gaps[int(len(gaps) * 0.99)] if gaps else float("nan"),
    }


def history(url: str, records: int) -> dict[str, float]:
    """Write *records*, read them all back as 200-record pages three times; the server's memory before and after."""
    import redis  # noqa: PLC0415

    key = f"bench:web:history:{time.time_ns()}"
    client = redis.Redis.from_url(url)
    document = {"@timestamp": "", "level": "INFO", "levelno": 20, "logger": "bench", "message": ""}
    pipe = client.pipeline(transaction=False)
    for number in range(records):
        document["@timestamp"] = f"2026-12-07T10:{number // 6000 % 60:02d}:{number // 100 % 60:02d}.{number % 100:06d}Z"
        document["message"] = f"GET /orders/{number} 200"
        pipe.xadd(key, {"data": json.dumps(document)})
        if number % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()
    server, base = _serve(url, key)
    try:
        with urllib.request.urlopen(f"{base}/api/older?limit=200", timeout=30) as response:  # noqa: S310
            json.load(response)
        before = _rss_mib(server.pid)
        pages = 0
        for _ in range(3):
            cursor = None
            while True:
                address = f"{base}/api/older?limit=200"
                if cursor is not None:
                    address += "&cursor=" + urllib.request.quote(json.dumps(cursor))
                with urllib.request.urlopen(address, timeout=30) as response:  # noqa: S310
                    page = json.load(response)
                pages += 1
                cursor = page["cursor"]
                if page["done"]:
                    break
        after = _rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
        client.delete(key)
        client.close()
    return {"records": records, "pages": pages, "rss_before_mib": before, "rss_after_mib": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", default="1000,5000,10000")
    parser.add_argument("--history", type=int, default=360_000)
    arguments = parser.parse_args()
    with EmbeddedRedis() as server:
        browser = _browser()
        try:
            results = [
                arrival(server.url, int(rate), arguments.seconds, browser) for rate in arguments.rates.split(",")
            ]
        finally:
            browser.quit()
        print("rate/s   logged  received  lag s  web CPU s  tail -f CPU s  web/tail  longest gap ms (idle)  p99 gap ms")
        for row in results:
            print(
                f"{row['rate']:>6,}  {row['logged']:>7,}  {row['kept_up']:>8.2f}  {row['lag_s']:>5.2f}  "
                f"{row['web_cpu_s']:>9.2f}  {row['tail_cpu_s']:>13.2f}  {row['web_cpu_s'] / row['tail_cpu_s']:>8.2f}  "
                f"{row['longest_frame_gap_ms']:>7.0f} ({row['idle_longest_frame_gap_ms']:.0f}, "
                f"x{row['longest_frame_gap_ms'] / row['idle_longest_frame_gap_ms']:.1f})  "
                f"{row['p99_frame_gap_ms']:>10.0f}"
            )
        browsed = history(server.url, arguments.history)
        print(
            f"history: {browsed['records']:,} records read back in {browsed['pages']:,} pages (three times): the "
            f"server's RSS {browsed['rss_before_mib']:.1f} MiB before, {browsed['rss_after_mib']:.1f} MiB after "
            f"(x{browsed['rss_after_mib'] / browsed['rss_before_mib']:.2f})"
        )
        print(json.dumps({"arrival": results, "history": browsed}))


if __name__ == "__main__":
    main()
