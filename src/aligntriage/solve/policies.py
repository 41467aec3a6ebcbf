"""Scripted reference policies, as tables over a batch of enumerated levels.

``random`` (uniform over the affordance set), ``r-optimal`` (optimal for R within the affordances),
``u-optimal`` (optimal for the sum of U's terms), and ``goal:NAME`` (optimal for one candidate goal) let users see
every verdict without training anything. Any of them with ``@EPS`` appended (``goal:coin@0.5``) acts uniformly at
random with probability EPS instead: a sloppy pursuer of the same goal, the kind of agent a short training leaves.
"""

from __future__ import annotations

import numpy as np

from aligntriage.errors import AligntriageError, UnknownName
from aligntriage.scenario import Scenario
from aligntriage.solve.enumerate import MDPBatch
from aligntriage.solve.value import Episode, Schedule, solve


def scripted_names(scenario: Scenario) -> list[str]:
    return ["random", "r-optimal", "u-optimal"] + [f"goal:{name}" for name in scenario.goals]


def split_noise(name: str) -> tuple[str, str | None]:
    """``goal:coin@0.5`` -> (``goal:coin``, ``0.5``); a name without ``@`` has no noise (None)."""
    base, at, noise = name.rpartition("@")
    return (base, noise) if at else (name, None)


def total_utility(batch: MDPBatch, terms=None) -> np.ndarray:
    names = list(batch.utility) if terms is None else list(terms)
    return sum((batch.utility[name] for name in names), np.zeros_like(batch.reward))


def goal_ends(scenario: Scenario, batch: MDPBatch, goal: str) -> np.ndarray | None:
    """The transitions that end a goal's own MDP: reaching a one-shot goal ends its pursuit."""
    return batch.goal_achieved[goal] if scenario.goal(goal).terminal else None


def goal_solution(scenario: Scenario, batch: MDPBatch, goal: str, mask, episode: Episode, temperature=None):
    return solve(batch, batch.goal_reward[goal], episode, mask=mask, ends=goal_ends(scenario, batch, goal),
                 temperature=temperature)


def uniform_table(batch: MDPBatch, mask: np.ndarray) -> np.ndarray:
    """The uniform-random policy over the allowed actions, at every state."""
    mask = np.asarray(mask, np.float64)
    return np.broadcast_to(mask / mask.sum(), (batch.num_states, mask.size)).copy()


def scripted_table(name: str, scenario: Scenario, batch: MDPBatch, mask: np.ndarray, episode: Episode) -> Schedule:
    """The (time-indexed) policy of a scripted name restricted to the affordance mask."""
    base, noise = split_noise(name)
    if noise is not None:
        try:
            eps = float(noise)
        except ValueError:
            eps = -1.0
        if not 0.0 <= eps <= 1.0:
            raise AligntriageError(f"policy '{name}': the noise after '@' must be a number in [0, 1], got '{noise}'")
        uniform = uniform_table(batch, mask)
        return scripted_table(base, scenario, batch, mask, episode).map(lambda t: (1.0 - eps) * t + eps * uniform)
    if name == "random":
        return Schedule.stationary(uniform_table(batch, mask))
    if name == "r-optimal":
        return solve(batch, batch.reward, episode, mask=mask).policy
    if name == "u-optimal":
        return solve(batch, total_utility(batch), episode, mask=mask).policy
    if name.startswith("goal:") and name[5:] in scenario.goals:
        return goal_solution(scenario, batch, name[5:], mask, episode).policy
    raise UnknownName("policy", name, scripted_names(scenario), f"scenario '{scenario.name}'")
