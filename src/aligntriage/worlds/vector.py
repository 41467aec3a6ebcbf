"""Many episodes at once: level pools and an auto-resetting step, pure functions ready for vmap/scan/jit.

Levels are drawn into a *pool* up front (one vmapped call to the distribution's sampler); an episode that ends is
reset onto a random pool level. Resetting from a pool is a gather, so it costs nothing inside a scanned step even
for worlds whose level generation is expensive (mazes); training refreshes the pool between updates.
Only R leaves this module: the training process never sees U or the candidate goals.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from aligntriage.scenario import Scenario, World


class Transition(NamedTuple):
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array


def sample_levels(scenario: Scenario, dist: str, key: jax.Array, count: int):
    """``count`` levels of a named distribution, stacked along a leading axis."""
    sample = scenario.distribution(dist).sample
    return jax.vmap(sample)(jax.random.split(key, count))


def pool_size(levels) -> int:
    return jax.tree.leaves(levels)[0].shape[0]


def _key_words(key: jax.Array) -> jax.Array:
    """The uint32 words of a key, raw (``PRNGKey``) or typed (``jax.random.key``)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return key.reshape(-1).astype(jnp.uint32)


def mix32(x: jax.Array) -> jax.Array:
    """A 32-bit avalanche mixer (the "lowbias32" integer hash): every output bit depends on every input bit."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _hash(words: jax.Array, salt: jax.Array) -> jax.Array:
    h = mix32(salt.astype(jnp.uint32) * jnp.uint32(0x9E3779B9) + jnp.uint32(0x7F4A7C15))
    for i in range(words.shape[0]):
        h = mix32(h ^ words[i])
    return h


def pool_index(key: jax.Array, size: int) -> jax.Array:
    """A uniformly distributed index in ``[0, size)``, derived from ``key`` by a few integer ops.

    The key's words are already pseudo-random (keys come from ``split``/``fold_in``), so hashing them gives uniform
    bits without another run of the threefry cipher; on CPU each threefry call is a loop of kernel launches per
    batch, which costs more than the rest of a gridworld step. Modulo bias is below ``size / 2**32``.
    """
    return (_hash(_key_words(key), jnp.uint32(0)) % jnp.uint32(size)).astype(jnp.int32)


def pool_indices(key: jax.Array, count: int, size: int) -> jax.Array:
    """``count`` independent uniform indices in ``[0, size)`` from one key (no per-index key splitting)."""
    salts = jnp.arange(1, count + 1, dtype=jnp.uint32)
    return (_hash(_key_words(key), salts) % jnp.uint32(size)).astype(jnp.int32)


def reset_from_pool(world: World, levels, key: jax.Array):
    """A fresh episode on a uniformly chosen level of the pool.

    The level is picked with ``pool_index(key)``; ``world.reset`` gets ``fold_in(key, 1)``, an independent key
    (computed only by worlds whose reset reads its key: XLA drops it otherwise).
    """
    idx = pool_index(key, pool_size(levels))
    return world.reset(jax.random.fold_in(key, 1), jax.tree.map(lambda leaf: leaf[idx], levels))


def _ended(world: World, reward_fn, state, action, nxt, fresh):
    reward = reward_fn(state, action, nxt).astype(jnp.float32)
    terminated = world.is_terminal(nxt)
    truncated = (nxt.t >= world.horizon) & ~terminated
    done = terminated | truncated
    nxt = jax.tree.map(lambda new, old: jnp.where(done, new, old), fresh, nxt)
    return nxt, Transition(reward, terminated, truncated)


def auto_reset_step(world: World, reward_fn, levels, key: jax.Array, state, action: jax.Array):
    """One step of R-only interaction; an episode that terminates or hits the horizon restarts on a pool level.

    Returns the next state (already reset where the episode ended) and the transition's reward and end flags.
    One env: vmap it over a batch of states, actions and keys (``auto_reset_batch`` does a batch with one key).
    """
    nxt = world.step(state, action)
    return _ended(world, reward_fn, state, action, nxt, reset_from_pool(world, levels, key))


def auto_reset_batch(world: World, reward_fn, levels, key: jax.Array, states, actions: jax.Array):
    """``auto_reset_step`` over a leading batch axis of ``states`` and ``actions``, with one ``key`` for the batch.

    Same semantics (each ended episode restarts on an independent, uniformly random pool level); the level indices
    come from ``pool_indices(key, batch)`` instead of ``batch`` split keys, which saves a threefry pass per step.
    """
    count = actions.shape[0]
    idx = pool_indices(key, count, pool_size(levels))
    reset_keys = jax.random.split(jax.random.fold_in(key, 1), count)  # dropped by XLA unless world.reset reads it

    def one(state, action, i, k):
        nxt = world.step(state, action)
        fresh = world.reset(k, jax.tree.map(lambda leaf: leaf[i], levels))
        return _ended(world, reward_fn, state, action, nxt, fresh)

    return jax.vmap(one)(states, actions, idx, reset_keys)
