"""Helpers for the shared-desk tests: `trading-desk engine` as a child process, a real PostgreSQL
journal made by `trading-desk db init`, and logins for the desk's three people."""

from __future__ import annotations

import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.store.pg_cluster import ADMIN, Cluster, start_cluster

REPO = Path(__file__).resolve().parents[2]
ENGINE_LOGIN, ENGINE_PASSWORD = "td_engine", "engine-secret-1"
PEOPLE = {"tina": ("trader", "tina-pw-1"), "rita": ("risk", "rita-pw-1"), "omar": ("operator", "omar-pw-1")}


def td_as(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


class EngineProcess:
    """`trading-desk engine` as a child process; its log (stderr) goes to a file."""

    def __init__(self, db: str, broker: str, log: Path, env: dict[str, str] | None = None, standby: bool = False):
        self.db, self.broker, self.log, self.env, self.standby = db, broker, log, env, standby
        self.proc: subprocess.Popen[str] | None = None
        self.args_extra: list[str] = []

    def start(self) -> EngineProcess:
        args = ["engine", "--db", self.db, "--broker", self.broker] + (["--standby"] if self.standby else [])
        args += self.args_extra
        with self.log.open("a") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", *args],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=err,
                text=True,
                env=self.env,
            )
        return self

    def running(self) -> bool:
        return "engine running on" in self.text()

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_running(self, timeout_s: float = 30) -> float:
        """Seconds until the log says the engine is running (recovered, deciding)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.running():
                return time.monotonic() - started
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"engine exited {self.proc.returncode}:\n{self.text()}")
            time.sleep(0.05)
        raise AssertionError(f"engine not running within {timeout_s}s:\n{self.text()}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


@pytest.fixture
def engines() -> Iterator[list[EngineProcess]]:
    started: list[EngineProcess] = []
    yield started
    for e in started:
        e.stop()


@dataclass
class PgDesk:
    """A fresh database on the session's cluster, initialised by `trading-desk db init`, with
    the engine's login and tina (trader), rita (risk) and omar (operator) granted their roles
    by `trading-desk users grant`."""

    cluster: Cluster
    database: str

    def url(self, user: str) -> str:
        return self.cluster.url(user, self.database)

    def env(self, user: str) -> dict[str, str]:
        return self.cluster.env(user)

    def secret_url(self, user: str) -> str:
        return f"postgresql://{user}:{self.cluster.logins[user]}@127.0.0.1:{self.cluster.port}/{self.database}"


_cluster: Cluster | None = None


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    cluster = start_cluster()
    try:
        for person, (_, password) in PEOPLE.items():
            cluster.create_login(person, password)
        cluster.create_login("mallory", "mallory-pw-1")  # a login with no desk role
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_desk(pg_cluster: Cluster) -> PgDesk:
    database = pg_cluster.new_database()
    desk = PgDesk(pg_cluster, database)
    admin_env = {**pg_cluster.env(ADMIN), "TD_ENGINE_PASSWORD": ENGINE_PASSWORD}
    init = td_as(admin_env, "db", "init", "--db", desk.url(ADMIN), "--json")
    assert init.returncode == 0, init.stderr
    pg_cluster.logins[ENGINE_LOGIN] = ENGINE_PASSWORD
    for person, (role, _) in PEOPLE.items():
        grant = td_as(pg_cluster.env(ADMIN), "users", "--db", desk.url(ADMIN), "grant", person, role)
        assert grant.returncode == 0, grant.stderr
    return desk


def env_without_pg() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


class DeskProcess:
    """One person's desk window in its own process (tests/ui/desk_process.py), logged in to the
    journal as that person. ``send`` returns a request id; ``reply`` waits for its answer, so a
    test can have one desk watch while another acts. ``ask`` is both."""

    def __init__(self, db: str, role: str, home: Path, env: dict[str, str]):
        home.mkdir(parents=True, exist_ok=True)
        self.home, self.ids, self.answers = home, itertools.count(1), queue.Queue[dict[str, Any]]()
        self.pending: dict[int | None, dict[str, Any]] = {}
        self.err = (home / "desk.err").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.ui.desk_process", "--db", db, "--role", role, "--home", str(home)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
            text=True,
            env={**env, "QT_QPA_PLATFORM": "offscreen"},
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.opened = self.reply(None, 30)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.answers.put(json.loads(line))
        self.answers.put({"id": "eof"})

    def send(self, op: str, **args: Any) -> int:
        assert self.proc.stdin is not None
        ident = next(self.ids)
        self.proc.stdin.write(json.dumps({"id": ident, "op": op, **args}) + "\n")
        self.proc.stdin.flush()
        return ident

    def reply(self, ident: int | None, timeout_s: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while ident not in self.pending:
            try:
                got = self.answers.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"desk {self.home.name}: no answer to {ident} in {timeout_s}s") from None
            if got["id"] == "eof":
                raise AssertionError(f"desk {self.home.name} exited:\n{(self.home / 'desk.err').read_text()}")
            self.pending[got["id"]] = got
        answer = self.pending.pop(ident)
        if "error" in answer:
            raise AssertionError(f"desk {self.home.name}: {answer['error']}")
        return answer

    def ask(self, op: str, timeout_s: float = 20, **args: Any) -> dict[str, Any]:
        return self.reply(self.send(op, **args), timeout_s)

    def until(self, test: Any, timeout_s: float, what: str) -> dict[str, Any]:
        """Ask for the window's state until ``test(state)`` holds."""
        deadline = time.monotonic() + timeout_s
        while True:
            shown = self.ask("state")
            if test(shown):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"desk {self.home.name}: timed out waiting for {what}; it shows {shown}")
            time.sleep(0.05)

    def close(self) -> int:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.err.close()
        return self.proc.returncode
