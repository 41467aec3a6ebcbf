"""The main job as one sequence of steps that every caller shares (``aligntriage run``, sweep points, benchmarks):
train PPO seeds in a run folder, diagnose them on several distributions, save each diagnosis in the folder.

Each step is its own function so a caller can resume between them: a sweep point that was trained and killed
before its diagnosis, or a benchmark that re-diagnoses saved runs under a new engine without retraining.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from aligntriage.diagnose import Diagnosis, Settings, Tolerances, diagnose_many
from aligntriage.diagnose.engine import counterfactual_patch, policy_schedules, rejudge, sample_batch, threat_readings
from aligntriage.diagnose.evidence import behaviour
from aligntriage.diagnose.figures import figures, over_seeds
from aligntriage.diagnose.threats import failure_rate, failures
from aligntriage.diagnose.uncertainty import RESAMPLES
from aligntriage.solve.value import Episode
from aligntriage.store.files import json_bytes, read_json
from aligntriage.store.folder import RunFolder, RunRecord
from aligntriage.train.loop import REWARD_PATCH, load_policy, run_scenario, train
from aligntriage.train.ppo import PPOConfig


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
    scenario = run_scenario(record)
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


def rejudge_run(run_dir: Path, tolerances: Tolerances | None = None,
                resamples: int = RESAMPLES) -> dict[str, Diagnosis]:
    """Re-apply the decision table under ``tolerances`` (default: the current defaults) to every saved diagnosis of
    a run, from its stored evidence (exact, no policy needed), and save them again."""
    folder = RunFolder(run_dir)
    results = {}
    for dist, path in folder.diagnosis_files().items():
        saved = Diagnosis.from_dict(read_json(path, "diagnosis"))
        results[dist] = rejudge(saved, tolerances or Tolerances(), resamples)
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


def counterfactual_name(failure: str) -> str:
    return f"counterfactual-{failure}"


def counterfactuals(run_dir: Path, diagnoses: dict[str, Diagnosis], levels: int, seed: int = 0,
                    on_progress: Callable[[dict], None] | None = None) -> dict[str, Diagnosis]:
    """The causal threat-model reading of a trained run: for each failure, retrain the same seeds with the same
    budget on R plus the failure's U terms (the patch's weight chosen on the training levels), in a run folder
    nested in this one, measure the failure on the same diagnosed levels, and read again. Returns the diagnoses
    with their new readings, which are also saved."""
    folder = RunFolder(run_dir)
    record = folder.record()
    config: PPOConfig = record.ppo
    scenario = run_scenario(record)
    first = next(iter(diagnoses.values()))
    mask = np.ones(scenario.world.num_actions)
    episode = Episode(config.gamma, scenario.world.horizon)
    train_levels = sample_batch(scenario, config.dist, min(levels, 50), seed)
    found: dict[str, dict[str, tuple]] = {dist: {} for dist in diagnoses}
    for failure in failures(scenario):
        patch = counterfactual_patch(scenario, train_levels, failure, mask, episode, first.tolerances.catastrophe)
        child = folder.path / counterfactual_name(failure.name)
        child_folder = RunFolder(child)
        if not (child_folder.is_run() and child_folder.record().status == "complete"):
            train(record.scenario, config, child, params=record.params, resume=child_folder.is_run(), kind="run",
                  index=False, on_progress=on_progress,
                  extra={REWARD_PATCH: patch, "counterfactual_of": str(folder.path.resolve())})
        policies = [load_policy(child, s) for s in range(config.seeds)]
        for dist, d in diagnoses.items():
            batch = sample_batch(scenario, dist, levels, d.seed)
            schedules = policy_schedules(scenario, batch, policies, mask, episode)
            after = dataclasses.replace(d.evidence, seeds=tuple(behaviour(scenario, batch, s, episode)
                                                                for s in schedules),
                                        inference=d.evidence.inference[:1] * len(schedules))
            rates = [failure_rate(failure, figures(after, d.scopes, "all", seeds=np.array([k])),
                                  figures(after, d.scopes, "disambiguating", seeds=np.array([k])), d.intended)
                     for k in range(len(schedules))]
            found[dist][failure.name] = (over_seeds(rates, rate=True), patch)
    updated = {}
    for dist, d in diagnoses.items():
        threats = threat_readings(scenario, d.evidence, d.iid, d.scopes, d.tolerances, found[dist])
        updated[dist] = dataclasses.replace(d, threats=threats)
    with folder.claim():
        folder.write_many({RunFolder.diagnosis_name(dist): json_bytes(json.loads(d.to_json()))
                           for dist, d in updated.items()})
    return updated
