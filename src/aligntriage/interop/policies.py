"""Policies from where they are: Stable-Baselines3 archives and torch files, as numpy policies for ``diagnose``.

``--policy sb3:PATH.zip`` (PPO, A2C, DQN with ``MlpPolicy``, or ``CnnPolicy``'s NatureCNN). Nothing in the
archive is unpickled. The weights come from ``policy.pth`` through ``torch.load(weights_only=True)``, which
refuses any pickled object other than tensors (an archive whose weights carry code is refused with one line).
The architecture is rebuilt from the weights' names and shapes (layer sizes, feature extractor) and from the
plain JSON of ``data``: the observation and action spaces (shape, dtype, bounds) and the first-level entries SB3
writes beside each pickled value (``policy_kwargs``' ``activation_fn``, ``normalize_images``,
``features_extractor_class``). An entry stored only as pickled bytes is skipped with a warning naming it and the
documented default used instead (activation: Tanh for PPO/A2C, ReLU for DQN, as in SB3); a pickled entry whose
bytes reference a code-running callable (``os.system``, ``eval``, ...) is named in a warning too, found by reading
the pickle's opcodes, never by running it.

The policy then computes what SB3 computes: observations as float32 (divided by 255 for an image space when
``normalize_images``), transposed to channels-first where SB3 did so in training (``VecTransposeImage`` for an
H x W x C image), action probabilities softmax(logits) for PPO/A2C and the greedy action of the Q-values for DQN
(ties split evenly).

``--policy torch:PATH``: a TorchScript module (``torch.jit.save``) mapping float32 observations [N, ...] to
action logits [N, A], or a state dict loaded weights-only together with a named architecture (``--arch``):
``mlp`` (ReLU between Linear layers) or ``mlp-tanh``; ``NAME:PREFIX`` takes the layers under ``PREFIX.`` (e.g.
``mlp-tanh:actor`` for a CleanRL agent). Layer sizes come from the weights.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import pickletools
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np

from aligntriage.errors import AligntriageError, UnknownName
from aligntriage.scenario import Scenario

ACTIVATIONS = ("Tanh", "ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Sigmoid", "Softplus", "Identity")
"""torch.nn activations a rebuilt network may use (SB3's ``activation_fn``), by class name."""
ARCHITECTURES = ("mlp", "mlp-tanh")
"""Named architectures of a torch state dict (``--arch``)."""
FEATURE_EXTRACTORS = ("FlattenExtractor", "NatureCNN")

_DANGEROUS = re.compile(r"^(os|posix|nt|subprocess|sys|shutil|socket|runpy|pty|importlib|ctypes|code|webbrowser)"
                        r"(\.|$)|^builtins\.(eval|exec|compile|__import__|open|getattr|breakpoint)$")


class ArchiveWarning(UserWarning):
    """Something in a policy archive was skipped (never unpickled) and a documented default used."""


class ExternalPolicy:
    """A numpy policy computed outside JAX: ``policy(obs[N, ...]) -> probs[N, A]``; ``policy_table`` calls it as
    is (the ``external`` attribute), never through ``jax.jit``.

    What it was trained on, where known: ``num_actions``, ``obs_shape`` (SB3's space) or ``inputs`` (the first
    layer's width); ``check`` compares them with a scenario, and probes the policy with one observation where
    neither is known (a TorchScript module).
    """

    external = True

    def __init__(self, label: str, forward, num_actions: int | None, obs_shape: tuple[int, ...] | None = None,
                 inputs: int | None = None, channels_first_image: bool = False, describe: str = ""):
        self.label, self._forward = label, forward
        self.num_actions = None if num_actions is None else int(num_actions)
        self.obs_shape = None if obs_shape is None else tuple(int(d) for d in obs_shape)
        self.inputs, self.channels_first_image, self.describe = inputs, channels_first_image, describe
        self._transpose = False

    def check(self, obs_shape: tuple[int, ...], num_actions: int, scenario: str) -> None:
        """Refuse a scenario whose observations or actions are not the ones this policy was trained on."""
        obs_shape = tuple(int(d) for d in obs_shape)
        if self.num_actions is not None and self.num_actions != num_actions:
            raise AligntriageError(f"policy '{self.label}' has {self.num_actions} actions but scenario '{scenario}' "
                                   f"has {num_actions}; expected a policy over the scenario's {num_actions} actions")
        expected = ("expected the observation the agent was trained on (declare the wrappers it was trained with "
                    "in the scenario file)")
        if self.obs_shape is not None and self.obs_shape != obs_shape:
            if self.channels_first_image and len(obs_shape) == 3 and self.obs_shape == (obs_shape[2],
                                                                                        *obs_shape[:2]):
                self._transpose = True  # SB3 wrapped the H x W x C image in VecTransposeImage during training
            else:
                raise AligntriageError(f"policy '{self.label}' expects observations of shape {self.obs_shape} but "
                                       f"scenario '{scenario}' gives {obs_shape}; {expected}")
        if self.inputs is not None and int(np.prod(obs_shape)) != self.inputs:
            raise AligntriageError(f"policy '{self.label}' takes {self.inputs} inputs but scenario '{scenario}' gives "
                                   f"observations of shape {obs_shape} ({int(np.prod(obs_shape))} values); {expected}")
        if self.num_actions is None:
            self._probe(obs_shape, num_actions, scenario)

    def _probe(self, obs_shape, num_actions, scenario):
        try:
            out = self(np.zeros((1, *obs_shape), np.float32))
        except Exception as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            first = lines[-1] if lines else type(exc).__name__  # TorchScript puts the cause last
            raise AligntriageError(
                f"policy '{self.label}' failed on an observation of shape {tuple(obs_shape)} of scenario "
                f"'{scenario}' ({first}); expected a module mapping float32 observations [N, ...] to action logits "
                "[N, A]") from None
        if out.shape != (1, num_actions):
            raise AligntriageError(f"policy '{self.label}' returned shape {out.shape[1:]} per observation; expected "
                                   f"({num_actions},) action logits, one per action of scenario '{scenario}'")
        self.num_actions = num_actions

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        if self._transpose:
            obs = np.transpose(obs, (0, 3, 1, 2))
        return self._forward(obs)


# --------------------------------------------------------------------------------------------------------------
# reading archives without unpickling


def _torch():
    try:
        import torch
    except ModuleNotFoundError:
        raise AligntriageError("loading sb3: and torch: policies needs torch: pip install 'aligntriage[interop]'") \
            from None
    return torch


def load_weights(raw: bytes, what: str) -> dict:
    """A state dict of tensors via ``torch.load(weights_only=True)``; anything else is refused in one line."""
    torch = _torch()
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:
        text = " ".join(str(exc).split())
        found = re.search(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)", text)
        detail = f"it references {found.group(1)}" if found else text[:160]
        raise AligntriageError(f"refusing {what}: it holds pickled objects other than tensors ({detail}); "
                               "aligntriage loads weights only (torch.load weights_only=True)") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise AligntriageError(f"{what} is not a state dict of tensors (expected the output of "
                               "module.state_dict())")
    return state


def pickle_globals(blob: str) -> list[str]:
    """The module.name callables a base64 pickle would import, read from its opcodes (nothing is executed)."""
    try:
        raw = base64.b64decode(blob, validate=True)
        found, strings = [], []
        for opcode, arg, _ in pickletools.genops(raw):
            if opcode.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
        return found
    except (binascii.Error, ValueError, EOFError, KeyError, IndexError):
        return ["<unreadable pickle>"]


def _class_name(text) -> str | None:
    """``"<class 'torch.nn.modules.activation.ReLU'>"`` -> ``ReLU`` (the repr SB3 stores beside a pickle)."""
    match = re.fullmatch(r"<class '([\w.]+)'>", str(text).strip())
    return match.group(1).rsplit(".", 1)[-1] if match else None


def _warn(message: str) -> None:
    warnings.warn(message, ArchiveWarning, stacklevel=3)


def _read_archive(path: Path) -> tuple[dict, dict]:
    if not path.is_file():
        raise AligntriageError(f"SB3 archive '{path}' does not exist; expected a .zip written by model.save()")
    if not zipfile.is_zipfile(path):
        raise AligntriageError(f"'{path}' is not a zip file; expected a Stable-Baselines3 archive written by "
                               "model.save()")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        for needed in ("data", "policy.pth"):
            if needed not in names:
                raise AligntriageError(f"SB3 archive '{path}' holds no '{needed}'; expected the files model.save() "
                                       "writes (data, policy.pth, pytorch_variables.pth)")
        try:
            data = json.loads(archive.read("data"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AligntriageError(f"SB3 archive '{path}': 'data' is not JSON ({exc})") from None
        weights = load_weights(archive.read("policy.pth"), f"SB3 archive '{path}' (policy.pth)")
    for key, value in data.items():
        if isinstance(value, dict) and ":serialized:" in value:
            risky = [g for g in pickle_globals(value[":serialized:"]) if _DANGEROUS.search(g)]
            if risky:
                _warn(f"SB3 archive '{path}': data entry '{key}' is a pickle that would call {risky[0]} when "
                      "unpickled; skipped, not unpickled")
    return data, weights


def _space(data: dict, key: str, path: Path) -> dict:
    space = data.get(key)
    if not isinstance(space, dict):
        raise AligntriageError(f"SB3 archive '{path}' has no readable '{key}'; expected a gymnasium space")
    return space


def _kwarg(data: dict, name: str, path: Path, default, needed: bool):
    """A first-level ``policy_kwargs`` entry from the JSON (never the pickle); ``default`` with a warning when
    the entry is only pickled."""
    kwargs = data.get("policy_kwargs") or {}
    if not isinstance(kwargs, dict):
        return default
    if name in kwargs:
        return kwargs[name]
    if ":serialized:" in kwargs and not any(k for k in kwargs if not k.startswith(":")) and needed:
        _warn(f"SB3 archive '{path}': policy_kwargs is stored only as pickled bytes (not unpickled); using the "
              f"default {name} ({_class_name(default) or default})")
    return default


def _layers(state: dict, prefix: str) -> list[tuple]:
    """(weight, bias) of the Linear layers under a prefix, in the order of their index."""
    found = {}
    for key, value in state.items():
        match = re.fullmatch(re.escape(prefix) + r"(\d+)\.weight", key)
        if match and value.ndim == 2:
            found[int(match.group(1))] = (value, state.get(key[: -len("weight")] + "bias"))
    return [found[i] for i in sorted(found)]


def _activation(name: str):
    torch = _torch()
    if name not in ACTIVATIONS:
        raise UnknownName("architecture activation", name, ACTIVATIONS)
    return getattr(torch.nn, name)()


def _mlp(layers, activation: str, activate_last: bool):
    torch = _torch()
    modules = []
    for k, (weight, bias) in enumerate(layers):
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        linear.weight.data.copy_(weight)
        if bias is not None:
            linear.bias.data.copy_(bias)
        modules.append(linear)
        if activate_last or k < len(layers) - 1:
            modules.append(_activation(activation))
    return torch.nn.Sequential(*modules)


def _nature_cnn(state: dict, prefix: str):
    """SB3's NatureCNN (strides 4, 2, 1, ReLU, linear + ReLU), sizes from the weights."""
    torch = _torch()
    convs = []
    for index, stride in ((0, 4), (2, 2), (4, 1)):
        weight, bias = state[f"{prefix}cnn.{index}.weight"], state[f"{prefix}cnn.{index}.bias"]
        conv = torch.nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], stride=stride)
        conv.weight.data.copy_(weight)
        conv.bias.data.copy_(bias)
        convs += [conv, torch.nn.ReLU()]
    linear = _mlp([(state[f"{prefix}linear.0.weight"], state[f"{prefix}linear.0.bias"])], "ReLU", True)
    return torch.nn.Sequential(*convs, torch.nn.Flatten(), linear)


def load_sb3(path: str | Path) -> ExternalPolicy:
    """A Stable-Baselines3 PPO/A2C/DQN archive as an ``ExternalPolicy`` (see the module doc)."""
    torch = _torch()
    path = Path(path)
    data, state = _read_archive(path)
    label = f"sb3:{path}"
    obs_space, act_space = _space(data, "observation_space", path), _space(data, "action_space", path)
    if _class_name(act_space.get(":type:")) != "Discrete":
        raise AligntriageError(f"SB3 archive '{path}' has a {_class_name(act_space.get(':type:'))} action space; "
                               "expected Discrete (aligntriage's worlds have discrete actions)")
    if _class_name(obs_space.get(":type:")) != "Box" or "_shape" not in obs_space:
        raise AligntriageError(f"SB3 archive '{path}' has a {_class_name(obs_space.get(':type:'))} observation "
                               "space; expected Box (an array observation, e.g. through ImgObsWrapper)")
    num_actions = int(str(act_space.get("n")))
    shape = tuple(int(d) for d in obs_space["_shape"])
    numbers = {key: set(re.findall(r"-?\d+(?:\.\d+)?", str(obs_space.get(key, "")))) for key in ("low", "high")}
    image = (str(obs_space.get("dtype")) == "uint8" and len(shape) == 3 and numbers["low"] == {"0"}
             and numbers["high"] == {"255"})

    extractor = _class_name(_kwarg(data, "features_extractor_class", path, "<class 'FlattenExtractor'>", False))
    if extractor not in FEATURE_EXTRACTORS:
        raise UnknownName("architecture (features extractor)", str(extractor), FEATURE_EXTRACTORS,
                          f"SB3 archive '{path}'")
    if "action_net.weight" in state:
        kind, default_act = "actor-critic", "Tanh"
        head = _mlp([(state["action_net.weight"], state["action_net.bias"])], "Identity", False)
        latent_prefix, feature_prefix = "mlp_extractor.policy_net.", "pi_features_extractor."
        if not any(k.startswith(feature_prefix) for k in state):
            feature_prefix = "features_extractor."
    elif any(k.startswith("q_net.q_net.") for k in state):
        kind, default_act = "dqn", "ReLU"
        latent_prefix, feature_prefix, head = "q_net.q_net.", "q_net.features_extractor.", None
    else:
        prefixes = sorted({k.split(".")[0] for k in state})
        raise AligntriageError(f"unknown architecture in SB3 archive '{path}': weights {', '.join(prefixes)}; "
                               "expected an SB3 ActorCriticPolicy (PPO, A2C) or DQN policy")
    activation = _class_name(_kwarg(data, "activation_fn", path, f"<class '{default_act}'>", True)) or default_act
    if activation not in ACTIVATIONS:
        raise UnknownName("architecture activation", activation, ACTIVATIONS, f"SB3 archive '{path}'")
    normalize = bool(_kwarg(data, "normalize_images", path, True, False))
    if extractor == "NatureCNN":
        features = _nature_cnn(state, feature_prefix)
    else:
        features = torch.nn.Flatten()
    layers = _layers(state, latent_prefix)
    if kind == "actor-critic":
        net = torch.nn.Sequential(features, _mlp(layers, activation, True), head) if layers else \
            torch.nn.Sequential(features, head)
    else:
        net = torch.nn.Sequential(features, _mlp(layers, activation, False))
    net.eval()
    hidden = layers if kind == "actor-critic" else layers[:-1]
    scale = 255.0 if image and normalize else 1.0

    def forward(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = net(torch.as_tensor(np.asarray(obs, np.float32) / scale)).numpy().astype(np.float64)
        if kind == "dqn":
            best = out == out.max(axis=1, keepdims=True)
            return best / best.sum(axis=1, keepdims=True)
        out = np.exp(out - out.max(axis=1, keepdims=True))
        return out / out.sum(axis=1, keepdims=True)

    return ExternalPolicy(label, forward, num_actions, shape, channels_first_image=image,
                          describe=f"{kind}, {extractor}, hidden {[w.shape[0] for w, _ in hidden]} {activation}")


def _softmax_forward(net):
    torch = _torch()

    def forward(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = net(torch.as_tensor(np.asarray(obs, np.float32))).numpy().astype(np.float64)
        out = np.exp(logits - logits.max(axis=1, keepdims=True))
        return out / out.sum(axis=1, keepdims=True)

    return forward


def load_torch(path: str | Path, arch: str | None = None) -> ExternalPolicy:
    """A TorchScript module, or a state dict with a named architecture, as an ``ExternalPolicy``."""
    torch = _torch()
    path = Path(path)
    label = f"torch:{path}"
    if not path.is_file():
        raise AligntriageError(f"torch policy file '{path}' does not exist; expected a TorchScript module "
                               "(torch.jit.save) or a state dict (torch.save(model.state_dict()))")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            script = any("/code/" in name for name in archive.namelist())
        if script:
            if arch is not None:
                raise AligntriageError(f"'{path}' is a TorchScript module; --arch is only for a state dict")
            module = torch.jit.load(str(path), map_location="cpu")
            module.eval()
            return ExternalPolicy(label, _softmax_forward(module), None, describe="TorchScript")
    state = load_weights(path.read_bytes(), f"torch policy '{path}'")
    if arch is None:
        raise AligntriageError(f"torch policy '{path}' is a state dict: add --arch NAME (valid: "
                               f"{', '.join(ARCHITECTURES)}; NAME:PREFIX for the layers under PREFIX.) or save a "
                               "TorchScript module")
    name, _, prefix = arch.partition(":")
    if name not in ARCHITECTURES:
        raise UnknownName("architecture", name, ARCHITECTURES, "--arch")
    layers = _layers(state, f"{prefix}." if prefix else "")
    if not layers:
        where = f"under '{prefix}.'" if prefix else "at the top level"
        raise AligntriageError(f"torch policy '{path}' has no Linear layers {where}; expected weights named "
                               f"{prefix + '.' if prefix else ''}0.weight, ... (nn.Sequential)")
    net = torch.nn.Sequential(torch.nn.Flatten(), _mlp(layers, "Tanh" if name == "mlp-tanh" else "ReLU", False))
    net.eval()
    return ExternalPolicy(label, _softmax_forward(net), layers[-1][0].shape[0], inputs=int(layers[0][0].shape[1]),
                          describe=arch)


def load_policy_spec(spec: str, arch: str | None = None) -> ExternalPolicy:
    """``sb3:PATH.zip`` or ``torch:PATH`` -> an ``ExternalPolicy``."""
    kind, _, target = spec.partition(":")
    if not target:
        raise AligntriageError(f"policy '{spec}' needs a path after '{kind}:'")
    if arch is not None and kind != "torch":
        raise AligntriageError("--arch applies to --policy torch:PATH only")
    if kind == "sb3":
        return load_sb3(target)
    if kind == "torch":
        return load_torch(target, arch)
    raise UnknownName("policy kind", kind, ("sb3", "torch"))


def observation_shape(scenario: Scenario) -> tuple[int, ...]:
    """The shape of one observation a policy of this scenario receives."""
    if scenario.source is not None:
        return tuple(scenario.source.observation_shape())
    from aligntriage.interop.gymnasium_env import observation_space_for

    return tuple(observation_space_for(scenario).shape)
