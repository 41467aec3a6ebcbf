"""PPO: determinism, several seeds in one call, R-only training, checkpoints, Ctrl-C and resume."""

import dataclasses
import inspect
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aligntriage import AligntriageError, get_scenario
from aligntriage.store.files import load_tree, read_csv, read_json
from aligntriage.train.loop import load_policy, train
from aligntriage.train.ppo import PPOConfig, make_trainer, seed_keys

TINY = {"height": 3, "width": 6}
CONFIG = PPOConfig(total_steps=16 * 16 * 6, seeds=2, num_envs=16, rollout=16, minibatches=2, epochs=2, pool=32,
                   width=16)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    train("coinrun", CONFIG, out, params=TINY)
    return out


def test_two_seeds_train_in_one_call_and_save_a_complete_run(run_dir):
    record = read_json(run_dir / "run.json")
    assert record["status"] == "complete" and record["update"] == CONFIG.num_updates == 6
    rows = read_csv(run_dir / "metrics.csv")
    assert len(rows) == 6 * 2 and {r["seed"] for r in rows} == {0, 1}
    params = load_tree(run_dir / "params.msgpack")
    leaf = jax.tree.leaves(params)[0]
    assert leaf.shape[0] == 2 and not np.allclose(leaf[0], leaf[1])  # seeds differ


def test_same_seed_same_result(run_dir, tmp_path):
    train("coinrun", CONFIG, tmp_path / "again", params=TINY)
    first, second = (jax.tree.leaves(load_tree(d / "params.msgpack")) for d in (run_dir, tmp_path / "again"))
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert read_csv(run_dir / "metrics.csv") == read_csv(tmp_path / "again" / "metrics.csv")


def test_loaded_policy_is_a_plain_function(run_dir):
    scenario = get_scenario("coinrun", **TINY)
    level = scenario.distribution("train").sample(jax.random.PRNGKey(0))
    obs = scenario.world.observe(scenario.world.reset(jax.random.PRNGKey(0), level))
    probs = load_policy(run_dir, seed_index=1)(obs)
    assert probs.shape == (4,) and float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
    batch = load_policy(run_dir)(jnp.stack([obs, obs]))
    assert batch.shape == (2, 4)
    with pytest.raises(AligntriageError, match="seed index 5 out of range"):
        load_policy(run_dir, seed_index=5)


def test_trainer_sees_only_world_reward_and_levels():
    assert list(inspect.signature(make_trainer).parameters) == ["world", "reward", "sample_level", "config", "mutate"]
    scenario = get_scenario("coinrun", **TINY)

    def forbidden(*args):
        raise AssertionError("training touched U or a candidate goal")

    poisoned = dataclasses.replace(
        scenario,
        utility={k: dataclasses.replace(t, value=forbidden) for k, t in scenario.utility.items()},
        goals={k: dataclasses.replace(g, achieved=forbidden, reward=forbidden) for k, g in scenario.goals.items()},
    )
    config = dataclasses.replace(CONFIG, seeds=1, total_steps=16 * 16)
    trainer = make_trainer(poisoned.world, poisoned.reward, poisoned.distribution("train").sample, config)
    _, metrics = trainer.run(trainer.init(seed_keys(config)), 1)
    assert np.isfinite(np.asarray(metrics["mean_return"])).all()


def test_a_short_last_chunk_runs_the_compiled_update_again_with_the_same_bits():
    config = dataclasses.replace(CONFIG, seeds=1, total_steps=16 * 16 * 60)  # 60 updates: chunks of 3
    scenario = get_scenario("coinrun", **TINY)
    trainer = make_trainer(scenario.world, scenario.reward, scenario.distribution("train").sample, config)
    start = trainer.init(seed_keys(config))
    whole, whole_metrics = trainer.run(start, 3)
    traced = []

    def listen(event, duration, **kwargs):
        traced.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        part, first = trainer.run(start, 2)
        part, last = trainer.run(part, 1)
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert "/jax/core/compile/jaxpr_trace_duration" not in traced  # no new program for 2 or 1 updates
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(part)))
    assert all(np.array_equal(whole_metrics[k], np.concatenate([first[k], last[k]], axis=1)) for k in first)


def test_bad_settings_are_clear_errors(tmp_path, run_dir):
    with pytest.raises(AligntriageError, match="unknown network 'rnn'"):
        PPOConfig(network="rnn").validate()
    with pytest.raises(AligntriageError, match="already holds a run"):
        train("coinrun", CONFIG, run_dir, params=TINY)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text("{not json")
    with pytest.raises(AligntriageError, match="not valid JSON"):
        train("coinrun", CONFIG, tmp_path / "broken", resume=True)


def test_corrupt_checkpoint_is_reported_and_left_untouched(tmp_path, run_dir):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "checkpoint.msgpack").write_bytes(b"\x00garbage")
    with pytest.raises(AligntriageError, match="corrupt"):
        train("coinrun", CONFIG, copy, resume=True)
    assert (copy / "checkpoint.msgpack").read_bytes() == b"\x00garbage"
    assert read_json(copy / "run.json")["status"] == "complete"


def test_ctrl_c_saves_a_resumable_run(tmp_path):
    out = tmp_path / "interrupted"
    updates = 100  # the CLI's default rollout is 64 steps per env
    args = [sys.executable, "-m", "aligntriage", "train", "coinrun", "--steps", str(16 * 64 * updates), "--envs", "16",
            "--width", "16", "--out", str(out), "-p", "height=3", "-p", "width=6"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "run.json").exists():
        time.sleep(0.2)
    time.sleep(3.0)  # let a few chunks of updates run
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    record = read_json(out / "run.json")
    assert record["status"] == "interrupted" and 0 < record["update"] < updates, record
    assert len(read_csv(out / "metrics.csv")) == record["update"]
    assert "--resume" in output
    resumed = subprocess.run(args[:-4] + ["--resume"] + args[-4:], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert read_json(out / "run.json")["status"] == "complete"
    assert len(read_csv(out / "metrics.csv")) == updates
    assert [row["update"] for row in read_csv(out / "metrics.csv")] == list(range(1, updates + 1))
