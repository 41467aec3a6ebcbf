"""Time to diagnose a policy on 1,000 levels of each scenario (target: under 60 s each on a 2-core CPU).

A diagnosis covers the deployment distribution and the training distribution (the IID check), so it enumerates
and solves 2 x LEVELS levels, evaluates the policy exactly, samples episodes, fits goal inference and computes EPIC.
Timed twice per scenario: cold (first call in the process, XLA compilation included) and warm.
Rerun: ``python benchmarks/diagnose_speed.py``.
"""

from __future__ import annotations

import argparse
import platform
import time

import jax

from aligntriage import get_scenario
from aligntriage.diagnose import diagnose

CASES = {"coinrun": ("random", None), "maze": ("random", None), "qa-kidnap": ("r-optimal", "strong")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, default=1000)
    parser.add_argument("--scenarios", default=",".join(CASES))
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, jax {jax.__version__} ({jax.default_backend()}), levels {args.levels}")
    print("| scenario | policy | states (deploy) | cold (s) | warm (s) | verdicts |")
    print("|---|---|---|---|---|---|")
    for name in args.scenarios.split(","):
        policy, affordances = CASES[name]
        scenario = get_scenario(name)
        times = []
        for _ in range(2):
            start = time.monotonic()
            result = diagnose(policy, scenario, levels=args.levels, affordances=affordances)
            times.append(time.monotonic() - start)
        verdicts = ", ".join(f"{v['partition']}: {v['verdict']}" for v in result.verdicts)
        print(f"| `{name}` | {policy} | {result.evidence['deploy']['states']:,} | {times[0]:.1f} | {times[1]:.1f} | "
              f"{verdicts} |")


if __name__ == "__main__":
    main()
