"""Stress test of the run store: concurrent writers and trainings killed with SIGKILL, then ``doctor``.

8 processes each create and register 50 run folders at once (a claim, two files through the manifest, one index
transaction per run) while 2 ``aligntriage train`` processes are killed with SIGKILL at random points. Afterwards:
the index passes SQLite's integrity check and holds every row a writer reported committed (none lost, none
doubled); ``doctor`` finds no damage in the index or any run folder (the killed trainings may leave leftovers of
an interrupted write, which ``doctor --repair`` tidies, after which it finds nothing at all); and each killed
training resumes to the end with gap-free metrics.

    PYTHONPATH=src python benchmarks/store_stress.py            # 8 x 50 runs, 2 killed trainings
    PYTHONPATH=src python benchmarks/store_stress.py --writers 4 --runs 20 --trainings 1 --seed 3

Exit code 0 when every check holds; results go to benchmarks/results/store_stress.json (the temporary store is
deleted on success and kept, at the path the results name, on failure).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WRITER = """
import sys
from pathlib import Path
from aligntriage.store import index_run
from aligntriage.store.files import json_bytes
from aligntriage.store.folder import RunFolder, RunRecord

root, store, tag, count = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
for i in range(count):
    folder = RunFolder(root / f"{tag}-{i:03d}")
    with folder.claim(new=True):
        record = RunRecord.new("diagnose", "coinrun", {"height": 3}, policy="random", dist="deploy")
        diagnosis = {"dist": "deploy", "verdicts": [{"partition": "task", "verdict": "capability failure"}]}
        folder.write_many({RunFolder.diagnosis_name("deploy"): json_bytes(diagnosis),
                           RunFolder.RUN: json_bytes(record.to_dict())})
        run_id = index_run(folder.path, store)
    print(run_id, folder.path.resolve(), flush=True)
"""


def train_args(out: Path, resume: bool = False) -> list[str]:
    args = [sys.executable, "-m", "aligntriage", "train", "coinrun", "--out", str(out), "-p", "height=3", "-p",
            "width=6"]
    return args + (["--resume"] if resume else ["--steps", str(16 * 64 * 2000), "--envs", "16", "--width", "16"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--trainings", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "store_stress.json")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="aligntriage-stress-"))
    store = root / "store"
    env = {**os.environ, "ALIGNTRIAGE_STORE": str(store)}
    started = time.monotonic()

    trainings = [subprocess.Popen(train_args(root / f"train-{k}"), env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for k in range(args.trainings)]
    # Each training dies at a random point of its run: 0-45 s after its run.json appears (it saves every 30 s), or
    # while still compiling when the draw says so.
    delay = [rng.uniform(-5.0, 45.0) for _ in trainings]
    began: list[float | None] = [None] * len(trainings)
    kill_at = [0.0] * len(trainings)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(root / "runs"), str(store), f"w{w}",
                                 str(args.runs)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for w in range(args.writers)]
    killed = [False] * len(trainings)
    while not all(killed):
        elapsed = time.monotonic() - started
        for k, proc in enumerate(trainings):
            if began[k] is None and ((root / f"train-{k}" / "run.json").exists() or elapsed > 180):
                began[k] = elapsed
            if not killed[k] and began[k] is not None and elapsed >= began[k] + delay[k]:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed[k], kill_at[k] = True, elapsed
        time.sleep(0.02)
    committed, failures = {}, []
    for proc in writers:
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            failures.append(err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}")
        for line in out.splitlines():
            run_id, path = line.split(" ", 1)
            committed[int(run_id)] = path
    write_s = time.monotonic() - started

    from aligntriage.store import RunIndex
    from aligntriage.store.doctor import check_store, repair_findings
    from aligntriage.store.folder import RunFolder

    index = RunIndex(store)
    rows = {r["id"]: r for r in index.runs()}
    lost = [i for i, path in committed.items() if i not in rows or rows[i]["path"] != path]
    checks = {"writers without error": not failures,
              f"{args.writers * args.runs} rows committed": len(committed) == args.writers * args.runs,
              "no committed row lost": not lost,
              "paths unique": len({r["path"] for r in rows.values()}) == len(rows),
              "integrity ok": index.integrity() == "ok"}
    findings = check_store(store)
    damage = [f"{f.where}: {f.problem}" for f in findings if f.severity == "damage"]
    leftovers = [f"{f.where}: {f.problem}" for f in findings if f.severity != "damage"]
    checks["doctor: no damage"] = not damage
    repaired, left = repair_findings(findings)
    checks["doctor clean after --repair"] = not left and not check_store(store)

    resumed = []
    for k in range(args.trainings):
        out = root / f"train-{k}"
        if not RunFolder(out).is_run():
            resumed.append({"training": k, "killed_at_s": round(kill_at[k], 1),
                            "state": "killed before its run.json was written"})
            continue
        before = RunFolder(out).record()
        done = subprocess.run(train_args(out, resume=True), env=env, capture_output=True, text=True, timeout=1800)
        record = RunFolder(out).record()
        updates = [int(r["update"]) for r in RunFolder(out).read_metrics()]
        resumed.append({"training": k, "killed_at_s": round(kill_at[k], 1), "killed_at_update": before.update,
                        "resume_exit": done.returncode, "status": record.status})
        checks[f"training {k} resumed to the end, gap-free"] = (
            done.returncode == 0 and record.status == "complete"
            and updates == list(range(1, record.ppo.num_updates + 1)))
    checks["doctor clean after resuming"] = not check_store(store)
    result = {"writers": args.writers, "runs_per_writer": args.runs, "trainings": args.trainings, "seed": args.seed,
              "rows": len(rows), "committed": len(committed), "lost": lost, "writer_failures": failures,
              "damage": damage, "leftovers": leftovers, "repaired": repaired, "resumed": resumed,
              "write_seconds": round(write_s, 1), "total_seconds": round(time.monotonic() - started, 1),
              "checks": checks, "machine": f"{os.cpu_count()} CPUs, {sys.platform}", "store": str(root)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    if all(checks.values()):
        import shutil

        shutil.rmtree(root, ignore_errors=True)  # kept for inspection when a check fails
    print(f"{len(rows)} rows, {len(leftovers)} leftover(s) tidied, {write_s:.0f} s of writing; "
          f"{result['total_seconds']:.0f} s in all; details in {args.out}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
