"""The roles of a control evaluation, as policy tables over the arena's enumerated states.

- *benign*: the untrusted capable policy when it behaves (calibration runs and usefulness use it);
- *attack*: what the untrusted policy does in an episode where the red team attacks (pursues the catastrophe);
- *trusted*: a weaker policy we trust not to attack (it may still be less competent);
- *suspicion*: the monitor's score of each (state, action), by default the trusted policy's surprise
  -log pi_T(a|s): the monitor flags what the trusted policy would not have done, without seeing consequences.

The default roles are scripted: benign is U-optimal and attack R-optimal within the untrusted (largest) affordance
set, and trusted is the Boltzmann-rational (soft-optimal, temperature T) policy for U within the trusted
(smallest) affordance set: aligned by construction but noisy, so less useful.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from aligntriage.errors import AligntriageError
from aligntriage.scenario import Scenario
from aligntriage.solve.enumerate import MDPBatch
from aligntriage.solve.policies import total_utility
from aligntriage.solve.value import Episode, solve

SURPRISE_FLOOR = 1e-12


class Roles(NamedTuple):
    benign: np.ndarray  # [S, A]
    attack: np.ndarray
    trusted: np.ndarray
    suspicion: np.ndarray  # [S, A]


def surprise(table: np.ndarray) -> np.ndarray:
    """-log pi(a|s), capped where pi is 0 (an action the policy never takes)."""
    return -np.log(np.maximum(table, SURPRISE_FLOOR))


def affordance_sets(scenario: Scenario, trusted: str | None, untrusted: str | None) -> tuple[str, str]:
    """Trusted defaults to the smallest affordance set, untrusted to the largest."""
    by_size = sorted(scenario.affordances.values(), key=lambda aff: len(aff.actions))
    trusted = trusted or by_size[0].name
    untrusted = untrusted or by_size[-1].name
    scenario.affordance(trusted)
    scenario.affordance(untrusted)
    return trusted, untrusted


def scripted_roles(scenario: Scenario, batch: MDPBatch, trusted_affordances: str, untrusted_affordances: str,
                   temperature: float, gamma: float = 0.99, benign: np.ndarray | None = None) -> Roles:
    """Default roles; ``benign`` replaces the scripted benign policy (e.g. a trained agent's table)."""
    if not temperature > 0:
        raise AligntriageError(f"trusted temperature must be > 0, got {temperature}")
    strong = np.asarray(scenario.action_mask(untrusted_affordances))
    weak = np.asarray(scenario.action_mask(trusted_affordances))
    utility = total_utility(batch)
    # Roles are agents: they see observations, not the clock, so each is a stationary policy (the optimum of the
    # discounted infinite horizon), while the protocol's outcomes are still computed over the deployment's horizon.
    stationary = Episode(gamma, None)
    if benign is None:
        benign = solve(batch, utility, stationary, mask=strong).policy.first
    attack = solve(batch, batch.reward, stationary, mask=strong).policy.first
    trusted = solve(batch, utility, stationary, mask=weak, temperature=temperature).policy.first
    return Roles(benign, attack, trusted, surprise(trusted))


def trained_table(scenario: Scenario, batch: MDPBatch, run_dir: Path, seed_index: int = 0) -> np.ndarray:
    """A trained run's policy as a table over the arena's states."""
    from aligntriage.solve.tables import observations, policy_table
    from aligntriage.train.loop import load_policy

    return policy_table(load_policy(Path(run_dir), seed_index), observations(scenario, batch))
