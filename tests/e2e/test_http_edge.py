"""The web server's edge, run as a real process and spoken to over raw sockets.

Malformed HTTP (framing, headers, request lines) and bodies that do not match their
``Content-Encoding`` each get a 4xx: never a 5xx, never a connection dropped without an
answer when the request was complete, never an ERROR line or a traceback in the log (what
Sentry's logging integration would report), and no version banner.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import random
import signal
import socket
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.test_cli import bare_env, free_port, process, wait_serving

ALERT = b'{"passphrase": "x", "market": "BTC-USD", "action": "buy", "size": "1"}'
HOOK = "/hook/abcdefghijklmnopqrstuvwxyz012345"


def post(path: str, body: bytes, *headers: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: t", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join([*head, "Connection: close", "", ""])).encode() + body


def chunked(path: str, chunks: list[bytes], *headers: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: t", "Transfer-Encoding: chunked", *headers]
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"
    return ("\r\n".join([*head, "Connection: close", "", ""])).encode() + body


def bomb(size: int) -> bytes:
    """``size`` zero bytes, gzipped (about a thousandth of that on the wire)."""
    return gzip.compress(b"\0" * size, compresslevel=9)


# Each complete (from the server's point of view) request, and the status it must get.
CASES: dict[str, tuple[bytes, int]] = {
    "invalid gzip": (post(HOOK, b"not gzip at all", "Content-Encoding: gzip"), 400),
    # aiohttp inflates what there is (no trailer check): then the unknown token decides.
    "truncated gzip": (post(HOOK, gzip.compress(ALERT)[:20], "Content-Encoding: gzip"), 404),
    "invalid deflate": (post(HOOK, b"\xff" * 40, "Content-Encoding: deflate"), 400),
    "invalid br": (post(HOOK, b"\x00garbage", "Content-Encoding: br"), 415),
    "gzip to a route that reads no body": (
        post("/healthz", b"not gzip", "Content-Encoding: gzip"),
        405,
    ),
    "gzip bomb, small on the wire": (post(HOOK, bomb(3_000_000), "Content-Encoding: gzip"), 413),
    "gzip bomb, chunked": (
        chunked(HOOK, [bomb(50_000_000)[i : i + 4096] for i in range(0, 49_000, 4096)][:12]),
        413,
    ),
    "valid gzip is still decoded": (
        post(HOOK, gzip.compress(ALERT), "Content-Encoding: gzip"),
        404,
    ),
    "valid deflate is still decoded": (
        post(HOOK, zlib.compress(ALERT), "Content-Encoding: deflate"),
        404,
    ),
    "bad chunk size": (
        b"POST /hook/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"ZZZ\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    "chunk size overflow": (
        b"POST /hook/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"f" * 40
        + b"\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    "content-length and chunked": (
        b"POST /hook/x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "negative content-length": (
        b"POST /hook/x HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
        400,
    ),
    "huge header": (
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        431,
    ),
    "too many headers": (
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
        + b"".join(b"X-%d: 1\r\n" % n for n in range(300))
        + b"\r\n",
        400,
    ),
    "huge request line": (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 431),
    "garbage request line": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    "bad method": (b"G@T /healthz HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    "unsupported version": (b"GET /healthz HTTP/9.9\r\nHost: t\r\n\r\n", 400),
    "header without a colon": (b"GET /healthz HTTP/1.1\r\nHost: t\r\nnocolon\r\n\r\n", 400),
    "wrong method on a route": (b"DELETE /healthz HTTP/1.1\r\nHost: t\r\n\r\n", 405),
}


def exchange(port: int, raw: bytes, *, wait: float = 15) -> bytes:
    """Send ``raw`` on a new connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        # The server may answer and close before reading everything: read the answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)
        answer = b""
        # A reset, or a timeout on an incomplete request the server may keep waiting on.
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            while chunk := sock.recv(65536):
                answer += chunk
        return answer


def status_of(answer: bytes) -> int:
    line = answer.split(b"\r\n", 1)[0]
    assert line.startswith(b"HTTP/1."), answer[:200]
    return int(line.split()[1])


def mutations(count: int) -> Iterator[bytes]:
    """Valid alert requests with random bytes flipped, dropped or repeated (a fixed seed)."""
    rng = random.Random(14)
    templates = [
        post(HOOK, ALERT, "Content-Type: application/json"),
        post(HOOK, gzip.compress(ALERT), "Content-Encoding: gzip"),
        chunked(HOOK, [ALERT[:20], ALERT[20:]]),
    ]
    for _ in range(count):
        raw = bytearray(rng.choice(templates))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(raw))
            action = rng.randrange(3)
            if action == 0:
                raw[at] = rng.randrange(256)
            elif action == 1:
                del raw[at]
            else:
                raw[at:at] = raw[at : at + rng.randint(1, 50)] * rng.randint(1, 20)
        yield bytes(raw)


class SentryCollector(ThreadingHTTPServer):
    """A stand-in for Sentry's ingestion endpoint: keeps every envelope posted to it."""

    def __init__(self) -> None:
        self.envelopes: list[bytes] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                collector.envelopes.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                """Quiet: the stand-in collector writes no access lines."""

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.server_address[1]}/1"

    def events(self) -> list[bytes]:
        """The envelopes that carry an error event (not sessions or client reports)."""
        return [e for e in self.envelopes if b'"type":"event"' in e.replace(b" ", b"")]


class Edge:
    """A running ``tv2dydx web`` and, once stopped, its log lines (parsed)."""

    def __init__(self, proc: subprocess.Popen[str], port: int, sentry: SentryCollector) -> None:
        self.proc = proc
        self.port = port
        self.sentry = sentry

    def stop(self) -> tuple[list[dict[str, Any]], str]:
        """SIGTERM, then the JSON log lines and everything else written."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        parsed = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return parsed, out + err


@pytest.fixture
def sentry() -> Iterator[SentryCollector]:
    collector = SentryCollector()
    yield collector
    collector.shutdown()
    collector.server_close()


@pytest.fixture
def edge(base_env: dict[str, str], sentry: SentryCollector) -> Iterator[Edge]:
    port = free_port()
    env = bare_env(
        base_env,
        WEB_HOST="127.0.0.1",
        WEB_PORT=str(port),
        WEBHOOK_IP_ALLOWLIST="*",
        SENTRY_DSN=sentry.dsn,
    )
    with process(["web"], env) as proc:
        wait_serving(proc, port)
        yield Edge(proc, port, sentry)


def test_the_sentry_stand_in_receives_what_the_product_reports(
    sentry: SentryCollector, base_env: dict[str, str]
) -> None:
    # The control for "nothing reached Sentry" below: an error reported through the same
    # set-up does arrive.
    script = (
        "import sentry_sdk\n"
        "from core.runtime.logs import init_sentry\n"
        f"init_sentry({sentry.dsn!r}, environment='test', release='tv2dydx@test')\n"
        "sentry_sdk.capture_message('control', level='error')\n"
        "sentry_sdk.flush()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert len(sentry.events()) == 1


def assert_quiet_log(edge: Edge, requests: int) -> None:
    """No ERROR, no traceback; each refusal at most one WARNING line, without a traceback."""
    lines, text = edge.stop()
    assert edge.sentry.events() == []
    at = text.find("Traceback")
    assert at < 0, text[max(0, at - 500) : at + 2500]
    assert [line for line in lines if line.get("level") in {"error", "critical"}] == []
    refusals = [line for line in lines if line.get("level") == "warning"]
    assert refusals, "malformed requests are logged"
    assert {line["event"] for line in refusals} <= {"http_request_refused", "http_body_refused"}
    assert len(refusals) <= requests
    assert all("exception" not in line for line in refusals)


def test_each_malformed_request_gets_its_4xx_quietly(edge: Edge) -> None:
    for case, (raw, expected) in CASES.items():
        answer = exchange(edge.port, raw)
        assert answer, f"{case}: connection closed without an answer"
        assert status_of(answer) == expected, (case, answer[:300])
        head = answer.split(b"\r\n\r\n", 1)[0].lower() + b"\r\n"
        assert b"\r\nserver: tv2dydx\r\n" in head, case
        assert b"aiohttp" not in answer, case
        assert b"brotli" not in answer.lower(), case
    # At most one WARNING per refused request (unknown routes and tokens are not warned about).
    assert_quiet_log(edge, sum(status not in {404, 405} for _, status in CASES.values()))


def test_fuzzed_requests_never_get_a_5xx(edge: Edge) -> None:
    answered = 0
    fuzzed = list(mutations(40))
    for raw in fuzzed:
        answer = exchange(edge.port, raw, wait=2)
        if answer:  # an incomplete request (a length longer than its body) waits for more
            assert status_of(answer) < 500, (raw[:300], answer[:300])
            answered += 1
    assert answered >= len(fuzzed) // 2  # most mutations still frame a complete request
    assert_quiet_log(edge, len(fuzzed))
