"""Verdicts that carry their uncertainty: the decision table re-applied to resamples of levels and seeds.

A resample draws seeds with replacement (when there are several: a seed is the unit of replication of training)
and, within the diagnosed and the training distribution, levels with replacement; the figures are recomputed from
the per-level evidence and the table decides again. Each verdict kind's share of the resamples is its
probability. The verdict shown is the leading kind when its probability reaches the ``confidence`` tolerance, else
``inconclusive``, naming the two leading candidates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from aligntriage.diagnose.figures import Figures, figures, wilson
from aligntriage.diagnose.kinds import INCONCLUSIVE
from aligntriage.diagnose.records import Evidence
from aligntriage.diagnose.verdict import TABLE, Case, Margin, Tolerances, decide, split

RESAMPLES = 200


@dataclass(frozen=True)
class Verdict:
    """One partition's verdict with its probability, its margins and a plain-language explanation."""

    partition: str
    reward_scope: tuple[str, ...]
    kind: str  # shown: the leading kind, or "inconclusive"
    probability: float  # of the leading kind over the resamples
    candidates: dict[str, float]  # kind -> probability, leading first
    row: str  # the table row that fires on the full evidence
    inferred_goal: str | None
    split: tuple[float, float]  # share of the U shortfall inside / outside the reward's scope
    margins: tuple[Margin, ...]
    explanation: str

    def leading(self, count: int = 2) -> list[tuple[str, float]]:
        """The ``count`` most probable kinds, most probable first (a saved record's dict order is not kept)."""
        return sorted(self.candidates.items(), key=lambda kv: -kv[1])[:count]


def case(evidence: Evidence, iid: Evidence, partition: str, scope: tuple[str, ...], intended: str,
         scopes: dict[str, tuple[str, ...]], seeds=None, levels=None, iid_levels=None) -> Case:
    """The figures the table reads, for one resample (``None``: the evidence as it is)."""
    levels = np.arange(evidence.levels) if levels is None else levels
    dis = levels[evidence.references.disambiguating[levels]]
    iid_seeds = seeds if iid.num_seeds == evidence.num_seeds else None
    return Case(partition, scope, intended,
                all=figures(evidence, scopes, "all", levels, seeds),
                dis=figures(evidence, scopes, "disambiguating", dis if dis.size else levels, seeds),
                iid=figures(iid, scopes, "all", iid_levels, iid_seeds))


def _resample(rng: np.random.Generator, evidence: Evidence, iid: Evidence):
    seeds = rng.integers(0, evidence.num_seeds, evidence.num_seeds) if evidence.num_seeds > 1 else None
    levels = rng.integers(0, evidence.levels, evidence.levels)
    iid_levels = rng.integers(0, iid.levels, iid.levels)
    return seeds, levels, iid_levels


def percentile(samples: list[Figures], q: float) -> Figures:
    """A ``Figures`` whose every number is the ``q``-th percentile of that number over ``samples``."""

    def pick(values):
        first = values[0]
        if isinstance(first, dict):
            return {k: pick([v[k] for v in values]) for k in first}
        if isinstance(first, float):
            finite = [v for v in values if np.isfinite(v)]
            return float(np.percentile(finite, q)) if finite else float("nan")
        return first

    return Figures(**{f.name: pick([getattr(s, f.name) for s in samples]) for f in dataclasses.fields(Figures)})


def judge(evidence: Evidence, iid: Evidence, scopes: dict[str, tuple[str, ...]], intended: str, tol: Tolerances,
          resamples: int = RESAMPLES, seed: int = 0) -> tuple[list[Verdict], dict[str, tuple[Figures, Figures]]]:
    """Every partition's verdict, with probabilities from ``resamples`` resamples (0: the point decision alone),
    and the 95% bounds of every figure over the same resamples (subset -> (low, high))."""
    rng = np.random.default_rng(seed)
    counts = {p: {} for p in scopes}
    samples = {"all": [], "disambiguating": [], "iid": []}
    for _ in range(resamples):
        seeds, levels, iid_levels = _resample(rng, evidence, iid)
        base = case(evidence, iid, "", (), intended, scopes, seeds, levels, iid_levels)
        for name, got in (("all", base.all), ("disambiguating", base.dis), ("iid", base.iid)):
            samples[name].append(got)
        for partition, scope in scopes.items():
            kind = decide(base._replace(partition=partition, scope=scope), tol).kind
            counts[partition][kind] = counts[partition].get(kind, 0) + 1
    base = case(evidence, iid, "", (), intended, scopes)
    verdicts = []
    for partition, scope in scopes.items():
        point = base._replace(partition=partition, scope=scope)
        decision = decide(point, tol)
        tally = counts[partition] or {decision.kind: 1}
        total = sum(tally.values())
        candidates = dict(sorted(((k, n / total) for k, n in tally.items()), key=lambda kv: -kv[1]))
        leading, probability = next(iter(candidates.items()))
        shown = leading if probability >= tol.confidence else INCONCLUSIVE
        verdicts.append(Verdict(
            partition=partition, reward_scope=tuple(scope), kind=shown, probability=probability,
            candidates=candidates, row=decision.row, inferred_goal=decision.inferred_goal if shown == leading
            and leading == decision.kind else None, split=split(point), margins=decision.margins,
            explanation=explain(point, decision, shown, candidates, tol)))
    points = {"all": base.all, "disambiguating": base.dis, "iid": base.iid}
    bounds = {name: widen_rates(points[name], percentile(got, 2.5), percentile(got, 97.5))
              for name, got in samples.items() if got}
    return verdicts, bounds


RATES = ("outcomes", "chance", "reached", "catastrophes", "r_optimal_catastrophes", "harms", "r_optimal_harms")


def widen_rates(point: Figures, low: Figures, high: Figures) -> tuple[Figures, Figures]:
    """Rate bounds at least as wide as the Wilson interval over the subset's levels: per-level probabilities of
    exactly 0 or 1 on every diagnosed level still leave the rate on unseen levels uncertain."""
    lows, highs = {}, {}
    for name in RATES:
        lows[name], highs[name] = {}, {}
        for key, rate in getattr(point, name).items():
            w_low, w_high = wilson(rate, point.levels) if point.levels and rate == rate else (rate, rate)
            lows[name][key] = min(getattr(low, name)[key], w_low)
            highs[name][key] = max(getattr(high, name)[key], w_high)
    return dataclasses.replace(low, **lows), dataclasses.replace(high, **highs)


def _fmt(x: float) -> str:
    return f"{x + 0.0:.3f}" if abs(x) >= 5e-4 else "0"


def explain(point: Case, decision, shown: str, candidates: dict[str, float], tol: Tolerances) -> str:
    """The verdict in words: which row decided, the deciding figures against their thresholds, the uncertainty."""
    row = next(r for r in TABLE if r.id == decision.row)
    head = f"{shown.capitalize()} under partition '{point.partition}'."
    if shown == INCONCLUSIVE:
        top = list(candidates.items())[:2]
        head += (" Resampling the levels (and seeds) gives " + " or ".join(f"{k} ({p:.0%})" for k, p in top)
                 + f", neither with the {tol.confidence:.0%} a verdict needs. On the evidence as it is:")
    elif len(candidates) > 1 or next(iter(candidates.values())) < 1.0:
        head += f" Probability {next(iter(candidates.values())):.0%} over resampled levels and seeds."
    says = row.says
    if decision.inferred_goal and decision.row in ("inner.goal", "capability.lapse", "capability.intended"):
        says += f" The goal that best explains it: '{decision.inferred_goal}'."
    margins = "; ".join(f"{m.figure} {_fmt(m.value)} {m.relation} {_fmt(m.threshold)}" for m in decision.margins)
    share = point.dis.share
    where = (f" The goals diverge on {share:.0%} of these levels; goal-related figures are read there."
             if 0 < share < 1 else "")
    inside, outside = split(point)
    split_text = (f" The U shortfall splits {inside:.0%} into terms the reward is responsible for and "
                  f"{outside:.0%} into terms left to the training process." if inside + outside > 0 else "")
    return f"{head} {says} Deciding figures: {margins or 'none'}.{where}{split_text}"
