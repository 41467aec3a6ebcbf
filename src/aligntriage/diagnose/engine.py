"""``diagnose``: evidence on a deployment distribution and on the training distribution, verdicts per partition,
and the threat-model reading, as one typed result that serialises to JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import jax
import numpy as np

from aligntriage.diagnose.evidence import Settings, gather
from aligntriage.diagnose.verdict import Tolerances, partition_verdict, threat_model
from aligntriage.errors import AligntriageError
from aligntriage.scenario import Scenario
from aligntriage.solve.enumerate import enumerate_mdp
from aligntriage.solve.policies import scripted_table
from aligntriage.solve.tables import observations, policy_table
from aligntriage.worlds.vector import sample_levels

Policy = Callable | str


@dataclass
class Diagnosis:
    scenario: str
    params: dict
    policy: str
    dist: str
    train_dist: str
    affordances: str | None
    levels: int
    seed: int
    settings: dict
    tolerances: dict
    evidence: dict  # {"deploy": ..., "train": ...}: the diagnosed distribution and the IID check
    verdicts: list[dict]
    threat_model: list[dict]
    per_seed_verdicts: list[dict] = field(default_factory=list)

    def verdict(self, partition: str) -> str:
        for v in self.verdicts:
            if v["partition"] == partition:
                return v["verdict"]
        raise AligntriageError(f"no verdict for partition '{partition}'")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=float)

    @classmethod
    def from_dict(cls, data: dict) -> Diagnosis:
        return cls(**data)


def _tables(scenario: Scenario, mdps, policies: Sequence[Policy], mask: np.ndarray, gamma: float):
    from aligntriage.solve.enumerate import stack_mdps

    batch = stack_mdps(mdps)
    obs = None
    tables = []
    for policy in policies:
        if isinstance(policy, str):
            tables.append(scripted_table(policy, scenario, batch, mask, gamma))
            continue
        if obs is None:
            obs = scenario.source.observations(batch) if scenario.source else observations(scenario, batch)
        table = policy_table(policy, obs) * mask
        tables.append(table / np.maximum(table.sum(axis=1, keepdims=True), 1e-12))
    return tables


def _levels(scenario: Scenario, dist: str, count: int, key) -> list:
    if scenario.source is not None:
        return scenario.source.mdps(dist, count, int(jax.random.randint(key, (), 0, 2**31 - 1)))
    levels = jax.device_get(sample_levels(scenario, dist, key, count))
    return [enumerate_mdp(scenario, jax.tree.map(lambda leaf: leaf[i], levels)) for i in range(count)]


def _prepare(scenario, policy, partitions, affordances, levels, tolerances, settings):
    policies = list(policy) if isinstance(policy, (list, tuple)) else [policy]
    if not policies:
        raise AligntriageError("no policy to diagnose")
    partitions = list(partitions or scenario.partitions)
    scopes = {name: tuple(scenario.partition(name).reward_scope) for name in partitions}
    if levels < 2:
        raise AligntriageError(f"levels must be >= 2, got {levels}")
    mask = np.asarray(scenario.action_mask(affordances), np.float64)
    return policies, partitions, scopes, mask, tolerances or Tolerances(), settings or Settings()


def _evidence(scenario, dist, policies, mask, scopes, levels, seed, settings) -> dict:
    """Evidence on one distribution; levels and episodes are keyed by (seed, distribution name)."""
    key = jax.random.fold_in(jax.random.PRNGKey(seed), sum(map(ord, dist)))
    k_levels, k_walk = jax.random.split(key)
    mdps = _levels(scenario, dist, levels, k_levels)
    tables = _tables(scenario, mdps, policies, mask, settings.gamma)
    return gather(scenario, mdps, tables, mask, scopes, k_walk, settings)


def diagnose_many(
    policy: Policy | Sequence[Policy],
    scenario: Scenario,
    dists: Sequence[str],
    partitions: Sequence[str] | None = None,
    affordances: str | None = None,
    levels: int = 200,
    seed: int = 0,
    train_dist: str = "train",
    tolerances: Tolerances | None = None,
    settings: Settings | None = None,
    policy_label: str | None = None,
) -> dict[str, Diagnosis]:
    """Diagnose one policy on several distributions, computing the training-distribution (IID) evidence once."""
    for dist in [*dists, train_dist]:
        scenario.distribution(dist)
    policies, partitions, scopes, mask, tolerances, settings = _prepare(
        scenario, policy, partitions, affordances, levels, tolerances, settings)
    train = _evidence(scenario, train_dist, policies, mask, scopes, levels, seed, settings)
    results = {}
    for dist in dists:
        deploy = train if dist == train_dist else _evidence(scenario, dist, policies, mask, scopes, levels, seed,
                                                             settings)
        verdicts = [partition_verdict(scenario, p, deploy, train, tolerances) for p in partitions]
        per_seed = []
        if len(policies) > 1:
            for s in range(len(policies)):
                seed_outcomes = {c: {"mean": rate, "n": 1}
                                 for c, rate in deploy["outcomes"]["disambiguating_per_seed"][s].items()}
                view_d = dict(deploy, relative_r_regret=deploy["relative_r_regret_per_seed"][s],
                              outcomes=dict(deploy["outcomes"], disambiguating=seed_outcomes))
                view_t = dict(train, relative_r_regret=train["relative_r_regret_per_seed"][s])
                per_seed.append({p: partition_verdict(scenario, p, view_d, view_t, tolerances)["verdict"]
                                 for p in partitions})
        label = policy_label or (policies[0] if isinstance(policies[0], str) else "trained")
        results[dist] = Diagnosis(
            scenario=scenario.name, params=dict(scenario.params), policy=label, dist=dist, train_dist=train_dist,
            affordances=affordances, levels=levels, seed=seed, settings=asdict(settings),
            tolerances=tolerances.to_dict(), evidence={"deploy": deploy, "train": train}, verdicts=verdicts,
            threat_model=threat_model(scenario, deploy), per_seed_verdicts=per_seed,
        )
    return results


def diagnose(
    policy: Policy | Sequence[Policy],
    scenario: Scenario,
    dist: str = "deploy",
    partitions: Sequence[str] | None = None,
    affordances: str | None = None,
    levels: int = 200,
    seed: int = 0,
    train_dist: str = "train",
    tolerances: Tolerances | None = None,
    settings: Settings | None = None,
    policy_label: str | None = None,
) -> Diagnosis:
    """Diagnose a policy (``policy(obs) -> probs``, a scripted name, or a list of either: one per seed) on
    ``dist``, with the same evidence on ``train_dist`` as the IID check."""
    return diagnose_many(policy, scenario, [dist], partitions, affordances, levels, seed, train_dist, tolerances,
                         settings, policy_label)[dist]
