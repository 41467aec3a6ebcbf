"""Batched enumeration against the per-level loop it replaced, measured in the same run.

For each scenario, draw ``--levels`` deploy levels and time, warm (after one untimed pass that compiles), the
previous main's ``enumerate_levels`` (one BFS per level in a Python loop; its module is read from git at
``--baseline``), the per-level loop of this code (``enumerate_mdp`` per level, then ``stack_mdps``) and this
code's ``enumerate_levels`` (levels searched together). Passes alternate, ``--repeats`` times; the figure is the
median. Every result is checked identical to the baseline's, array for array. The load average is printed before
and after, since other work on the machine slows both sides.

    python benchmarks/enumerate_batched.py                       # coinrun, maze, qa-kidnap; 1,000 levels
    python benchmarks/enumerate_batched.py --scenario monster --levels 200
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from aligntriage import get_scenario
from aligntriage.solve import enumerate_levels, enumerate_mdp, stack_mdps

HERE = Path(__file__).resolve().parent
BASELINE = "b4c4b5d"  # the last main before batched enumeration


def load_baseline(rev: str):
    """The previous ``aligntriage.solve.enumerate`` module, as committed at ``rev``."""
    text = subprocess.run(["git", "-C", str(HERE), "show", f"{rev}:src/aligntriage/solve/enumerate.py"],
                          check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_enumerate.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("baseline_enumerate", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def assert_identical(a, b) -> None:
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, dict):
            assert list(x) == list(y) and all(np.array_equal(x[k], y[k]) for k in x), field.name
        elif isinstance(x, list):
            assert x == y, field.name
        elif isinstance(x, bool):
            assert x == y, field.name
        else:
            for u, v in zip(jax.tree.leaves(x), jax.tree.leaves(y), strict=True):
                assert u.dtype == v.dtype and np.array_equal(u, v), field.name


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(name: str, count: int, repeats: int, baseline) -> dict:
    scenario = get_scenario(name)
    draw = jax.jit(jax.vmap(scenario.distribution("deploy").sample))
    levels = jax.device_get(draw(jax.random.split(jax.random.PRNGKey(0), count)))
    ways = {
        "previous_main": lambda: baseline.enumerate_levels(scenario, levels),
        "per_level_loop": lambda: stack_mdps([enumerate_mdp(scenario, jax.tree.map(lambda x, i=i: x[i], levels))
                                              for i in range(count)]),
        "batched": lambda: enumerate_levels(scenario, levels),
    }
    cold, results = {}, {}
    for way, fn in ways.items():
        start = time.perf_counter()
        results[way] = fn()
        cold[way] = time.perf_counter() - start
    for way in ("per_level_loop", "batched"):
        assert_identical(results["previous_main"], results[way])
    seconds = {way: [] for way in ways}
    for _ in range(repeats):
        for way, fn in ways.items():
            start = time.perf_counter()
            fn()
            seconds[way].append(time.perf_counter() - start)
    warm = {way: statistics.median(s) for way, s in seconds.items()}
    return {"scenario": name, "levels": count, "states": results["batched"].num_states, "cold_s": cold,
            "warm_s": warm, "ratio_previous_over_batched": warm["previous_main"] / warm["batched"],
            "ratio_loop_over_batched": warm["per_level_loop"] / warm["batched"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", default=None)
    parser.add_argument("--levels", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the per-level enumeration")
    parser.add_argument("--json", default=str(HERE / "results" / "enumerate_batched.json"))
    args = parser.parse_args()
    baseline = load_baseline(args.baseline)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} " \
              f"({jax.default_backend()})"
    print(f"machine: {machine}; baseline {args.baseline}; load before: {load()}", flush=True)
    rows = []
    for name in args.scenario or ["coinrun", "maze", "qa-kidnap"]:
        rows.append(measure(name, args.levels, args.repeats, baseline))
        print(json.dumps(rows[-1]), flush=True)
    after = load()
    print(f"load after: {after}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"machine": machine, "load_after": after, "rows": rows}, indent=2))
    print("| scenario | levels | states | previous main (s) | per-level loop (s) | batched (s) | previous / batched |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        w = r["warm_s"]
        print(f"| `{r['scenario']}` | {r['levels']:,} | {r['states']:,} | {w['previous_main']:.2f} | "
              f"{w['per_level_loop']:.2f} | {w['batched']:.3f} | {r['ratio_previous_over_batched']:.0f}x |")


if __name__ == "__main__":
    main()
