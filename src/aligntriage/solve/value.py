"""Value iteration on an enumerated MDP: hard (discounted) and soft/Boltzmann with a temperature.

Convention, pinned by a test: V(s) = sum_t gamma^t r_t with the first reward undiscounted, so the discounted
return of a rollout of the optimal policy from the initial state equals V[0]. A transition into a terminal state
(or one flagged in ``ends``, e.g. "goal achieved" for a goal's own MDP) collects its reward and stops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aligntriage.solve.enumerate import MDP


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


def solve(
    mdp: MDP,
    reward: np.ndarray,
    gamma: float = 0.99,
    mask: np.ndarray | None = None,
    ends: np.ndarray | None = None,
    temperature: float | None = None,
    tol: float = 1e-7,
    max_iter: int = 20_000,
) -> Solution:
    """Optimal (``temperature=None``) or soft-optimal values and policy within the allowed actions ``mask``.

    The hard policy spreads probability evenly over every optimal action; the soft policy is softmax(Q / T).
    """
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must be in [0, 1), got {gamma}")
    num_states, num_actions = mdp.next_state.shape
    allowed = np.ones(num_actions, bool) if mask is None else np.asarray(mask, bool)
    reward = np.where(mdp.terminal[:, None], 0.0, reward).astype(np.float64)
    discount = gamma * _continuation(mdp, ends)
    value = np.zeros(num_states)
    blocked = np.where(allowed, 0.0, -np.inf)[None, :]
    for iteration in range(1, max_iter + 1):
        q = reward + discount * value[mdp.next_state] + blocked
        if temperature is None:
            new = q.max(axis=1)
        else:
            top = q.max(axis=1, keepdims=True)
            new = (top + temperature * np.log(np.exp((q - top) / temperature).sum(axis=1, keepdims=True)))[:, 0]
        new = np.where(mdp.terminal, 0.0, new)
        delta = np.abs(new - value).max()
        value = new
        if delta < tol:
            break
    q = reward + discount * value[mdp.next_state] + blocked
    q = np.where(mdp.terminal[:, None] & allowed[None, :], 0.0, q)
    if temperature is None:
        best = q >= q.max(axis=1, keepdims=True) - 1e-9
        policy = best / best.sum(axis=1, keepdims=True)
    else:
        logits = (q - q.max(axis=1, keepdims=True)) / temperature
        policy = np.exp(logits)
        policy /= policy.sum(axis=1, keepdims=True)
    return Solution(value=value, q=q, policy=policy, iterations=iteration)
