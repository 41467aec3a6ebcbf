"""Turn any policy into a table over enumerated states, and walk episodes through the enumerated MDPs.

Because every level is enumerated, an observation-based policy ``policy(obs) -> probs`` can be evaluated once on
every reachable state; from then on the diagnosis works with exact tables: exact values, exact optima, and
sampled episodes that are walks through ``next_state`` (one jitted scan over all episodes of all levels).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from aligntriage.scenario import Scenario
from aligntriage.solve.enumerate import MDPBatch

CHUNK = 8192


@functools.lru_cache(maxsize=32)
def _observer(scenario: Scenario):
    observe = scenario.world.observe

    def one(levels, state, level_idx):
        level = jax.tree.map(lambda leaf: leaf[level_idx], levels)
        return observe(state._replace(level=level))

    return jax.jit(jax.vmap(one, in_axes=(None, 0, 0)))


def _chunks(total: int):
    for start in range(0, total, CHUNK):
        yield start, min(total, start + CHUNK)


def _padded(tree, start, stop):
    size = stop - start
    return jax.tree.map(lambda leaf: np.concatenate([leaf[start:stop], np.repeat(leaf[start:start + 1],
                                                                               CHUNK - size, 0)]), tree)


def observations(scenario: Scenario, batch: MDPBatch) -> np.ndarray:
    """The observation of every enumerated state [S, ...] (computed in fixed-size chunks: one compilation)."""
    observer = _observer(scenario)
    parts = []
    for start, stop in _chunks(batch.num_states):
        states = _padded(batch.states, start, stop)
        idx = _padded(batch.level_of_state, start, stop)
        parts.append(np.asarray(observer(batch.levels, states, idx))[: stop - start])
    return np.concatenate(parts)


def policy_table(policy: Callable, obs: np.ndarray) -> np.ndarray:
    """Action probabilities of an observation-based policy at every state [S, A]. A policy with a true
    ``external`` attribute (numpy in, numpy out: Stable-Baselines3, torch) is called as is, never jitted."""
    if getattr(policy, "external", False):
        table = np.concatenate([np.asarray(policy(obs[a:b]), np.float64) for a, b in _chunks(obs.shape[0])])
        return table / table.sum(axis=1, keepdims=True)
    apply = jax.jit(policy)
    parts = []
    for start, stop in _chunks(obs.shape[0]):
        chunk = np.concatenate([obs[start:stop], np.repeat(obs[start:start + 1], CHUNK - (stop - start), 0)])
        parts.append(np.asarray(apply(jnp.asarray(chunk)))[: stop - start])
    table = np.concatenate(parts).astype(np.float64)
    return table / table.sum(axis=1, keepdims=True)


class Walks(NamedTuple):
    """Sampled episodes: ``state``/``action`` [E, T] global indices, ``alive`` [E, T] (step taken)."""

    level: np.ndarray  # [E]
    state: np.ndarray
    action: np.ndarray
    alive: np.ndarray
    final: np.ndarray  # [E] state after the last step


@functools.lru_cache(maxsize=8)
def _walker(horizon: int):
    def walk(next_state, terminal, log_table, starts, key):
        def body(carry, k):
            state, alive = carry
            action = jax.random.categorical(k, log_table[state])
            nxt = jnp.where(alive, next_state[state, action], state)
            return (nxt, alive & ~terminal[nxt]), (state, action, alive)

        keys = jax.random.split(key, horizon)
        (final, _), (states, actions, alive) = jax.lax.scan(body, (starts, ~terminal[starts]), keys)
        return states.T, actions.T, alive.T, final

    return jax.jit(walk)


def _bucket(n: int) -> int:
    return max(1024, 1 << (n - 1).bit_length())


def walk(batch: MDPBatch, table: np.ndarray, horizon: int, episodes_per_level: int, key: jax.Array) -> Walks:
    """Sample ``episodes_per_level`` episodes per level by following ``table`` through the union MDP."""
    size = _bucket(batch.num_states)
    pad = size - batch.num_states
    next_state = np.concatenate([batch.next_state, np.zeros((pad, batch.next_state.shape[1]), np.int64)])
    terminal = np.concatenate([batch.terminal, np.ones(pad, bool)])
    with np.errstate(divide="ignore"):
        log_table = np.log(np.concatenate([table, np.full((pad, table.shape[1]), 1.0 / table.shape[1])]))
    levels = np.repeat(np.arange(batch.num_levels), episodes_per_level)
    starts = batch.initial[levels]
    states, actions, alive, final = _walker(horizon)(
        jnp.asarray(next_state, jnp.int32), jnp.asarray(terminal), jnp.asarray(log_table, jnp.float32),
        jnp.asarray(starts, jnp.int32), key,
    )
    return Walks(levels, np.asarray(states), np.asarray(actions), np.asarray(alive), np.asarray(final))


def deterministic_walk(batch: MDPBatch, table: np.ndarray, horizon: int) -> Walks:
    """One episode per level taking the first most-probable action (used for optimal reference behaviour)."""
    greedy = np.zeros_like(table)
    greedy[np.arange(table.shape[0]), table.argmax(axis=1)] = 1.0
    return walk(batch, greedy, horizon, 1, jax.random.PRNGKey(0))
