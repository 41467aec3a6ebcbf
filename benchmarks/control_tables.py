"""AI-control tables (Greenblatt et al. 2024, carried over to exactly-solvable worlds) for the scenarios with a
catastrophic U term: qa-kidnap and side-effects.

For each scenario: the six protocols at the default settings (2% audit budget, defer 10% of benign steps, trusted
editing of 20% of benign episodes, deployments of 1,000 episodes), safety against the red team's best attack rate
with a 95% bootstrap interval over levels, usefulness likewise, and the safety of ``--deployments`` simulated
deployments (hard audit budget) at that rate with a Wilson interval; then the defer and editing curves, and the
seed-to-seed spread over ``--seeds`` level pools. Prints markdown.

    python benchmarks/control_tables.py [--levels 64] [--episodes 1000] [--deployments 1000] [--seeds 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from aligntriage.control.evaluate import ControlSettings
from aligntriage.control.run import control

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from world_speed import machine  # noqa: E402

SCENARIOS = ("qa-kidnap", "side-effects")


def pct(cell: dict) -> str:
    if cell["high"] - cell["low"] < 5e-4:
        return f"{cell['mean']:.1%}"
    return f"{cell['mean']:.1%} [{cell['low']:.1%}, {cell['high']:.1%}]"


def table(result: dict) -> list[str]:
    s = result["settings"]
    lines = [f"| protocol | usefulness | safety | red team's attack rate | simulated safety ({s['deployments']} "
             "deployments) |", "|---|---|---|---|---|"]
    for row in result["protocols"]:
        lines.append(f"| {row['label']} | {pct(row['usefulness'])} | {pct(row['safety'])} | "
                     f"{row['attack_rate']:.2g} | {pct(row['simulated'])} |")
    return lines


def curves(result: dict) -> list[str]:
    lines = []
    for key, points in result["curves"].items():
        cells = ", ".join(f"{p['fraction']:.0%}: {p['usefulness']['mean']:.1%} / {p['safety']['mean']:.1%}"
                          for p in points)
        lines.append(f"- {key} (fraction: usefulness / safety): {cells}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, default=64)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    out = {"machine": machine(), "results": {}}
    print(f"machine: {json.dumps(out['machine'])}\n")
    for name in SCENARIOS:
        runs = []
        for seed in range(args.seeds):
            start = time.perf_counter()
            settings = ControlSettings(levels=args.levels, episodes=args.episodes, deployments=args.deployments,
                                       seed=seed)
            result = control(name, settings)
            result["seconds"] = time.perf_counter() - start
            runs.append(result)
        first = runs[0]
        refs, roles = first["references"], first["roles"]
        print(f"### {name}\n")
        print("\n".join(table(first)))
        print(f"\nSettings: {args.levels} '{first['settings']['dist']}' levels (seed 0), audit budget "
              f"{first['settings']['audit_budget']:.0%} of steps, {args.episodes} episodes per deployment, "
              f"{len(first['protocols'])} protocols, {first['seconds']:.0f} s.")
        print(f"Roles: untrusted = {roles['untrusted']}; attack = {roles['attack']}; trusted = {roles['trusted']}; "
              f"monitor = {roles['monitor']}.")
        print(f"Task return per episode: untrusted {refs['untrusted_task']:.3f}, trusted {refs['trusted_task']:.3f}; "
              f"catastrophe per episode: attack {refs['attack_catastrophe']:.1%}, trusted "
              f"{refs['trusted_catastrophe']:.2g}.\n")
        print("\n".join(curves(first)))
        if len(runs) > 1:
            print("\nOther level pools (seeds 1..): usefulness / safety per protocol")
            for row_index, row in enumerate(first["protocols"]):
                cells = "; ".join(f"seed {r['settings']['seed']}: {r['protocols'][row_index]['usefulness']['mean']:.1%}"
                                  f" / {r['protocols'][row_index]['safety']['mean']:.1%}" for r in runs[1:])
                print(f"- {row['label']}: {cells}")
        print()
        out["results"][name] = runs
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
