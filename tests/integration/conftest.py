"""Real processes on loopback: the exchange server, headless engines, the report commands."""

from __future__ import annotations

import asyncio
import itertools
import json
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SETTLED = {"HEDGED", "COMPLETED", "REJECTED", "FAILED", "CANCELLED"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def td(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


def td_json(*args: str) -> Any:
    run = td(*args)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


class ExchangeProcess:
    """`trading-desk exchange` as a child process; stderr (its log) goes to a file."""

    def __init__(self, state: Path, faults: str = "none", seed: int = 1, port: int | None = None) -> None:
        self.state = state
        self.faults = faults
        self.seed = seed
        self.port = port or free_port()
        self.log = state.with_suffix(".log")
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20) -> None:
        assert self.proc is None or self.proc.poll() is not None
        args = ["exchange", "--port", str(self.port), "--state", str(self.state), "--faults", self.faults]
        with self.log.open("a") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", *args, "--seed", str(self.seed)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                line = self.proc.stdout.readline()
                assert line.startswith("exchange listening on "), f"{line!r}\n{self.log.read_text()}"
                return
            if self.proc.poll() is not None:
                break
        self.stop()
        raise AssertionError(f"exchange did not start within {timeout_s}s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no chance to save or say goodbye."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None
        finally:
            if self.proc.stdout:
                self.proc.stdout.close()


@pytest.fixture
def exchanges() -> Iterator[list[ExchangeProcess]]:
    """Register every ExchangeProcess a test starts here: they are all stopped afterwards."""
    started: list[ExchangeProcess] = []
    yield started
    for ex in started:
        ex.stop()


async def eventually(predicate: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` every 20 ms until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    for _ in itertools.count():
        if await predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        await asyncio.sleep(0.02)


def groups_file(tmp_path: Path, count: int, name: str = "groups.json") -> Path:
    from tests.cli.test_cli import twenty_groups

    path = tmp_path / name
    path.write_text(json.dumps(twenty_groups()[:count]))
    return path


def check_consistent(journal: dict[str, Any], report: dict[str, Any], expected_groups: int) -> None:
    """Invariants 2, 5 and 6 as the outside world sees them."""
    escalated = {e["group_id"] for e in journal["escalations"] if e["status"] != "RESOLVED"}
    assert len(journal["groups"]) == expected_groups
    unsettled = [g for g in journal["groups"] if g["state"] not in SETTLED and g["group_id"] not in escalated]
    assert unsettled == [], f"groups neither HEDGED, terminal nor escalated: {unsettled}"
    ids = [o["client_order_id"] for o in report["orders"]]
    assert len(ids) == len(set(ids)), "a client order id reached the exchange twice"
    assert journal["positions"] == report["positions"]


from tests.integration.shared import engines, pg_cluster, pg_desk  # noqa: E402, F401  (fixtures)
