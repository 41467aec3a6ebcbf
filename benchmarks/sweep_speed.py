"""A 5-point x 8-seed coinrun sweep on the local backend against the same 40 trainings run as 40 separate
``aligntriage train`` commands, measured in the same run on the same machine.

The sweep's time includes what the 40 commands do not do: diagnosing every point on ``train`` and ``deploy``. Its
gain comes from one process start-up and one compilation per point instead of per seed, seeds vmapped, and two
points at a time on the two cores. Rerun: ``python benchmarks/sweep_speed.py`` (about 30 minutes on a 2-core CPU;
``--steps`` and ``--seeds`` shrink it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DISTS = ["train", "train-rand-1pct", "train-rand-2pct", "train-rand-5pct", "train-rand-10pct"]


def run(args: list[str], env: dict) -> float:
    start = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(args)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--levels", type=int, default=100)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "aligntriage"]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ALIGNTRIAGE_STORE": str(Path(tmp) / "store")}
        sweep_s = run(cli + ["sweep", "coinrun", "--grid", "dist=" + ",".join(DISTS), "--seeds", str(args.seeds),
                             "--steps", str(args.steps), "--levels", str(args.levels), "--out",
                             str(Path(tmp) / "sweep")], env)
        summary = json.loads((Path(tmp) / "sweep" / "summary.json").read_text())
        sweep_train_s = sum(p["train_seconds"] for p in summary["points"])
        separate_s = 0.0
        for dist in DISTS:
            for seed in range(args.seeds):
                separate_s += run(cli + ["train", "coinrun", "--dist", dist, "--seed", str(seed), "--steps",
                                         str(args.steps), "--out", str(Path(tmp) / f"train-{dist}-{seed}")], env)
    trainings = len(DISTS) * args.seeds
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "steps_per_training": args.steps, "trainings": trainings, "sweep_seconds": sweep_s,
        "sweep_training_seconds_summed_over_points": sweep_train_s, "separate_seconds": separate_s,
        "speedup": separate_s / sweep_s,
    }
    print(f"machine: {result['machine']}")
    print("| | wall time | per training |")
    print("|---|---|---|")
    print(f"| `aligntriage sweep` (5 points x {args.seeds} seeds, local backend, diagnosis included) | "
          f"{sweep_s:.0f} s | {sweep_s / trainings:.1f} s |")
    print(f"| {trainings} separate `aligntriage train` commands | {separate_s:.0f} s | "
          f"{separate_s / trainings:.1f} s |")
    print(f"| speed-up | **{result['speedup']:.1f}x** | |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
