"""`trading-desk bench --db postgresql://…`: case 7 on a user's server, as a login that is not a
superuser. It writes only scratch databases it drops, holds the desk roles only for the run, never
touches its login's password and never prints it."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from app.bench_pg import pg_figures
from engine.store.migrations import JournalError
from engine.store.pg_cluster import Cluster
from engine.store.users import PG_ROLE

LOGIN, PASSWORD = "bench_runner", "b3nch/pw:secret"


def _memberships(cluster: Cluster) -> list[tuple[str, bool]]:
    with cluster.admin() as conn:
        return [
            (role, bool(conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (LOGIN, role)).fetchone()[0]))  # type: ignore[index]
            for role in PG_ROLE.values()
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname=%s", (role,)).fetchone()
        ]


def _databases(cluster: Cluster) -> set[str]:
    with cluster.admin() as conn:
        return {str(r[0]) for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


async def test_bench_on_a_users_server_leaves_it_as_it_found_it(
    pg_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if LOGIN not in pg_cluster.logins:
        with pg_cluster.admin() as conn:
            conn.execute(f"CREATE ROLE {LOGIN} LOGIN CREATEDB CREATEROLE PASSWORD '{PASSWORD}'")
        pg_cluster.logins[LOGIN] = PASSWORD
    with pg_cluster.admin() as conn:
        conn.execute(f"CREATE DATABASE {LOGIN}_own OWNER {LOGIN}")  # the database --db names
    databases, memberships = _databases(pg_cluster), _memberships(pg_cluster)
    monkeypatch.setenv("TD_ENGINE_PASSWORD", "must-not-be-set")  # db init would set it on the engine's login
    url = f"postgresql://{LOGIN}:b3nch%2Fpw%3Asecret@127.0.0.1:{pg_cluster.port}/{LOGIN}_own"
    out = await pg_figures(tmp_path, True, url, seed_events_per_s=100.0)

    assert out["postgresql_server"] == "--db"
    assert out["postgresql_ingest_offered_events"] > 5_000
    assert out["postgresql_ingest_over_floor"] == pytest.approx(
        out["postgresql_ingest_events_per_s"] / out["postgresql_ingest_floor_executemany_events_per_s"], abs=0.002
    )
    assert out["postgresql_recovery_large_finished_intents"] == 4_000
    assert out["postgresql_sliced_children"] == 10
    assert out["postgresql_command_round_trip_ms_p50"] > 0
    assert PASSWORD not in json.dumps(out)
    # scratch databases dropped, the named one never written, memberships as they were
    assert _databases(pg_cluster) == databases
    with psycopg.connect(pg_cluster.conninfo(LOGIN, f"{LOGIN}_own")) as conn:  # the password is unchanged
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname='public'").fetchone()
    assert tables == (0,)
    held_before = {role for role, held in memberships if held}
    assert {role for role, held in _memberships(pg_cluster) if held} == held_before  # granted for the run only
    assert len(_memberships(pg_cluster)) == len(PG_ROLE)  # the desk's group roles exist, as db init leaves them


async def test_bench_db_refuses_what_is_not_a_reachable_postgres_url(pg_cluster: Cluster, tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="postgresql:// URL"):
        await pg_figures(tmp_path, True, str(tmp_path / "journal.db"), seed_events_per_s=1.0)
    wrong = f"postgresql://{LOGIN}:wrong-pw-77@127.0.0.1:{pg_cluster.port}/postgres"
    with pytest.raises(JournalError, match="cannot connect") as err:
        await pg_figures(tmp_path, True, wrong, seed_events_per_s=1.0)
    assert "wrong-pw-77" not in str(err.value)
