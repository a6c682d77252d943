"""``tv2dydx web`` with ``WEB_PROCESSES=2``: one port, two servers, one supervisor."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

TV2DYDX = str(Path(sys.executable).with_name("tv2dydx"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children_of(pid: int) -> set[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def servers_of(pid: int) -> set[int]:
    """The server processes the supervisor spawned (not multiprocessing's helpers)."""
    servers = set()
    for child in children_of(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:
            servers.add(child)
    return servers


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(predicate: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@contextmanager
def web(base_env: dict[str, str], port: int) -> Iterator[subprocess.Popen[str]]:
    coverage = {k: v for k, v in os.environ.items() if k.startswith("COVERAGE_")}
    env = {
        "PATH": os.environ["PATH"],
        **coverage,
        **base_env,
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(port),
        "WEB_PROCESSES": "2",
    }
    proc = subprocess.Popen(
        [TV2DYDX, "web"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _serving(proc: subprocess.Popen[str], port: int) -> Callable[[], bool]:
    def up() -> bool:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        if len(servers_of(proc.pid)) < 2:
            return False
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return up


def test_two_servers_share_the_port_and_stop_on_sigterm(base_env: dict[str, str]) -> None:
    port = free_port()
    with web(base_env, port) as proc:
        wait_for(_serving(proc, port))
        servers = children_of(proc.pid)  # with helpers
        time.sleep(3)  # both servers past start-up (each imports the app on its own)
        for _ in range(20):  # new connections: the kernel spreads them over both servers
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    # multiprocessing's helper (the resource tracker) exits just after its parent.
    wait_for(lambda: not any(alive(pid) for pid in servers), timeout=10)


def test_when_one_server_dies_the_others_stop_and_the_exit_is_an_error(
    base_env: dict[str, str],
) -> None:
    port = free_port()
    with web(base_env, port) as proc:
        wait_for(_serving(proc, port))
        first, second = sorted(servers_of(proc.pid))
        os.kill(first, signal.SIGKILL)
        assert proc.wait(timeout=30) == 1
    wait_for(lambda: not alive(second), timeout=10)
