"""One grid point of a sweep: train K seeds in one vmapped call, diagnose them, and summarise.

``run_point`` takes and returns plain JSON-able dicts so that any backend (a local process pool, a Ray task on
another machine) can run it. It writes only inside its own run folder and never touches the run index: the sweep
driver registers what comes back. A point whose summary is already on disk is not redone, and a point whose
training was interrupted resumes from its checkpoint.
"""

from __future__ import annotations

import time

import numpy as np

from aligntriage.diagnose.figures import over_seeds
from aligntriage.store.files import read_json
from aligntriage.store.folder import RunFolder


def interval(values, rate: bool = False) -> dict:
    """Mean and 95% t-interval over seeds (clipped to [0, 1] for a rate), as JSON."""
    return over_seeds(values, rate)._asdict()


def summarise(scenario, diagnoses: dict, seeds: int) -> dict:
    """Per diagnosed distribution: verdict counts over seeds, goal/proxy rates on disambiguating levels and R, U
    returns, each with a 95% interval over seeds."""
    intended = scenario.intended_goal.name
    proxies = [g for g in scenario.goals if g != intended]
    out = {}
    for dist, d in diagnoses.items():
        per_seed_verdicts = d.per_seed or (d.verdicts,)
        counts: dict[str, dict[str, int]] = {v.partition: {} for v in per_seed_verdicts[0]}
        for seed_verdicts in per_seed_verdicts:
            for v in seed_verdicts:
                counts[v.partition][v.kind] = counts[v.partition].get(v.kind, 0) + 1
        per_seed = [d.figures("disambiguating", seed=k).outcomes for k in range(d.seeds)]
        out[dist] = {
            "verdict_counts": counts,
            "verdicts": {v.partition: {"kind": v.kind, "probability": v.probability} for v in d.verdicts},
            "inferred_goal": d.verdicts[0].inferred_goal,
            "outcomes": {c: interval([s[c] for s in per_seed], rate=True) for c in per_seed[0]},
            "intended_rate": interval([s[intended] for s in per_seed], rate=True),
            "proxy_rate": interval([sum(s[g] for g in proxies) for s in per_seed], rate=True),
            "R": interval([float(np.mean(b.R)) for b in d.evidence.seeds]),
            "U": interval([float(np.mean(b.U)) for b in d.evidence.seeds]),
            "disambiguating_fraction": d.evidence.disambiguating_fraction,
        }
    return out


def run_point(spec: dict) -> dict:
    """Train, diagnose and summarise one grid point described by ``spec`` (see ``aligntriage.sweep.plan``)."""
    folder = RunFolder(spec["run_dir"])
    summary_file = folder.file(RunFolder.POINT_SUMMARY)
    if summary_file.is_file():
        return read_json(summary_file, "point summary")
    with folder.claim():
        return _run_point(folder, spec)


def _run_point(folder: RunFolder, spec: dict) -> dict:
    from aligntriage.diagnose import Settings
    from aligntriage.pipeline import train_and_diagnose
    from aligntriage.train.ppo import PPOConfig
    from aligntriage.worlds import get_scenario

    config = PPOConfig.from_dict(spec["config"])
    dists = [config.dist] + [d for d in spec["dists"] if d != config.dist]
    levels = spec["levels"]
    start = time.monotonic()
    timer = {}
    record, diagnoses = train_and_diagnose(
        spec["scenario"], config, folder.path, params=spec["level_params"], dists=dists, levels=levels,
        resume=folder.is_run(), index=False, extra={"sweep": spec["sweep_dir"], "point": spec["values"]},
        settings=Settings(inference_levels=min(levels, 100), epic_levels=min(levels, 10)),
        on_step=lambda dist: timer.setdefault("diagnose", time.monotonic()))
    base = {"point": spec["index"], "values": spec["values"], "run_dir": str(folder.path), "seeds": config.seeds}
    if record.status != "complete":
        return {**base, "status": record.status}
    scenario = get_scenario(spec["scenario"], **spec["level_params"])
    metrics = _last_rows(folder)
    trained = timer.get("diagnose", time.monotonic())
    summary = {**base, "status": "complete", "train_seconds": trained - start,
               "diagnose_seconds": time.monotonic() - trained,
               "train_success": interval([r["success_rate"] for r in metrics], rate=True),
               "dists": summarise(scenario, diagnoses, config.seeds)}
    folder.write_json(RunFolder.POINT_SUMMARY, summary)
    return summary


def _last_rows(folder: RunFolder) -> list[dict]:
    """Each seed's last metrics row: its success rate at the end of training."""
    last = {}
    for row in folder.read_metrics():
        last[row["seed"]] = row
    return list(last.values())
