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


def canonical_transitions(triples: np.ndarray, next_state: np.ndarray, gamma: float) -> np.ndarray:
    """Canonicalised reward on real transitions [S, A] from the reward on every triple [S, A, S]."""
    mean_from = triples.mean(axis=(1, 2))  # E_{A,S'} R(s, A, S')
    constant = triples.mean()
    real = np.take_along_axis(triples, next_state[:, :, None], axis=2)[:, :, 0]
    return real + gamma * mean_from[next_state] - mean_from[:, None] - gamma * constant


def pearson_distance(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.ravel(x) - np.mean(x), np.ravel(y) - np.mean(y)
    norm = np.sqrt((x * x).sum() * (y * y).sum())
    if norm < 1e-12:  # a constant reward carries no preference: identical to another constant, else undefined
        return 0.0 if np.allclose(x, 0) and np.allclose(y, 0) else 0.5 ** 0.5
    rho = float(np.clip((x * y).sum() / norm, -1.0, 1.0))
    return float(np.sqrt((1.0 - rho) / 2.0))


@functools.lru_cache(maxsize=32)
def _triple_evaluator(scenario: Scenario, terms: tuple[str, ...]):
    """Jitted (level, states) -> (R, sum of the named U terms) on every (s, a, s'') triple."""
    actions = jnp.arange(scenario.world.num_actions)

    def one(level, s, a, s2):
        s, s2 = s._replace(level=level), s2._replace(level=level)
        utility = sum((scenario.utility[name].value(s, a, s2).astype(jnp.float32) for name in terms),
                      jnp.float32(0.0))
        return scenario.reward(s, a, s2).astype(jnp.float32), utility

    over_next = jax.vmap(one, in_axes=(None, None, None, 0))
    over_action = jax.vmap(over_next, in_axes=(None, None, 0, None))
    over_state = jax.vmap(over_action, in_axes=(None, 0, None, None))
    return jax.jit(lambda level, states: over_state(level, states, actions, states))


def epic_reward_vs_utility(scenario: Scenario, mdps: list[MDP], terms: tuple[str, ...], gamma: float) -> float:
    """EPIC distance between R and the sum of ``terms`` of U, pooled over the transitions of ``mdps``."""
    evaluate = _triple_evaluator(scenario, tuple(terms))
    canon_r, canon_u = [], []
    for mdp in mdps:
        reward, utility = (np.asarray(x, np.float64) for x in evaluate(mdp.level, mdp.states))
        alive = ~mdp.terminal
        canon_r.append(canonical_transitions(reward, mdp.next_state, gamma)[alive])
        canon_u.append(canonical_transitions(utility, mdp.next_state, gamma)[alive])
    return pearson_distance(np.concatenate(canon_r), np.concatenate(canon_u))
