"""Per-update cost of level curation: dr against plr-exact (and plr, optionally accel-exact), same run.

Every curriculum trains ``coinrun`` at the default settings (6x14 levels, horizon 100; 256 envs x 64 steps per
update, 4 epochs of 4 minibatches, a 2 x 64 MLP, a pool of 512 levels per update; curators: buffer 256, replay
probability 0.5, exact scoring every K = 10 updates with 64 candidates, levels from ``deploy``), one seed each.
A warm-up compiles everything and, for the exact curators, runs ``--warmup`` chunks so the buffer is full (the
steady state: each pass enumerates only its new candidates and evaluates the policy on about 320 levels).

One round then runs one chunk of K updates of every curriculum in turn (the exact curators' chunk includes its
scoring pass), so load from other processes falls on all alike; reported per curriculum: the median over rounds of
the per-update wall time (chunk time / K), and the median over rounds of its ratio to dr's in the same round. For
the exact curators the pass's share is reported too. ``uptime`` is read before and after.

    python benchmarks/curriculum_overhead.py --rounds 5 [--accel] [--json OUT]
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

from aligntriage.train.curate import make_curator
from aligntriage.train.ppo import PPOConfig, make_trainer, seed_keys
from aligntriage.worlds import get_scenario


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


class Contestant:
    """One curriculum's trainer, runner and (for the exact curators) host-side scorer."""

    def __init__(self, scenario, curriculum: str, seeds: int):
        self.name = curriculum
        self.config = PPOConfig(seeds=seeds, curriculum=curriculum).validate()
        sample = scenario.distribution(self.config.level_space).sample
        self.trainer = make_trainer(scenario.world, scenario.reward, sample, self.config, scenario.mutate)
        self.curator = make_curator(scenario.world, scenario.reward, self.config)
        self.runner = self.trainer.init(seed_keys(self.config))
        self.done = 0

    def chunk(self) -> tuple[float, float]:
        """One chunk of K updates (with its scoring pass); returns (total seconds, seconds in the pass)."""
        k = self.config.score_every
        start = time.perf_counter()
        scoring = 0.0
        if self.curator is not None and self.curator.due(self.runner):
            self.runner = self.curator.score(self.runner)
            scoring = time.perf_counter() - start
        self.runner, metrics = self.trainer.run(self.runner, k)
        jax.block_until_ready((self.runner, metrics))
        self.done += k
        return time.perf_counter() - start, scoring


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5, help="chunks run before timing by the exact curators")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--accel", action="store_true", help="also time accel-exact")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    scenario = get_scenario("coinrun")
    names = ["dr", "plr", "plr-exact"] + (["accel-exact"] if args.accel else [])
    load_before = uptime()
    contestants = [Contestant(scenario, name, args.seeds) for name in names]
    compile_s = {}
    for c in contestants:
        start = time.perf_counter()
        for _ in range(args.warmup if c.curator is not None else 1):
            c.chunk()
        compile_s[c.name] = time.perf_counter() - start
    rounds = []
    for _ in range(args.rounds):
        rounds.append({c.name: c.chunk() for c in contestants})
    load_after = uptime()

    k = contestants[0].config.score_every
    rows = []
    for c in contestants:
        per_update = [r[c.name][0] / k for r in rounds]
        ratio = [r[c.name][0] / r["dr"][0] for r in rounds]
        share = [r[c.name][1] / r[c.name][0] for r in rounds]
        rows.append({"curriculum": c.name, "per_update_s": statistics.median(per_update),
                     "ratio_vs_dr": statistics.median(ratio), "pass_share": statistics.median(share),
                     "warmup_s": compile_s[c.name]})
    result = {"machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "jax": jax.__version__},
              "config": contestants[0].config.to_dict() | {"curricula": names}, "rounds": args.rounds,
              "uptime_before": load_before, "uptime_after": load_after, "rows": rows}
    print(f"load before: {load_before}\nload after:  {load_after}")
    print(f"{'curriculum':<12} {'s/update':>9} {'vs dr':>7} {'scoring pass':>13}")
    for row in rows:
        print(f"{row['curriculum']:<12} {row['per_update_s']:>9.3f} {row['ratio_vs_dr']:>6.2f}x "
              f"{row['pass_share']:>12.0%}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
