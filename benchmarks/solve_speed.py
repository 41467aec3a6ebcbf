"""Exact-solver speed: enumerate the reachable MDP of 1,000 ``deploy`` levels per scenario and solve each for R.

For each built-in scenario: draw ``--levels`` levels of ``--dist`` in one jitted, vmapped call to the sampler, then
time ``enumerate_mdp(scenario, level)`` + ``solve(mdp, mdp.reward)`` level by level. The first pass is cold (it
includes compiling the jitted expander for every frontier size it meets); with ``--passes 2`` a second, warm pass
over the same levels follows. Reports total seconds, per-level ms (split into enumerate and solve), and the mean and
max number of reachable states.

    python benchmarks/solve_speed.py --levels 1000 [--passes 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback

import jax
import numpy as np

from aligntriage.solve import enumerate_mdp, solve
from aligntriage.worlds import get_scenario, jax_scenarios

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from world_speed import machine  # noqa: E402


def sample(scenario, dist: str, count: int, seed: int):
    draw = jax.jit(jax.vmap(scenario.distribution(dist).sample))
    levels = draw(jax.random.split(jax.random.PRNGKey(seed), count))
    return jax.device_get(levels)


def one(levels, i: int):
    return jax.tree.map(lambda leaf: leaf[i], levels)


def solve_pass(scenario, levels, count: int) -> dict:
    enum_s, solve_s, states, iterations = [], [], [], []
    for i in range(count):
        level = one(levels, i)
        start = time.perf_counter()
        mdp = enumerate_mdp(scenario, level)
        mid = time.perf_counter()
        sol = solve(mdp, mdp.reward)
        end = time.perf_counter()
        enum_s.append(mid - start)
        solve_s.append(end - mid)
        states.append(mdp.num_states)
        iterations.append(sol.iterations)
    total = sum(enum_s) + sum(solve_s)
    return {
        "total_s": total,
        "per_level_ms": 1e3 * total / count,
        "enumerate_s": sum(enum_s),
        "solve_s": sum(solve_s),
        "median_level_ms": 1e3 * statistics.median(e + s for e, s in zip(enum_s, solve_s)),
        "max_level_ms": 1e3 * max(e + s for e, s in zip(enum_s, solve_s)),
        "mean_states": float(np.mean(states)),
        "max_states": int(np.max(states)),
        "mean_iterations": float(np.mean(iterations)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", type=int, default=1000)
    parser.add_argument("--dist", default="deploy")
    parser.add_argument("--passes", type=int, default=1, help="1: cold pass only; 2: also a warm pass")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenarios", nargs="*", default=None, help="default: every built-in scenario")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()

    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, {info['os']}")
    print(f"jax {info['jax']} backend={info['backend']}; {args.levels} '{args.dist}' levels per scenario\n")

    results = []
    for name in args.scenarios or jax_scenarios():
        try:
            scenario = get_scenario(name)
            start = time.perf_counter()
            levels = sample(scenario, args.dist, args.levels, args.seed)
            sample_s = time.perf_counter() - start
        except Exception as exc:
            print(f"{name}: skipped ({type(exc).__name__}: {exc})")
            results.append({"name": name, "skipped": f"{type(exc).__name__}: {exc}"})
            continue
        row = {"name": name, "sample_s": sample_s}
        try:
            for p in range(args.passes):
                label = "cold" if p == 0 else "warm"
                row[label] = solve_pass(scenario, levels, args.levels)
                r = row[label]
                print(f"{name} [{label}]: {r['total_s']:.1f}s total, {r['per_level_ms']:.1f} ms/level "
                      f"(enumerate {r['enumerate_s']:.1f}s, solve {r['solve_s']:.1f}s; "
                      f"median {r['median_level_ms']:.1f} ms, max {r['max_level_ms']:.0f} ms), "
                      f"states mean {r['mean_states']:.0f} max {r['max_states']}", flush=True)
        except Exception as exc:
            traceback.print_exc()
            row["skipped"] = f"{type(exc).__name__}: {exc}"
        results.append(row)

    print()
    print("| scenario | levels | total s | ms/level | enumerate s | solve s | states mean | states max |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in results:
        for label in ("cold", "warm"):
            if label not in row:
                continue
            r = row[label]
            print(f"| {row['name']} ({label}) | {args.levels} | {r['total_s']:.1f} | {r['per_level_ms']:.1f} | "
                  f"{r['enumerate_s']:.1f} | {r['solve_s']:.1f} | {r['mean_states']:.0f} | {r['max_states']} |")
        if "skipped" in row:
            print(f"| {row['name']} | skipped: {row['skipped']} | | | | | | |")

    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": info, "args": vars(args), "results": results}, fh, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
