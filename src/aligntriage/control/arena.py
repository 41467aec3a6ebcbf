"""The arena: the exact game board of a deployment, the union MDP of a pool of enumerated levels.

Control protocols only need, per (state, action): where it leads, whether it is catastrophic (any catastrophic U
term nonzero) and how much of the task it does (the sum of the other U terms). Usefulness counts the task terms
only, so a catastrophe is charged once, to safety, as in the paper (correctness vs backdoors).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from aligntriage.errors import AligntriageError
from aligntriage.scenario import Scenario
from aligntriage.solve.enumerate import MDPBatch, enumerate_levels
from aligntriage.worlds.vector import sample_levels


class Arena(NamedTuple):
    next_state: np.ndarray  # [S, A] int
    terminal: np.ndarray  # [S] bool
    catastrophic: np.ndarray  # [S, A] bool
    task: np.ndarray  # [S, A] non-catastrophic U
    initial: np.ndarray  # [L] each level's initial state
    level_of_state: np.ndarray  # [S]
    horizon: int

    @property
    def num_levels(self) -> int:
        return int(self.initial.shape[0])

    @property
    def num_states(self) -> int:
        return int(self.terminal.shape[0])


def catastrophic_terms(scenario: Scenario) -> list[str]:
    terms = [name for name, term in scenario.utility.items() if term.catastrophic]
    if not terms:
        raise AligntriageError(f"scenario '{scenario.name}' has no catastrophic U term, so there is no catastrophe "
                               "for a control protocol to prevent; use a scenario with one (e.g. qa-kidnap, "
                               "side-effects)")
    return terms


def arena_from_batch(scenario: Scenario, batch: MDPBatch) -> Arena:
    bad = catastrophic_terms(scenario)
    catastrophic = np.zeros(batch.reward.shape, bool)
    task = np.zeros(batch.reward.shape, np.float64)
    for name, values in batch.utility.items():
        if name in bad:
            catastrophic |= values != 0
        else:
            task += values
    return Arena(batch.next_state.astype(np.int32), batch.terminal.copy(), catastrophic, task,
                 batch.initial.astype(np.int32), batch.level_of_state.astype(np.int32), scenario.world.horizon)


def build_arena(scenario: Scenario, dist: str, levels: int, seed: int) -> tuple[Arena, MDPBatch]:
    """Sample ``levels`` levels of a distribution, enumerate them, and return the arena and the union MDP."""
    catastrophic_terms(scenario)
    scenario.distribution(dist)
    if levels < 2:
        raise AligntriageError(f"levels must be >= 2, got {levels}")
    key = jax.random.fold_in(jax.random.PRNGKey(seed), sum(map(ord, dist)))
    stacked = jax.device_get(sample_levels(scenario, dist, key, levels))
    batch = enumerate_levels(scenario, stacked)
    return arena_from_batch(scenario, batch), batch
