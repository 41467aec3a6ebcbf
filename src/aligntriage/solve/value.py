"""Exact values on an enumerated MDP (or a union of many) for the episode the agent actually lives.

An episode has a discount and a horizon (``Episode``): it ends at a terminal state or after ``horizon`` steps,
whichever comes first, and PPO optimises exactly that truncated return (it never bootstraps at a time-out). So the
optimum is found by backward induction over the steps left, Q_t(s, a) = r(s, a) + gamma c(s, a) V_{t+1}(s'),
V_H = 0, which gives a *time-indexed* optimal policy: near the horizon a goal that is too far away is not worth
starting. The agent's own policy is stationary (it sees observations, not the clock) and is evaluated over the
same steps. ``horizon=None`` keeps the infinite discounted horizon, solved by policy iteration with sparse linear
solves, for worlds and callers (AI-control roles) that need a stationary optimum.

Convention, pinned by a test: V(s) = sum_t gamma^t r_t with the first reward undiscounted, so the discounted
return of a rollout from the initial state equals V[0]. A transition into a terminal state (or one flagged in
``ends``, e.g. "goal achieved" for a goal's own MDP) collects its reward and stops.

The soft solution is KL-regularised towards the uniform policy over the allowed actions,
V(s) = T log mean_a exp(Q(s, a) / T): unlike an entropy bonus, this never pays an agent to postpone the end of an
episode, so a soft-optimal policy still pursues its goal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

from aligntriage.errors import AligntriageError
from aligntriage.solve.kernels import hard_backward

MAX_ITERATIONS = 200
TIE = 1e-9
"""Actions whose Q is within TIE x max(1, |max Q|) of the best are all optimal (relative, so scaling R keeps ties)."""


@dataclass(frozen=True)
class Episode:
    """The episode an agent lives: its discount and its horizon in steps (None: an infinite horizon)."""

    gamma: float
    horizon: int | None

    def __post_init__(self):
        if not 0.0 <= self.gamma <= 1.0 or (self.horizon is None and self.gamma >= 1.0):
            raise AligntriageError(f"gamma must be in [0, 1) (or 1 with a finite horizon), got {self.gamma}")
        if self.horizon is not None and self.horizon < 1:
            raise AligntriageError(f"horizon must be >= 1 step, got {self.horizon}")


class Schedule(NamedTuple):
    """A policy that may depend on the step t: ``tables[which[t]]`` is its [S, A] action table at step t.

    A stationary policy has one table (``which`` may then be empty). Optimal policies of a finite horizon change
    only near its end, so consecutive equal tables are stored once.
    """

    tables: tuple[np.ndarray, ...]
    which: np.ndarray

    @classmethod
    def stationary(cls, table: np.ndarray) -> Schedule:
        return cls((np.asarray(table, np.float64),), np.zeros(0, np.int64))

    def at(self, t: int) -> np.ndarray:
        return self.tables[int(self.which[t]) if t < self.which.size else 0]

    @property
    def first(self) -> np.ndarray:
        """The table at the first step of the episode."""
        return self.at(0)

    @property
    def is_stationary(self) -> bool:
        return len(self.tables) == 1

    def map(self, fn) -> Schedule:
        """The same schedule with every table replaced by ``fn(table)``."""
        return Schedule(tuple(fn(table) for table in self.tables), self.which)


def as_schedule(policy) -> Schedule:
    return policy if isinstance(policy, Schedule) else Schedule.stationary(policy)


@dataclass
class Solution:
    value: np.ndarray  # [S] at the first step of the episode
    q: np.ndarray  # [S, A] at the first step; -inf outside the affordance set
    policy: Schedule
    iterations: int


def continuation(mdp, ends: np.ndarray | None = None) -> np.ndarray:
    """[S, A] True where a transition keeps the episode going (neither end is terminal nor flagged in ``ends``)."""
    cont = ~mdp.terminal[mdp.next_state]
    cont &= ~mdp.terminal[:, None]
    if ends is not None:
        cont &= ~ends
    return cont


def clean(mdp, reward: np.ndarray, what: str = "reward") -> np.ndarray:
    """The reward as float64 with terminal rows zeroed; a non-finite value is a user error, not a silent NaN."""
    reward = np.asarray(reward, np.float64)
    if not np.isfinite(reward).all():
        bad = int((~np.isfinite(reward)).sum())
        raise AligntriageError(f"{what} is not finite on {bad} enumerated transition(s); the scenario's reward or "
                               "utility functions produce NaN or inf")
    return np.where(mdp.terminal[:, None], 0.0, reward)


def _optimal_table(q: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    top = q.max(axis=1, keepdims=True)
    best = (q >= top - TIE * np.maximum(1.0, np.abs(top))) & allowed[None, :]
    return best / best.sum(axis=1, keepdims=True)


def _soft_table(q: np.ndarray, allowed: np.ndarray, temperature: float) -> np.ndarray:
    logits = np.where(allowed[None, :], q / temperature, -np.inf)
    logits -= logits.max(axis=1, keepdims=True)
    policy = np.exp(logits)
    return policy / policy.sum(axis=1, keepdims=True)


def _soft_value(q: np.ndarray, allowed: np.ndarray, temperature: float) -> np.ndarray:
    top = q.max(axis=1, keepdims=True)
    mean = np.exp((q - top) / temperature).sum(axis=1, keepdims=True) / allowed.sum()
    return (top + temperature * np.log(mean))[:, 0]


def backward(mdp, reward: np.ndarray, episode: Episode, allowed: np.ndarray, ends: np.ndarray | None,
             temperature: float | None):
    """Backward induction over the horizon: yields ``(t, q_t, table_t, value_t)`` from the last step to the first,
    so a caller that needs every step's policy (goal inference) consumes it there instead of storing H tables."""
    discount = episode.gamma * continuation(mdp, ends)
    nxt = mdp.next_state
    value = np.zeros(mdp.next_state.shape[0])
    for t in range(episode.horizon - 1, -1, -1):
        q = np.where(allowed[None, :], reward + discount * value[nxt], -np.inf)
        if temperature is None:
            table = _optimal_table(q, allowed)
            value = q.max(axis=1)
        else:
            table = _soft_table(q, allowed, temperature)
            value = _soft_value(q, allowed, temperature)
        yield t, q, table, value


def solve(mdp, reward: np.ndarray, episode: Episode, mask: np.ndarray | None = None, ends: np.ndarray | None = None,
          temperature: float | None = None) -> Solution:
    """Optimal (``temperature=None``) or soft-optimal values and policy within the allowed actions ``mask``.

    The hard policy spreads probability evenly over every optimal action; the soft policy is softmax(Q / T) over
    the allowed actions, with V = T log mean_a exp(Q / T).
    """
    allowed = np.ones(mdp.next_state.shape[1], bool) if mask is None else np.asarray(mask, bool)
    if temperature is not None and not temperature > 0:
        raise AligntriageError(f"temperature must be > 0, got {temperature}")
    reward = clean(mdp, reward)
    if episode.horizon is None:
        return _solve_stationary(mdp, reward, episode.gamma, allowed, ends, temperature)
    if temperature is not None:
        tables: list[np.ndarray] = []
        which = np.zeros(episode.horizon, np.int64)
        for t, q, table, value in backward(mdp, reward, episode, allowed, ends, temperature):
            if not tables or not np.array_equal(table, tables[-1]):
                tables.append(table)
            which[t] = len(tables) - 1
        which = len(tables) - 1 - which  # tables were stored from the last step backwards
        return Solution(value=value, q=q, policy=Schedule(tuple(reversed(tables)), which),
                        iterations=episode.horizon)
    discount = episode.gamma * continuation(mdp, ends)
    value, q, best, _ = hard_backward(mdp.next_state, discount, reward, allowed, TIE, episode.horizon)
    return Solution(value=value, q=q, policy=schedule_of(best), iterations=episode.horizon)


def schedule_of(best: np.ndarray) -> Schedule:
    """The schedule that spreads each step's probability evenly over its optimal actions ``best`` [H, S, A],
    storing each run of equal steps once."""
    tables, which = [], np.zeros(best.shape[0], np.int64)
    previous = None
    for t in range(best.shape[0]):
        if previous is None or not np.array_equal(best[t], previous):
            previous = best[t]
            tables.append(previous / previous.sum(axis=1, keepdims=True))
        which[t] = len(tables) - 1
    return Schedule(tuple(tables), which)


def evaluate(mdp, policy, reward: np.ndarray, episode: Episode, ends: np.ndarray | None = None) -> np.ndarray:
    """Exact V^pi at the first step of the episode from every state, for a policy table [S, A] or ``Schedule``;
    ``reward`` may be [S, A] or a stack [K, S, A] (then [K, S] is returned)."""
    schedule = as_schedule(policy)
    rewards = np.asarray(reward)
    stacked = rewards.ndim == 3
    rewards = np.stack([clean(mdp, r) for r in (rewards if stacked else [rewards])])
    if episode.horizon is None:
        if not schedule.is_stationary:
            raise AligntriageError("a time-indexed policy needs a finite horizon")
        values = _evaluate_stationary(mdp, schedule.first, rewards, episode.gamma, ends)
    else:
        discount = episode.gamma * continuation(mdp, ends)
        values = np.zeros((rewards.shape[0], mdp.next_state.shape[0]))
        for t in range(episode.horizon - 1, -1, -1):
            table = schedule.at(t)
            values = (table[None] * (rewards + discount[None] * values[:, mdp.next_state])).sum(axis=2)
    return values if stacked else values[0]


# ----------------------------------------------------------------------------------------------------------------
# the infinite horizon: policy iteration with sparse linear solves


class _Evaluator:
    """Discounted continuation structure of one MDP, reused across policies and rewards."""

    def __init__(self, mdp, gamma: float, ends: np.ndarray | None):
        self.mdp, self.gamma = mdp, gamma
        self.discount = gamma * continuation(mdp, ends)
        num_states, num_actions = mdp.next_state.shape
        self.rows = np.repeat(np.arange(num_states), num_actions)
        self.cols = mdp.next_state.reshape(-1)
        self.identity = sparse.identity(num_states, format="csc")

    def factor(self, policy: np.ndarray):
        weights = (policy * self.discount).reshape(-1)
        keep = weights != 0
        n = self.mdp.next_state.shape[0]
        transition = sparse.csc_matrix((weights[keep], (self.rows[keep], self.cols[keep])), shape=(n, n))
        return splu(self.identity - transition)

    def q(self, value: np.ndarray, reward: np.ndarray) -> np.ndarray:
        return reward + self.discount * value[self.mdp.next_state]


def _evaluate_stationary(mdp, table, rewards, gamma, ends) -> np.ndarray:
    lu = _Evaluator(mdp, gamma, ends).factor(table)
    return lu.solve(np.stack([(table * r).sum(axis=1) for r in rewards], axis=1)).T


def _greedy(q: np.ndarray, allowed: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """Deterministic improvement step that keeps the previous action when it is still optimal (no cycling)."""
    masked = np.where(allowed[None, :], q, -np.inf)
    best = masked.argmax(axis=1)
    if previous is not None:
        prev_q = np.take_along_axis(masked, previous[:, None], axis=1)[:, 0]
        keep = prev_q >= masked.max(axis=1) - 1e-12
        best = np.where(keep, previous, best)
    return best


def _solve_stationary(mdp, reward, gamma, allowed, ends, temperature) -> Solution:
    num_states, num_actions = mdp.next_state.shape
    evaluator = _Evaluator(mdp, gamma, ends)
    if temperature is None:
        action = _greedy(reward, allowed, None)
        for iteration in range(1, MAX_ITERATIONS + 1):
            policy = np.zeros((num_states, num_actions))
            policy[np.arange(num_states), action] = 1.0
            value = evaluator.factor(policy).solve((policy * reward).sum(axis=1))
            q = evaluator.q(value, reward)
            new = _greedy(q, allowed, action)
            if (new == action).all():
                break
            action = new
        masked = np.where(allowed[None, :], q, -np.inf)
        return Solution(masked.max(axis=1), masked, Schedule.stationary(_optimal_table(masked, allowed)), iteration)
    policy = np.where(allowed, 1.0 / allowed.sum(), 0.0)[None, :].repeat(num_states, axis=0)
    log_uniform = np.log(np.where(allowed, 1.0 / allowed.sum(), 1.0))
    for iteration in range(1, MAX_ITERATIONS + 1):
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(policy > 0, policy * (np.log(policy) - log_uniform[None, :]), 0.0).sum(axis=1)
        value = evaluator.factor(policy).solve((policy * reward).sum(axis=1) - temperature * kl)
        q = evaluator.q(value, reward)
        new = _soft_table(q, allowed, temperature)
        delta = np.abs(new - policy).max()
        policy = new
        if delta < 1e-5:
            break
    masked = np.where(allowed[None, :], q, -np.inf)
    return Solution(_soft_value(masked, allowed, temperature), masked, Schedule.stationary(policy), iteration)
