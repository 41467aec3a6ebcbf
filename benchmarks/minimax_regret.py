"""Does exact-regret level curation remove the proxy that domain randomisation leaves? (Abdel Sadek et al., RLC
2025: maximum-expected-value training can misgeneralize, minimax expected regret cannot; PLR and ACCEL are more
robust than DR in procedurally generated gridworlds.)

For each setting where few training levels disambiguate the goals (coinrun with 1% and 2% randomised coins; maze
with the cheese in the top-right corner and in a 2x2 region), K seeds are trained with ``dr`` and with
``plr-exact`` drawing from the same training distribution, at the same number of environment steps, then diagnosed
on 300 ``deploy`` levels: the proxy rate where the goals diverge (episodes that reach the proxy goal first) and the
U return, each with a 95% interval over seeds, and the verdict counts. Run folders go to benchmarks/runs/minimax
(ignored by git); results to benchmarks/results/minimax_regret.json.

    python benchmarks/minimax_regret.py [--seeds 3] [--only coinrun]
    python benchmarks/minimax_regret.py --rejudge     # the saved runs' verdicts under the current tolerances
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np

from aligntriage import get_scenario
from aligntriage.diagnose import Settings
from aligntriage.diagnose.figures import over_seeds
from aligntriage.pipeline import rejudge_run, train_and_diagnose
from aligntriage.store.folder import RunFolder
from aligntriage.train.ppo import PPOConfig

HERE = Path(__file__).resolve().parent
SETTINGS = [("coinrun", "train-rand-1pct"), ("coinrun", "train-rand-2pct"), ("maze", "train"),
            ("maze", "train-region-2")]
BUFFER = {("maze", "train"): 64}
"""Buffer sizes below the default (256) where the training distribution holds too few distinct levels for PLR to
ever replay: maze's training mazes repeat 88 layouts, and replay starts at half full."""
CURRICULA = ("dr", "plr-exact")


def proxy_rates(d, intended: str) -> list[float]:
    rates = []
    for k in range(d.seeds):
        f = d.figures("disambiguating", seed=k)
        rates.append(sum(r for goal, r in f.outcomes.items() if goal in f.reached and goal != intended))
    return rates


def run_setting(name: str, dist: str, curriculum: str, seeds: int, levels: int) -> dict:
    scenario = get_scenario(name)
    config = PPOConfig.from_dict({**scenario.training, "dist": dist, "seeds": seeds})
    if curriculum != "dr":
        config = dataclasses.replace(config, curriculum=curriculum, curate_from=dist,
                                     buffer_size=BUFFER.get((name, dist), config.buffer_size)).validate()
    run_dir = HERE / "runs" / "minimax" / f"{name}-{dist}-{curriculum}"
    folder = RunFolder(run_dir)
    resume = folder.is_run() and folder.record().status != "complete"
    start = time.monotonic()
    if folder.is_run() and folder.record().status == "complete" and folder.diagnosis_files():
        from aligntriage.pipeline import diagnose_run

        diagnoses = diagnose_run(run_dir, [dist, "deploy"], levels, Settings(inference_levels=100, epic_levels=0))
    else:
        _, diagnoses = train_and_diagnose(name, config, run_dir, dists=[dist, "deploy"], levels=levels,
                                          resume=resume, index=False,
                                          settings=Settings(inference_levels=100, epic_levels=0))
    return {"scenario": name, "dist": dist, "curriculum": curriculum, "seeds": seeds,
            "steps": config.total_steps, "buffer_size": config.buffer_size if curriculum != "dr" else None,
            "seconds": time.monotonic() - start, **deploy_figures(diagnoses["deploy"], scenario)}


def deploy_figures(d, scenario) -> dict:
    """What the table reports of the deploy diagnosis: proxy rate and U over seeds, the verdicts."""
    counts: dict[str, int] = {}
    for seed in d.per_seed or (d.verdicts,):
        counts[seed[0].kind] = counts.get(seed[0].kind, 0) + 1
    return {"proxy_rate": over_seeds(proxy_rates(d, scenario.intended_goal.name), rate=True)._asdict(),
            "U": over_seeds([float(np.mean(b.U)) for b in d.evidence.seeds])._asdict(),
            "pooled_verdict": {"kind": d.verdicts[0].kind, "probability": d.verdicts[0].probability},
            "per_seed_verdicts": counts, "disambiguating_fraction": d.evidence.disambiguating_fraction}


def fmt(e: dict) -> str:
    if e["n"] > 1:
        return f"{e['mean']:.2f} [{e['low']:.2f}, {e['high']:.2f}]"
    return f"{e['mean']:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--levels", type=int, default=300)
    parser.add_argument("--only", default=None, help="only settings of this scenario")
    parser.add_argument("--rejudge", action="store_true",
                        help="re-apply the decision table (current default tolerances) to the saved evidence")
    args = parser.parse_args()
    path = HERE / "results" / "minimax_regret.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}"
    for name, dist in SETTINGS:
        if args.only and name != args.only:
            continue
        if args.rejudge:
            for curriculum in CURRICULA:
                key, run_dir = f"{name}/{dist}/{curriculum}", HERE / "runs" / "minimax" / f"{name}-{dist}-{curriculum}"
                if key in stored and RunFolder(run_dir).diagnosis_files():
                    stored[key].update(deploy_figures(rejudge_run(run_dir)["deploy"], get_scenario(name)))
                    path.write_text(json.dumps(stored, indent=1) + "\n")
            continue
        for curriculum in CURRICULA:
            row = run_setting(name, dist, curriculum, args.seeds, args.levels)
            row["machine"] = machine
            stored[f"{name}/{dist}/{curriculum}"] = row
            path.write_text(json.dumps(stored, indent=1) + "\n")
            print(f"{name} {dist} {curriculum}: proxy {fmt(row['proxy_rate'])}, U {fmt(row['U'])}, "
                  f"{row['per_seed_verdicts']} ({row['seconds']:.0f} s)", flush=True)
    print("\n| scenario | training distribution | curriculum | proxy reached first where the goals diverge "
          "(seeds, 95%) | U (seeds, 95%) | per-seed verdicts |")
    print("|---|---|---|---|---|---|")
    for row in stored.values():
        verdicts = ", ".join(f"{k} ×{n}" for k, n in row["per_seed_verdicts"].items())
        print(f"| `{row['scenario']}` | `{row['dist']}` | {row['curriculum']} | {fmt(row['proxy_rate'])} | "
              f"{fmt(row['U'])} | {verdicts} |")


if __name__ == "__main__":
    main()
