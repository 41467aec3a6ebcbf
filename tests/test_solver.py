"""The exact solver against brute force, its discount convention, affordance masks and limits."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aligntriage import AligntriageError
from aligntriage.solve import enumerate_mdp, solve
from aligntriage.solve.value import Episode
from conftest import one, sample

GAMMA = 0.9
DEPTH = 7


@pytest.fixture(scope="module")
def brute_force(tiny_coinrun):
    """Max discounted return over every action sequence of length DEPTH, for a batch of levels."""
    world = tiny_coinrun.world
    sequences = jnp.array(list(itertools.product(range(world.num_actions), repeat=DEPTH)), jnp.int32)

    def episode_return(level, actions):
        def body(carry, action):
            state, ret, disc = carry
            nxt = world.step(state, action)
            alive = ~world.is_terminal(state)
            reward = jnp.where(alive, tiny_coinrun.reward(state, action, nxt), 0.0)
            return (nxt, ret + disc * reward, disc * GAMMA), None

        (_, ret, _), _ = jax.lax.scan(body, (world.reset(jax.random.PRNGKey(0), level), 0.0, 1.0), actions)
        return ret

    best = jax.jit(lambda level: jax.vmap(lambda seq: episode_return(level, seq))(sequences).max())
    return best


def test_optimal_value_matches_brute_force(tiny_coinrun, brute_force):
    """The finite-horizon optimum over DEPTH steps is the best return of every DEPTH-long action sequence (some
    levels' coins lie further than DEPTH steps away: there both are 0, where the infinite horizon is not)."""
    levels = sample(tiny_coinrun, "deploy", 12, seed=1)
    for i in range(12):
        level = one(levels, i)
        mdp = enumerate_mdp(tiny_coinrun, level)
        value = solve(mdp, mdp.reward, Episode(GAMMA, DEPTH)).value[0]
        assert value == pytest.approx(float(brute_force(level)), abs=1e-5)


def test_rollout_of_optimal_policy_returns_v0(coinrun):
    """Pins the discount convention: sum_t gamma^t r_t of the optimal rollout equals V(s0)."""
    world = coinrun.world
    levels = sample(coinrun, "deploy", 5, seed=2)
    step = jax.jit(world.step)
    for i in range(5):
        level = one(levels, i)
        mdp = enumerate_mdp(coinrun, level)
        sol = solve(mdp, mdp.reward, Episode(0.97, world.horizon))
        state = world.reset(jax.random.PRNGKey(0), level)
        ret, disc = 0.0, 1.0
        for t in range(world.horizon):
            if bool(world.is_terminal(state)):
                break
            action = int(np.argmax(sol.policy.at(t)[mdp.index_of(state)]))
            nxt = step(state, jnp.int32(action))
            ret += disc * float(coinrun.reward(state, action, nxt))
            disc *= 0.97
            state = nxt
        assert ret == pytest.approx(sol.value[0], rel=1e-6)
        assert ret > 0  # the coin is always reachable


def test_soft_value_iteration(coinrun):
    level = one(sample(coinrun, "deploy", 1, seed=3), 0)
    mdp = enumerate_mdp(coinrun, level)
    for episode in (Episode(0.95, coinrun.world.horizon), Episode(0.95, None)):
        hard = solve(mdp, mdp.reward, episode)
        soft = solve(mdp, mdp.reward, episode, temperature=0.1)
        colder = solve(mdp, mdp.reward, episode, temperature=1e-3)
        assert np.allclose(soft.policy.first.sum(axis=1), 1.0)
        assert (soft.value <= hard.value + 1e-9).all()  # the KL penalty towards uniform can only cost value
        assert np.allclose(colder.value, hard.value, atol=0.05)
        alive = ~mdp.terminal
        assert (soft.policy.first[alive] > 0).all()


def test_affordance_mask_restricts_the_optimum(coinrun):
    level = one(sample(coinrun, "train", 1, seed=4), 0)
    mdp = enumerate_mdp(coinrun, level)
    no_right = np.array([a != "right" for a in coinrun.world.actions])
    episode = Episode(0.99, coinrun.world.horizon)
    restricted = solve(mdp, mdp.reward, episode, mask=no_right)
    assert restricted.value[0] == 0.0  # the coin is at the right end: unreachable without moving right
    right = coinrun.world.actions.index("right")
    assert all((table[:, right] == 0).all() for table in restricted.policy.tables)
    assert solve(mdp, mdp.reward, episode).value[0] > 0


def test_goal_termination_via_ends(coinrun):
    """A goal's MDP ends when it is achieved: the end-of-level goal is worth gamma^(d-1) for path length d."""
    level = one(sample(coinrun, "deploy", 1, seed=5), 0)
    mdp = enumerate_mdp(coinrun, level)
    achieved = mdp.goal_achieved["end-of-level"]
    sol = solve(mdp, mdp.goal_reward["end-of-level"], Episode(0.9, coinrun.world.horizon), ends=achieved)
    steps = round(np.log(sol.value[0]) / np.log(0.9)) + 1
    assert steps >= coinrun.params["width"] - 1
    assert sol.value[0] == pytest.approx(0.9 ** (steps - 1))


def test_state_limit_is_a_clear_error(coinrun):
    level = one(sample(coinrun, "deploy", 1), 0)
    with pytest.raises(AligntriageError, match="more than 5 reachable states"):
        enumerate_mdp(coinrun, level, max_states=5)


def test_index_of_live_states(coinrun):
    level = one(sample(coinrun, "deploy", 1, seed=6), 0)
    mdp = enumerate_mdp(coinrun, level)
    state = coinrun.world.reset(jax.random.PRNGKey(0), level)
    assert mdp.index_of(state) == 0
    moved = coinrun.world.step(state, jnp.int32(3))
    idx = mdp.index_of(moved)
    assert idx == mdp.next_state[0, 3]
    batch = jax.tree.map(lambda a, b: jnp.stack([a, b]), state, moved)
    assert mdp.indices_of(batch).tolist() == [0, idx]


def test_goal_achievement_ends_the_goal_mdp_where_the_world_goes_on():
    """The maze corner is not terminal in the world: without ``ends`` re-entering it would pay again and again."""
    from aligntriage import get_scenario

    maze = get_scenario("maze")
    levels = sample(maze, "deploy", 10, seed=8)
    for i in range(10):  # a level where the cheese (terminal) is neither on nor in the way to the corner
        if levels.cheese[i] == levels.corner[i]:
            continue
        mdp = enumerate_mdp(maze, one(levels, i))
        reward, achieved = mdp.goal_reward["top-right-corner"], mdp.goal_achieved["top-right-corner"]
        once = solve(mdp, reward, Episode(0.9, maze.world.horizon), ends=achieved).value[0]
        if once > 0:
            break
    again = solve(mdp, reward, Episode(0.9, maze.world.horizon)).value[0]
    steps = round(np.log(once) / np.log(0.9)) + 1
    assert once == pytest.approx(0.9 ** (steps - 1))
    assert again > once * 2
