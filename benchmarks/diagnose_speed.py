"""Time to diagnose a policy on 1,000 levels (the deployment distribution plus 1,000 levels of the training
distribution, the IID check), warm, against the previous main measured in the same run.

Each round runs, in alternating order, one diagnosis with this checkout's code and one with the previous main's
(a git worktree of ``--previous``, default the last commit before the exact-evidence rewrite, in a temporary
folder, run in its own process with PYTHONPATH at its src/). Each process diagnoses twice and reports the second
(warm) time. The phases of this code's warm run are printed too. Rerun: ``python benchmarks/diagnose_speed.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PREVIOUS = "1e1a311"
CASES = {"coinrun": ("goal:end-of-level", None), "maze": ("random", None), "qa-kidnap": ("r-optimal", "strong")}

CHILD = """
import json, sys, time
from aligntriage import get_scenario
from aligntriage.diagnose import diagnose
name, policy, affordances, levels = sys.argv[1], sys.argv[2], sys.argv[3] or None, int(sys.argv[4])
scenario = get_scenario(name)
times = []
for _ in range(2):
    start = time.monotonic()
    diagnose(policy, scenario, levels=levels, affordances=affordances)
    times.append(time.monotonic() - start)
print(json.dumps(times))
"""


def run(src: Path, name: str, levels: int) -> list[float]:
    policy, affordances = CASES[name]
    env = {**os.environ, "PYTHONPATH": str(src), "ALIGNTRIAGE_COMPILE_CACHE": "0"}
    out = subprocess.run([sys.executable, "-c", CHILD, name, policy, affordances or "", str(levels)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=int, default=1000)
    parser.add_argument("--scenarios", default="coinrun")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--previous", default=PREVIOUS)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load {load()}")
    with tempfile.TemporaryDirectory(prefix="aligntriage-previous-") as tmp:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", tmp, args.previous], check=True,
                       capture_output=True)
        try:
            rows = []
            for name in args.scenarios.split(","):
                ours, theirs = [], []
                for r in range(args.rounds):
                    order = [("ours", ROOT / "src"), ("previous", Path(tmp) / "src")]
                    for label, src in order if r % 2 == 0 else order[::-1]:
                        (ours if label == "ours" else theirs).append(run(src, name, args.levels)[1])
                rows.append((name, statistics.median(ours), statistics.median(theirs), ours, theirs))
                print(f"{name}: this code warm {ours}, previous main warm {theirs}; load {load()}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", tmp], capture_output=True)
    print(f"\n| scenario | policy | levels | this code, warm (s) | previous main {args.previous}, warm (s) | "
          "previous / this |")
    print("|---|---|---|---|---|---|")
    for name, ours, theirs, _, _ in rows:
        print(f"| `{name}` | {CASES[name][0]} | {args.levels} + {args.levels} | {ours:.1f} | {theirs:.1f} | "
              f"{theirs / ours:.2f}x |")
    phases(args.scenarios.split(",")[0], args.levels)


def phases(name: str, levels: int) -> None:
    """Where this code's warm diagnosis spends its time (one process, after a warm-up call)."""
    import cProfile
    import pstats

    from aligntriage import get_scenario
    from aligntriage.diagnose import diagnose

    policy, affordances = CASES[name]
    scenario = get_scenario(name)
    diagnose(policy, scenario, levels=levels, affordances=affordances)
    profile = cProfile.Profile()
    start = time.monotonic()
    profile.enable()
    diagnose(policy, scenario, levels=levels, affordances=affordances)
    profile.disable()
    total = time.monotonic() - start
    stats = pstats.Stats(profile)
    wanted = {"enumerate_levels": "enumeration", "references": "references (optima, random, disambiguation)",
              "behaviour": "the agent's exact behaviour", "infer": "goal inference", "_discover": "goal discovery",
              "judge": "verdicts and their resampling", "scripted_counterfactuals": "threat counterfactuals",
              "policy_schedules": "policy tables"}
    print(f"\nphases of one warm diagnosis of {name} ({levels} + {levels} levels, {total:.1f} s; cumulative, "
          "nested phases overlap):")
    for (file, _, func), (_, _, _, cumulative, _) in stats.stats.items():
        if func in wanted and "aligntriage" in file:
            print(f"- {wanted[func]}: {cumulative:.1f} s")


if __name__ == "__main__":
    main()
