"""From diagnosis to a measured fix: retrain a diagnosed run with each intervention, at the same budget and seeds,
diagnose again on the same levels, and report before and after.

Interventions: ``curriculum=NAME[@DIST]`` changes the training process (the level curator, drawing from DIST,
default the run's own training distribution); ``reward+TERM[:WEIGHT]`` changes the reward provision process (R
plus WEIGHT x the U term: the outer fix). Each is trained in a run folder nested in the mitigation's own folder
(a run in the index of kind ``mitigate``), so it can be resumed, reported and removed like any run.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aligntriage.diagnose import Diagnosis
from aligntriage.diagnose.figures import over_seeds
from aligntriage.diagnose.uncertainty import RESAMPLES
from aligntriage.errors import AligntriageError, UnknownName
from aligntriage.pipeline import train_and_diagnose
from aligntriage.store.files import read_json
from aligntriage.store.folder import RunFolder, RunRecord
from aligntriage.train.loop import REWARD_PATCH, run_scenario
from aligntriage.train.ppo import CURRICULA, PPOConfig

SHAPES = ("curriculum=NAME[@DIST]", "reward+TERM[:WEIGHT]")


@dataclass(frozen=True)
class Intervention:
    """One change to the training process or to the reward: how to retrain, and a name for its run folder."""

    text: str
    curriculum: str | None = None
    curate_from: str | None = None
    patch: dict[str, float] | None = None

    @property
    def slug(self) -> str:
        return "mitigate-" + re.sub(r"[^A-Za-z0-9.+-]+", "-", self.text).strip("-")

    def config(self, base: PPOConfig, seeds: int) -> PPOConfig:
        config = dataclasses.replace(base, seeds=seeds)
        if self.curriculum is not None:
            config = dataclasses.replace(config, curriculum=self.curriculum,
                                         curate_from=self.curate_from or base.dist)
        return config.validate()


def parse(text: str, scenario) -> Intervention:
    """``curriculum=plr-exact``, ``curriculum=dr``, ``curriculum=plr-exact@deploy``, ``reward+harm``,
    ``reward+harm:10``; anything else is a one-line error naming the accepted shapes."""
    if text.startswith("curriculum="):
        name, _, dist = text[len("curriculum="):].partition("@")
        if name not in CURRICULA:
            raise UnknownName("curriculum", name, CURRICULA, f"--try {text}")
        if dist:
            scenario.distribution(dist)
        return Intervention(text, curriculum=name, curate_from=dist or None)
    if text.startswith("reward+"):
        term, _, weight = text[len("reward+"):].partition(":")
        if term not in scenario.utility:
            raise UnknownName("utility term", term, scenario.utility, f"--try {text}")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            value = float("nan")
        if not np.isfinite(value) or value <= 0:
            raise AligntriageError(f"--try {text}: the weight after ':' must be a number > 0, got '{weight}'")
        return Intervention(text, patch={term: value})
    raise AligntriageError(f"unknown intervention '{text}'; valid: {', '.join(SHAPES)}")


def summary(d: Diagnosis, intended: str) -> dict:
    """What a before/after table shows of one diagnosis on the deployment distribution, with intervals over seeds."""
    seeds = range(d.seeds)
    where = [d.figures("disambiguating", seed=k) for k in seeds]
    proxy = [sum(rate for goal, rate in f.outcomes.items() if goal in f.reached and goal != intended) for f in where]
    return {
        "verdicts": {v.partition: {"kind": v.kind, "probability": v.probability} for v in d.verdicts},
        "per_seed": [{v.partition: v.kind for v in seed} for seed in d.per_seed],
        "proxy_rate": over_seeds(proxy, rate=True)._asdict(),
        "U": over_seeds([float(np.mean(b.U)) for b in d.evidence.seeds])._asdict(),
        "R": over_seeds([float(np.mean(b.R)) for b in d.evidence.seeds])._asdict(),
        "harms": {t: over_seeds([d.figures("all", seed=k).harms[t] for k in seeds], rate=True)._asdict()
                  for t in d.evidence.seeds[0].harms},
    }


def mitigate(run_dir: Path, tries: list[str], out: Path, seeds: int | None = None, dist: str = "deploy",
             resamples: int = RESAMPLES, on_progress=None, on_step=None) -> dict:
    """Retrain ``run_dir`` with each intervention and compare its diagnosis on ``dist`` with the run's own."""
    source = RunFolder(run_dir)
    record = source.record()
    if not record.training:
        raise AligntriageError(f"'{run_dir}' is a {record.kind} run; mitigate retrains a trained run")
    before_file = source.file(RunFolder.diagnosis_name(dist))
    if not before_file.is_file():
        raise AligntriageError(f"run folder '{run_dir}' has no diagnosis on '{dist}'; diagnose it first "
                               f"(aligntriage diagnose {run_dir} --dist {dist})")
    before = Diagnosis.from_dict(read_json(before_file, "diagnosis"))
    scenario = run_scenario(record)
    interventions = [parse(text, scenario) for text in tries]
    if not interventions:
        raise AligntriageError(f"mitigate needs at least one --try ({' or '.join(SHAPES)})")
    config: PPOConfig = record.ppo
    seeds = seeds or config.seeds
    intended = scenario.intended_goal.name
    folder = RunFolder(out)
    rows = {"before": {"intervention": "before (the diagnosed run)", **summary(before, intended)}}
    with folder.claim(new=not folder.is_run()):
        if not folder.is_run():
            folder.write_record(RunRecord.new("mitigate", record.scenario, record.params, dist=dist, seeds=seeds,
                                              source_run=str(source.path.resolve()), tries=tries))
        for item in interventions:
            child = RunFolder(folder.path / item.slug)
            extra = {"mitigation_of": str(source.path.resolve()), "intervention": item.text}
            base_patch = record.extra.get(REWARD_PATCH) or {}
            if item.patch or base_patch:
                extra[REWARD_PATCH] = {**base_patch, **(item.patch or {})}
            _, diagnoses = train_and_diagnose(record.scenario, item.config(config, seeds), child.path,
                                              params=record.params, dists=[config.dist, dist], levels=before.levels,
                                              resume=child.is_run(), index=False, extra=extra,
                                              settings=before.settings, resamples=resamples,
                                              on_progress=on_progress, on_step=on_step)
            if dist not in diagnoses:
                raise AligntriageError(f"training for '{item.text}' did not complete; rerun the same command to "
                                       "resume it")
            rows[item.text] = {"intervention": item.text, **summary(diagnoses[dist], intended)}
        result = {"scenario": record.scenario, "source_run": str(source.path.resolve()), "dist": dist,
                  "seeds": seeds, "levels": before.levels, "steps": config.total_steps, "rows": list(rows.values())}
        folder.write_json(RunFolder.MITIGATION, result)
        folder.write_record(folder.record().replace(status="complete"))
    return result
