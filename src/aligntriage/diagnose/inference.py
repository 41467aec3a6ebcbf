"""Goal inference: how well each hypothesis's Boltzmann-rational policy predicts the agent's actions, exactly.

Hypotheses are the scenario's candidate goals (the intended one among them), the reward R itself, and the
uniform-random policy. For each, the soft-optimal policy of the episode (time-indexed: backward induction over the
horizon) scores the agent's action distribution at every state, weighted by how likely the agent's own episode is
to be there at that step (exact visitation, not sampled visits). Two choices keep the figure honest:
- only *informative* steps count: a state at a step where some hypothesis strictly prefers some allowed action.
  Where every hypothesis is indifferent (after a one-shot goal is reached, say) nothing can be learned, and
  counting such steps would dilute the per-step figure towards zero;
- the temperature is fitted on held-out levels: each level is scored at the temperature that fits the other half
  best (weighted by the episodes the hypothesis explains, see ``diagnose.figures``), so a flexible hypothesis
  cannot win by fitting the very levels it is judged on.
"""

from __future__ import annotations

import numpy as np

from aligntriage.diagnose.records import Inference
from aligntriage.scenario import Scenario
from aligntriage.solve.enumerate import MDPBatch
from aligntriage.solve.kernels import hard_backward, soft_scores
from aligntriage.solve.policies import goal_ends, uniform_table
from aligntriage.solve.value import TIE, Episode, Schedule, clean, continuation, evaluate

REWARD = "R"
RANDOM = "random"
DISCOVERED = "discovered"
"""The column of each seed's own discovered goal (its description is ``Inference.discovered``)."""


def hypotheses(scenario: Scenario, batch: MDPBatch) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, reward [S, A], ends) of every hypothesis that has a policy: each goal, then R itself."""
    found = [(name, batch.goal_reward[name], goal_ends(scenario, batch, name)) for name in scenario.goals]
    return found + [(REWARD, batch.reward, None)]


def _hard_passes(batch: MDPBatch, found, episode: Episode, allowed: np.ndarray):
    """[H, S] True where some hypothesis's hard optimum strictly prefers some allowed action at that step, and
    each hypothesis's optimal value at every level's start."""
    informative = np.zeros((episode.horizon, batch.num_states), bool)
    optima = []
    for _, reward, ends, _ in found:
        discount = episode.gamma * continuation(batch, ends)
        value, _, _, strict = hard_backward(batch.next_state, discount, clean(batch, reward), allowed, TIE,
                                            episode.horizon)
        informative |= strict
        optima.append(value[batch.initial])
    return informative, optima


def _value_range(batch: MDPBatch, reward, ends, episode: Episode, allowed: np.ndarray, best: np.ndarray) -> float:
    """Mean over levels of the optimum minus the uniform-random policy: the scale the temperature is relative to."""
    uniform = uniform_table(batch, allowed)
    bottom = evaluate(batch, uniform, reward, episode, ends)[batch.initial]
    return float(np.mean(best - bottom))


def infer(scenario: Scenario, batch: MDPBatch, policies: list[Schedule], visits: list[np.ndarray],
          mask: np.ndarray, episode: Episode, temperatures: tuple[float, ...],
          discovered: list[tuple[str, np.ndarray] | None] | None = None) -> list[Inference]:
    """One ``Inference`` per agent (seed), sharing every backward pass across seeds.

    Args:
      batch: the inference levels.
      policies: each seed's policy (within the affordances): stationary for an agent, time-indexed for a scripted
        optimum.
      visits: each seed's [H, S] exact visitation of those levels.
      mask: allowed actions.
      episode: discount and horizon.
      temperatures: the grid, relative to each hypothesis's value range.
      discovered: per seed, (description, reward [S, A]) of the goal discovery found for it, scored for that seed
        alone in the column ``DISCOVERED``.
    """
    allowed = np.asarray(mask, bool)
    found = [(name, reward, ends, None) for name, reward, ends in hypotheses(scenario, batch)]
    extra = [(DISCOVERED, reward, None, k) for k, got in enumerate(discovered or []) if got is not None
             for reward in [got[1]]]
    informative, optima = _hard_passes(batch, found + extra, episode, allowed)
    level = batch.level_of_state
    count = batch.num_levels
    weights = [v * informative for v in visits]  # [H, S] per seed
    log_random = np.log(1.0 / allowed.sum())
    steps = np.stack([np.bincount(level, w.sum(axis=0), minlength=count) for w in weights])  # [K, L]
    own = np.stack([np.bincount(level, _own(policy, w), minlength=count) for policy, w in zip(policies, weights)])
    columns = len(found) + (1 if extra else 0)
    grid = np.full((len(policies), count, columns, len(temperatures)), np.nan)
    for h, (_, reward, ends, owner) in enumerate(found + extra):
        column = min(h, len(found))
        seeds = list(range(len(policies))) if owner is None else [owner]
        reward = clean(batch, reward)
        scale = _value_range(batch, reward, ends, episode, allowed, optima[h])
        for j, relative in enumerate(temperatures):
            if scale <= 1e-12:  # nothing to pursue: the hypothesis is the uniform policy
                for k in seeds:
                    grid[k, :, column, j] = steps[k] * log_random
                continue
            discount = episode.gamma * continuation(batch, ends)
            stacked = np.stack([weights[k] for k in seeds], axis=1)  # [H, K, S]
            totals = soft_scores(batch.next_state, discount, reward, allowed, relative * scale, stacked,
                                 [policies[k] for k in seeds])
            for row, k in enumerate(seeds):
                grid[k, :, column, j] = np.bincount(level, totals[row], minlength=count)
    results = []
    names = tuple(name for name, _, _, _ in found) + ((DISCOVERED,) if extra else ()) + (RANDOM,)
    for k in range(len(policies)):
        random = np.repeat((steps[k] * log_random)[:, None, None], len(temperatures), axis=2)
        label = discovered[k][0] if discovered and k < len(discovered) and discovered[k] is not None else None
        results.append(Inference(names, np.concatenate([grid[k], random], axis=1), own[k], steps[k],
                                 np.asarray(temperatures, np.float64), label))
    return _merge_duplicates(results)


def _own(policy: Schedule, weights: np.ndarray) -> np.ndarray:
    """[S] the agent's expected log-probability of its own actions, summed over the weighted steps."""
    total = np.zeros(weights.shape[1])
    for t in range(weights.shape[0]):
        table = policy.at(t)
        with np.errstate(divide="ignore", invalid="ignore"):
            total += weights[t] * np.where(table > 0, table * np.log(table), 0.0).sum(axis=1)
    return total


def _merge_duplicates(results: list[Inference]) -> list[Inference]:
    """Drop R where it coincides with a candidate goal on every seed: two names for one hypothesis would split
    the posterior between them."""
    names = results[0].hypotheses
    r = names.index(REWARD)
    same = any(all(np.allclose(res.log_likelihood[:, r], res.log_likelihood[:, g], rtol=0, atol=1e-9)
                   for res in results) for g in range(r))
    if not same:
        return results
    keep = [i for i in range(len(names)) if i != r]
    return [Inference(tuple(names[i] for i in keep), res.log_likelihood[:, keep], res.own, res.steps,
                      res.temperatures, res.discovered) for res in results]
