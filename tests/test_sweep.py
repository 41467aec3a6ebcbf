"""Sweeps: grid parsing, a tiny local sweep end to end with its summary and figure, resume without redoing
finished points, and the Ray backend on one shared `ray start --head` cluster: from the CLI with its address, and
from Python with Ray already connected.

Every test here runs on one xdist worker, in file order: 'ray stop --force' stops every Ray process on the machine,
and each sweep trains and diagnoses the same points as the local sweep (same grid, seeds, steps and levels), so after
the first they read every program from the session's compilation cache instead of compiling it."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from aligntriage import AligntriageError, get_scenario
from aligntriage.cli.main import app
from aligntriage.store import RunIndex
from aligntriage.store.files import read_json
from aligntriage.sweep import grid_points, load_plan, parse_grid, plan_sweep, run_sweep

pytestmark = pytest.mark.xdist_group("sweep")
runner = CliRunner()
TINY = ["-p", "height=3", "-p", "width=6", "-p", "horizon=20"]
TINY_PARAMS = {"height": 3, "width": 6, "horizon": 20}
STEPS = 16 * 64 * 3
SEEDS, LEVELS = 2, 6


def test_grid_keys_values_and_points():
    sc = get_scenario("coinrun")
    grid = parse_grid(["dist=train,train-rand-10pct", "train.width=16,32", "pit_prob=0.0"], sc)
    assert grid == {"dist": ["train", "train-rand-10pct"], "width": [16, 32], "level.pit_prob": [0.0]}
    points = grid_points(grid)
    assert len(points) == 4 and points[1] == {"dist": "train", "width": 32, "level.pit_prob": 0.0}
    with pytest.raises(AligntriageError,
                       match="unknown grid key .colour. in scenario .coinrun.; valid: buffer_size, curate_from, "
                             "curriculum, depth, dist, ent_coef.*level.w"):
        parse_grid(["colour=1,2"], sc)
    with pytest.raises(AligntriageError, match="'width' is both a training knob and a level parameter"):
        parse_grid(["width=8,10"], sc)
    assert parse_grid(["level.width=8,10"], sc) == {"level.width": [8, 10]}
    with pytest.raises(AligntriageError, match="unknown distribution 'train-rand-3pct'"):
        parse_grid(["dist=train,train-rand-3pct"], sc)
    with pytest.raises(AligntriageError, match="must look like KEY=V1,V2"):
        parse_grid(["dist"], sc)


def test_plan_puts_knobs_in_training_and_level_params_in_the_scenario(tmp_path):
    plan = plan_sweep("coinrun", ["ent_coef=0.0,0.05", "pit_prob=0.0"], 2, tmp_path, level_params=TINY_PARAMS,
                      training={"total_steps": STEPS, "num_envs": 16})
    first, second = plan["points"]
    assert first["config"]["ent_coef"] == 0.0 and second["config"]["ent_coef"] == 0.05
    assert first["config"]["seeds"] == 2 and first["config"]["total_steps"] == STEPS
    assert first["level_params"] == {**TINY_PARAMS, "pit_prob": 0.0}
    with pytest.raises(AligntriageError, match="unknown network 'rnn'"):
        plan_sweep("coinrun", ["network=mlp,rnn"], 1, tmp_path)


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweeps") / "local"
    result = runner.invoke(app, ["sweep", "coinrun", "--grid", "dist=train,train-rand-10pct", "--seeds", str(SEEDS),
                                 "--steps", str(STEPS), "--levels", str(LEVELS), "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_local_sweep_stores_runs_summary_and_figure(local_sweep):
    out, output = local_sweep
    summary = read_json(out / "summary.json")
    assert summary["status"] == "complete" and [p["values"]["dist"] for p in summary["points"]] == [
        "train", "train-rand-10pct"]
    for point in summary["points"]:
        deploy = point["dists"]["deploy"]
        assert deploy["proxy_rate"]["n"] == 2 and 0.0 <= deploy["proxy_rate"]["low"] <= deploy["proxy_rate"]["high"]
        assert sum(deploy["verdict_counts"]["task"].values()) == 2
        assert (out / point["run_dir"].rsplit("/", 1)[1] / "diagnosis-deploy.json").is_file()
    assert (out / "sweep-dist.png").read_bytes()[:4] == b"\x89PNG"
    index = RunIndex()
    (sweep,) = [s for s in index.sweeps() if s["path"] == str(out.resolve())]
    assert sweep["status"] == "complete" and sweep["grid"] == {"dist": ["train", "train-rand-10pct"]}
    members = index.runs(sweep_id=sweep["id"])
    assert sorted(r["kind"] for r in members) == ["run", "run", "sweep"]
    assert "proxy" in output and "report:" in output
    report = (out / "report.html").read_text()
    assert "What does this sweep show?" in report and "dist=train-rand-10pct" in report and "task: " in report


def test_resume_redoes_only_unfinished_points(local_sweep):
    out, _ = local_sweep
    points = read_json(out / "summary.json")["points"]
    done, undone = (out / points[0]["run_dir"].rsplit("/", 1)[1]), (out / points[1]["run_dir"].rsplit("/", 1)[1])
    kept = (done / "point-summary.json").stat().st_mtime_ns
    (undone / "point-summary.json").unlink()
    plan = plan_sweep("coinrun", ["dist=train,train-rand-10pct"], 2, out, level_params=TINY_PARAMS,
                      training={"total_steps": STEPS}, levels=6)
    with pytest.raises(AligntriageError, match="already holds a sweep"):
        run_sweep(plan, out)
    changed = plan_sweep("coinrun", ["dist=train"], 2, out, level_params=TINY_PARAMS, training={"total_steps": STEPS},
                         levels=6)
    with pytest.raises(AligntriageError, match="grid .* differs from the saved one"):
        run_sweep(changed, out, resume=True)
    resumed = runner.invoke(app, ["sweep", "coinrun", "--out", str(out), "--resume", "--workers", "1"])
    assert resumed.exit_code == 0, resumed.output
    assert read_json(out / "summary.json")["status"] == "complete"
    assert (done / "point-summary.json").stat().st_mtime_ns == kept
    assert (undone / "point-summary.json").is_file()
    saved = [{k: v for k, v in spec.items() if k != "sweep_id"} for spec in load_plan(out)["points"]]
    assert saved == plan["points"]


def test_bad_sweep_input_is_one_line():
    for args, message in [(["--grid", "depth=1", "--backend", "slurm"], "unknown backend 'slurm'"),
                          (["--grid", "speed=1,2"], "unknown grid key 'speed'"),
                          (["--resume"], "--resume: no sweep in '/tmp/never-made'"),
                          ([], "a sweep needs at least one --grid")]:
        result = runner.invoke(app, ["sweep", "coinrun", *args, "--steps", "1024", "--out", "/tmp/never-made"])
        assert result.exit_code == 2 and message in result.output and result.output.count("\n") == 1, result.output


ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")


@pytest.fixture(scope="module")
def ray_head():
    """One `ray start --head` cluster shared by the Ray tests. Its workers inherit this session's compilation cache,
    so the second test's points (the same shapes as the first's) read their programs instead of compiling them."""
    ray_bin = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    started = subprocess.run([ray_bin, "start", "--head", "--node-ip-address=127.0.0.1", "--port=6399",
                              "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
                             capture_output=True, text=True, timeout=180, env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield "127.0.0.1:6399"
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, timeout=120, env=env)


RAY_GRID = "dist=train,train-rand-10pct"


def test_ray_backend_from_the_cli_with_an_address(ray_head, tmp_path):
    out = tmp_path / "cluster"
    result = runner.invoke(app, ["sweep", "coinrun", "--grid", RAY_GRID, "--seeds", str(SEEDS), "--steps", str(STEPS),
                                 "--levels", str(LEVELS), "--backend", "ray", "--address", ray_head, "--out", str(out),
                                 *TINY])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["backend"] == "ray"


def test_ray_backend_from_python_on_a_connected_cluster(ray_head, tmp_path):
    plan = plan_sweep("coinrun", [RAY_GRID], SEEDS, tmp_path / "ray", level_params=TINY_PARAMS,
                      training={"total_steps": STEPS}, levels=LEVELS)
    # "auto" finds the running cluster and, unlike an explicit address, applies Ray's token-authentication rule,
    # so this test does not depend on the CLI test having run first in this process
    ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
    try:
        summary = run_sweep(plan, tmp_path / "ray", backend="ray")  # Ray already initialised: run_ray keeps it
        assert ray.is_initialized()
    finally:
        ray.shutdown()
    assert summary["status"] == "complete" and all(p["status"] == "complete" for p in summary["points"])
    assert summary["backend"] == "ray"
    assert len(RunIndex().runs(sweep_id=read_json(tmp_path / "ray" / "sweep.json")["sweep_id"])) == 3
