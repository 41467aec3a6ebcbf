"""EPIC distance (Gleave et al. 2021) between two reward functions, exactly on enumerated levels.

Canonicalise each reward, C(R)(s,a,s') = R(s,a,s') + E[gamma R(s',A,S') - R(s,A,S') - gamma R(S,A,S')], with S, S'
uniform over a level's enumerated states and A uniform over actions, then take the Pearson distance
sqrt((1 - rho) / 2) of the canonical rewards over the level's real transitions (s, a, next(s, a)). The
canonicalisation removes potential shaping, and Pearson correlation removes positive rescaling.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from aligntriage.scenario import Scenario
from aligntriage.solve.enumerate import MDP


def canonical_from_means(real: np.ndarray, mean_from: np.ndarray, next_state: np.ndarray,
                         gamma: float) -> np.ndarray:
    """Canonicalised reward on real transitions [S, A] from the reward there and its mean E_{A,S'} R(s, A, S')."""
    return real + gamma * mean_from[next_state] - mean_from[:, None] - gamma * mean_from.mean()


def canonical_transitions(triples: np.ndarray, next_state: np.ndarray, gamma: float) -> np.ndarray:
    """Canonicalised reward on real transitions [S, A] from the reward on every triple [S, A, S]."""
    real = np.take_along_axis(triples, next_state[:, :, None], axis=2)[:, :, 0]
    return canonical_from_means(real, triples.mean(axis=(1, 2)), next_state, gamma)


def pearson_distance(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.ravel(x) - np.mean(x), np.ravel(y) - np.mean(y)
    norm = np.sqrt((x * x).sum() * (y * y).sum())
    if norm < 1e-12:  # a constant reward carries no preference: identical to another constant, else undefined
        return 0.0 if np.allclose(x, 0) and np.allclose(y, 0) else 0.5 ** 0.5
    rho = float(np.clip((x * y).sum() / norm, -1.0, 1.0))
    return float(np.sqrt((1.0 - rho) / 2.0))


ROWS_PER_CALL = 128
"""States s whose means over every (A, S') one compiled call computes: bounds memory by ROWS x A x S per call, so
a level of 10,000+ states no longer needs all S x A x S triples at once (it ran out of 24 GiB before)."""


@functools.lru_cache(maxsize=32)
def _evaluators(scenario: Scenario, terms: tuple[str, ...]):
    """Jitted (R, sum of the named U terms) on the real transitions, and their means over (A, S') per state."""
    actions = jnp.arange(scenario.world.num_actions)

    def one(level, s, a, s2):
        s, s2 = s._replace(level=level), s2._replace(level=level)
        utility = sum((scenario.utility[name].value(s, a, s2).astype(jnp.float32) for name in terms),
                      jnp.float32(0.0))
        return scenario.reward(s, a, s2).astype(jnp.float32), utility

    def real(level, states, nexts):  # nexts: the states' successors, [S, A]
        return jax.vmap(jax.vmap(one, in_axes=(None, None, 0, 0)), in_axes=(None, 0, None, 0))(
            level, states, actions, nexts)

    def row_means(level, rows, states, valid):  # states padded; valid marks the real ones
        triples = jax.vmap(jax.vmap(jax.vmap(one, in_axes=(None, None, None, 0)), in_axes=(None, None, 0, None)),
                           in_axes=(None, 0, None, None))(level, rows, actions, states)
        count = valid.sum() * actions.size
        return tuple((x * valid[None, None, :]).sum(axis=(1, 2)) / count for x in triples)

    return jax.jit(real), jax.jit(row_means)


def _canonical_pair(scenario: Scenario, terms: tuple[str, ...], mdp: MDP, gamma: float):
    """Canonicalised R and U-terms on one level's real transitions, exactly, ``ROWS_PER_CALL`` states at a time."""
    real_fn, means_fn = _evaluators(scenario, terms)
    count = mdp.num_states
    nexts = jax.tree.map(lambda leaf: leaf[mdp.next_state], mdp.states)
    real = [np.asarray(x, np.float64) for x in real_fn(mdp.level, mdp.states, nexts)]
    padded = max(ROWS_PER_CALL, -(-count // ROWS_PER_CALL) * ROWS_PER_CALL)
    index = np.minimum(np.arange(padded), count - 1)
    states = jax.tree.map(lambda leaf: leaf[index], mdp.states)
    valid = jnp.asarray(np.arange(padded) < count, jnp.float32)
    sums = [[], []]
    for start in range(0, padded, ROWS_PER_CALL):
        rows = jax.tree.map(lambda leaf: leaf[start:start + ROWS_PER_CALL], states)
        for out, part in zip(sums, means_fn(mdp.level, rows, states, valid)):
            out.append(np.asarray(part, np.float64))
    means = [np.concatenate(part)[:count] for part in sums]
    return tuple(canonical_from_means(r, m, mdp.next_state, gamma) for r, m in zip(real, means))


def epic_reward_vs_utility(scenario: Scenario, mdps: list[MDP], terms: tuple[str, ...], gamma: float) -> float:
    """EPIC distance between R and the sum of ``terms`` of U, pooled over the transitions of ``mdps``."""
    canon_r, canon_u = [], []
    for mdp in mdps:
        reward, utility = _canonical_pair(scenario, tuple(terms), mdp, gamma)
        alive = ~mdp.terminal
        canon_r.append(reward[alive])
        canon_u.append(utility[alive])
    return pearson_distance(np.concatenate(canon_r), np.concatenate(canon_u))
