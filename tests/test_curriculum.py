"""Training-level curricula: dr unchanged bit for bit, the level buffer's replay and insertion rules, plr-exact
replaying a high-regret level far more often than domain randomisation draws it, robust PLR's score-only updates,
ACCEL's edits entering the buffer, curation that never reads U or the goals, byte-identical resume, and one-line
errors."""

import dataclasses
import inspect
import signal
from types import MappingProxyType

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization
from typer.testing import CliRunner

import ppo_reference
from aligntriage import AligntriageError, get_scenario
from aligntriage.cli.main import app
from aligntriage.scenario import Distribution, Scenario
from aligntriage.store.files import load_tree
from aligntriage.store.folder import RunRecord
from aligntriage.sweep import parse_grid, plan_sweep
from aligntriage.train import buffer, loop
from aligntriage.train.curate import make_curator
from aligntriage.train.loop import train
from aligntriage.train.ppo import PPOConfig, make_trainer, seed_keys
from aligntriage.worlds.coinrun import Level

TINY = {"height": 3, "width": 6, "horizon": 20}
CURATED = PPOConfig(total_steps=16 * 16 * 12, seeds=2, num_envs=16, rollout=16, minibatches=2, epochs=2, pool=32,
                    width=16, curriculum="plr-exact", buffer_size=8, score_every=3, new_levels=16)


# -- dr ----------------------------------------------------------------------------------------------------------------

def test_dr_trains_bit_for_bit_as_main_did():
    scenario = get_scenario("coinrun", height=3, width=6)
    config = PPOConfig(total_steps=16 * 16 * 6, seeds=2, num_envs=16, rollout=16, minibatches=2, epochs=2, pool=32,
                       width=16)
    sample = scenario.distribution("train").sample
    results = []
    for build in (make_trainer, ppo_reference.make_trainer):
        trainer = build(scenario.world, scenario.reward, sample, config)
        runner, metrics = trainer.run(trainer.init(seed_keys(config)), 3)
        results.append((serialization.to_bytes(runner), jax.device_get(metrics)))
    assert results[0][0] == results[1][0]
    assert all(np.array_equal(results[0][1][k], results[1][1][k]) for k in results[1][1])
    assert "curriculum" in config.to_dict() and "replay_prob" not in config.to_dict()


def test_run_json_without_a_curriculum_is_dr_and_a_curated_one_keeps_every_setting():
    record = RunRecord.new("train", "coinrun", {}, ppo=PPOConfig())
    data = record.to_dict()
    old = {**data, "ppo": {k: v for k, v in data["ppo"].items() if k != "curriculum"}}
    assert RunRecord.from_dict(old, "old").ppo.curriculum == "dr"
    curated = RunRecord.new("train", "coinrun", {}, ppo=CURATED).to_dict()
    assert RunRecord.from_dict(curated, "new").ppo == CURATED.validate()
    del curated["ppo"]["replay_prob"]
    with pytest.raises(AligntriageError, match="field 'ppo.replay_prob' is missing"):
        RunRecord.from_dict(curated, "run file")


# -- the level buffer --------------------------------------------------------------------------------------------------

def _levels(values):
    return {"x": jnp.asarray(values, jnp.int32)[:, None]}


def _buffer(values, scores, size):
    state = buffer.empty(_levels([0]), size, jax.random.PRNGKey(0))
    state, _, _ = buffer.insert(state, _levels(values), jnp.asarray(scores, jnp.float32),
                                jnp.ones(len(values), bool), jnp.int32(0))
    return state


def _held(state):
    return {int(v): float(s) for v, s, f in zip(state.levels["x"][:, 0], state.score, state.filled) if f}


def test_insert_keeps_the_best_distinct_levels_and_refreshes_known_ones():
    state = _buffer([1, 2, 3], [0.5, 0.1, 0.9], size=4)
    assert _held(state) == pytest.approx({1: 0.5, 2: 0.1, 3: 0.9})
    # 4 and 5 are new, 3 is held (its score is refreshed), the second 4 is a twin, 6 is invalid
    state, placed, replaced = buffer.insert(state, _levels([4, 3, 4, 5, 6]),
                                            jnp.asarray([0.7, 0.2, 0.8, 0.05, 9.0], jnp.float32),
                                            jnp.asarray([True, True, True, True, False]), jnp.int32(5))
    assert _held(state) == pytest.approx({1: 0.5, 3: 0.2, 4: 0.7, 2: 0.1})  # 4 took the empty slot; 5 lost to 2
    slot_of = {int(v): i for i, v in enumerate(state.levels["x"][:, 0])}
    assert placed.tolist() == [slot_of[4], slot_of[3], buffer.EMPTY, buffer.EMPTY, buffer.EMPTY]
    assert replaced.tolist() == [i == slot_of[4] for i in range(4)]
    assert int(state.last[slot_of[4]]) == 5
    state, _, _ = buffer.insert(state, _levels([7, 8]), jnp.asarray([0.1, 0.6], jnp.float32), jnp.ones(2, bool),
                                jnp.int32(6))
    assert _held(state) == pytest.approx({1: 0.5, 3: 0.2, 4: 0.7, 8: 0.6})  # 8 replaced 2, the lowest
    state, _, _ = buffer.insert(state, _levels([9]), jnp.asarray([0.2], jnp.float32), jnp.ones(1, bool), jnp.int32(7))
    assert _held(state) == pytest.approx({1: 0.5, 3: 0.2, 4: 0.7, 8: 0.6})  # a tie keeps the incumbent


def test_replay_weights_mix_rank_and_staleness():
    state = buffer.empty(_levels([0]), 4, jax.random.PRNGKey(0))._replace(
        score=jnp.asarray([0.5, 0.1, 0.9, 7.0], jnp.float32), filled=jnp.asarray([True, True, True, False]),
        last=jnp.asarray([0, 2, 4, 0], jnp.int32))
    weights = np.asarray(buffer.replay_weights(state, jnp.int32(4), temperature=0.5, staleness=0.25))
    rank = np.array([2, 3, 1])
    by_score = (1 / rank) ** 2 / ((1 / rank) ** 2).sum()
    by_age = np.array([4, 2, 0]) / 6
    assert weights[3] == 0 and np.allclose(weights[:3], 0.75 * by_score + 0.25 * by_age)
    slots = np.asarray(buffer.draw(jnp.asarray(weights), jax.random.PRNGKey(1), 20000))
    assert np.allclose(np.bincount(slots, minlength=4) / 20000, weights, atol=0.015)


def test_follow_moves_episodes_to_the_slots_of_kept_candidates():
    placed = jnp.asarray([2, buffer.EMPTY], jnp.int32)
    replaced = jnp.asarray([False, False, True, False])
    env_level = jnp.asarray([0, 2, 4, 5, buffer.EMPTY], jnp.int32)  # slot 0, replaced slot 2, candidates 0 and 1
    assert buffer.follow(env_level, placed, replaced).tolist() == [0, buffer.EMPTY, 2, buffer.EMPTY, buffer.EMPTY]


# -- plr-exact against dr on a level space with one hard level -----------------------------------------------------

HARD = 0.1


def _hard_mix(scenario: Scenario) -> Scenario:
    """Levels of a 3x6 coinrun: with probability HARD the one level with a reachable coin (regret > 0 for any policy
    short of optimal), otherwise one of nine levels walled off at column 2 (nothing reachable: regret 0)."""
    none = jnp.zeros((3, 6), bool)
    wall = none.at[:, 2].set(True)

    def sample(key):
        k_hard, k_start, k_exit = jax.random.split(key, 3)
        hard = jax.random.bernoulli(k_hard, HARD)
        start = jax.random.randint(k_start, (), 0, 3) * 6
        exit_ = jax.random.randint(k_exit, (), 0, 3) * 6 + 5

        def pick(a, b):
            return jnp.where(hard, a, b).astype(jnp.int32)

        return Level(jnp.where(hard, none, wall), none, pick(6, start), pick(11, exit_), pick(16, exit_))

    dists = {**scenario.distributions, "hard-mix": Distribution("hard-mix", "one hard level in ten", sample)}
    return dataclasses.replace(scenario, distributions=MappingProxyType(dists))


def _train_pieces(scenario, config, updates):
    """Train as the loop does (a scoring pass whenever one is due), without a run folder."""
    sample = scenario.distribution(config.level_space).sample
    trainer = make_trainer(scenario.world, scenario.reward, sample, config, scenario.mutate)
    curator = make_curator(scenario.world, scenario.reward, config)
    runner = trainer.init(seed_keys(config))
    done, metrics = 0, []
    while done < updates:
        n = curator.chunk(done, updates - done) if curator else updates - done
        if curator is not None and curator.due(runner):
            runner = curator.score(runner)
        runner, chunk_metrics = trainer.run(runner, n)
        metrics.append(jax.device_get(chunk_metrics))
        done += n
    return runner, {k: np.concatenate([m[k] for m in metrics], axis=1) for k in metrics[0]}


def test_plr_exact_replays_a_high_regret_level_far_more_often_than_dr_draws_it():
    scenario = _hard_mix(get_scenario("coinrun", **TINY))
    config = dataclasses.replace(CURATED, curate_from="hard-mix")
    runner, metrics = _train_pieces(scenario, config, config.num_updates)
    state = jax.device_get(runner.curator)
    sample = jax.jit(jax.vmap(scenario.distribution("hard-mix").sample))
    dr_share = float(np.mean(np.asarray(sample(jax.random.split(jax.random.PRNGKey(3), 20000)).coin) == 16))
    assert abs(dr_share - HARD) < 0.01
    assert metrics["replay"].sum(axis=1).min() >= 3
    for s in range(config.seeds):
        hard = state.filled[s] & (state.levels.coin[s] == 16)
        assert hard.sum() == 1, "the hard level is in the buffer once"
        assert state.score[s][hard][0] > 0 and np.all(state.score[s][state.filled[s] & ~hard] == 0)
        share = state.draws[s][hard].sum() / state.draws[s].sum()
        assert share > 0.4 and share > 3 * dr_share, (s, share)


# -- plr: robust PLR scores fresh levels without learning from them ------------------------------------------------

def test_plr_learns_only_on_replayed_levels():
    scenario = get_scenario("coinrun", **TINY)
    config = dataclasses.replace(CURATED, curriculum="plr")
    trainer = make_trainer(scenario.world, scenario.reward, scenario.distribution("deploy").sample, config)
    runner = trainer.init(seed_keys(config))
    kinds = set()
    for _ in range(8):
        before = jax.device_get(runner.train_state.params)
        runner, metrics = trainer.run(runner, 1)
        after = jax.device_get(runner.train_state.params)
        for s in range(config.seeds):
            replay = bool(metrics["replay"][s, 0])
            same = all(np.array_equal(a[s], b[s]) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)))
            assert same != replay, (s, replay)
            kinds.add(replay)
    assert kinds == {True, False}
    state = jax.device_get(runner.curator)
    assert state.filled.all() and np.all(state.score >= 0) and np.isfinite(state.score).all()


# -- accel-exact: edits of buffer levels enter the buffer ----------------------------------------------------------

@pytest.mark.parametrize("name, params", [("coinrun", TINY), ("maze", {"size": 7})])
def test_mutate_makes_one_small_edit(name, params):
    scenario = get_scenario(name, **params)
    sample = scenario.distribution("deploy").sample
    keys = jax.random.split(jax.random.PRNGKey(0), 200)
    levels = jax.vmap(sample)(keys)
    edited = jax.jit(jax.vmap(scenario.mutate))(jax.random.split(jax.random.PRNGKey(1), 200), levels)
    changed = sum(np.not_equal(np.asarray(a).reshape(200, -1), np.asarray(b).reshape(200, -1)).sum(axis=1)
                  for a, b in zip(jax.tree.leaves(levels), jax.tree.leaves(edited)))
    assert changed.max() <= 2 and (changed > 0).mean() > 0.3  # a move touches two wall/pit cells, else one field


def test_a_mutate_that_returns_another_shape_is_refused():
    scenario = get_scenario("coinrun", **TINY)
    with pytest.raises(AligntriageError, match="mutate.*same structure, shapes and dtypes"):
        dataclasses.replace(scenario, mutate=lambda key, level: level._replace(coin=jnp.zeros(2)))._check_mutate()


def test_accel_exact_keeps_edited_levels_the_level_space_never_draws():
    scenario = get_scenario("coinrun", **TINY)
    config = dataclasses.replace(CURATED, curriculum="accel-exact", curate_from="train")  # the coin is on the exit
    runner, _ = _train_pieces(scenario, config, 7)
    state = jax.device_get(runner.curator)
    off_exit = state.filled & (state.levels.coin != state.levels.exit)
    assert off_exit.any(axis=1).all(), "every seed keeps an edit that moved the coin off the exit"


# -- never U, never the goals ----------------------------------------------------------------------------------------

def _poisoned(scenario):
    def forbidden(*args):
        raise AssertionError("curation touched U or a candidate goal")

    return dataclasses.replace(
        scenario,
        utility={k: dataclasses.replace(t, value=forbidden) for k, t in scenario.utility.items()},
        goals={k: dataclasses.replace(g, achieved=forbidden, reward=forbidden) for k, g in scenario.goals.items()},
    )


def test_curation_never_reads_u_or_the_goals(tmp_path, monkeypatch):
    assert list(inspect.signature(make_trainer).parameters) == ["world", "reward", "sample_level", "config", "mutate"]
    assert list(inspect.signature(make_curator).parameters) == ["world", "reward", "config"]
    poisoned = _poisoned(get_scenario("coinrun", **TINY))
    monkeypatch.setattr(loop, "get_scenario", lambda name, **params: poisoned)
    record = train("coinrun", CURATED, tmp_path / "poisoned", params=TINY)
    assert record.status == "complete"
    state = load_tree(tmp_path / "poisoned" / "checkpoint.msgpack")
    assert np.isfinite(np.asarray(state["curator"]["score"])).all()


# -- resume --------------------------------------------------------------------------------------------------------

def test_a_resumed_plr_exact_run_is_byte_identical(tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train("coinrun", CURATED, whole, params=TINY)

    def stop_at(update):
        def on_progress(progress):
            if progress["update"] == update:
                signal.raise_signal(signal.SIGINT)
        return on_progress

    assert train("coinrun", CURATED, parts, params=TINY, on_progress=stop_at(3)).status == "interrupted"  # at a pass
    assert train("coinrun", CURATED, parts, resume=True, on_progress=stop_at(5)).status == "interrupted"  # mid-way
    assert train("coinrun", CURATED, parts, resume=True).status == "complete"
    for name in ("checkpoint.msgpack", "params.msgpack", "metrics.csv"):
        assert (whole / name).read_bytes() == (parts / name).read_bytes(), name


# -- one-line errors -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "args, message",
    [
        (("train", "coinrun", "--curriculum", "greedy"), "unknown curriculum 'greedy'; valid: accel-exact, dr, plr, "
                                                          "plr-exact"),
        (("train", "qa-kidnap", "--curriculum", "accel-exact"), "scenario 'qa-kidnap' declares none"),
        (("train", "coinrun", "--curriculum", "plr-exact", "--curate-from", "moon"),
         "unknown curation distribution 'moon' in scenario 'coinrun'; valid: deploy, train"),
        (("train", "coinrun", "--curate-from", "train"), "--curate-from sets up a curriculum"),
        (("run", "coinrun", "--curriculum", "drr"), "unknown curriculum 'drr'"),
        # maze's training mazes repeat 88 layouts: a 256-level buffer would never reach half full, so no replay
        (("train", "maze", "--curriculum", "plr-exact", "--curate-from", "train"),
         "gave only 88 distinct levels in 1024 draws, fewer than half of buffer_size 256"),
        (("sweep", "coinrun", "--grid", "curriculum=dr,plr-ish"), "unknown curriculum 'plr-ish'"),
    ],
)
def test_bad_curricula_get_one_line_and_exit_code_2(args, message, tmp_path):
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert not (tmp_path / "run").exists()


def test_sweep_grid_takes_curricula(tmp_path):
    scenario = get_scenario("coinrun")
    assert parse_grid(["curriculum=dr,plr-exact", "curate_from=train-rand-2pct"], scenario) == {
        "curriculum": ["dr", "plr-exact"], "curate_from": ["train-rand-2pct"]}
    plan = plan_sweep("coinrun", ["curriculum=dr,plr-exact"], 1, tmp_path)
    assert [p["config"].get("curriculum") for p in plan["points"]] == ["dr", "plr-exact"]
    assert PPOConfig.from_dict(plan["points"][1]["config"]).curate_from == "deploy"
    with pytest.raises(AligntriageError, match="qa-kidnap' declares none"):
        plan_sweep("qa-kidnap", ["curriculum=accel-exact"], 1, tmp_path)
