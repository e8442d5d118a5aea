"""The command line as people and scripts use it: real processes, real files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SETTLED = {"HEDGED", "COMPLETED", "REJECTED", "FAILED", "CANCELLED"}


def td(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


def spreads(shapes: list[tuple[str, str, int]], count: int, prefix: str) -> list[dict[str, Any]]:
    """``count`` groups cycling through (hedge symbol, risk symbol, qty) shapes."""
    return [
        {
            "group_id": f"{prefix}{i:02d}",
            "legs": [
                {"role": "HEDGE", "symbol": hedge, "side": "BUY", "qty": qty},
                {"role": "RISK", "symbol": risk, "side": "SELL", "qty": qty},
            ],
        }
        for i, (hedge, risk, qty) in ((i, shapes[i % len(shapes)]) for i in range(count))
    ]


def twenty_groups() -> list[dict[str, Any]]:
    return spreads(
        [
            ("NIFTY26DEC24200CE", "NIFTY26DEC24000CE", 150),
            ("NIFTY26DEC23800PE", "NIFTY26DEC24000PE", 2250),  # above the 1800 freeze: sliced
            ("BANKNIFTY26DEC52500CE", "BANKNIFTY26DEC52000CE", 1050),  # above the 900 freeze
            ("NIFTY26DEC25000CE", "NIFTY26DEC24100CE", 750),  # thin wing: hedge fills partly
            ("NIFTY26DEC23000PE", "NIFTY26DEC23900PE", 600),  # thin wing
        ],
        20,
        "G",
    )


def test_headless_twenty_groups_under_flaky_faults_end_consistent(tmp_path: Path) -> None:
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps(twenty_groups()))
    db, ex = tmp_path / "j.db", tmp_path / "x.db"
    started = time.monotonic()
    run = td(
        "headless",
        "--db",
        str(db),
        "--broker",
        f"paper:{ex}",
        "--groups",
        str(groups),
        "--faults",
        "flaky",
        "--seed",
        "7",
        "--json",
        "--timeout",
        "120",
        "--available-margin",
        "100000000",
    )
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    journal = json.loads(td("journal", "--db", str(db), "--json").stdout)
    report = json.loads(td("exchange-report", "--broker", f"paper:{ex}", "--json").stdout)

    open_escalation_groups = {e["group_id"] for e in journal["escalations"] if e["status"] != "RESOLVED"}
    assert all(g["state"] in SETTLED or g["group_id"] in open_escalation_groups for g in journal["groups"])
    assert len(journal["groups"]) == 20
    assert not [g for g in journal["groups"] if g["state"] == "REJECTED"], "margin was set to admit every group"
    ids = Counter(o["client_order_id"] for o in report["orders"])
    assert max(ids.values()) == 1, "no client order id reaches the exchange twice"
    assert journal["positions"] == report["positions"]
    assert summary["exchange_faults"]["duplicates"] > 0, "the flaky profile really injected duplicates"
    assert summary["duplicates_absorbed"] > 0
    assert any(o["status"] == "CANCELLED" and o["filled_qty"] > 0 for o in report["orders"]), "some partial fills"
    print(
        f"\n20 groups under flaky: {elapsed:.2f}s, faults {summary['exchange_faults']}, "
        f"duplicates absorbed {summary['duplicates_absorbed']}, rejected events {summary['rejected_events']}"
    )

    again = td("headless", "--db", str(db), "--broker", f"paper:{ex}", "--groups", str(groups), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["launched"] == 0
    report2 = json.loads(td("exchange-report", "--broker", f"paper:{ex}", "--json").stdout)
    assert len(report2["orders"]) == len(report["orders"]), "re-running the same file sends nothing"


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not valid JSON"),
        (
            json.dumps(
                [
                    {
                        "group_id": "A",
                        "legs": [
                            {"role": "HEDGE", "symbol": "NOPE", "side": "BUY", "qty": 75},
                            {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": 75},
                        ],
                    }
                ]
            ),
            "unknown symbol 'NOPE'",
        ),
        (
            json.dumps(
                [
                    {
                        "group_id": "A",
                        "legs": [
                            {"role": "HEDGE", "symbol": "NIFTY26DEC24200CE", "side": "BUY", "qty": 100},
                            {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": 75},
                        ],
                    }
                ]
            ),
            "qty 100 is not a multiple of lot size 75",
        ),
        (
            json.dumps(
                [
                    {
                        "group_id": "A",
                        "legs": [
                            {"role": "HEDGE", "symbol": "NIFTY26DEC24200CE", "side": "BUY", "qty": -75},
                            {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": 75},
                        ],
                    }
                ]
            ),
            "must be positive",
        ),
    ],
)
def test_bad_groups_file_exits_nonzero_with_one_line_and_writes_nothing(
    tmp_path: Path, content: str, message: str
) -> None:
    groups = tmp_path / "g.json"
    groups.write_text(content)
    run = td(
        "headless", "--db", str(tmp_path / "j.db"), "--broker", f"paper:{tmp_path / 'x.db'}", "--groups", str(groups)
    )
    assert run.returncode == 2
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json"]


def test_wrong_role_is_refused_and_audited(tmp_path: Path) -> None:
    recover = ["recover", "--db", str(tmp_path / "j.db"), "--broker", f"paper:{tmp_path / 'x.db'}"]
    run = td(*recover, "--approve", "X", "--role", "trader")
    assert run.returncode == 2 and "no journal at" in run.stderr
    assert list(tmp_path.iterdir()) == [], "nothing is created for a journal that does not exist"
    groups = tmp_path / "g.json"
    groups.write_text("[]")
    assert (
        td(
            "headless",
            "--db",
            str(tmp_path / "j.db"),
            "--broker",
            f"paper:{tmp_path / 'x.db'}",
            "--groups",
            str(groups),
        ).returncode
        == 0
    )
    run = td(*recover, "--approve", "X", "--role", "trader")
    assert run.returncode == 2 and "needs the operator role" in run.stderr
    with sqlite3.connect(tmp_path / "j.db") as conn:
        audit = conn.execute("SELECT role, command, outcome FROM audit_log").fetchall()
        commands = conn.execute("SELECT action, role, status, role_needed FROM commands").fetchall()
    assert audit == [("trader", "approve_retry", "REFUSED")], "the refusal is in the audit log"
    assert commands == [("approve", "trader", "REFUSED", "operator")]


def test_instruments_json_lists_the_catalog() -> None:
    rows = json.loads(td("instruments", "--json").stdout)
    nifty = next(r for r in rows if r["symbol"] == "NIFTY26DEC24000CE")
    assert (nifty["lot_size"], nifty["tick_size"], nifty["freeze_qty"]) == (75, "0.05", 1800)


def test_recover_lists_and_an_operator_approves_an_orphan(tmp_path: Path) -> None:
    import sqlite3

    groups = tmp_path / "g.json"
    groups.write_text(json.dumps(twenty_groups()[:1]))
    db, ex = tmp_path / "j.db", tmp_path / "x.db"
    assert td("headless", "--db", str(db), "--broker", f"paper:{ex}", "--groups", str(groups)).returncode == 0
    # An intent journaled just before a crash, never sent: the broker has never seen it.
    conn = sqlite3.connect(db)
    conn.execute(
        "INSERT INTO intents (client_order_id, intent_id, attempt, group_id, role, wave, symbol, side, qty,"
        " order_type, status, order_status, ts_created_local_ns, ts_updated_local_ns) VALUES"
        " ('ORPHAN1', 'ORPHAN1', 1, 'G00', 'RISK', 2, 'NIFTY26DEC24000CE', 'SELL', 75, 'MARKET', 'PENDING',"
        " 'INTENT', 1, 1)"
    )
    conn.commit()
    conn.close()
    listed = json.loads(
        td("recover", "--db", str(db), "--broker", f"paper:{ex}", "--list", "--role", "operator", "--json").stdout
    )
    assert [o["client_order_id"] for o in listed["orphaned"]] == ["ORPHAN1"]
    text = td("recover", "--db", str(db), "--broker", f"paper:{ex}", "--list", "--role", "operator").stdout
    assert "1 orphaned intent(s) waiting on an operator" in text and "{" not in text and "[" not in text
    (line,) = [ln for ln in text.splitlines() if "ORPHAN1" in ln]
    assert line.split()[:5] == ["ORPHAN1", "G00", "SELL", "75", "NIFTY26DEC24000CE"]
    refused = td("recover", "--db", str(db), "--broker", f"paper:{ex}", "--approve", "ORPHAN1", "--role", "trader")
    assert refused.returncode == 2 and "operator role" in refused.stderr
    conn = sqlite3.connect(db)
    audit = conn.execute("SELECT role, command, outcome FROM audit_log WHERE command='approve_retry'").fetchall()
    conn.close()
    assert audit == [("trader", "approve_retry", "REFUSED")], "a refusal from the CLI is audited too"
    approved = td(
        "recover", "--db", str(db), "--broker", f"paper:{ex}", "--approve", "ORPHAN1", "--role", "operator", "--json"
    )
    assert approved.returncode == 0, approved.stderr
    retry_id = json.loads(approved.stdout)["retry_client_order_id"]
    report = json.loads(td("exchange-report", "--broker", f"paper:{ex}", "--json").stdout)
    assert [o["client_order_id"] for o in report["orders"]].count(retry_id) == 1
    assert "ORPHAN1" not in [o["client_order_id"] for o in report["orders"]]
    again = td("recover", "--db", str(db), "--broker", f"paper:{ex}", "--approve", "ORPHAN1", "--role", "operator")
    assert again.returncode == 2 and "only an ORPHANED intent" in again.stderr


def test_corrupt_journal_is_refused_with_one_line(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    db.write_bytes(b"\x00garbage" * 512)
    run = td("journal", "--db", str(db), "--json")
    assert run.returncode == 2
    assert "is not a Trading Desk journal or is corrupt" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert db.read_bytes() == b"\x00garbage" * 512


def test_bench_reports_ratios_measured_in_one_run() -> None:
    run = td("bench", "--json", "--quick", timeout=600)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    # the time-travel audit: journaling inputs, measured as the work it adds to each event
    assert result["audit_ingest_cost_of_journaling_inputs_pct"] == pytest.approx(
        (result["audit_input_encode_us_per_event"] + result["audit_input_insert_us_per_event"])
        / result["audit_ingest_us_per_event"]
        * 100,
        abs=0.2,
    )
    assert result["audit_journal_inputs"] == 10_000 and result["audit_replay_full_checkpoints_compared"] == 1
    # the desk under load (case 5): lag is reported, never asserted as a time; every offered event applied
    assert result["desk_groups_live"] == 200 and result["desk_quotes_per_s"] > 0
    assert result["desk_applied_in_the_end"] == result["desk_offered_events"] > 0
    for key in ("idle_lag_ms_p99", "loaded_lag_ms_p50", "loaded_lag_ms_p99", "loaded_lag_ms_max",
                "loaded_view_refreshes_per_s", "applied_events_per_s", "applied_over_offered"):  # fmt: skip
        assert f"desk_{key}" in result, f"bench --json lacks desk_{key}"
    assert result["ingest_group_commit_speedup"] == pytest.approx(
        result["ingest_events_per_s_group_commit"] / result["ingest_events_per_s_commit_per_event"], rel=0.01
    )
    assert result["intent_commit_us_full"] > 0 and result["end_to_end_20_groups_s"] > 0
    assert result["step_cost_10000_over_100_finished"] == pytest.approx(
        result["step_us_per_event_10000_finished_groups"] / result["step_us_per_event_100_finished_groups"], rel=0.02
    )
    # counts, not times: a group to HEDGED pays one durable commit per send, plus at most one
    assert result["full_commits_per_group_to_hedged"] <= result["broker_sends_per_group"] + 1
    assert result["launch_to_wire_us_p50"] > 0
    # against the seed design and the storage floor: every figure beside its reference
    for key in BENCH_KEYS:
        assert key in result, f"bench --json lacks {key}"
    assert result["ingest_over_floor"] == pytest.approx(
        result["ingest_events_per_s"] / result["ingest_floor_executemany_events_per_s"], abs=0.002
    )
    assert result["ingest_over_seed_pattern"] == pytest.approx(
        result["ingest_events_per_s"] / result["ingest_seed_pattern_events_per_s"], rel=0.02
    )
    assert result["memory_events_large"] >= 9 * result["memory_events_small"]
    assert result["sliced_children"] == 10 and result["sliced_children_decided_in_one_step"] is True
    # counts, not times: with every place hanging at the broker, the step after HALT refuses
    assert result["halt_orders_hung_at_broker"] == 20
    assert result["halt_steps_after_halt_to_first_refusal"] == 1
    assert result["recovery_large_finished_intents"] > result["recovery_small_finished_intents"]
    assert result["journal_json_mb_printed"] > 0
    # case 7, PostgreSQL (a throwaway cluster here): cases 1-3 and the shared desk beside references
    for key in PG_BENCH_KEYS:
        assert f"postgresql_{key}" in result, f"bench --json lacks postgresql_{key}"
    assert result["postgresql_ingest_over_floor"] == pytest.approx(
        result["postgresql_ingest_events_per_s"] / result["postgresql_ingest_floor_executemany_events_per_s"],
        abs=0.002,
    )
    assert result["postgresql_ingest_over_seed_pattern"] == pytest.approx(
        result["postgresql_ingest_events_per_s"] / result["ingest_seed_pattern_events_per_s"], rel=0.02
    )
    assert result["postgresql_sliced_children_decided_in_one_step"] is True
    assert result["postgresql_recovery_large_finished_intents"] == result["recovery_large_finished_intents"]


BENCH_KEYS = [
    *(f"ingest_{k}" for k in ("offered_events", "events_per_s", "seed_pattern_events_per_s",
                              "floor_executemany_events_per_s", "over_floor", "over_seed_pattern",
                              "events_per_s_at_large")),
    *(f"memory_{k}" for k in ("events_small", "events_large", "peak_rss_mb_small", "peak_rss_mb_large",
                              "large_over_small")),
    *(f"{k}_{p}" for k in ("bare_full_commit_us", "intent_to_wire_us", "intent_to_wire_over_bare_commit")
      for p in ("p50", "p99")),
    "sliced_10th_on_wire_us", "sliced_10th_on_wire_over_bare_commit_p50",
    "halt_ms_submitted_to_halted", "halt_ms_to_first_refusal",
    *(f"recovery_{s}_{k}" for s in ("large", "small") for k in ("finished_intents", "open_orders", "s",
                                                               "peak_rss_mb")),
    "journal_json_s", "journal_json_peak_rss_mb",
]  # fmt: skip
PG_BENCH_KEYS = [
    *(f"ingest_{k}" for k in ("offered_events", "events_per_s", "floor_executemany_events_per_s", "over_floor",
                              "over_seed_pattern")),
    *(k for k in BENCH_KEYS if k.startswith(("bare_full", "intent_to_wire", "sliced", "recovery", "journal_json"))),
    *(f"{k}_{p}" for k in ("bare_commit_ms", "command_round_trip_ms", "view_lag_ms") for p in ("p50", "p99")),
]  # fmt: skip


def test_headless_twenty_groups_on_thin_depth_leave_no_silent_exposure(tmp_path: Path) -> None:
    thin = [("NIFTY26DEC25000CE", "NIFTY26DEC24100CE", 750), ("NIFTY26DEC23000PE", "NIFTY26DEC23900PE", 600)]
    groups = spreads(thin, 20, "T")
    path = tmp_path / "thin.json"
    path.write_text(json.dumps(groups))
    db, ex = tmp_path / "j.db", tmp_path / "x.db"
    run = td(
        "headless",
        "--db",
        str(db),
        "--broker",
        f"paper:{ex}",
        "--groups",
        str(path),
        "--faults",
        "flaky",
        "--seed",
        "3",
        "--json",
        "--timeout",
        "120",
        "--available-margin",
        "100000000",
    )
    assert run.returncode == 0, run.stderr
    journal = json.loads(td("journal", "--db", str(db), "--json").stdout)
    report = json.loads(td("exchange-report", "--broker", f"paper:{ex}", "--json").stdout)
    assert journal["positions"] == report["positions"]
    escalated: dict[str, int] = {}
    for e in journal["escalations"]:
        if e["status"] == "OPEN":
            escalated[e["group_id"]] = escalated.get(e["group_id"], 0) + e["unhedged_qty"]
    counts = {"hedged_fully": 0, "escalated": 0}
    for g in groups:
        gid, hedge_qty = g["group_id"], g["legs"][0]["qty"]
        mine = [i for i in journal["intents"] if i["group_id"] == gid]
        hedge_filled = sum(i["filled_qty"] for i in mine if i["role"] == "HEDGE")
        risk_filled = sum(i["filled_qty"] for i in mine if i["role"] == "RISK")
        assert risk_filled <= hedge_filled, f"{gid}: short {risk_filled} beyond its hedge {hedge_filled}"
        assert hedge_filled + escalated.get(gid, 0) == hedge_qty, f"{gid}: a shortfall is not in an escalation"
        counts["escalated" if gid in escalated else "hedged_fully"] += 1
    assert counts["escalated"] > 0, "thin depth really left shortfalls"
    print(f"\nthin depth, 20 groups: {counts}, escalated qty {sum(escalated.values())}")


def test_journal_json_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    groups = tmp_path / "g.json"
    groups.write_text(json.dumps(spreads([("NIFTY26DEC24200CE", "NIFTY26DEC24000CE", 150)], 3, "P")))
    db, ex = tmp_path / "j.db", tmp_path / "x.db"
    assert td("headless", "--db", str(db), "--broker", f"paper:{ex}", "--groups", str(groups)).returncode == 0
    for args in (["journal", "--db", str(db), "--json"], ["exchange-report", "--broker", f"paper:{ex}", "--json"]):
        run = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f"{sys.executable} -m app.cli {' '.join(args)} | head -c 20"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 0 and run.stderr == "", run.stderr
        assert len(run.stdout) == 20


def test_headless_stay_keeps_watching_an_armed_stop_and_the_journal_shows_the_broker_state(tmp_path: Path) -> None:
    group = spreads([("NIFTY26DEC24200CE", "NIFTY26DEC24000CE", 150)], 1, "S")
    group[0]["stop_loss"] = {"trigger_price": "900.00"}  # far away: it stays armed
    path = tmp_path / "g.json"
    path.write_text(json.dumps(group))
    db, ex = tmp_path / "j.db", tmp_path / "x.db"
    base = ["headless", "--db", str(db), "--broker", f"paper:{ex}", "--groups", str(path), "--json"]
    run = td(*base, "--stay", "3")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["settled"] and summary["armed_stops"] == 1
    assert summary["stayed_s"] == pytest.approx(3.0, abs=0.1), "watched the armed stop for the whole stay"
    again = json.loads(td(*base).stdout.strip().splitlines()[-1])
    assert again["stayed_s"] == 0.0
    assert json.loads(td("journal", "--db", str(db), "--json").stdout)["broker_state"] == "USABLE"


def test_without_a_display_the_desk_says_what_to_do_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "--db", str(tmp_path / "j.db"), "--exit-after", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
    )
    assert run.returncode == 2, run.stderr
    assert "no display: run under a desktop session or `xvfb-run -a trading-desk`" in run.stderr
    assert "xcb" not in run.stderr and "Aborted" not in run.stderr
    assert not (tmp_path / "j.db").exists(), "nothing opened"


def test_every_flag_has_help_and_the_desk_flags_have_metavars() -> None:
    import argparse

    from app.cli import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}")
            elif not action.help and action.dest != "help":
                missing.append(f"{name} {action.option_strings or action.dest}")

    walk(build_parser(), "trading-desk")
    assert missing == []
    top = td("--help").stdout
    assert "[--db DB] [--broker BROKER] [--role ROLE]" in top and "GUI_DB" not in top
    headless = td("headless", "--help").stdout
    assert "ws://HOST:PORT" in headless and "milliseconds" in headless


def _readme_usage() -> dict[str, str]:
    """The README's usage block, per subcommand (the window's own flags under '')."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("## Command line") :].split("```")[1]
    usage: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        if line.startswith("trading-desk"):
            words = line.split()
            current = "" if len(words) < 2 or words[1].startswith("[") else words[1]
        if current is not None:
            usage[current] = usage.get(current, "") + " " + line.split("#")[0]
    return usage


def test_the_readme_lists_every_subcommand_and_every_flag_that_exists() -> None:
    import argparse

    from app.cli import build_parser

    usage = _readme_usage()
    missing = []
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in [("", parser), *subs.choices.items()]:
        if name not in usage:
            missing.append(f"trading-desk {name}")
            continue
        for action in sub._actions:
            if action.help is argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
                continue
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help" and flag not in usage[name]:
                    missing.append(f"trading-desk {name} {flag}")
    assert missing == []
