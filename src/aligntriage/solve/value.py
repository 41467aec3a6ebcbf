"""Exact values on an enumerated MDP (or a union of many): policy evaluation, optimal and soft-optimal solutions.

Convention, pinned by a test: V(s) = sum_t gamma^t r_t with the first reward undiscounted, so the discounted
return of a rollout of the optimal policy from the initial state equals V[0]. A transition into a terminal state
(or one flagged in ``ends``, e.g. "goal achieved" for a goal's own MDP) collects its reward and stops.

Policies are evaluated exactly by a sparse linear solve of (I - gamma P_pi) V = r_pi, and optima are found by
(soft) policy iteration, which converges in a handful of solves even where value iteration would need thousands
of sweeps (worlds without terminal states at gamma = 0.99). The soft solution is KL-regularised towards the
uniform policy over the allowed actions, V(s) = T log mean_a exp(Q(s, a) / T): unlike an entropy bonus, this
never pays an agent to postpone the end of an episode, so a soft-optimal policy still pursues its goal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

from aligntriage.solve.enumerate import MDP

MAX_ITERATIONS = 200


@dataclass
class Solution:
    value: np.ndarray  # [S]
    q: np.ndarray  # [S, A]; -inf outside the affordance set
    policy: np.ndarray  # [S, A] action probabilities
    iterations: int


def _continuation(mdp: MDP, ends: np.ndarray | None) -> np.ndarray:
    cont = ~mdp.terminal[mdp.next_state]
    cont &= ~mdp.terminal[:, None]
    if ends is not None:
        cont &= ~ends
    return cont


class _Evaluator:
    """Discounted continuation structure of one MDP, reused across policies and rewards."""

    def __init__(self, mdp: MDP, gamma: float, ends: np.ndarray | None):
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got {gamma}")
        self.mdp, self.gamma = mdp, gamma
        self.discount = gamma * _continuation(mdp, ends)
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


def _clean(mdp: MDP, reward: np.ndarray) -> np.ndarray:
    return np.where(mdp.terminal[:, None], 0.0, reward).astype(np.float64)


def evaluate(mdp: MDP, policy: np.ndarray, reward: np.ndarray, gamma: float = 0.99,
             ends: np.ndarray | None = None) -> np.ndarray:
    """Exact V^pi of a stochastic policy table [S, A]; ``reward`` may be [S, A] or a stack [K, S, A]."""
    evaluator = _Evaluator(mdp, gamma, ends)
    lu = evaluator.factor(policy)
    rewards = np.asarray(reward)
    stacked = rewards.ndim == 3
    rhs = np.stack([(policy * _clean(mdp, r)).sum(axis=1) for r in (rewards if stacked else [rewards])], axis=1)
    values = lu.solve(rhs)
    return values.T if stacked else values[:, 0]


def _greedy(q: np.ndarray, allowed: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """Deterministic improvement step that keeps the previous action when it is still optimal (no cycling)."""
    masked = np.where(allowed[None, :], q, -np.inf)
    best = masked.argmax(axis=1)
    if previous is not None:
        prev_q = np.take_along_axis(masked, previous[:, None], axis=1)[:, 0]
        keep = prev_q >= masked.max(axis=1) - 1e-12
        best = np.where(keep, previous, best)
    return best


def _soft_policy(q: np.ndarray, allowed: np.ndarray, temperature: float) -> np.ndarray:
    logits = np.where(allowed[None, :], q / temperature, -np.inf)
    logits -= logits.max(axis=1, keepdims=True)
    policy = np.exp(logits)
    return policy / policy.sum(axis=1, keepdims=True)


def solve(
    mdp: MDP,
    reward: np.ndarray,
    gamma: float = 0.99,
    mask: np.ndarray | None = None,
    ends: np.ndarray | None = None,
    temperature: float | None = None,
    tol: float = 1e-10,
) -> Solution:
    """Optimal (``temperature=None``) or soft-optimal values and policy within the allowed actions ``mask``.

    The hard policy spreads probability evenly over every optimal action; the soft policy is softmax(Q / T) over
    the allowed actions, with V = T log mean_a exp(Q / T).
    """
    num_states, num_actions = mdp.next_state.shape
    allowed = np.ones(num_actions, bool) if mask is None else np.asarray(mask, bool)
    evaluator = _Evaluator(mdp, gamma, ends)
    reward = _clean(mdp, reward)
    uniform = np.where(allowed, 1.0 / allowed.sum(), 0.0)[None, :].repeat(num_states, axis=0)
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
        best = masked >= masked.max(axis=1, keepdims=True) - 1e-9
        policy = best / best.sum(axis=1, keepdims=True)
        return Solution(value=masked.max(axis=1), q=masked, policy=policy, iterations=iteration)
    policy = uniform
    log_uniform = np.log(np.where(allowed, 1.0 / allowed.sum(), 1.0))
    for iteration in range(1, MAX_ITERATIONS + 1):
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(policy > 0, policy * (np.log(policy) - log_uniform[None, :]), 0.0).sum(axis=1)
        value = evaluator.factor(policy).solve((policy * reward).sum(axis=1) - temperature * kl)
        q = evaluator.q(value, reward)
        new = _soft_policy(q, allowed, temperature)
        delta = np.abs(new - policy).max()
        policy = new
        if delta < tol ** 0.5:
            break
    masked = np.where(allowed[None, :], q, -np.inf)
    top = masked.max(axis=1, keepdims=True)
    soft_value = (top + temperature * np.log(np.exp((masked - top) / temperature).sum(axis=1, keepdims=True)
                                             / allowed.sum()))[:, 0]
    return Solution(value=soft_value, q=masked, policy=policy, iterations=iteration)
