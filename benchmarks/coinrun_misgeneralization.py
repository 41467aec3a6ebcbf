"""Reproduce Langosco et al.'s CoinRun finding at full size: agents trained with the coin always at the end go to
the end instead of the coin at deployment; a few percent of randomised coins in training mostly fixes it.

For each training distribution, K seeds train together in one vmapped call; each seed is then diagnosed on
``deploy`` and the per-episode outcomes are counted on disambiguating levels only. Means and 95% t-intervals are
over seeds. Rerun: ``python benchmarks/coinrun_misgeneralization.py`` (about 10 minutes on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import numpy as np
from scipy import stats

from aligntriage import get_scenario
from aligntriage.diagnose import Settings, diagnose
from aligntriage.train.ppo import PPOConfig, train_policies


def train_seeds(scenario, dist: str, steps: int, seeds: int, envs: int):
    config = PPOConfig(dist=dist, total_steps=steps, seeds=seeds, num_envs=envs)
    policies, metrics = train_policies(scenario.world, scenario.reward, scenario.distribution(dist).sample, config)
    return policies, np.asarray(metrics["success_rate"])[:, -5:].mean(axis=1)


def interval(values) -> tuple[float, float, float]:
    values = np.asarray(values, float)
    mean = float(values.mean())
    if values.size < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size))
    return mean, mean - half, mean + half


def measure(dists, steps: int, seeds: int, envs: int, levels: int, params: dict) -> list[dict]:
    scenario = get_scenario("coinrun", **params)
    rows = []
    for dist in dists:
        start = time.monotonic()
        policies, train_success = train_seeds(scenario, dist, steps, seeds, envs)
        train_s = time.monotonic() - start
        per_seed = []
        for policy in policies:
            d = diagnose(policy, scenario, dist="deploy", levels=levels,
                         settings=Settings(inference_levels=min(levels, 100), epic_levels=5))
            dis = d.evidence["deploy"]["outcomes"]["disambiguating"]
            per_seed.append({"coin": dis["coin"]["mean"], "end": dis["end-of-level"]["mean"],
                             "other": dis["terminated early"]["mean"] + dis["timed out"]["mean"],
                             "verdict": d.verdicts[0]["verdict"], "inferred": d.verdicts[0]["inferred_goal"]})
        rows.append({"dist": dist, "steps": steps, "seeds": seeds, "train_seconds": train_s,
                     "train_success": [float(x) for x in train_success],
                     "coin": interval([p["coin"] for p in per_seed]),
                     "end": interval([p["end"] for p in per_seed]),
                     "other": interval([p["other"] for p in per_seed]),
                     "verdicts": [p["verdict"] for p in per_seed],
                     "inferred": [p["inferred"] for p in per_seed]})
    return rows


def fmt(triple) -> str:
    return f"{triple[0]:.2f} [{triple[1]:.2f}, {triple[2]:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dists", default="train,train-rand-2pct,train-rand-10pct")
    parser.add_argument("--steps", type=int, default=3_000_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--envs", type=int, default=256)
    parser.add_argument("--levels", type=int, default=1000)
    parser.add_argument("--json", default=None)
    parser.add_argument("-p", "--param", action="append", default=[], help="coinrun level parameter KEY=VALUE")
    args = parser.parse_args()
    params = {key: float(value) for key, value in (item.split("=", 1) for item in args.param)}
    print(f"machine: {platform.processor() or platform.machine()}, {jax.device_count()} jax device(s) "
          f"({jax.default_backend()}), jax {jax.__version__}")
    rows = measure(args.dists.split(","), args.steps, args.seeds, args.envs, args.levels, params)
    print("| trained on | seeds | train success | coin (disamb.) | end without coin | died/timed out | verdicts |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        verdicts = ", ".join(f"{v} ({g})" for v, g in zip(r["verdicts"], r["inferred"]))
        print(f"| `{r['dist']}` | {r['seeds']} | {np.mean(r['train_success']):.2f} | {fmt(r['coin'])} | "
              f"{fmt(r['end'])} | {fmt(r['other'])} | {verdicts} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
