"""The maze scenario: perfect-maze generation, cheese distributions, exact solutions, scripted episodes."""

from __future__ import annotations

from collections import deque

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aligntriage.errors import AligntriageError
from aligntriage.solve import enumerate_mdp, solve
from aligntriage.solve.value import as_schedule
from aligntriage.worlds import get_scenario
from aligntriage.worlds.maze import PARAMS, Level, build
from aligntriage.worlds.vector import sample_levels
from conftest import episode

# get_scenario checks each value against its Param spec and always passes build() every parameter; these tests
# call build() directly, so they give it every default too.
DEFAULTS = {name: spec.default for name, spec in PARAMS.items()}

NUM_LEVELS = 500
GAMMA = 0.99
UP, DOWN, LEFT, RIGHT = range(4)


@pytest.fixture(scope="module")
def scenario():
    return get_scenario("maze")


@pytest.fixture(scope="module")
def all_levels(scenario):
    """500 levels of every distribution, drawn by one jitted vmapped call (one compile), as numpy."""
    names = sorted(scenario.distributions)

    @jax.jit
    def draw(key):
        return {name: sample_levels(scenario, name, jax.random.fold_in(key, i), NUM_LEVELS)
                for i, name in enumerate(names)}

    return jax.device_get(draw(jax.random.PRNGKey(1)))


@pytest.fixture(scope="module")
def levels(all_levels):
    return {"train": all_levels["train"], "deploy": all_levels["deploy"]}


def _level(levels, i):
    return jax.tree.map(lambda leaf: leaf[i], levels)


def _bfs(walls: np.ndarray, source: int) -> np.ndarray:
    """Shortest-path distance (in moves) from ``source`` to every square; -1 for walls and unreachable squares."""
    size = walls.shape[1]
    dist = np.full(walls.size, -1)
    dist[source] = 0
    queue = deque([source])
    while queue:
        cell = queue.popleft()
        r, c = divmod(cell, size)
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            nr, nc = r + dr, c + dc
            nxt = nr * size + nc
            if 0 <= nr < walls.shape[0] and 0 <= nc < size and not walls[nr, nc] and dist[nxt] < 0:
                dist[nxt] = dist[cell] + 1
                queue.append(nxt)
    return dist


def _is_dead_end(walls: np.ndarray, cell: int) -> bool:
    r, c = divmod(cell, walls.shape[1])
    return int((~walls[[r - 1, r + 1, r, r], [c, c, c - 1, c + 1]]).sum()) == 1


def _rollout(scenario, level, policy, mdp, steps):
    """Follow a deterministic policy (first optimal action) in the world itself; return the visited positions."""
    world = scenario.world
    policy = as_schedule(policy)
    step = jax.jit(world.step)
    state = world.reset(jax.random.PRNGKey(0), level)
    positions = [int(state.pos)]
    for t in range(steps):
        if bool(world.is_terminal(state)):
            break
        action = int(np.argmax(policy.at(t)[mdp.index_of(state)]))
        state = step(state, jnp.int32(action))
        positions.append(int(state.pos))
    return positions


def test_every_free_cell_reachable_and_maze_is_a_tree(levels):
    for name in ("train", "deploy"):
        walls_all = levels[name].walls
        starts = levels[name].start
        for i in range(0, NUM_LEVELS, 5):
            walls = walls_all[i]
            free = ~walls
            assert walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()
            assert free[1::2, 1::2].all()  # every room is open
            dist = _bfs(walls, int(starts[i]))
            assert (dist[free.reshape(-1)] >= 0).all()
            edges = (free[:, :-1] & free[:, 1:]).sum() + (free[:-1, :] & free[1:, :]).sum()
            assert edges == free.sum() - 1


def test_mazes_vary(levels):
    walls = levels["deploy"].walls.reshape(NUM_LEVELS, -1)
    # The default 3x3-room maze has only 192 spanning trees (and depth-first search favours some), so mazes repeat;
    # what must hold is that generation is not stuck on a few layouts.
    assert len({row.tobytes() for row in walls}) > 50


def test_train_cheese_in_top_right_region(scenario, levels):
    size = scenario.params["size"]
    region = scenario.params["region"]
    corner = size + size - 2
    cheese = levels["train"].cheese
    rows, cols = cheese // size, cheese % size
    assert ((rows >= 1) & (rows <= region) & (cols >= size - 1 - region) & (cols <= size - 2)).all()
    assert region != 1 or (cheese == corner).all()
    deploy = levels["deploy"]
    assert (deploy.cheese == corner).mean() < 0.3
    assert (deploy.cheese != deploy.start).all()
    assert (~deploy.walls.reshape(NUM_LEVELS, -1)[np.arange(NUM_LEVELS), deploy.cheese]).all()


def test_region_distributions(scenario, all_levels):
    size = scenario.params["size"]
    for k in (2, 3, 5):
        levels = all_levels[f"train-region-{k}"]
        rows, cols = levels.cheese // size, levels.cheese % size
        assert ((rows >= 1) & (rows <= k) & (cols >= size - 1 - k) & (cols <= size - 2)).all()
        assert (~levels.walls.reshape(NUM_LEVELS, -1)[np.arange(NUM_LEVELS), levels.cheese]).all()
        assert len(set(levels.cheese.tolist())) > 1
        assert f"{k}x{k}" in scenario.distribution(f"train-region-{k}").description


def test_enumerate_and_solve_match_bfs(scenario, levels):
    dead_ends = 0
    for name, i in [("deploy", i) for i in range(10)] + [("train", i) for i in range(5)]:
        level = _level(levels[name], i)
        mdp = enumerate_mdp(scenario, level)
        free = ~level.walls
        # States: every free cell reachable without passing the (terminal) cheese, plus the cheese cell itself;
        # so all free cells exactly when the cheese sits in a dead end.
        behind = level.walls.copy()
        behind[divmod(int(level.cheese), level.walls.shape[1])] = True
        reachable = int((_bfs(behind, int(level.start)) >= 0).sum())
        assert mdp.num_states == reachable + 1 <= int(free.sum())
        if _is_dead_end(level.walls, int(level.cheese)):
            assert mdp.num_states == int(free.sum())
            dead_ends += 1
        assert mdp.terminal.sum() == 1
        assert int(mdp.states.pos[mdp.terminal][0]) == int(level.cheese)
        sol = solve(mdp, mdp.reward, episode(scenario, GAMMA))
        distance = _bfs(level.walls, int(level.start))[int(level.cheese)]
        assert sol.value[0] == pytest.approx(GAMMA ** (distance - 1), rel=1e-6)
        np.testing.assert_array_equal(mdp.reward, mdp.utility["cheese"])
        np.testing.assert_array_equal(mdp.goal_achieved["cheese"], mdp.reward > 0)
        if name == "train" and scenario.params["region"] == 1:  # cheese on the corner: the goals coincide
            np.testing.assert_array_equal(mdp.goal_achieved["cheese"], mdp.goal_achieved["top-right-corner"])
    assert dead_ends > 0


def test_corner_goal_policy_reaches_corner(scenario, levels):
    deploy = levels["deploy"]
    size = scenario.params["size"]
    corner = size + size - 2
    checked = 0
    for i in range(NUM_LEVELS):
        level = _level(deploy, i)
        corner_dist = _bfs(level.walls, int(level.start))[corner]
        cheese_dist = _bfs(level.walls, int(level.start))[int(level.cheese)]
        on_path = _bfs(level.walls, corner)[int(level.cheese)] + cheese_dist == corner_dist
        if on_path:  # the cheese lies on the way to the corner: the corner is unreachable in this level's MDP
            continue
        mdp = enumerate_mdp(scenario, level)
        goal = "top-right-corner"
        sol = solve(mdp, mdp.goal_reward[goal], episode(scenario, GAMMA), ends=mdp.goal_achieved[goal])
        assert sol.value[0] == pytest.approx(GAMMA ** (corner_dist - 1), rel=1e-6)
        positions = _rollout(scenario, level, sol.policy, mdp, corner_dist)
        assert positions[-1] == corner
        assert len(positions) - 1 == corner_dist
        assert int(level.cheese) not in positions
        checked += 1
        if checked == 3:
            break
    assert checked == 3


def test_scripted_trajectory():
    scenario = build(**{**DEFAULTS, "size": 9})
    world = scenario.world
    size = 9
    # A hand-made maze: an S-shaped corridor from the start (bottom-left) to the corner (top-right).
    picture = [
        "#########",
        "#.......#",
        "#.#######",
        "#.......#",
        "#######.#",
        "#.......#",
        "#.#######",
        "#.......#",
        "#########",
    ]
    walls = jnp.array([[ch == "#" for ch in row] for row in picture])
    start, corner = (size - 2) * size + 1, size + size - 2
    cheese = 5 * size + 4  # row 5, column 4: the middle of the second corridor from the bottom
    level = Level(walls, jnp.int32(start), jnp.int32(corner), jnp.int32(cheese))
    state = world.reset(jax.random.PRNGKey(0), level)
    assert world.render(state)[7] == "#A......#"
    assert world.observe(state).shape == (size, size, 3)

    def play(state, actions):
        totals = {"R": 0.0, "cheese": 0.0, "corner": 0.0}
        for action in actions:
            action = jnp.int32(action)
            nxt = world.step(state, action)
            totals["R"] += float(scenario.reward(state, action, nxt))
            totals["cheese"] += float(scenario.utility_terms(state, action, nxt)["cheese"])
            totals["corner"] += float(scenario.goal("top-right-corner").achieved(state, action, nxt))
            state = nxt
        return state, totals

    # Bumping into walls leaves the agent in place and earns nothing.
    bumped, totals = play(state, [DOWN, LEFT])
    assert int(bumped.pos) == start and int(bumped.t) == 2 and totals == {"R": 0.0, "cheese": 0.0, "corner": 0.0}
    # Up the left column, then right along row 5 to the cheese.
    up_two = [UP, UP]
    ate, totals = play(state, [RIGHT] * 6 + [LEFT] * 6 + up_two + [RIGHT] * 3)
    assert int(ate.pos) == cheese and bool(ate.cheese) and bool(world.is_terminal(ate))
    assert totals == {"R": 1.0, "cheese": 1.0, "corner": 0.0}
    assert not world.observe(ate)[..., 2].any()  # eaten cheese leaves the picture
    # Absorbing once terminal.
    after, totals = play(ate, [RIGHT, UP, LEFT])
    assert int(after.pos) == cheese and int(after.t) == int(ate.t) and totals["R"] == 0.0

    # With the cheese moved off the path, the agent reaches the corner and the episode goes on.
    level2 = level._replace(cheese=jnp.int32(7 * size + 7))
    state2 = world.reset(jax.random.PRNGKey(0), level2)
    path = up_two + [RIGHT] * 6 + up_two + [LEFT] * 6 + up_two + [RIGHT] * 6
    at_corner, totals = play(state2, path)
    assert int(at_corner.pos) == corner and not bool(world.is_terminal(at_corner))
    assert totals == {"R": 0.0, "cheese": 0.0, "corner": 1.0}
    # Leaving and re-entering the corner counts as another arrival; the cheese is still there to take.
    _, totals = play(at_corner, [LEFT, RIGHT])
    assert totals["corner"] == 1.0


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"size": 8}, "odd"),
        ({"size": 3}, ">= 5"),
        ({"region": 0}, "region"),
        ({"region": 8}, "region"),
        ({"horizon": 0}, "horizon"),
        ({"size": 9.5}, "integer"),
        ({"region": "2"}, "integer"),
    ],
)
def test_bad_params(overrides, match):
    with pytest.raises(ValueError, match=match):
        build(**{**DEFAULTS, **overrides})
    with pytest.raises(AligntriageError, match="rejected its parameters|scenario 'maze' needs"):
        get_scenario("maze", **overrides)


def test_unknown_param_and_small_size_distributions():
    with pytest.raises(AligntriageError, match="level parameter"):
        get_scenario("maze", width=9)
    small = build(**{**DEFAULTS, "size": 5})
    assert "train-region-5" not in small.distributions and "train-region-3" in small.distributions


def test_scripted_policies_behave_and_are_diagnosed_as_documented(scenario):
    """R-optimal = U-optimal eats the cheese first where the goals diverge (aligned); the corner seeker reaches the
    corner first (inner). Where the cheese blocks the only corridor to the corner, the corner seeker cannot reach the
    corner without ending the episode, so it wanders: those levels still disambiguate, by the cheese."""
    from aligntriage.diagnose import diagnose
    from aligntriage.diagnose.evidence import Settings

    fast = Settings(inference_levels=8, epic_levels=2)
    for policy, first, verdict in (("r-optimal", "cheese", "aligned"), ("u-optimal", "cheese", "aligned"),
                                   ("goal:top-right-corner", "top-right-corner", "inner misalignment")):
        d = diagnose(policy, scenario, levels=8, settings=fast, resamples=0)
        assert d.iid.disambiguating_fraction == 0.0
        outcomes = d.figures("disambiguating").outcomes
        other = "cheese" if first != "cheese" else "top-right-corner"
        assert outcomes[first] > outcomes[other] + 0.1, (policy, outcomes)
        assert d.verdict("task").kind == verdict, policy
