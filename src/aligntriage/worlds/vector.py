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


def reset_from_pool(world: World, levels, key: jax.Array):
    """A fresh episode on a uniformly chosen level of the pool."""
    k_pick, k_reset = jax.random.split(key)
    idx = jax.random.randint(k_pick, (), 0, pool_size(levels))
    return world.reset(k_reset, jax.tree.map(lambda leaf: leaf[idx], levels))


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
