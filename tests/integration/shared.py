"""Helpers for the shared-desk tests: `trading-desk engine` as a child process, a real PostgreSQL
journal made by `trading-desk db init`, and logins for the desk's three people."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
