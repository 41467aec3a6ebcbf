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
from aligntriage.solve.value import as_schedule

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
    def walk(next_state, terminal, log_tables, which, starts, key):
        def body(carry, step):
            state, alive = carry
            k, table = step
            action = jax.random.categorical(k, log_tables[table][state])
            nxt = jnp.where(alive, next_state[state, action], state)
            return (nxt, alive & ~terminal[nxt]), (state, action, alive)

        keys = jax.random.split(key, horizon)
        (final, _), (states, actions, alive) = jax.lax.scan(body, (starts, ~terminal[starts]), (keys, which))
        return states.T, actions.T, alive.T, final

    return jax.jit(walk)


def _bucket(n: int) -> int:
    return max(1024, 1 << (n - 1).bit_length())


def walk(batch: MDPBatch, policy, horizon: int, episodes_per_level: int, key: jax.Array) -> Walks:
    """Sample ``episodes_per_level`` episodes per level by following ``policy`` (an [S, A] table or a
    time-indexed ``Schedule``) through the union MDP: pictures of behaviour, never the evidence (which is exact)."""
    schedule = as_schedule(policy)
    size = _bucket(batch.num_states)
    pad = size - batch.num_states
    next_state = np.concatenate([batch.next_state, np.zeros((pad, batch.next_state.shape[1]), np.int64)])
    terminal = np.concatenate([batch.terminal, np.ones(pad, bool)])
    filler = np.full((pad, batch.next_state.shape[1]), 1.0 / batch.next_state.shape[1])
    with np.errstate(divide="ignore"):
        log_tables = np.log(np.stack([np.concatenate([table, filler]) for table in schedule.tables]))
    which = np.array([int(schedule.which[t]) if t < schedule.which.size else 0 for t in range(horizon)])
    levels = np.repeat(np.arange(batch.num_levels), episodes_per_level)
    starts = batch.initial[levels]
    states, actions, alive, final = _walker(horizon)(
        jnp.asarray(next_state, jnp.int32), jnp.asarray(terminal), jnp.asarray(log_tables, jnp.float32),
        jnp.asarray(which, jnp.int32), jnp.asarray(starts, jnp.int32), key,
    )
    return Walks(levels, np.asarray(states), np.asarray(actions), np.asarray(alive), np.asarray(final))
