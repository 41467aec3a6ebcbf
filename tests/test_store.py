"""The run index: concurrent writers, killed writers and runs, schema migration, and the store commands."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from aligntriage import AligntriageError
from aligntriage.cli.main import app
from aligntriage.store import RunIndex, index_run, resolve_run
from aligntriage.store.files import read_csv, write_csv, write_json
from aligntriage.store.folder import RunRecord
from aligntriage.store.index import MIGRATIONS, SCHEMA_VERSION
from aligntriage.train.ppo import PPOConfig

runner = CliRunner()

WRITER = """
import sys
from aligntriage.store import RunIndex
index = RunIndex(sys.argv[1])
tag, count = sys.argv[2], int(sys.argv[3])
for i in range(count if count > 0 else 10**9):
    index.upsert({"path": f"/runs/{tag}-{i}", "kind": "train", "scenario": "coinrun", "status": "complete",
                  "seeds": i, "verdicts": {"deploy": {"task": "aligned"}}})
    if i == 4:
        print("ready", flush=True)
"""


def integrity(path) -> str:
    con = sqlite3.connect(path)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def test_parallel_writers_lose_no_rows(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), f"w{w}", "25"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for w in range(6)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    index = RunIndex(tmp_path)
    rows = index.runs()
    assert len(rows) == 6 * 25
    assert len({r["id"] for r in rows}) == 150 and len({r["path"] for r in rows}) == 150
    assert integrity(index.path) == "ok"


def test_a_writer_killed_mid_burst_leaves_a_consistent_index(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), "k", "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    index = RunIndex(tmp_path)
    assert integrity(index.path) == "ok"
    rows = index.runs()
    assert len(rows) >= 5
    assert [r["seeds"] for r in rows] == list(range(len(rows)))  # every committed row whole, none half-written
    assert all(r["verdicts"] == {"deploy": {"task": "aligned"}} for r in rows)
    index.upsert({"path": "/runs/after", "kind": "train", "scenario": "maze", "status": "complete"})
    assert len(index.runs(scenario="maze")) == 1


def test_a_killed_training_run_shows_as_incomplete(tmp_path):
    out, store = tmp_path / "run", tmp_path / "store"
    args = [sys.executable, "-m", "aligntriage", "--store", str(store), "train", "coinrun",
            "--steps", str(16 * 64 * 400), "--envs", "16", "--width", "16", "--out", str(out),
            "-p", "height=3", "-p", "width=6"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (store / "index.sqlite").exists():
        time.sleep(0.2)
    time.sleep(0.5)
    assert RunIndex(store).runs()[0]["status"] == "running"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    (row,) = RunIndex(store).runs()
    assert row["status"] == "incomplete" and row["path"] == str(out.resolve())
    listing = runner.invoke(app, ["--store", str(store), "runs"])
    assert "incomplete" in listing.output


def test_an_old_schema_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "index.sqlite"
    con = sqlite3.connect(path)
    con.executescript(MIGRATIONS[0])
    con.execute("INSERT INTO runs (path, kind, scenario, status, created, updated) "
                "VALUES ('/old', 'train', 'maze', 'complete', 'then', 'then')")
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()
    index = RunIndex(tmp_path)
    assert index.version == SCHEMA_VERSION > 1
    (row,) = index.runs()
    assert row["path"] == "/old" and row["sweep_id"] is None
    assert index.upsert_sweep(tmp_path / "sw", "coinrun", {"steps": [1, 2]}, 3, "running") == 1


def test_a_newer_or_corrupt_index_is_a_clear_error(tmp_path):
    newer = tmp_path / "newer"
    newer.mkdir()
    con = sqlite3.connect(newer / "index.sqlite")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(AligntriageError, match="newer than this aligntriage"):
        RunIndex(newer)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "index.sqlite").write_bytes(b"this is not a database" * 100)
    result = runner.invoke(app, ["--store", str(bad), "runs"])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "unreadable" in result.output


@pytest.fixture(scope="module")
def store_runs(tmp_path_factory):
    """Two scripted-policy diagnoses registered in a fresh store, plus a hand-made training run."""
    base = tmp_path_factory.mktemp("store")
    store = base / "store"
    ids = []
    for policy in ("r-optimal", "u-optimal"):
        result = runner.invoke(app, ["--store", str(store), "diagnose", "qa-kidnap", "--policy", policy,
                                     "--affordances", "strong", "--levels", "4", "--out", str(base / policy)])
        assert result.exit_code == 0, result.output
        ids.append(int(result.output.rsplit("(run ", 1)[1].split(")")[0]))
    trained = base / "trained"
    write_json(trained / "run.json", RunRecord.new("train", "coinrun", {}, status="complete", update=1,
                                                   ppo=PPOConfig(seeds=2, total_steps=300)).to_dict())
    write_csv(trained / "metrics.csv", [{"update": u, "seed": s, "steps": 100 * u, "mean_return": 0.1 * u + s,
                                         "success_rate": 0.2 * u} for u in (1, 2, 3) for s in (0, 1)])
    ids.append(index_run(trained, store))
    return store, base, ids


def test_runs_lists_and_filters(store_runs):
    store, _, ids = store_runs
    everything = runner.invoke(app, ["--store", str(store), "runs"])
    assert everything.exit_code == 0 and "qa-kidnap" in everything.output and "coinrun" in everything.output
    inner = runner.invoke(app, ["--store", str(store), "runs", "--verdict", "inner"])
    assert "qa-kidnap" in inner.output and "coinrun" not in inner.output
    assert [r["id"] for r in RunIndex(store).runs(verdict="inner misalignment")] == [ids[0]]
    bad = runner.invoke(app, ["--store", str(store), "runs", "--verdict", "sideways"])
    assert bad.exit_code == 2 and "unknown verdict 'sideways'" in bad.output


def test_show_run_and_compare_side_by_side(store_runs):
    store, _, ids = store_runs
    shown = runner.invoke(app, ["--store", str(store), "show-run", str(ids[0])])
    assert shown.exit_code == 0 and "Inner misalignment under partition" in shown.output.replace("\n", " ")
    compared = runner.invoke(app, ["--store", str(store), "compare", str(ids[0]), str(ids[1])], terminal_width=200)
    assert compared.exit_code == 0, compared.output
    assert "inner misalignment" in compared.output and "aligned" in compared.output
    missing = runner.invoke(app, ["--store", str(store), "compare", str(ids[0]), "999"])
    assert missing.exit_code == 2 and "no run with id 999" in missing.output


def test_export_csv_and_tensorboard(store_runs, tmp_path):
    store, _, ids = store_runs
    out = tmp_path / "m.csv"
    result = runner.invoke(app, ["--store", str(store), "export", str(ids[2]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = read_csv(out)
    assert len(rows) == 6 and rows[0]["scenario"] == "coinrun" and rows[-1]["mean_return"] == pytest.approx(1.3)
    tb = tmp_path / "tb"
    result = runner.invoke(app, ["--store", str(store), "export", str(ids[2]), "--format", "tensorboard",
                                 "--out", str(tb)])
    assert result.exit_code == 0, result.output
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb / "seed-1"))
    events.Reload()
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("train/mean_return")] == [(100, 1.1), (200, 1.2),
                                                                                          (300, 1.3)]
    nothing = runner.invoke(app, ["--store", str(store), "export", str(ids[0])])
    assert nothing.exit_code == 2 and "no training metrics" in nothing.output


def test_rm_drops_the_entry_and_the_folder(store_runs, tmp_path):
    store, _, _ = store_runs
    folder = tmp_path / "doomed"
    write_json(folder / "run.json", RunRecord.new("diagnose", "maze", {}, policy="random", dist="deploy").to_dict())
    run_id = index_run(folder, store)
    assert resolve_run(str(run_id), store) == folder.resolve()
    result = runner.invoke(app, ["--store", str(store), "rm", str(run_id), "--yes"])
    assert result.exit_code == 0 and not folder.exists()
    with pytest.raises(AligntriageError, match=f"no run with id {run_id}"):
        RunIndex(store).get(run_id)
    assert json.loads(json.dumps(RunIndex(store).runs()))  # the rest survive
    assert os.path.exists(RunIndex(store).path)
