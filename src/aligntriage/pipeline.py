"""The main job as one sequence of steps that every caller shares (``aligntriage run``, sweep points, benchmarks):
train PPO seeds in a run folder, diagnose them on several distributions, save each diagnosis in the folder.

Each step is its own function so a caller can resume between them: a sweep point that was trained and killed
before its diagnosis, or a benchmark that re-diagnoses saved runs under a new engine without retraining.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from aligntriage.diagnose import Diagnosis, Settings, Tolerances, diagnose_many
from aligntriage.diagnose.uncertainty import RESAMPLES
from aligntriage.store.files import json_bytes
from aligntriage.store.folder import RunFolder, RunRecord
from aligntriage.train.loop import load_policy, train
from aligntriage.train.ppo import PPOConfig
from aligntriage.worlds import get_scenario


def diagnosis_settings(config: PPOConfig, levels: int, settings: Settings | None = None) -> Settings:
    """A trained run is judged over the episode it was trained for: its discount (the horizon is the world's)."""
    base = settings or Settings()
    return Settings(gamma=config.gamma, inference_levels=min(base.inference_levels, levels),
                    epic_levels=min(base.epic_levels, levels), temperatures=base.temperatures,
                    discovery_levels=base.discovery_levels)


def diagnose_run(run_dir: Path, dists: list[str] | None = None, levels: int = 200, settings: Settings | None = None,
                 tolerances: Tolerances | None = None, resamples: int = RESAMPLES, seed: int = 0,
                 on_step: Callable[[str], None] | None = None) -> dict[str, Diagnosis]:
    """Diagnose every seed of a trained run on ``dists`` (default: every distribution, the training one first, which
    is also the IID check) and save ``diagnosis-DIST.json`` for each in the run's folder."""
    folder = RunFolder(run_dir)
    record = folder.record()
    config: PPOConfig = record.ppo
    scenario = get_scenario(record.scenario, **record.params)
    train_dist = config.dist
    dists = dists or [train_dist] + [d for d in scenario.distributions if d != train_dist]
    policies = [load_policy(folder.path, s) for s in range(config.seeds)]
    results = diagnose_many(policies, scenario, dists, levels=levels, seed=seed, train_dist=train_dist,
                            tolerances=tolerances, settings=diagnosis_settings(config, levels, settings),
                            policy_label=f"trained on {train_dist}", resamples=resamples, on_step=on_step)
    with folder.claim():
        folder.write_many({RunFolder.diagnosis_name(dist): json_bytes(json.loads(result.to_json()))
                           for dist, result in results.items()})
    return results


def train_and_diagnose(scenario: str, config: PPOConfig, run_dir: Path, params: dict | None = None,
                       dists: list[str] | None = None, levels: int = 200, kind: str = "run", resume: bool = False,
                       index: bool = True, extra: dict | None = None, settings: Settings | None = None,
                       resamples: int = RESAMPLES,
                       on_progress: Callable[[dict], None] | None = None,
                       on_step: Callable[[str], None] | None = None) -> tuple[RunRecord, dict[str, Diagnosis]]:
    """Train (or resume) the run, then, if training completed, diagnose it and save the diagnoses. Returns the run
    record and the diagnoses (empty when training was interrupted)."""
    record = train(scenario, config, run_dir, params=params, resume=resume, on_progress=on_progress, kind=kind,
                   index=index, extra=extra)
    if record.status != "complete":
        return record, {}
    return record, diagnose_run(run_dir, dists, levels, settings, resamples=resamples, on_step=on_step)
