"""The shared grid mechanics' fast forms equal plain ones written here, on every cell, action and wall layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aligntriage.worlds.grid import cell_code, channel_bits, move, union


def plain_move(pos, action, walls):
    """Row/column arithmetic: the step ``move`` takes by its table lookup."""
    height, width = walls.shape
    delta = jnp.array([[-1, 0], [1, 0], [0, -1], [0, 1]])[jnp.clip(action, 0, 3)]
    target = jnp.clip(pos // width + delta[0], 0, height - 1) * width + jnp.clip(pos % width + delta[1], 0, width - 1)
    return jnp.where((action < 4) & ~walls.reshape(-1)[target], target, pos).astype(jnp.int32)


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (5, 1), (6, 14)])
def test_move_is_the_plain_move_for_every_cell_action_and_wall_layout(shape):
    layouts = jax.random.bernoulli(jax.random.PRNGKey(0), 0.3, (8,) + shape)
    cells = jnp.arange(shape[0] * shape[1], dtype=jnp.int32)
    actions = jnp.arange(-2, 7, dtype=jnp.int32)  # the four moves, and actions past them that stay
    pos, act = (a.reshape(-1) for a in jnp.meshgrid(cells, actions, indexing="ij"))

    def both(walls):
        return (jax.vmap(lambda p, a: plain_move(p, a, walls))(pos, act),
                jax.vmap(lambda p, a: move(p, a, walls))(pos, act))

    plain, fast = jax.jit(jax.vmap(both))(layouts)
    assert np.array_equal(plain, fast) and fast.dtype == plain.dtype


CELLS, SLOTS, CHANNELS = 12, 6, 3
_planes = jax.jit(lambda items: items[:, None] == jnp.arange(CELLS)[None, :])
_code = jax.jit(lambda items, bits: channel_bits(cell_code(CELLS, items, bits), CHANNELS).astype(bool))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-1, CELLS - 1), min_size=SLOTS, max_size=SLOTS),
       st.lists(st.integers(0, CHANNELS - 1), min_size=SLOTS, max_size=SLOTS))
def test_union_and_cell_code_give_the_planes_they_stand_for(items, channels):
    items, channels = np.asarray(items, np.int32), np.asarray(channels)  # -1: an item that is nowhere
    planes = np.asarray(_planes(items))
    assert np.array_equal(union(jnp.asarray(planes[:4])), planes[:4].any(axis=0))
    expected = np.stack([planes[channels == c].any(axis=0) for c in range(CHANNELS)], axis=1)
    assert np.array_equal(_code(items, np.asarray(1 << channels, np.int32)), expected)
