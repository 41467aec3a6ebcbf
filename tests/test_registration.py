"""Every built-in scenario is a gymnasium id: registered on import, found through gymnasium's module prefix, and
made (single and vector) into environments that pass gymnasium's checker. The JAX ids' checker runs are in
tests/test_gymnasium_env.py; the MiniGrid ids' are here."""

import subprocess
import sys
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from aligntriage import scenario_names
from aligntriage.interop.registration import register_all
from aligntriage.worlds import EXTERNAL


def test_every_builtin_scenario_has_an_id():
    assert register_all() == [f"aligntriage/{name}-v0" for name in scenario_names()]
    assert all(f"aligntriage/{name}-v0" in gymnasium.registry for name in scenario_names())


def test_a_fresh_interpreter_finds_the_ids_through_gymnasium():
    code = ("import gymnasium\n"
            "env = gymnasium.make('aligntriage:aligntriage/maze-v0', dist='deploy')\n"
            "obs, _ = env.reset(seed=0)\n"
            "vec = gymnasium.make_vec('aligntriage/maze-v0', num_envs=3, dist='deploy')\n"
            "batch, _ = vec.reset(seed=0)\n"
            "print(type(env.unwrapped).__name__, obs.shape, type(vec).__name__, batch.shape)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["ScenarioEnv", "(7,", "7,", "3)", "ScenarioVectorEnv", "(3,", "7,", "7,", "3)"]


@pytest.mark.parametrize("name", [name for name in scenario_names() if EXTERNAL.get(name) == "minigrid"])
def test_minigrid_ids_pass_the_env_checker_as_trained_on(name):
    env_id = f"aligntriage/{name}-v0"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test ...
        check_env(gymnasium.make(env_id, dist="deploy", disable_env_checker=True).unwrapped, skip_render_check=True)
        # ... except gymnasium's note that a wrapped env is not the raw one: the wrappers are what the agent saw
        warnings.filterwarnings("ignore", message=".*is different from the unwrapped version")
        check_env(gymnasium.make(env_id, dist="deploy", disable_env_checker=True), skip_render_check=True)
    env = gymnasium.make(env_id, dist="deploy", render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (7, 7, 3) and env.render().ndim == 3  # ImgObsWrapper's view; a picture of the room
    vec = gymnasium.make_vec(env_id, num_envs=2, dist="train")
    batch, _ = vec.reset(seed=0)
    assert batch.shape == (2, 7, 7, 3) and not np.array_equal(batch[0], batch[1])
