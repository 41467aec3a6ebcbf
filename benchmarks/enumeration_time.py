"""Exact-solver cost per level as the levels grow: which level sizes keep enumerate + solve under one second.

For each scenario and each size (its default, then larger values of one level parameter), draw ``--levels`` levels
of each distribution, run ``enumerate_mdp`` + ``solve(mdp, mdp.reward)`` over them once (cold: compiles the BFS
expander for the frontier sizes it meets), then time the same levels again (warm) and report the median and max
seconds per level with the reachable-state counts. A size whose cold first level already takes longer than
``--give-up`` seconds is reported as such and not timed warm.

    python benchmarks/enumeration_time.py                        # every scenario, 20 levels per distribution
    python benchmarks/enumeration_time.py --scenario maze --json maze.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import jax

from aligntriage import get_scenario
from aligntriage.solve import enumerate_mdp, solve
from aligntriage.worlds import jax_scenarios

# (parameter, values): the default first, then larger levels.
SIZES = {
    "coinrun": ("width", (14, 20, 28)),
    "maze": ("size", (7, 9, 11)),
    "qa-kidnap": ("room_width", (3, 5, 7)),
    "keys-chests": ("size", (6, 8, 10)),
    "monster": ("size", (4, 5, 6)),
    "follow-leader": ("horizon", (20, 30, 40)),
    "tomato-watering": ("width", (7, 9, 11)),
    "absent-supervisor": ("width", (5, 7, 9)),
    "boat-race": ("size", (5, 7, 9)),
    "side-effects": ("horizon", (20, 30, 40)),
}
HERE = Path(__file__).resolve().parent


def time_levels(scenario, levels, count: int) -> tuple[list[float], list[int]]:
    seconds, states = [], []
    for i in range(count):
        level = jax.tree.map(lambda leaf, i=i: leaf[i], levels)
        start = time.perf_counter()
        mdp = enumerate_mdp(scenario, level)
        solve(mdp, mdp.reward)
        seconds.append(time.perf_counter() - start)
        states.append(mdp.num_states)
    return seconds, states


def measure(name: str, param: str, value, count: int, give_up: float) -> list[dict]:
    scenario = get_scenario(name, **{param: value})
    rows = []
    for dist in scenario.distributions:
        if dist not in ("train", "deploy"):
            continue
        draw = jax.jit(jax.vmap(scenario.distribution(dist).sample))
        levels = jax.device_get(draw(jax.random.split(jax.random.PRNGKey(0), count)))
        first, _ = time_levels(scenario, levels, 1)
        row = {"scenario": name, "param": param, "value": value, "dist": dist, "levels": count,
               "cold_first_s": first[0]}
        if first[0] > give_up:
            rows.append({**row, "gave_up": True})
            continue
        time_levels(scenario, levels, count)  # cold pass: compile every frontier size
        seconds, states = time_levels(scenario, levels, count)
        rows.append({**row, "median_s": statistics.median(seconds), "max_s": max(seconds),
                     "states_median": statistics.median(states), "states_max": max(states)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", default=None)
    parser.add_argument("--levels", type=int, default=20)
    parser.add_argument("--give-up", type=float, default=60.0)
    parser.add_argument("--json", default=str(HERE / "results" / "enumeration_time.json"))
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, jax {jax.__version__} ({jax.default_backend()})")
    rows = []
    for name in args.scenario or jax_scenarios():
        param, values = SIZES[name]
        for value in values:
            rows += measure(name, param, value, args.levels, args.give_up)
            print(json.dumps(rows[-1]), flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=2))
    print("| scenario | level size | dist | states per level (median / max) | s per level warm (median / max) "
          "| under 1 s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        size = f"`{r['param']}={r['value']}`"
        if r.get("gave_up"):
            print(f"| `{r['scenario']}` | {size} | `{r['dist']}` | – | first level {r['cold_first_s']:.0f} s (cold) "
                  f"| no |")
            continue
        print(f"| `{r['scenario']}` | {size} | `{r['dist']}` | {r['states_median']:,.0f} / {r['states_max']:,} | "
              f"{r['median_s']:.3f} / {r['max_s']:.3f} | {'yes' if r['max_s'] < 1 else 'no'} |")


if __name__ == "__main__":
    main()
