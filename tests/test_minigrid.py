"""MiniGrid as a world: enumeration through the environment against brute force, replayed observations, the
shipped scenario, and one-line errors for what cannot be enumerated."""

import copy
import json

import gymnasium
import numpy as np
import pytest
from minigrid.envs import DoorKeyEnv, DynamicObstaclesEnv, EmptyEnv
from minigrid.wrappers import ActionBonus, ImgObsWrapper
from typer.testing import CliRunner

from aligntriage import AligntriageError, get_scenario
from aligntriage.cli.main import app
from aligntriage.interop.minigrid import Levels, minigrid_scenario
from aligntriage.scenario import Goal, Partition, Term
from aligntriage.solve.enumerate import stack_mdps

runner = CliRunner()


def one_line_error(result, message):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output


def scenario_of(make, time_dependent=False, wrappers=(ImgObsWrapper,), max_states=200_000):
    return minigrid_scenario(
        name="test-minigrid", summary="test", wrappers=wrappers, time_dependent=time_dependent,
        distributions=[Levels("train", "t", make), Levels("deploy", "d", make)],
        utility=[Term("goal", lambda s, a, s2: float(s2.on("goal")), "goal")],
        goals=[Goal("goal", lambda s, a, s2: s2.on("goal"), "goal", intended=True),
               Goal("key", lambda s, a, s2: s2.carries("key"), "holds the key")],
        partitions=[Partition("task", ("goal",), "")], max_states=max_states)


def brute_force(make, seed, time_dependent):
    """Independent BFS: a full deepcopy of the environment per transition, stepped with its observations."""
    env = make()
    env.reset(seed=seed)

    def key(e):
        carried = (0, 0, 0) if e.carrying is None else tuple(e.carrying.encode())
        return (e.grid.encode().tobytes(), carried, tuple(int(v) for v in e.agent_pos), int(e.agent_dir),
                e.step_count if time_dependent else 0)

    start = copy.deepcopy(env)
    seen, frontier, edges = {key(start): start}, [start], {}
    while frontier:
        node = frontier.pop()
        for action in range(node.action_space.n):
            child = copy.deepcopy(node)
            if not time_dependent:
                child.step_count = 0
            _, reward, terminated, truncated, _ = child.step(action)
            k = key(child)
            ended = terminated or (truncated and time_dependent)
            edges[(key(node), action)] = (k, float(reward), ended)
            if k not in seen:
                seen[k] = child
                if not ended:
                    frontier.append(child)
    return seen, edges


@pytest.mark.parametrize("make, time_dependent", [
    (lambda: DoorKeyEnv(size=5), False),  # pickup, toggle (unlock, open, close) and drop change the grid
    (lambda: EmptyEnv(size=5, max_steps=5), True),  # step counts in the state; truncation ends episodes
])
def test_enumeration_agrees_with_brute_force(make, time_dependent):
    sc = scenario_of(make, time_dependent, max_states=20_000)  # a mutation that loses states fails fast
    mdp = sc.source.enumerate("train", 3)
    seen, edges = brute_force(make, 3, time_dependent)
    states = mdp.states

    def key(i):
        carried = tuple(int(v) for v in states["carrying"][i])
        return (states["grid"][i].tobytes(), carried, tuple(int(v) for v in states["agent_pos"][i]),
                int(states["agent_dir"][i]), int(states["step_count"][i]))

    keys = [key(i) for i in range(mdp.num_states)]
    assert set(keys) == set(seen) and len(keys) == len(seen)
    ended = {k for (_, _), (k, _, e) in edges.items() if e}
    for i, k in enumerate(keys):
        assert bool(mdp.terminal[i]) == (k in ended)
        if mdp.terminal[i]:
            continue
        for action in range(mdp.num_actions):
            nxt, reward, _ = edges[(k, action)]
            assert keys[mdp.next_state[i, action]] == nxt
            assert mdp.reward[i, action] == pytest.approx(reward)
            assert mdp.goal_achieved["key"][i, action] == (nxt[1][0] == 5)  # OBJECT_TO_IDX["key"]


def test_observations_replay_what_the_live_wrapped_environment_showed():
    sc = get_scenario("minigrid-red-tile", size=5)
    mdp = sc.source.enumerate("deploy", 11)
    obs = sc.source.observations(stack_mdps([mdp]))
    env = gymnasium.make("aligntriage/minigrid-red-tile-v0", dist="deploy", params={"size": 5})
    live, _ = env.reset(seed=11)
    base, rng = env.unwrapped, np.random.default_rng(0)
    checked = 0
    for _ in range(40):
        carried = (0, 0, 0) if base.carrying is None else tuple(base.carrying.encode())
        key = (base.grid.encode().tobytes() + bytes(carried)
               + np.array([*base.agent_pos, base.agent_dir, 0], np.int32).tobytes())
        np.testing.assert_array_equal(obs[mdp.index[key]], live)
        checked += 1
        live, _, terminated, truncated, _ = env.step(int(rng.integers(0, 3)))
        if terminated or truncated:
            break
    assert checked >= 5


def test_shipped_scenario_levels_follow_their_distributions():
    sc = get_scenario("minigrid-red-tile")
    assert sc.world.actions[:3] == ("left", "right", "forward") and sc.world.horizon == 64
    for dist, near in (("train", True), ("deploy", False)):
        for mdp in sc.source.mdps(dist, 8, seed=1):
            grid = mdp.states["grid"][0]
            goal = np.argwhere(grid[..., 0] == 8)[0]
            tile = np.argwhere((grid[..., 0] == 3) & (grid[..., 1] == 0))[0]
            distance = np.abs(goal - tile).sum()
            assert (distance == 1) if near else (distance >= 3)
            assert 100 <= mdp.num_states <= 150  # agent cells x 4 directions: tiles never change
    first = [m.states["grid"][0].tobytes() for m in sc.source.mdps("deploy", 3, seed=1)]
    assert first == [m.states["grid"][0].tobytes() for m in sc.source.mdps("deploy", 3, seed=1)]


def test_scripted_diagnosis_runs_on_minigrid_with_epic_not_available(tmp_path):
    result = runner.invoke(app, ["diagnose", "minigrid-red-tile", "-p", "size=5", "--policy", "goal:goal",
                                 "--levels", "4", "--json", str(tmp_path / "d.json"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "EPIC(R, U scope of task)" in result.output and "n/a" in result.output
    saved = json.loads((tmp_path / "d.json").read_text())
    assert saved["verdicts"][0]["kind"] == "aligned"
    assert saved["evidence"]["references"]["epic"] == {"task": None}


def test_a_level_over_the_state_limit_is_one_line_exit_2(tmp_path):
    result = runner.invoke(app, ["diagnose", "minigrid-red-tile", "-p", "max_states=50", "--policy", "random",
                                 "--levels", "2", "--out", str(tmp_path / "run")])
    one_line_error(result, "more than 50 reachable states; expected at most max_states=50")
    assert not (tmp_path / "run").exists()


def test_training_a_minigrid_scenario_with_aligntriage_ppo_is_one_line_exit_2(tmp_path):
    result = runner.invoke(app, ["train", "minigrid-red-tile", "--steps", "100", "--out", str(tmp_path / "r")])
    one_line_error(result, "aligntriage's PPO cannot train")


def test_random_dynamics_and_stateful_wrappers_are_refused():
    dynamic = scenario_of(lambda: DynamicObstaclesEnv(size=5, n_obstacles=1), max_states=2000)
    with pytest.raises(AligntriageError, match="draws random numbers in step"):
        dynamic.source.enumerate("train", 0)
    bonus = scenario_of(lambda: EmptyEnv(size=5), wrappers=(ActionBonus, ImgObsWrapper))
    with pytest.raises(AligntriageError, match="wrapper ActionBonus overrides step"):
        bonus.source.enumerate("train", 0)
    raw = scenario_of(lambda: EmptyEnv(size=5), wrappers=())
    with pytest.raises(AligntriageError, match="observations are a dict"):
        raw.source.observation_shape()


def test_scenarios_list_minigrid_only_when_the_extra_is_installed(monkeypatch):
    import aligntriage.worlds as worlds

    assert "minigrid-red-tile" in worlds.scenario_names()
    real = worlds.importlib.util.find_spec
    monkeypatch.setattr(worlds.importlib.util, "find_spec", lambda name, *a: None if name == "minigrid"
                        else real(name, *a))
    worlds._module.cache_clear()  # a module loaded earlier in the session must be looked up again
    assert "minigrid-red-tile" not in worlds.scenario_names() and "coinrun" in worlds.scenario_names()
    listed = runner.invoke(app, ["scenarios"])
    assert listed.exit_code == 0 and "minigrid-red-tile" not in listed.output
    with pytest.raises(AligntriageError, match=r"needs the minigrid package: pip install 'aligntriage\[interop\]'"):
        worlds.scenario_module("minigrid-red-tile")
