"""Our robust PLR (``--curriculum plr``) against jaxued's ``LevelSampler`` driving the same PPO, same world, same
budget, same run.

jaxued (https://github.com/DramaCow/jaxued, ``pip install jaxued``; 0.0.1 on PyPI) is the reference JAX
implementation of PLR and ACCEL. Its ``LevelSampler`` is a pure-JAX level buffer; here it stands in for our
``aligntriage.train.buffer`` behind the same curator interface (``make_trainer_with``), so everything else — the
world (``coinrun``, default 6x14 levels), the PPO update, the scores (positive value loss: the mean of max(GAE
advantage, 0) over each level's steps in the rollout), robust PLR's score-only fresh updates — is shared code.
Both use rank prioritisation with temperature 0.3, staleness 0.3, replay probability 0.5, replay once half full,
a buffer of 256, duplicate checks, and levels from ``deploy``. What differs is the buffer: jaxued draws a pool one
level at a time (a ``lax.scan`` of ``pool`` weighted draws, each re-ranking the buffer) and inserts candidates one
at a time (a scan of ``insert``: duplicate search by equality over the whole buffer, then argmin of the replay
weights); its staleness clock counts draws and insertions where ours counts updates, and it replaces the level of
lowest *replay weight* where ours replaces the lowest score. Ours draws a pool by one inverse-CDF pass and inserts a
batch by one sort (see ``aligntriage.train.buffer``).

jaxued 0.0.1 calls ``jax.tree_map``, which jax removed in 0.6; this script aliases it to ``jax.tree.map`` before
importing jaxued (nothing else is patched). Run it in an environment with jaxued installed (its ``gymnax`` pin
wants gymnasium 1.3, so a throwaway venv on top of this project's packages works):

    python -m venv /tmp/jaxued-venv
    python -c 'import site; print(site.getsitepackages()[0])' \\
        > /tmp/jaxued-venv/lib/python3.11/site-packages/base.pth
    /tmp/jaxued-venv/bin/pip install jaxued
    PYTHONPATH=src /tmp/jaxued-venv/bin/python benchmarks/plr_vs_jaxued.py --steps 1048576 --seeds 2 [--json OUT]

Timing: chunks of ``--chunk`` updates alternate between the two (load falls on both alike); reported are the
median per-update wall times and the median ratio within a round, with ``uptime`` before and after; the first
chunk (compile) is excluded. The curators' own work is also timed alone: one update's draw and insertion of a fresh
pool's scored levels on a full buffer, 20 updates scanned in one jit, median of 5 calls, alternated 3 times.
Outcome at the end of the same budget: each seed's exact mean R-return and mean
R-regret over 200 ``deploy`` levels (enumerated, the policy evaluated exactly), and the mean score of the levels
each buffer holds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np

from aligntriage.solve.enumerate import enumerate_levels
from aligntriage.solve.flow import propagate
from aligntriage.solve.tables import observations, policy_table
from aligntriage.solve.value import Episode, solve
from aligntriage.train.buffer import Curator
from aligntriage.train.ppo import PPOConfig, curator_for, make_trainer_with, policy_from_params, seed_keys
from aligntriage.worlds import get_scenario
from aligntriage.worlds.vector import sample_levels

jax.tree_map = jax.tree.map  # jaxued 0.0.1 predates its removal (jax 0.6)

from jaxued.level_sampler import LevelSampler  # noqa: E402


def jaxued_curator(config: PPOConfig) -> Curator:
    """jaxued's LevelSampler behind our curator interface."""
    size, pool = config.buffer_size, config.pool
    sampler = LevelSampler(size, replay_prob=config.replay_prob, staleness_coeff=config.staleness,
                           minimum_fill_ratio=0.5, prioritization="rank",
                           prioritization_params={"temperature": config.score_temperature}, duplicate_check=True)

    def init(key, pending):
        state = sampler.initialize(jax.tree.map(lambda leaf: leaf[0], pending))
        state = {**state, "size": jnp.int32(0), "episode_count": jnp.int32(0)}
        return {"sampler": state, "key": key}

    def draw(state, update, fresh):
        key, k_replay, k_levels = jax.random.split(state["key"], 3)
        current = state["sampler"]
        replay = sampler.sample_replay_decision(current, k_replay)
        drawn, (slots, levels) = sampler.sample_replay_levels(current, k_levels, pool)
        current = jax.tree.map(lambda new, old: jnp.where(replay, new, old), drawn, current)
        return {"sampler": current, "key": key}, replay, slots.astype(jnp.int32), levels

    def learn(state, update, replay, slot_scores, slot_seen, fresh, scores, seen):
        current = state["sampler"]
        held = jnp.arange(size) < current["size"]
        current = sampler.update_batch(current, jnp.arange(size),
                                       jnp.where(slot_seen & held, slot_scores, current["scores"]))
        before = current["levels"]

        def one(current, item):
            level, score, ok = item
            inserted, slot = sampler.insert(current, level, score)
            current = jax.tree.map(lambda new, old: jnp.where(ok, new, old), inserted, current)
            return current, jnp.where(ok, slot, -1).astype(jnp.int32)

        current, placed = jax.lax.scan(one, current, (fresh, scores, seen & ~replay))
        changed = [jnp.any((a != b).reshape(size, -1), axis=1) for a, b in
                   zip(jax.tree.leaves(before), jax.tree.leaves(current["levels"]))]
        replaced = jnp.any(jnp.stack(changed), axis=0)
        return {"sampler": current, "key": state["key"]}, placed, replaced

    def summary(state):
        current = state["sampler"]
        held = jnp.arange(size) < current["size"]
        mean = jnp.where(held, current["scores"], 0.0).sum() / jnp.maximum(current["size"], 1)
        return mean, current["size"] / size

    return Curator(size, init, draw, learn, summary, robust=True)


def curator_ops_time(curator: Curator, scenario, config: PPOConfig, rounds: int, repeats: int = 20) -> float:
    """Median seconds of one update's curator work alone (a draw, then scoring a fresh pool's levels into the
    buffer), on a full buffer, ``repeats`` updates scanned in one jitted call, over ``rounds`` calls."""
    pool, size = config.pool, curator.size
    sample = jax.vmap(scenario.distribution(config.level_space).sample)

    def one(state, key):
        k_fresh, k_score, k_seen, k_slot = jax.random.split(key, 4)
        fresh = sample(jax.random.split(k_fresh, pool))
        state, replay, slots, levels = curator.draw(state, jnp.int32(1), fresh)
        scores = jax.random.uniform(k_score, (pool,))
        state, _, _ = curator.learn(state, jnp.int32(1), jnp.array(False), jax.random.uniform(k_slot, (size,)),
                                    jax.random.bernoulli(k_seen, 0.5, (size,)), fresh, scores,
                                    jax.random.bernoulli(k_seen, 0.9, (pool,)))
        return state, jax.tree.leaves(levels)[0].sum() + replay

    def work(state, key):
        return jax.lax.scan(one, state, jax.random.split(key, repeats))

    run = jax.jit(work)
    key = jax.random.PRNGKey(0)
    state = curator.init(key, sample(jax.random.split(key, 4)))
    state, _ = run(state, key)  # compile, and fill the buffer
    times = []
    for r in range(rounds):
        start = time.perf_counter()
        jax.block_until_ready(run(state, jax.random.PRNGKey(r + 1)))
        times.append((time.perf_counter() - start) / repeats)
    return statistics.median(times)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def exact_outcome(scenario, network, params, seeds: int, gamma: float, count: int = 200) -> list[dict]:
    """Each seed's exact mean R-return and R-regret over ``count`` deploy levels."""
    levels = sample_levels(scenario, "deploy", jax.random.PRNGKey(12345), count)
    batch = enumerate_levels(scenario, levels)
    episode = Episode(gamma, scenario.world.horizon)
    best = solve(batch, batch.reward, episode).value[batch.initial]
    obs = observations(scenario, batch)
    out = []
    for s in range(seeds):
        policy = policy_from_params(network, jax.tree.map(lambda leaf, s=s: leaf[s], params))
        value = propagate(batch, policy_table(policy, obs), episode).per_level(batch, batch.reward)
        out.append({"return": float(value.mean()), "regret": float((best - value).mean())})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1_048_576)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import jaxued

    scenario = get_scenario("coinrun")
    config = PPOConfig(total_steps=args.steps, seeds=args.seeds, curriculum="plr", pool=256).validate()
    sample = scenario.distribution(config.level_space).sample
    contestants = {}
    for name, curator in (("ours", curator_for(config)), ("jaxued", jaxued_curator(config))):
        trainer = make_trainer_with(scenario.world, scenario.reward, sample, config, curator)
        contestants[name] = {"trainer": trainer, "runner": trainer.init(seed_keys(config)), "times": [],
                             "metrics": []}
    load_before = uptime()
    done = 0
    while done < config.num_updates:
        n = min(args.chunk, config.num_updates - done)
        for c in contestants.values():
            start = time.perf_counter()
            c["runner"], metrics = c["trainer"].run(c["runner"], n)
            jax.block_until_ready((c["runner"], metrics))
            if done:  # the first chunk compiles
                c["times"].append((time.perf_counter() - start) / n)
            c["metrics"].append(jax.device_get(metrics))
        done += n
    load_after = uptime()
    rows = {}
    for name, c in contestants.items():
        metrics = {k: np.concatenate([m[k] for m in c["metrics"]], axis=1) for k in c["metrics"][0]}
        params = jax.device_get(c["runner"].train_state.params)
        rows[name] = {
            "per_update_s": statistics.median(c["times"]),
            "replay_share": float(metrics["replay"].mean()),
            "held_score": [float(x) for x in metrics["level_score"][:, -1]],
            "train_return_last10": [float(x) for x in metrics["mean_return"][:, -10:].mean(axis=1)],
            "deploy": exact_outcome(scenario, c["trainer"].network, params, config.seeds, config.gamma),
        }
    ratio = statistics.median(j / o for j, o in zip(contestants["jaxued"]["times"], contestants["ours"]["times"]))
    ops = {}
    for _ in range(3):  # alternate, so load falls on both alike
        for name, curator in (("ours", curator_for(config)), ("jaxued", jaxued_curator(config))):
            ops.setdefault(name, []).append(curator_ops_time(curator, scenario, config, rounds=5))
    ops = {name: statistics.median(times) for name, times in ops.items()}
    result = {"machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "jax": jax.__version__,
                          "jaxued": getattr(jaxued, "__version__", "0.0.1")},
              "config": config.to_dict(), "updates": config.num_updates, "uptime_before": load_before,
              "uptime_after": load_after, "jaxued_over_ours_per_update": ratio,
              "curator_ops_s": ops, "uptime_end": uptime(), "rows": rows}
    print(f"load before: {load_before}\nload after:  {load_after}")
    print(f"{config.num_updates} updates x {config.steps_per_update} steps, {config.seeds} seed(s)")
    for name, row in rows.items():
        deploy = ", ".join(f"{d['return']:.3f}/{d['regret']:.3f}" for d in row["deploy"])
        print(f"{name:<7} {row['per_update_s']:.3f} s/update  replay {row['replay_share']:.0%}  held score "
              f"{', '.join(f'{x:.3f}' for x in row['held_score'])}  deploy return/regret per seed {deploy}")
    print(f"jaxued / ours per update: {ratio:.2f}x")
    print(f"curator work alone per update: ours {ops['ours'] * 1e3:.2f} ms, jaxued {ops['jaxued'] * 1e3:.2f} ms "
          f"({ops['jaxued'] / ops['ours']:.1f}x); load at the end: {result['uptime_end']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
