"""Exact forward propagation of probability mass through an enumerated MDP (or a union of levels).

Starting from each level's initial state, the mass of a policy's episode is pushed through ``next_state`` for the
episode's horizon. One pass gives, exactly and per level, what sampled episodes would only estimate:
- the discounted state-action occupancy, so the policy's value for ANY reward is a dot product with it;
- the outcome taxonomy: which of several events happens first (in a priority order), else whether the episode
  terminated early or timed out;
- the probability that each of several events happens at least once (a catastrophe, a goal reached);
- optionally the undiscounted visitation of every state at every step (what goal inference weighs).

A time-indexed policy (a finite-horizon optimum, near-deterministic) pushes only the states holding mass at each
step, a few cells per level; a stationary one (an agent, the uniform-random reference) is one sparse
matrix-vector product per step and tracked mass.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.sparse import csr_matrix

from aligntriage.solve.value import Episode, as_schedule, continuation


class Flow(NamedTuple):
    occupancy: np.ndarray  # [S, A]: sum_t gamma^t P(s_t = s, a_t = a, episode alive)
    first: np.ndarray | None  # [L, E + 2]: first event e, then "terminated early", "timed out"
    ever: np.ndarray | None  # [L, K]: P(event k happens at least once)
    visits: np.ndarray | None  # [H, S]: P(s_t = s, episode alive), when asked for

    def per_level(self, batch, reward: np.ndarray) -> np.ndarray:
        """The policy's exact value of ``reward`` [S, A] (or a stack [K, S, A]) from each level's start."""
        reward = np.asarray(reward)
        if reward.ndim == 3:
            return np.stack([self.per_level(batch, r) for r in reward])
        totals = (self.occupancy * np.where(batch.terminal[:, None], 0.0, reward)).sum(axis=1)
        level = _level_of_state(batch)
        return np.bincount(level, totals, minlength=int(level.max()) + 1)


def first_index(events: np.ndarray) -> np.ndarray:
    """[S, A] index of the first True of ``events`` [E, S, A] in priority order, -1 where none is."""
    if events.shape[0] == 0:
        return np.full(events.shape[1:], -1, np.int64)
    hit = events.any(axis=0)
    return np.where(hit, events.argmax(axis=0), -1)


def propagate(batch, policy, episode: Episode, first: np.ndarray | None = None, ever: np.ndarray | None = None,
              ends: np.ndarray | None = None, record_visits: bool = False, sparse: bool = True) -> Flow:
    """Push each level's episode mass through the union MDP for ``episode.horizon`` steps under ``policy``.

    Args:
      batch: an ``MDPBatch`` (or an ``MDP``, one level).
      policy: an [S, A] table or a time-indexed ``Schedule``.
      episode: discount and horizon (finite).
      first: [E, S, A] events in priority order for the outcome taxonomy (None: skip it).
      ever: [K, S, A] events whose at-least-once probability is wanted (None: skip it).
      ends: [S, A] transitions that end the episode besides terminal states (a goal's own MDP).
      record_visits: also return the [H, S] visitation.
      sparse: propagate a stationary policy by sparse matrix-vector products (the same figures to rounding, much
        faster for a policy that spreads its mass); False keeps the per-state loop's arithmetic to the bit.

    Returns:
      A ``Flow``.
    """
    schedule = as_schedule(policy)
    num_states, num_actions = batch.next_state.shape
    level = _level_of_state(batch)
    num_levels = int(level.max()) + 1 if level.size else 0
    cont = continuation(batch, ends)
    nxt = batch.next_state
    start = np.zeros(num_states)
    initial = _initial(batch)
    start[initial] = (~batch.terminal[initial]).astype(np.float64)
    ever = None if ever is None else np.asarray(ever, bool)
    if sparse and schedule.is_stationary:
        return _propagate_stationary(batch, schedule.first, episode, start, cont, level, num_levels, first, ever,
                                     record_visits)
    occupancy = np.zeros((num_states, num_actions))
    visits = np.zeros((episode.horizon, num_states)) if record_visits else None
    mass = start.copy()
    winner = None if first is None else first_index(np.asarray(first, bool))
    categories = 0 if first is None else first.shape[0] + 2
    first_out = np.zeros(num_levels * categories)
    fresh = start.copy() if first is not None else None
    ever_out = None if ever is None else np.zeros((num_levels, ever.shape[0]))
    not_yet = None if ever is None else [start.copy() for _ in range(ever.shape[0])]
    weight = 1.0
    for t in range(episode.horizon):
        table = schedule.at(t)
        if visits is not None:
            visits[t] = mass
        live = np.flatnonzero(mass)
        if live.size == 0 and (fresh is None or not fresh.any()) and (not_yet is None or not any(
                n.any() for n in not_yet)):
            break
        flow = mass[live, None] * table[live]
        occupancy[live] += weight * flow
        mass = _push(nxt[live], cont[live], flow, num_states)
        if fresh is not None:
            rows = np.flatnonzero(fresh)
            flow = fresh[rows, None] * table[rows]
            won = winner[rows]
            hit = won >= 0
            cell = level[rows, None] * categories
            first_out += np.bincount((cell + won)[hit], flow[hit], minlength=first_out.size)
            ended = ~hit & ~cont[rows]
            first_out += np.bincount(np.broadcast_to(cell + categories - 2, ended.shape)[ended], flow[ended],
                                     minlength=first_out.size)
            fresh = _push(nxt[rows], cont[rows] & ~hit, flow, num_states)
        if not_yet is not None:
            for k, remaining in enumerate(not_yet):
                rows = np.flatnonzero(remaining)
                flow = remaining[rows, None] * table[rows]
                hit = ever[k][rows]
                ever_out[:, k] += np.bincount(np.broadcast_to(level[rows, None], hit.shape)[hit], flow[hit],
                                              minlength=num_levels)
                not_yet[k] = _push(nxt[rows], cont[rows] & ~hit, flow, num_states)
        weight *= episode.gamma
    first_levels = None
    if first is not None:
        first_levels = first_out.reshape(num_levels, categories)
        first_levels[:, -1] += np.bincount(level, fresh, minlength=num_levels)
    return Flow(occupancy, first_levels, ever_out, visits)


def _propagate_stationary(batch, table: np.ndarray, episode: Episode, start: np.ndarray, cont: np.ndarray,
                          level: np.ndarray, num_levels: int, first: np.ndarray | None, ever: np.ndarray | None,
                          record_visits: bool) -> Flow:
    """``propagate`` for a stationary policy, the same figures to rounding: one sparse transition matrix per tracked
    mass, one matrix-vector product per step. A stochastic agent (or the uniform-random reference) spreads its mass
    over most states, where the general loop's per-state bookkeeping cost seconds per call on a thousand levels."""
    num_states, num_actions = batch.next_state.shape
    source = np.repeat(np.arange(num_states), num_actions)
    target = batch.next_state.reshape(-1)

    def step_matrix(keep: np.ndarray) -> csr_matrix:
        """[S', S]: the mass a step moves from S to S' along the transitions ``keep`` [S, A] allows."""
        weights = (table * keep).reshape(-1)
        live = weights != 0
        return csr_matrix((weights[live], (target[live], source[live])), shape=(num_states, num_states))

    winner = None if first is None else first_index(np.asarray(first, bool))
    steps = [step_matrix(cont)]  # the episode's mass, then the masses not yet decided by the first event, each event
    if first is not None:
        steps.append(step_matrix(cont & (winner < 0)))
    steps += [step_matrix(cont & ~event) for event in (ever if ever is not None else [])]
    masses = [start.copy() for _ in steps]
    totals = [np.zeros(num_states) for _ in steps]  # discounted for the episode's mass, plain for the others
    visits = np.zeros((episode.horizon, num_states)) if record_visits else None
    weight = 1.0
    for t in range(episode.horizon):
        if not any(m.any() for m in masses):
            break
        if visits is not None:
            visits[t] = masses[0]
        for k, matrix in enumerate(steps):
            totals[k] += (weight if k == 0 else 1.0) * masses[k]
            masses[k] = matrix @ masses[k]
        weight *= episode.gamma

    def per_level(mass: np.ndarray, rate: np.ndarray) -> np.ndarray:
        """[L]: sum over each level's states of mass [S] times a per-state rate [S]."""
        return np.bincount(level, mass * rate, minlength=num_levels)

    first_levels = None
    if first is not None:
        rates = [(table * (winner == e)).sum(axis=1) for e in range(first.shape[0])]
        rates.append((table * ((winner < 0) & ~cont)).sum(axis=1))  # terminated early
        first_levels = np.stack([per_level(totals[1], r) for r in rates] + [per_level(masses[1], 1.0)], axis=1)
    ever_out = None
    if ever is not None:
        offset = 2 if first is not None else 1
        ever_out = np.zeros((num_levels, ever.shape[0]))
        for k, event in enumerate(ever):
            ever_out[:, k] = per_level(totals[offset + k], (table * event).sum(axis=1))
    return Flow(totals[0][:, None] * table, first_levels, ever_out, visits)


def _push(nxt: np.ndarray, keep: np.ndarray, flow: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(nxt[keep], flow[keep], minlength=size)


def _level_of_state(batch) -> np.ndarray:
    level = getattr(batch, "level_of_state", None)
    return np.zeros(batch.num_states, np.int64) if level is None else level


def _initial(batch) -> np.ndarray:
    initial = getattr(batch, "initial", None)
    return np.zeros(1, np.int64) if initial is None else np.asarray(initial)
