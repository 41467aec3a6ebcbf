"""Wall-clock time for our PPO to reach >= 95% success on the training distribution, compile time included.

Success is the fraction of training episodes that end with positive return (the coin, the cheese), read from the
training rollouts of a sampled policy, averaged over the last two updates. One seed at a time, median over seeds.
Rerun: ``python benchmarks/time_to_success.py`` (a few minutes on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import numpy as np

from aligntriage import get_scenario
from aligntriage.train.ppo import PPOConfig, make_trainer, seed_keys


def time_to_success(name: str, seed: int, target: float, max_steps: int, envs: int, chunk: int) -> dict:
    scenario = get_scenario(name)
    settings = {**scenario.training, "total_steps": max_steps, "seed": seed, "num_envs": envs}
    config = PPOConfig.from_dict(settings)  # the scenario's own training defaults (e.g. maze's entropy bonus)
    start = time.monotonic()
    trainer = make_trainer(scenario.world, scenario.reward, scenario.distribution("train").sample, config)
    runner = trainer.init(seed_keys(config))
    history = []
    done = 0
    while done < config.num_updates:
        runner, metrics = trainer.run(runner, chunk)
        history += list(np.asarray(metrics["success_rate"])[0])
        done += chunk
        if len(history) >= 2 and np.mean(history[-2:]) >= target:
            return {"seconds": time.monotonic() - start, "steps": done * config.steps_per_update, "reached": True}
    return {"seconds": time.monotonic() - start, "steps": done * config.steps_per_update, "reached": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="coinrun,maze")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--max-steps", type=int, default=8_000_000)
    parser.add_argument("--envs", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=5, help="updates per jitted call between success checks")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, jax {jax.__version__} ({jax.default_backend()})")
    print("| scenario | seed times (s) | median (s) | median env steps | all reached |")
    print("|---|---|---|---|---|")
    for name in args.scenarios.split(","):
        results = [time_to_success(name, s, args.target, args.max_steps, args.envs, args.chunk)
                   for s in range(args.seeds)]
        times = [r["seconds"] for r in results]
        print(f"| `{name}` | {', '.join(f'{t:.0f}' for t in times)} | {statistics.median(times):.0f} | "
              f"{statistics.median(r['steps'] for r in results):,} | {all(r['reached'] for r in results)} |")


if __name__ == "__main__":
    main()
