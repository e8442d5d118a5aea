"""A real, throwaway PostgreSQL 15 cluster, for the tests and ``trading-desk bench`` (Debian's
``postgresql`` package, which ``.ci/setup`` installs): ``initdb`` with SCRAM passwords for every
login, a server on a free loopback port, removed by ``stop()``. ``initdb`` refuses root, so as root the
cluster belongs to the ``postgres`` OS user (as ``pg_virtualenv`` does it).

Every test gets its own database; logins and the desk roles are cluster-wide."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ADMIN, ADMIN_PASSWORD = "td_admin", "admin-secret-1"
_counter = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    root: Path
    port: int
    owner: str | None  # the OS user running the server (postgres when we are root)
    logins: dict[str, str] = field(default_factory=dict)
    options: str = ""  # the server's command-line options, for a restart

    def url(self, user: str = ADMIN, db: str = "postgres") -> str:
        """A libpq URL without the password (it travels in PGPASSWORD, never in an argument)."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def env(self, user: str) -> dict[str, str]:
        """Environment for a process logging in as ``user``."""
        out = dict(os.environ)
        out["PGPASSWORD"] = self.logins[user] if user != ADMIN else ADMIN_PASSWORD
        return out

    def conninfo(self, user: str = ADMIN, db: str = "postgres") -> str:
        password = ADMIN_PASSWORD if user == ADMIN else self.logins[user]
        return f"host=127.0.0.1 port={self.port} dbname={db} user={user} password={password}"

    def admin(self, db: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.conninfo(ADMIN, db), autocommit=True)

    def new_database(self) -> str:
        name = f"td_{os.getpid()}_{next(_counter)}"
        with self.admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def create_login(self, user: str, password: str) -> None:
        with self.admin() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user), sql.Literal(password))
            )
        self.logins[user] = password

    def crash_and_restart(self) -> None:
        """Stop the server as a crash would (immediate: no checkpoint, no flush of what it had not
        written yet), then start it again: it recovers from its WAL."""
        data = str(self.root / "data")
        _run(self.owner, [str(PG_BIN / "pg_ctl"), "-D", data, "-m", "immediate", "stop"])
        start = _run(
            self.owner,
            [str(PG_BIN / "pg_ctl"), "-D", data, "-w", "-o", self.options, "-l", str(self.root / "log"), "start"],
        )
        if start.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {start.stderr}")

    def stop(self) -> None:
        _run(self.owner, [str(PG_BIN / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)


def _run(owner: str | None, argv: list[str]) -> subprocess.CompletedProcess[str]:
    if owner is not None:
        argv = ["runuser", "-u", owner, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def installed() -> bool:
    return (PG_BIN / "initdb").exists()


def start_cluster(*, fsync: bool = False) -> Cluster:
    """``fsync`` off for tests (a throwaway cluster need not survive power loss); on for
    latency figures, which must include the WAL flush a durable commit waits for."""
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL 15 is not installed ({PG_BIN}): run bash .ci/setup")
    owner = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="td-pg-"))
    root.chmod(0o755)
    pwfile = root / "pw"
    pwfile.write_text(ADMIN_PASSWORD + "\n")
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if owner is not None:
        shutil.chown(root, owner)
        shutil.chown(pwfile, owner)
        shutil.chown(sockets, owner)
    init = _run(
        owner,
        [str(PG_BIN / "initdb"), "-D", str(data), "-U", ADMIN, "--pwfile", str(pwfile), "-A", "scram-sha-256"],
    )
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed: {init.stderr}")
    port = _free_port()
    durability = "on" if fsync else "off"
    opts = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync={durability} -c max_connections=200"
    start = _run(owner, [str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-o", opts, "-l", str(root / "log"), "start"])
    if start.returncode != 0:
        raise RuntimeError(f"pg_ctl start failed: {start.stderr} {(root / 'log').read_text(errors='replace')}")
    return Cluster(root, port, owner, options=opts)
