"""Policies trained elsewhere: Stable-Baselines3 archives and torch files loaded without unpickling, checked against
the scenario, and diagnosed end to end through ``--policy sb3:`` / ``--policy torch:``."""

import base64
import io
import json
import os
import pickle
import warnings
import zipfile

import gymnasium
import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DQN, PPO
from typer.testing import CliRunner

from aligntriage import get_scenario
from aligntriage.cli.main import app
from aligntriage.diagnose import VERDICTS
from aligntriage.interop.policies import ArchiveWarning, ExternalPolicy, load_sb3, load_torch, observation_shape
from aligntriage.solve.enumerate import stack_mdps
from aligntriage.solve.tables import policy_table

runner = CliRunner()
SIZE = ["-p", "size=5"]


def one_line_error(result, message):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output


@pytest.fixture(scope="module")
def scenario():
    return get_scenario("minigrid-red-tile", size=5)


@pytest.fixture(scope="module")
def observations(scenario):
    return scenario.source.observations(stack_mdps(scenario.source.mdps("deploy", 2, seed=0)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, scenario):
    """A tiny PPO trained for a few thousand steps on the MiniGrid scenario's gymnasium id, saved by SB3."""
    env = gymnasium.make("aligntriage/minigrid-red-tile-v0", dist="train", params={"size": 5})
    model = PPO("MlpPolicy", env, n_steps=512, batch_size=128, n_epochs=2, seed=0,
                policy_kwargs={"net_arch": [32, 32], "activation_fn": torch.nn.ReLU})
    model.learn(total_timesteps=2048)
    path = tmp_path_factory.mktemp("sb3") / "ppo.zip"
    model.save(path)
    return model, path


def sb3_probs(model, obs):
    tensor, _ = model.policy.obs_to_tensor(obs)
    with torch.no_grad():
        if isinstance(model, DQN):
            return np.eye(model.action_space.n)[model.policy.q_net(tensor).argmax(1).numpy()]
        return model.policy.get_distribution(tensor).distribution.probs.numpy()


def test_sb3_ppo_trained_on_minigrid_is_loaded_and_diagnosed_end_to_end(trained, scenario, observations, tmp_path):
    model, path = trained
    policy = load_sb3(path)
    policy.check(observation_shape(scenario), scenario.world.num_actions, scenario.name)
    assert policy.describe == "actor-critic, FlattenExtractor, hidden [32, 32] ReLU"  # read from the JSON
    np.testing.assert_allclose(policy_table(policy, observations), sb3_probs(model, observations), atol=1e-6)
    out = tmp_path / "d.json"
    result = runner.invoke(app, ["diagnose", "minigrid-red-tile", *SIZE, "--policy", f"sb3:{path}", "--levels", "4",
                                 "--json", str(out), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert saved["policy"] == f"sb3:{path}" and saved["verdicts"][0]["kind"] in VERDICTS
    assert saved["evidence"]["levels"] == 4 and all(0 <= r <= 1 for r in saved["evidence"]["seeds"][0]["R"])


@pytest.mark.parametrize("algo", [A2C, DQN])
def test_a2c_and_dqn_archives_compute_what_sb3_computes(algo, scenario, observations, tmp_path):
    model = algo("MlpPolicy", scenario.source.make_env("train"), seed=1)
    model.save(tmp_path / "m.zip")
    policy = load_sb3(tmp_path / "m.zip")
    policy.check(observation_shape(scenario), 7, scenario.name)
    np.testing.assert_allclose(policy(observations), sb3_probs(model, observations), atol=1e-6)


class RunsCode:
    """Unpickling this runs a shell command that leaves a marker file: proof that something was unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def rewrite(path, target, **members):
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(target, "w") as out:
        for name in source.namelist():
            out.writestr(name, members.get(name, source.read(name)))


def test_a_code_running_pickle_in_data_is_never_unpickled_and_named(trained, tmp_path):
    marker = tmp_path / "ran"
    data = json.loads(zipfile.ZipFile(trained[1]).read("data"))
    data["policy_kwargs"] = {":type:": "<class 'dict'>",
                             ":serialized:": base64.b64encode(pickle.dumps(RunsCode(marker))).decode()}
    crafted = tmp_path / "crafted.zip"
    rewrite(trained[1], crafted, data=json.dumps(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy = load_sb3(crafted)
    messages = [str(w.message) for w in caught if issubclass(w.category, ArchiveWarning)]
    assert any("'policy_kwargs' is a pickle that would call posix.system" in m for m in messages), messages
    assert any("using the default activation_fn (Tanh)" in m for m in messages), messages
    assert not marker.exists()
    assert policy.describe.endswith("Tanh")  # the documented default, the ReLU lay only in the pickle
    result = runner.invoke(app, ["diagnose", "minigrid-red-tile", *SIZE, "--policy", f"sb3:{crafted}", "--levels", "2",
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "warning: SB3 archive" in result.output and not marker.exists()


def test_a_code_running_pickle_in_the_weights_is_refused_in_one_line(trained, tmp_path):
    marker = tmp_path / "ran"
    buffer = io.BytesIO()
    torch.save({"action_net.weight": RunsCode(marker)}, buffer)
    crafted = tmp_path / "crafted.zip"
    rewrite(trained[1], crafted, **{"policy.pth": buffer.getvalue()})
    result = runner.invoke(app, ["diagnose", "minigrid-red-tile", *SIZE, "--policy", f"sb3:{crafted}", "--levels", "2",
                                 "--out", str(tmp_path / "run")])
    one_line_error(result, "it holds pickled objects other than tensors (it references posix.system); aligntriage "
                           "loads weights only")
    assert not marker.exists() and not (tmp_path / "run").exists()


class Box10(gymnasium.Env):
    observation_space = gymnasium.spaces.Box(0.0, 1.0, (10,), np.float32)
    action_space = gymnasium.spaces.Discrete(7)


def test_bad_policies_get_one_line_and_exit_2(trained, tmp_path):
    wrong_shape = tmp_path / "box10.zip"
    PPO("MlpPolicy", Box10()).save(wrong_shape)
    data = json.loads(zipfile.ZipFile(trained[1]).read("data"))
    data["policy_kwargs"] = {":type:": "<class 'dict'>", ":serialized:": "",
                             "features_extractor_class": "<class '__main__.MinigridFeaturesExtractor'>"}
    custom = tmp_path / "custom.zip"
    rewrite(trained[1], custom, data=json.dumps(data))
    (tmp_path / "notzip.zip").write_text("hello")
    torch.save(torch.nn.Sequential(torch.nn.Linear(147, 7)).state_dict(), tmp_path / "weights.pt")
    cases = [
        (["--policy", f"sb3:{tmp_path / 'missing.zip'}"], "does not exist; expected a .zip written by model.save()"),
        (["--policy", f"sb3:{tmp_path / 'notzip.zip'}"], "is not a zip file; expected a Stable-Baselines3 archive"),
        (["--policy", f"sb3:{custom}"], "unknown architecture (features extractor) 'MinigridFeaturesExtractor'"),
        (["--policy", f"sb3:{wrong_shape}"], "expects observations of shape (10,) but scenario 'minigrid-red-tile' "
                                             "gives (7, 7, 3); expected the observation the agent was trained on"),
        (["--policy", f"torch:{tmp_path / 'weights.pt'}", "--arch", "resnet"],
         "unknown architecture 'resnet' in --arch; valid: mlp, mlp-tanh"),
        (["--policy", f"torch:{tmp_path / 'weights.pt'}"], "is a state dict: add --arch NAME"),
        (["--policy", f"torch:{tmp_path / 'nothing.pt'}"], "torch policy file"),
        (["--policy", "random", "--arch", "mlp"], "--arch applies to --policy torch:PATH only"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["diagnose", "minigrid-red-tile", *SIZE, *args, "--levels", "2", "--out",
                                     str(tmp_path / "run")])
        one_line_error(result, message)
    assert not (tmp_path / "run").exists()


def test_torch_script_and_state_dict_policies(scenario, observations, tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(147, 16), torch.nn.Tanh(), torch.nn.Linear(16, 7))
    with torch.no_grad():
        expected = torch.softmax(net(torch.as_tensor(observations, dtype=torch.float32)), 1).numpy()
    torch.jit.save(torch.jit.script(net), tmp_path / "agent.pt")
    script = load_torch(tmp_path / "agent.pt")
    script.check(observation_shape(scenario), 7, scenario.name)
    np.testing.assert_allclose(script(observations), expected, atol=1e-6)
    torch.save({f"actor.{k}": v for k, v in net[1:].state_dict().items()}, tmp_path / "actor.pt")
    weights = load_torch(tmp_path / "actor.pt", "mlp-tanh:actor")
    weights.check(observation_shape(scenario), 7, scenario.name)
    np.testing.assert_allclose(weights(observations), expected, atol=1e-6)
    result = runner.invoke(app, ["diagnose", "minigrid-red-tile", *SIZE, "--policy", f"torch:{tmp_path / 'actor.pt'}",
                                 "--arch", "mlp-tanh:actor", "--levels", "2", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    one_line_error(runner.invoke(app, ["diagnose", "coinrun", "--policy", f"torch:{tmp_path / 'agent.pt'}",
                                       "--levels", "2"]), "failed on an observation of shape (6, 14, 5)")


def test_an_external_policy_is_called_on_numpy_never_traced():
    seen = []

    def forward(obs):
        seen.append(type(obs))
        return np.full((obs.shape[0], 3), 1.0 / 3)

    table = policy_table(ExternalPolicy("numpy", forward, 3), np.zeros((5, 2), np.float32))
    assert table.shape == (5, 3) and seen == [np.ndarray]
