"""One CLI command from process start to exit: with the compilation cache off, cold (an empty cache, filled by the
run) and warm (the cache a previous run filled), in separate processes, alternating round by round.

Every run gets its own working folder and run store (both deleted afterwards); cold runs a fresh, empty cache
folder, which the warm run of the same round then reads. The figure is the median over rounds; the ratio is the
off median over the warm median, so load that comes and goes hits every kind.

    python benchmarks/compile_cache.py                      # aligntriage diagnose coinrun --policy random --levels 200
    python benchmarks/compile_cache.py --rounds 5 -- show maze
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax

import aligntriage

HERE = Path(__file__).resolve().parent
COMMAND = ["diagnose", "coinrun", "--policy", "random", "--levels", "200"]


def timed(args: list[str], env: dict) -> float:
    work = Path(tempfile.mkdtemp(prefix="aligntriage-bench-"))
    try:
        source = str(Path(aligntriage.__file__).resolve().parents[1])  # the aligntriage this script imports
        env = {**os.environ, **env, "ALIGNTRIAGE_STORE": str(work / "store"),
               "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "aligntriage", *args], cwd=work, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cache_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=str(HERE / "results" / "compile_cache.json"))
    parser.add_argument("command", nargs="*", default=COMMAND, help="aligntriage arguments (after --)")
    args = parser.parse_args()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}"
    print(f"machine: {machine}; command: aligntriage {' '.join(args.command)}; load before: {os.getloadavg()}")
    seconds: dict[str, list[float]] = {"off": [], "cold": [], "warm": []}
    sizes = []
    for _ in range(args.rounds):
        cache = Path(tempfile.mkdtemp(prefix="aligntriage-bench-cache-"))
        try:
            seconds["off"].append(timed(args.command, {"ALIGNTRIAGE_COMPILE_CACHE": "0"}))
            seconds["cold"].append(timed(args.command, {"ALIGNTRIAGE_COMPILE_CACHE_DIR": str(cache)}))
            sizes.append(cache_bytes(cache))
            seconds["warm"].append(timed(args.command, {"ALIGNTRIAGE_COMPILE_CACHE_DIR": str(cache)}))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        print({kind: round(s[-1], 2) for kind, s in seconds.items()}, flush=True)
    median = {kind: statistics.median(s) for kind, s in seconds.items()}
    result = {"machine": machine, "command": args.command, "rounds": seconds, "median_s": median,
              "off_over_warm": median["off"] / median["warm"], "cache_bytes": sizes, "load_after": os.getloadavg()}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
