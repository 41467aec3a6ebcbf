"""Batched enumeration: the MDPs of a batch of levels are exactly those of enumerating each level on its own, in
breadth-first discovery order, whatever the batch mixes, however it is chunked."""

import dataclasses

import jax
import numpy as np
import pytest

from aligntriage import AligntriageError, get_scenario
from aligntriage.solve import enumerate as enum
from aligntriage.solve import enumerate_levels, enumerate_mdp, stack_mdps
from aligntriage.worlds import jax_scenarios
from conftest import one, sample


def identical(a, b, path="mdp"):
    """Exact equality of two results, field by field: dtypes, shapes, values, dict keys in order, pytree types."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), path
        for f in dataclasses.fields(a):
            identical(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for key in a:
            identical(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            identical(x, y, f"{path}[{i}]")
    elif isinstance(a, tuple):  # state and level NamedTuples
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            identical(x, y, f"{path}.{a._fields[i] if hasattr(a, '_fields') else i}")
    elif isinstance(a, (np.ndarray, np.generic)):
        assert isinstance(b, (np.ndarray, np.generic)), path
        assert (a.dtype, a.shape) == (b.dtype, b.shape), (path, a.dtype, b.dtype, a.shape, b.shape)
        assert np.array_equal(a, b), path
    else:
        assert type(a) is type(b) and a == b, (path, a, b)


def bfs_reference(scenario, level):
    """Breadth-first search written from the definition: states numbered in the order they are first met, layer by
    layer, each layer's states in number order and each state's actions in order; terminal states not expanded."""
    expand = enum.expander(scenario)
    levels = jax.tree.map(lambda leaf: np.repeat(np.asarray(leaf)[None], enum.LEVEL_CHUNK, 0), level)
    init, init_ended = jax.device_get(enum._initial(scenario)(levels))
    found = [enum._take(init, slice(1))]  # the states, a batch per layer
    index = {enum._keys(found[0])[0]: 0}
    terminal = [bool(init_ended[0])]
    outcomes = {}  # state -> (next indices, reward, utility, goal reward, achieved)
    layer = [] if terminal[0] else [0]
    frontier = found[0]
    while layer:
        size = enum._bucket(len(layer))
        nxt, ended, *values = jax.device_get(expand(levels, np.zeros(size, np.int32), enum._pad(frontier, size)))
        flat = jax.tree.map(lambda leaf: leaf[: len(layer)].reshape((-1,) + leaf.shape[2:]), nxt)
        ended = ended[: len(layer)].reshape(-1)
        keys = enum._keys(flat)
        new, following = [], []
        for row, s in enumerate(layer):
            targets = []
            for pos in range(row * scenario.world.num_actions, (row + 1) * scenario.world.num_actions):
                if keys[pos] not in index:
                    index[keys[pos]] = len(index)
                    new.append(pos)
                    terminal.append(bool(ended[pos]))
                    if not ended[pos]:
                        following.append(index[keys[pos]])
                targets.append(index[keys[pos]])
            outcomes[s] = (targets, *[v[row] for v in values])
        found.append(enum._take(flat, np.array(new, np.int64)))
        frontier = enum._take(flat, np.array([p for p in new if not ended[p]], np.int64))
        layer = following
    return enum._concat(found), index, terminal, outcomes


def check_against_reference(scenario, mdp):
    states, index, terminal, outcomes = bfs_reference(scenario, mdp.level)
    assert mdp.index == index and list(mdp.index) == list(index)
    identical(mdp.states, states)
    assert mdp.terminal.tolist() == terminal
    for s in range(mdp.num_states):
        if s not in outcomes:
            assert terminal[s] and (mdp.next_state[s] == s).all() and (mdp.reward[s] == 0).all()
            continue
        targets, reward, utility, goal_reward, achieved = outcomes[s]
        assert mdp.next_state[s].tolist() == targets
        assert np.array_equal(mdp.reward[s], reward)
        for k, term in enumerate(scenario.utility):
            assert np.array_equal(mdp.utility[term][s], utility[:, k])
        for k, goal in enumerate(scenario.goals):
            assert np.array_equal(mdp.goal_reward[goal][s], goal_reward[:, k])
            assert np.array_equal(mdp.goal_achieved[goal][s], achieved[:, k])


def mixed(scenario, count=5):
    """``count`` training levels then ``count`` deployment levels in one stacked batch."""
    parts = [sample(scenario, dist, count, seed=11) for dist in ("train", "deploy")]
    return jax.tree.map(lambda *leaves: np.concatenate(leaves), *parts)


@pytest.mark.parametrize("name", jax_scenarios())
def test_batch_is_the_per_level_enumeration(name):
    scenario = get_scenario(name)
    levels = mixed(scenario)
    batch = enumerate_levels(scenario, levels)
    mdps = [enumerate_mdp(scenario, one(levels, i)) for i in range(batch.num_levels)]
    identical(batch, stack_mdps(mdps))
    for i, mdp in enumerate(mdps):
        identical(batch.mdp(i), mdp)
    sizes = np.diff(batch.offsets)
    for i in {int(np.argmin(sizes)), *np.flatnonzero(sizes <= 300).tolist()}:  # small levels against the definition
        check_against_reference(scenario, mdps[i])


@pytest.fixture(scope="module")
def maze():
    return get_scenario("maze")


def test_chunks_and_split_layers_change_nothing(maze, monkeypatch):
    """Levels of very different sizes (4 to 17 states), searched 3 levels at a time and 8 frontier states per call,
    give the same batch as one level at a time."""
    levels = mixed(maze)
    whole = stack_mdps([enumerate_mdp(maze, one(levels, i)) for i in range(10)])
    sizes = np.diff(whole.offsets)
    assert sizes.min() <= 5 and sizes.max() >= 15
    monkeypatch.setattr(enum, "LEVEL_CHUNK", 3)
    monkeypatch.setattr(enum, "MAX_ROWS", 8)
    identical(enumerate_levels(maze, levels), whole)


def test_a_level_that_starts_terminal_is_one_absorbing_state(coinrun):
    levels = sample(coinrun, "deploy", 3, seed=12)
    levels = levels._replace(exit=levels.exit.copy())
    levels.exit[1] = levels.start[1]  # level 1 ends where it starts
    batch = enumerate_levels(coinrun, levels)
    assert np.diff(batch.offsets)[1] == 1
    start = batch.offsets[1]
    assert batch.terminal[start] and (batch.next_state[start] == start).all() and (batch.reward[start] == 0).all()
    identical(batch, stack_mdps([enumerate_mdp(coinrun, one(levels, i)) for i in range(3)]))
    check_against_reference(coinrun, batch.mdp(1))


def test_state_limit_names_the_level(maze, monkeypatch):
    """One level over the limit, in the second chunk: the one-line error names its index in the batch."""
    levels = mixed(maze)
    sizes = np.diff(stack_mdps([enumerate_mdp(maze, one(levels, i)) for i in range(10)]).offsets)
    big, small = int(np.argmax(sizes)), np.flatnonzero(sizes < sizes.max())
    order = [*small[:4], big, *small[4:6]]
    monkeypatch.setattr(enum, "LEVEL_CHUNK", 3)
    monkeypatch.setattr(enum, "MAX_ROWS", 8)
    with pytest.raises(AligntriageError) as info:
        enumerate_levels(maze, jax.tree.map(lambda leaf: leaf[order], levels), max_states=int(sizes.max()) - 1)
    assert str(info.value) == (f"level 4 of scenario 'maze' has more than {sizes.max() - 1} reachable states; "
                               "use smaller levels or raise max_states")
