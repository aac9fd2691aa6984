"""``redis-log-handler web`` in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``).

Each test starts the command as a user does, against a server of its own or the session's, logs through a real
``RedisHandler``, and reads what the page shows: live records, filters (and the address that reproduces them),
history, a record in full, the fleet, a Redis restart mid-view, hostile records and the token.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from redis_log_handler import RedisHandler
from redis_log_handler.testing import EmbeddedRedis, _free_port

from .helpers import wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="no headless browser: Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
    ),
]
TOKEN = "a-token-long-enough-for-the-page"  # noqa: S105 - the tests' own token
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "images" / "web.png"

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


def _status(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - a loopback URL of the test's own
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


class Web:
    """A running ``redis-log-handler web``; ``stop()`` sends SIGTERM as an operator does."""

    def __init__(self, url: str, key: str, *extra: str, host: str = "127.0.0.1") -> None:
        self.port = _free_port()
        self.host = host
        self.base = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "redis_log_handler", "web", "--url", url, "--key", key]
        command += ["--host", host, "--port", str(self.port), *extra]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)

    def wait_ready(self, headers: dict[str, str] | None = None) -> None:
        wait_until(lambda: _status(f"{self.base}/static/page.css", headers) == 200 or self.process.poll() is not None)
        assert self.process.poll() is None, self.process.communicate()[1]

    def stop(self, stop: int = signal.SIGTERM) -> tuple[int, float]:
        """SIGTERM (or *stop*); the exit status and how long the stop took."""
        if self.process.poll() is not None:
            return self.process.returncode, 0.0
        began = time.monotonic()
        self.process.send_signal(stop)
        status = self.process.wait(timeout=30)
        took = time.monotonic() - began
        self.process.communicate()
        return status, took


@pytest.fixture
def start_web() -> Iterator[Callable[..., Web]]:
    """Start ``web`` processes, stopped when the test ends."""
    started: list[Web] = []

    def start(url: str, key: str, *extra: str, host: str = "127.0.0.1", ready: bool = True) -> Web:
        web = Web(url, key, *extra, host=host)
        started.append(web)
        if ready:
            web.wait_ready({"Authorization": f"Bearer {TOKEN}"} if "--token" in extra else None)
        return web

    yield start
    for web in started:
        web.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module's tests."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
    yield driver
    driver.quit()


@pytest.fixture
def logger(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    """A logger of the test's own, with no handler yet, DEBUG and up."""
    log = logging.getLogger(f"web.{request.node.name}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def shown_messages(browser: Any) -> list[str]:
    """The message column of every row on the page, top to bottom."""
    return [
        str(text)
        for text in browser.execute_script(
            "return [...document.querySelectorAll('#list .row .message')].map((span) => span.textContent);"
        )
    ]


def no_alert(browser: Any) -> bool:
    try:
        browser.switch_to.alert  # noqa: B018 - raises when there is none
    except NoAlertPresentException:
        return True
    return False


class TestLive:
    def test_records_logged_while_the_page_is_open_appear_in_order(
        self,
        browser: Any,
        start_web: Callable[..., Web],
        redis_server: EmbeddedRedis,
        key: str,
        logger: logging.Logger,
    ) -> None:
        """The first screen shows what is in the stream; what is logged after shows up live, in order, once."""
        handler = RedisHandler(url=redis_server.url, key=key)
        logger.addHandler(handler)
        for number in range(5):
            logger.info("before %d", number)
        assert handler.flush(10)
        web = start_web(redis_server.url, key)
        browser.get(web.base)
        wait_until(lambda: shown_messages(browser) == [f"before {n}" for n in range(5)])
        for number in range(300):  # a burst, unpaced
            logger.info("after %d", number)
        expected = [f"before {n}" for n in range(5)] + [f"after {n}" for n in range(300)]
        wait_until(lambda: shown_messages(browser) == expected, timeout=20)
        assert browser.find_element(By.ID, "state").text == "live"

    def test_scrolled_up_the_view_holds_still_and_counts_what_arrived(
        self,
        browser: Any,
        start_web: Callable[..., Web],
        redis_server: EmbeddedRedis,
        key: str,
        logger: logging.Logger,
    ) -> None:
        """Reading older rows, new ones do not move the view: "N new" says how many; a click shows them below."""
        handler = RedisHandler(url=redis_server.url, key=key)
        logger.addHandler(handler)
        for number in range(60):
            logger.info("old %d", number)
        assert handler.flush(10)
        web = start_web(redis_server.url, key)
        browser.get(web.base)
        wait_until(lambda: len(shown_messages(browser)) == 60 and _settled(browser))
        browser.execute_script("document.getElementById('rows').scrollTop = 0;")
        for number in range(25):
            logger.info("new %d", number)
        button = browser.find_element(By.ID, "new")
        wait_until(lambda: button.is_displayed() and button.text == "25 new ↓", timeout=15)
        assert len(shown_messages(browser)) == 60
        assert browser.execute_script("return document.getElementById('rows').scrollTop;") == 0
        button.click()
        expected = [f"old {n}" for n in range(60)] + [f"new {n}" for n in range(25)]
        wait_until(lambda: shown_messages(browser) == expected)
        assert not button.is_displayed()

    def test_a_burst_faster_than_frames_shows_the_newest_and_the_rest_is_history(
        self,
        browser: Any,
        start_web: Callable[..., Web],
        redis_server: EmbeddedRedis,
        key: str,
        logger: logging.Logger,
    ) -> None:
        """3,000 records at once while the page follows: it shows the newest without drawing every one, and
        scrolling back up gives every record once, in order, down to the first."""
        handler = RedisHandler(url=redis_server.url, key=key)
        logger.addHandler(handler)
        logger.info("first")
        assert handler.flush(10)
        web = start_web(redis_server.url, key)
        browser.get(web.base)
        wait_until(lambda: shown_messages(browser) == ["first"] and browser.find_element(By.ID, "state").text == "live")
        messages = [f"burst {number}" for number in range(3000)]
        for message in messages:
            logger.info(message)
        assert handler.flush(10)
        wait_until(lambda: shown_messages(browser)[-1:] == ["burst 2999"], timeout=20)
        assert len(shown_messages(browser)) <= 2000
        expected = ["first", *messages]

        def scrolled_to_the_start() -> bool:  # every step on the way: a run of the records, none twice, no gap
            shown = shown_messages(browser)
            start = expected.index(shown[0])
            assert shown == expected[start : start + len(shown)]
            browser.execute_script("document.getElementById('rows').scrollTop = 0;")
            return start == 0 and "start of the records" in browser.find_element(By.ID, "top").text

        wait_until(scrolled_to_the_start, timeout=60, interval=0.2)

    def test_the_chart_counts_the_shown_records_by_level(
        self,
        browser: Any,
        start_web: Callable[..., Web],
        redis_server: EmbeddedRedis,
        key: str,
        logger: logging.Logger,
    ) -> None:
        """The bars add up to the rows shown, level by level, and follow the filters and the live records."""
        handler = RedisHandler(url=redis_server.url, key=key)
        logger.addHandler(handler)
        for number in range(30):
            logger.info("info %d", number)
            if number % 3 == 0:
                logger.warning("warning %d", number)
        logger.error("one error")
        assert handler.flush(10)
        web = start_web(redis_server.url, key)
        browser.get(web.base)
        totals = "return document.getElementById('chart').dataset.totals || '';"
        wait_until(lambda: browser.execute_script(totals) == '{"INFO":30,"WARNING":10,"ERROR":1}')
        logger.critical("live and critical")
        wait_until(lambda: browser.execute_script(totals) == '{"INFO":30,"WARNING":10,"ERROR":1,"CRITICAL":1}')
        browser.get(f"{web.base}/?level=warning")
        wait_until(lambda: browser.execute_script(totals) == '{"WARNING":10,"ERROR":1,"CRITICAL":1}')

    def test_a_record_opens_in_full(
        self,
        browser: Any,
        start_web: Callable[..., Web],
        redis_server: EmbeddedRedis,
        key: str,
        logger: logging.Logger,
    ) -> None:
        """A click on a row shows everything in it: the traceback, the extra fields, the call site."""
        handler = RedisHandler(url=redis_server.url, key=key, fields={"service": "api"})
        logger.addHandler(handler)
        try:
            raise KeyError("missing")
        except KeyError:
            logger.exception("lookup failed", extra={"order": 1234})
        assert handler.flush(10)
        web = start_web(redis_server.url, key)
        browser.get(web.base)
        row = wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#list .row"))[0]
        row.click()
        detail = wait_until(lambda: browser.find_element(By.ID, "detail-text").text)
        for part in (
            '"order": 1234',
            "KeyError: 'missing'",
            '"service": "api"',
            '"function": "test_a_record_opens_in_full"',
        ):
            assert part in detail


class TestFilters:
    def test_each_filter_narrows_the_view_and_the_address_reproduces_it(
        self,
        browser: Any,
        start_web: Callable[..., Web],
        redis_server: EmbeddedRedis,
        key: str,
        logger: logging.Logger,
    ) -> None:
        """Level, logger, grep, extra and field filters narrow the rows; the same address again shows the same."""
        handler = RedisHandler(url=redis_server.url, key=key, fields={"service": "api"})
        logger.addHandler(handler)
        child = logger.getChild("db")
        for number in range(20):
            logger.info("plain %d", number, extra={"user": "alice" if number % 2 else "bob"})
            child.warning("slow query %d", number)
        logger.error("timeout talking to the bank")
        assert handler.flush(10)
        web = start_web(redis_server.url, key)
        cases = {
            "level=warning": [f"slow query {n}" for n in range(20)] + ["timeout talking to the bank"],
            f"logger={child.name}": [f"slow query {n}" for n in range(20)],
            "grep=bank": ["timeout talking to the bank"],
            "extra=user%3Dalice": [f"plain {n}" for n in range(1, 20, 2)],
            "field=service%3Dapi&level=error": ["timeout talking to the bank"],
            "field=service%3Dweb": [],
        }
        for query, expected in cases.items():
            browser.get(f"{web.base}/?{query}")
            wait_until(lambda expected=expected: shown_messages(browser) == expected and _settled(browser))
        # Set from the form: the address follows, and opening it again shows the same rows.
        browser.get(web.base)
        wait_until(lambda: len(shown_messages(browser)) == 41)
        grep = browser.find_element(By.NAME, "grep")
        grep.send_keys("query 1[0-9]")
        browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
        wanted = [f"slow query {n}" for n in range(10, 20)]
        wait_until(lambda: shown_messages(browser) == wanted)
        address = browser.current_url
        assert "grep=query+1%5B0-9%5D" in address
        browser.get(web.base)
        browser.get(address)
        wait_until(lambda: shown_messages(browser) == wanted and _settled(browser))
        assert browser.find_element(By.NAME, "grep").get_attribute("value") == "query 1[0-9]"

    def test_a_bad_filter_is_named_on_the_page(
        self, browser: Any, start_web: Callable[..., Web], redis_server: EmbeddedRedis, key: str
    ) -> None:
        """A regular expression that does not parse: one line that names the parameter."""
        web = start_web(redis_server.url, key)
        browser.get(f"{web.base}/?grep=%28unclosed")
        problem = wait_until(lambda: browser.find_element(By.ID, "problem").text)
        assert problem.startswith("grep must be a regular expression")


def _settled(browser: Any) -> bool:
    """The first page of the current view has arrived (the loading line is gone)."""
    return "loading" not in browser.find_element(By.ID, "top").text


class TestHistory:
    def test_scrolling_up_loads_older_records_back_to_the_first(
        self,
        browser: Any,
        start_web: Callable[..., Web],
        redis_server: EmbeddedRedis,
        key: str,
        logger: logging.Logger,
    ) -> None:
        """1,500 records: the first screen holds the newest page; scrolling up reads older pages down to record 0."""
        handler = RedisHandler(url=redis_server.url, key=key)
        logger.addHandler(handler)
        for number in range(1500):
            logger.info("record %d", number)
        assert handler.flush(10)
        web = start_web(redis_server.url, key)
        browser.get(web.base)
        wait_until(lambda: shown_messages(browser)[-1:] == ["record 1499"])
        assert len(shown_messages(browser)) < 1500  # the first screen is one page, not the whole key

        def scrolled_to_the_start() -> bool:
            browser.execute_script("document.getElementById('rows').scrollTop = 0;")
            return "start of the records" in browser.find_element(By.ID, "top").text

        wait_until(scrolled_to_the_start, timeout=30, interval=0.2)
        assert shown_messages(browser) == [f"record {n}" for n in range(1500)]


class TestFleet:
    def test_the_fleet_panel_shows_a_producer_and_the_key(
        self,
        browser: Any,
        start_web: Callable[..., Web],
        redis_server: EmbeddedRedis,
        key: str,
        logger: logging.Logger,
    ) -> None:
        """A handler with a heartbeat shows with its written count; the key with its length."""
        handler = RedisHandler(url=redis_server.url, key=key, heartbeat=0.5)
        logger.addHandler(handler)
        for number in range(42):
            logger.info("beat %d", number)
        assert handler.flush(10)
        web = start_web(redis_server.url, key)
        browser.get(web.base)

        def producer_row() -> list[str]:  # read in one script: the panel is redrawn every few seconds
            return list(
                browser.execute_script(
                    "return [...document.querySelectorAll('#producers tbody tr td')].map((td) => td.textContent);"
                )
            )

        row = wait_until(lambda: (cells := producer_row()) and cells[8] == "42" and cells, timeout=15)
        assert row[2] == str(os.getpid())
        assert row[4] == "ok"
        keys = wait_until(lambda: browser.execute_script("return document.getElementById('keys').textContent;"))
        assert f"{key}: stream, 42 entries" in keys


class TestModes:
    def test_a_list_is_shown_without_following_and_a_channel_says_why_it_is_not(
        self,
        browser: Any,
        start_web: Callable[..., Web],
        redis_server: EmbeddedRedis,
        key: str,
        logger: logging.Logger,
    ) -> None:
        """A list key (read as what it holds) shows its records and says it is not followed; a channel, one line."""
        handler = RedisHandler(url=redis_server.url, key=f"{key}:list", mode="list")
        logger.addHandler(handler)
        for number in range(3):
            logger.info("listed %d", number)
        assert handler.flush(10)
        web = start_web(redis_server.url, f"{key}:list")
        browser.get(web.base)
        wait_until(lambda: shown_messages(browser) == [f"listed {n}" for n in range(3)])
        assert "shown without following it" in browser.find_element(By.ID, "note").text
        assert browser.find_element(By.ID, "state").text == "not following"
        channel = start_web(redis_server.url, f"{key}:channel", "--mode", "pubsub")
        browser.get(channel.base)
        note = wait_until(lambda: browser.find_element(By.ID, "note").text)
        assert note.startswith("a channel keeps no records to show: run redis-log-handler tail --mode pubsub")


class TestOutage:
    def test_redis_restarted_mid_view_the_page_resumes_without_a_gap_or_a_repeat(
        self,
        browser: Any,
        start_web: Callable[..., Web],
        own_server: EmbeddedRedis,
        key: str,
        logger: logging.Logger,
    ) -> None:
        """Redis killed while the page follows: the page says so; records logged meanwhile show once it is back."""
        handler = RedisHandler(url=own_server.url, key=key, close_timeout=2.0)
        logger.addHandler(handler)
        for number in range(10):
            logger.info("up %d", number)
        assert handler.flush(10)
        web = start_web(own_server.url, key)
        browser.get(web.base)
        wait_until(lambda: len(shown_messages(browser)) == 10 and browser.find_element(By.ID, "state").text == "live")
        own_server.kill()
        wait_until(lambda: "Redis unreachable" in browser.find_element(By.ID, "state").text)
        for number in range(10):
            logger.info("while down %d", number)
        own_server.start()
        for number in range(10):
            logger.info("back %d", number)
        expected = (
            [f"up {n}" for n in range(10)] + [f"while down {n}" for n in range(10)] + [f"back {n}" for n in range(10)]
        )
        wait_until(lambda: shown_messages(browser) == expected, timeout=30)
        assert browser.find_element(By.ID, "state").text == "live"


HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(2)</script>",
    '"><svg onload=alert(3)>',
    "javascript:alert(4)",
]


class TestSafety:
    def test_hostile_records_show_as_text_and_run_nothing(
        self,
        browser: Any,
        start_web: Callable[..., Web],
        redis_server: EmbeddedRedis,
        key: str,
        logger: logging.Logger,
    ) -> None:
        """Markup in a message, a logger name, an extra key or value shows as those characters; no element, no alert."""
        handler = RedisHandler(url=redis_server.url, key=key)
        logger.addHandler(handler)
        for text in HOSTILE:
            logger.warning(text, extra={text: text})
            logging.getLogger(text).addHandler(handler)
            logging.getLogger(text).warning("from a hostile logger name")
        assert handler.flush(10)
        for text in HOSTILE:
            logging.getLogger(text).removeHandler(handler)
        web = start_web(redis_server.url, key)
        browser.get(web.base)
        wait_until(lambda: len(shown_messages(browser)) == 2 * len(HOSTILE))
        assert [m for m in shown_messages(browser) if m != "from a hostile logger name"] == HOSTILE
        for row in browser.find_elements(By.CSS_SELECTOR, "#list .row"):
            row.click()
        assert browser.execute_script("return document.querySelectorAll('img, svg, #list script').length;") == 0
        assert no_alert(browser)
        page_text = browser.find_element(By.ID, "list").text
        for text in HOSTILE:
            assert text in page_text

    def test_off_loopback_the_token_is_needed_for_everything(
        self,
        browser: Any,
        start_web: Callable[..., Web],
        redis_server: EmbeddedRedis,
        key: str,
        logger: logging.Logger,
    ) -> None:
        """Bound to all addresses: no record, no page without the token; with it (signed in), the records show."""
        refused = start_web(redis_server.url, key, host="0.0.0.0", ready=False)  # noqa: S104 - the case tested
        assert refused.process.wait(timeout=30) == 2
        assert "give a token" in refused.process.communicate()[1]
        handler = RedisHandler(url=redis_server.url, key=key)
        logger.addHandler(handler)
        logger.info("secret order 77")
        assert handler.flush(10)
        web = start_web(redis_server.url, key, "--token", TOKEN, host="0.0.0.0")  # noqa: S104
        for path in ("/api/older", "/api/newer", "/api/fleet", "/api/info", "/static/page.js"):
            assert _status(web.base + path) == 401, path
            assert _status(web.base + path, {"Authorization": "Bearer wrong-token-wrong-token"}) == 401, path
        assert _status(web.base + "/api/older", {"Authorization": f"Bearer {TOKEN}"}) == 200
        browser.delete_all_cookies()
        browser.get(web.base)
        wait_until(lambda: browser.current_url.endswith("/sign-in"))
        assert "secret order" not in browser.page_source
        browser.find_element(By.ID, "token").send_keys("not-the-token-at-all")
        browser.find_element(By.CSS_SELECTOR, "#sign-in button").click()
        wait_until(lambda: browser.find_element(By.ID, "problem").text == "That is not the token.")
        token_input = browser.find_element(By.ID, "token")
        token_input.clear()
        token_input.send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#sign-in button").click()
        wait_until(lambda: shown_messages(browser) == ["secret order 77"])
        browser.delete_all_cookies()

    def test_the_page_allows_only_its_own_script(
        self, start_web: Callable[..., Web], redis_server: EmbeddedRedis, key: str
    ) -> None:
        """Every answer carries a Content-Security-Policy without inline script or eval, and is not framed."""
        web = start_web(redis_server.url, key)
        for path in ("/", "/static/page.js", "/api/older", "/api/nothing"):
            request = urllib.request.Request(web.base + path)  # noqa: S310 - the test's own loopback page
            try:
                with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                    headers = response.headers
            except urllib.error.HTTPError as exc:
                headers = exc.headers
            policy = headers["content-security-policy"]
            assert "script-src 'self';" in policy, path
            assert "unsafe" not in policy, path
            assert "frame-ancestors 'none'" in policy, path
            assert headers["x-content-type-options"] == "nosniff", path

    def test_a_foreign_host_name_is_refused_on_loopback(
        self, start_web: Callable[..., Web], redis_server: EmbeddedRedis, key: str
    ) -> None:
        """DNS rebinding: a request that names another host is refused, though it reached 127.0.0.1."""
        web = start_web(redis_server.url, key)
        assert _status(f"{web.base}/api/older", {"Host": "attacker.example"}) == 421
        assert _status(f"{web.base}/api/older", {"Host": f"localhost:{web.port}"}) == 200


class TestProcess:
    @pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
    def test_sigterm_or_ctrl_c_stops_it_within_a_second_while_a_page_follows(
        self, browser: Any, start_web: Callable[..., Web], redis_server: EmbeddedRedis, key: str, stop: int
    ) -> None:
        """A page holds a live read open; SIGTERM (or Ctrl-C) ends the server with status 0, the read cut at most
        a second late."""
        web = start_web(redis_server.url, key)
        browser.get(web.base)
        wait_until(lambda: browser.find_element(By.ID, "state").text == "live")
        status, took = web.stop(stop)
        assert status == 0
        assert took < 5  # a generous bound on a shared machine for a stop that waits at most one second


def test_the_screenshot_in_the_docs(
    browser: Any,
    start_web: Callable[..., Web],
    redis_server: EmbeddedRedis,
    key: str,
    logger: logging.Logger,
    tmp_path: Path,
) -> None:
    """The page as docs/web.md shows it, taken from a real run (written to the docs with UPDATE_SCREENSHOT=1)."""
    handler = RedisHandler(url=redis_server.url, key=key, heartbeat=0.5, fields={"service": "checkout"})
    logger.addHandler(handler)
    db = logger.getChild("db")
    for number in range(120):
        logger.info("GET /orders/%d 200", number, extra={"user": f"user{number % 7}", "ms": number % 40})
        if number % 9 == 0:
            db.warning("slow query on orders (%d ms)", 200 + number)
        if number % 31 == 0:
            try:
                raise TimeoutError("bank did not answer")
            except TimeoutError:
                logger.exception("payment failed for order %d", number)
    assert handler.flush(10)
    web = start_web(redis_server.url, key)
    browser.get(web.base)
    wait_until(lambda: len(shown_messages(browser)) >= 130)
    written = "return document.querySelector('#producers tbody tr td:nth-child(9)')?.textContent;"
    wait_until(lambda: browser.execute_script(written) == str(handler.stats()["written"]), timeout=15)
    wait_until(lambda: browser.execute_script("return document.getElementById('chart').dataset.totals;"))
    browser.find_elements(By.CSS_SELECTOR, "#list .row .level-ERROR")[-1].click()
    shot = tmp_path / "web.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


class TestReadOnly:
    def test_the_viewer_acl_of_the_docs_shows_the_records_and_names_what_it_may_not_read(
        self, browser: Any, start_web: Callable[..., Web], logger: logging.Logger
    ) -> None:
        """docs/production.md's users: the viewer (tail's permissions) sees and follows the records, and the fleet
        panel names what it may not read; the fleet permissions add the panel. Neither is ever refused anything else."""
        with EmbeddedRedis() as server, redis.Redis.from_url(server.url) as admin:
            key = "logs:web"
            for name, permissions in (("viewer", VIEWER), ("watcher", f"{VIEWER} {FLEET}")):
                rules = ["on", ">secret", "resetkeys", "~logs:*", "-@all", *permissions.split()]
                admin.execute_command("ACL", "SETUSER", name, *rules)
            handler = RedisHandler(url=server.url, key=key, heartbeat=0.5)
            logger.addHandler(handler)
            logger.info("first")
            assert handler.flush(10)
            web = start_web(f"redis://viewer:secret@127.0.0.1:{server.port}/0", key)
            browser.get(web.base)
            wait_until(lambda: shown_messages(browser) == ["first"])
            logger.info("second")
            wait_until(lambda: shown_messages(browser) == ["first", "second"])
            panel = "return document.getElementById('fleet').textContent;"
            wait_until(lambda: "producers cannot be read (NoPermissionError" in browser.execute_script(panel))
            web.stop()
            refused = {(entry["username"], entry["object"]) for entry in admin.acl_log()}
            assert refused <= {("viewer", command) for command in {*FLEET_COMMANDS, *HANDSHAKE}}, refused
            admin.acl_log_reset()
            web = start_web(f"redis://watcher:secret@127.0.0.1:{server.port}/0", key)
            browser.get(web.base)
            wait_until(lambda: f"{key}: stream, 2 entries" in browser.execute_script(panel))
            wait_until(lambda: "cannot be read" not in browser.execute_script(panel))
            assert {entry["object"] for entry in admin.acl_log()} <= HANDSHAKE
            logger.removeHandler(handler)
            handler.close()  # while its server still runs


VIEWER = "+xrevrange +xread +lrange +type +ping"
FLEET = "+hgetall +xlen +xrange +memory|usage +xinfo|stream +xinfo|groups"
# redis-py names its connection with CLIENT SETINFO and goes on when that is refused (Valkey logs the refusal).
HANDSHAKE = {"client|setinfo"}
FLEET_COMMANDS = {"hgetall", "xlen", "xrange", "memory|usage", "memory", "xinfo|stream", "xinfo|groups", "xinfo"}
