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


def _mix32(x: jax.Array) -> jax.Array:
    """A 32-bit avalanche mixer (the "lowbias32" integer hash): every output bit depends on every input bit."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def pool_index(key: jax.Array, size: int) -> jax.Array:
    """A uniformly distributed index in ``[0, size)``, derived from ``key`` by a few integer ops.

    The key's words are already pseudo-random (keys come from ``split``/``fold_in``), so hashing them gives uniform
    bits without another run of the threefry cipher; on CPU each threefry call is a loop of kernel launches per
    batch, which cost more than the rest of a gridworld step. Modulo bias is below ``size / 2**32``.
    """
    words = _key_words(key)
    h = jnp.uint32(0x9E3779B9)
    for i in range(words.shape[0]):
        h = _mix32(h ^ words[i])
    return (h % jnp.uint32(size)).astype(jnp.int32)


def reset_from_pool(world: World, levels, key: jax.Array):
    """A fresh episode on a uniformly chosen level of the pool.

    The level is picked with ``pool_index(key)``; ``world.reset`` gets ``fold_in(key, 1)``, an independent key
    (computed only by worlds whose reset reads its key: XLA drops it otherwise).
    """
    idx = pool_index(key, pool_size(levels))
    return world.reset(jax.random.fold_in(key, 1), jax.tree.map(lambda leaf: leaf[idx], levels))


def auto_reset_step(world: World, reward_fn, levels, key: jax.Array, state, action: jax.Array):
    """One step of R-only interaction; an episode that terminates or hits the horizon restarts on a pool level.

    Returns the next state (already reset where the episode ended) and the transition's reward and end flags.
    """
    nxt = world.step(state, action)
    reward = reward_fn(state, action, nxt).astype(jnp.float32)
    terminated = world.is_terminal(nxt)
    truncated = (nxt.t >= world.horizon) & ~terminated
    fresh = reset_from_pool(world, levels, key)
    done = terminated | truncated
    nxt = jax.tree.map(lambda new, old: jnp.where(done, new, old), fresh, nxt)
    return nxt, Transition(reward, terminated, truncated)
