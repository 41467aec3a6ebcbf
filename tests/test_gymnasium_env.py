"""Gymnasium adapter: the env checker passes, U only on request, seeding, vector autoreset and vector = single."""

import warnings

import gymnasium
import jax
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

from aligntriage import UnknownName, get_scenario, scenario_names
from aligntriage.interop.gymnasium_env import ScenarioEnv, ScenarioVectorEnv
from aligntriage.interop.registration import register_all
from aligntriage.worlds import EXTERNAL
from aligntriage.worlds.qa_kidnap import ACTIONS as QA_ACTIONS

LEFT = 2  # coinrun: the agent starts in column 0, so "left" never moves it: no pit, no coin, no exit
# The vector tests share these few settings so that each compiled function is built once for the module.
N = 6
COIN = {"scenario_or_name": "coinrun", "params": {"horizon": 8}, "dist": "deploy"}
QA = {"scenario_or_name": "qa-kidnap", "params": {"horizon": 6}, "dist": "deploy"}


@pytest.mark.parametrize("name", [name for name in scenario_names() if name not in EXTERNAL])
def test_gymnasium_env_checker_passes(name):
    ids = register_all()
    assert f"aligntriage/{name}-v0" in ids
    env = gymnasium.make(f"aligntriage/{name}-v0", disable_env_checker=True).unwrapped  # has a spec: render checked
    assert isinstance(env, ScenarioEnv)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        check_env(env)
    env = ScenarioEnv(name, render_mode="ansi")
    env.reset(seed=0)
    picture = env.render()
    assert isinstance(picture, str) and len(picture.splitlines()) == env.observation_space.shape[0]


def test_qa_kidnap_counters_reach_the_box_bounds_and_stay_inside():
    env = ScenarioEnv("qa-kidnap")
    env.reset(seed=0)
    answer = QA_ACTIONS.index("answer")
    high = env.observation_space.high.max()
    assert high == 3  # max(question_every = 3, hard_steps - 1 = 1)
    seen, rewards = [], []
    for _ in range(3):  # the hard question: progress 1, then the correct answer sets wait = question_every (3),
        obs, reward, *_ = env.step(answer)  # then an answer with no question pending counts wait down to 2
        assert env.observation_space.contains(obs)
        seen.append(int(obs.max()))
        rewards.append(float(reward))
    assert seen == [1, 3, 2] and rewards == pytest.approx([0.0, 1.0, -0.1])


def test_bad_distribution_raises_unknown_name():
    with pytest.raises(UnknownName, match="distribution 'nope'"):
        ScenarioEnv("coinrun", dist="nope")
    with pytest.raises(UnknownName, match="distribution 'nope'"):
        ScenarioVectorEnv("coinrun", 2, dist="nope")


def test_utility_absent_by_default():
    env = ScenarioEnv("qa-kidnap")
    _, info = env.reset(seed=0)
    assert "utility" not in info
    for action in range(env.action_space.n):
        *_, info = env.step(action)
        assert info == {}
    venv = ScenarioVectorEnv(**COIN, num_envs=N)
    _, info = venv.reset(seed=0)
    for _ in range(10):
        _, _, _, _, info = venv.step(venv.action_space.sample())
        assert "utility" not in info


def near_desk_level(env):
    """The current level with the free human moved next to the desk (a free cell), so ``coerce`` captures."""
    level = env.level
    walls = np.asarray(level.walls)
    width = walls.shape[1]
    row, col = divmod(int(level.desk), width)
    for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        if not walls[row + dr, col + dc]:
            return level._replace(human=np.int32((row + dr) * width + col + dc))
    raise AssertionError("desk enclosed by walls")


def test_utility_on_request_equals_the_scenario_terms():
    scenario = get_scenario("qa-kidnap")
    env = ScenarioEnv(scenario, utility_info=True)
    env.reset(seed=3)
    env.reset(options={"level": near_desk_level(env)})
    seen = {}
    for action in ("coerce", "answer", "idle", "answer"):
        a = QA_ACTIONS.index(action)
        before = env.state
        _, reward, _, _, info = env.step(a)
        expected = jax.device_get(scenario.utility_terms(before, np.int32(a), env.state))
        assert set(info["utility"]) == set(scenario.utility) == {"answers", "harm"}
        for term, value in info["utility"].items():
            assert value == pytest.approx(float(expected[term]))
        assert info["utility"]["answers"] == reward  # "answers" is exactly R
        seen.setdefault(action, []).append((reward, info["utility"]["harm"]))
    assert seen["coerce"] == [(0.0, -10.0)]  # captured: harm from the capturing step on, no reward
    assert seen["answer"] == [(1.0, -10.0), (1.0, -10.0)]  # a captive asks an easy question every step


def test_same_seed_same_first_observation():
    for name in [name for name in scenario_names() if name not in EXTERNAL]:
        a, b = ScenarioEnv(name), ScenarioEnv(name)
        first_a, first_b = a.reset(seed=11)[0], b.reset(seed=11)[0]
        np.testing.assert_array_equal(first_a, first_b)
        np.testing.assert_array_equal(a.reset()[0], b.reset()[0])  # the un-seeded stream continues alike
        others = [a.reset(seed=s)[0] for s in range(12, 20)]
        assert any(not np.array_equal(first_a, other) for other in others)
        assert a._step is b._step  # compiled functions shared across instances of one scenario
    v1, v2 = ScenarioVectorEnv(**COIN, num_envs=N), ScenarioVectorEnv(**COIN, num_envs=N)
    np.testing.assert_array_equal(v1.reset(seed=5)[0], v2.reset(seed=5)[0])
    assert not np.array_equal(v1.reset(seed=6)[0], v2.reset(seed=5)[0])


def test_vector_spaces_and_shapes():
    env = ScenarioVectorEnv(**QA, num_envs=N, utility_info=True)
    single = ScenarioEnv(**QA)
    assert env.single_observation_space == single.observation_space
    assert env.single_action_space == single.action_space
    assert env.observation_space.shape == (N,) + single.observation_space.shape
    assert env.action_space == gymnasium.spaces.MultiDiscrete([7] * N)
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, info = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape and obs.dtype == np.int32 and info == {}
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.shape == env.observation_space.shape
    assert reward.shape == terminated.shape == truncated.shape == (N,)
    assert terminated.dtype == truncated.dtype == np.bool_
    assert {k: v.shape for k, v in info["utility"].items()} == {"answers": (N,), "harm": (N,)}


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_vector_autoreset(mode):
    horizon, n = COIN["params"]["horizon"], N
    env = ScenarioVectorEnv(**COIN, num_envs=n, autoreset_mode=mode, utility_info=True)
    assert env.metadata["autoreset_mode"] == mode
    single = ScenarioEnv(**COIN)
    first, _ = env.reset(seed=2)
    levels = [env.level(i) for i in range(n)]
    left = np.full(n, LEFT)
    for t in range(1, horizon + 1):
        obs, reward, terminated, truncated, info = env.step(left)
        assert not terminated.any() and (reward == 0).all()
        assert truncated.all() == (t == horizon) and (truncated.any() == (t == horizon))
    if mode == AutoresetMode.SAME_STEP:
        # ended and reset in the same call: the new episodes' first obs, the old last obs in final_obs
        assert info["_final_obs"].all()
        for i in range(n):
            np.testing.assert_array_equal(info["final_obs"][i], first[i])  # "left" never moved the agent
            np.testing.assert_array_equal(obs[i], single.reset(options={"level": env.level(i)})[0])
        assert (np.asarray(env.states.t) == 0).all()
    else:
        assert "final_obs" not in info
        np.testing.assert_array_equal(obs, first)  # the truncated episodes' last obs
        obs, reward, terminated, truncated, info = env.step(left)  # the reset step: action ignored
        assert (reward == 0).all() and not terminated.any() and not truncated.any()
        assert (np.asarray(env.states.t) == 0).all()
        for i in range(n):
            np.testing.assert_array_equal(obs[i], single.reset(options={"level": env.level(i)})[0])
    new_levels = [env.level(i) for i in range(n)]
    assert any(not np.array_equal(a.walls, b.walls) for a, b in zip(levels, new_levels))  # fresh levels drawn
    obs, reward, terminated, truncated, _ = env.step(left)  # then ordinary steps again
    assert (np.asarray(env.states.t) == 1).all() and not truncated.any()


def test_vector_reset_mask_resets_only_those_envs():
    env = ScenarioVectorEnv(**COIN, num_envs=N, utility_info=True)
    env.reset(seed=0)
    env.step(np.full(N, LEFT))
    mask = np.arange(N) % 2 == 0
    obs, _ = env.reset(options={"reset_mask": mask})
    np.testing.assert_array_equal(np.asarray(env.states.t), np.where(mask, 0, 1))
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize("setting", [COIN, QA], ids=["coinrun", "qa-kidnap"])
def test_vector_step_equals_single_env_steps_on_the_same_levels(setting):
    n, steps = N, 20
    venv = ScenarioVectorEnv(**setting, num_envs=n, utility_info=True)
    singles = [ScenarioEnv(**setting, utility_info=True) for _ in range(n)]
    obs, _ = venv.reset(seed=4)
    for i, env in enumerate(singles):
        np.testing.assert_array_equal(env.reset(options={"level": venv.level(i)})[0], obs[i])
    rng = np.random.default_rng(1)
    pending_reset = np.zeros(n, bool)
    dones = resets = 0
    for _ in range(steps):
        actions = rng.integers(0, venv.single_action_space.n, n)
        obs, reward, terminated, truncated, info = venv.step(actions)
        assert venv.observation_space.contains(obs)
        for i, env in enumerate(singles):
            if pending_reset[i]:  # NEXT_STEP: this call reset env i onto a fresh level
                s_obs, _ = env.reset(options={"level": venv.level(i)})
                s_reward, s_term, s_trunc, s_info = 0.0, False, False, {"utility": {k: 0.0 for k in info["utility"]}}
                resets += 1
            else:
                s_obs, s_reward, s_term, s_trunc, s_info = env.step(actions[i])
            np.testing.assert_array_equal(obs[i], s_obs)
            assert (reward[i], terminated[i], truncated[i]) == (s_reward, s_term, s_trunc)
            for term, value in s_info["utility"].items():
                assert info["utility"][term][i] == pytest.approx(value)
        pending_reset = terminated | truncated
        dones += int(pending_reset.sum())
    assert dones > 0 and resets > 0  # the comparison went through episode ends and autoresets
