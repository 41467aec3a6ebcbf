"""Scenarios as Gymnasium environments: one episode (``ScenarioEnv``) or many stepped together (``ScenarioVectorEnv``).

What an agent sees through these classes is what the training process sees in ``aligntriage.train``: observations,
the reward R, and the end flags. The intended utility U is hidden unless asked for: with ``utility_info=True`` the
``info`` dict carries ``info["utility"] = {term: value}`` for the transition just taken; without it U is neither
computed nor returned (the compiled step functions without U do not reference the utility terms at all).

Levels. ``reset`` draws a level from a named distribution of the scenario (``dist``, default ``"train"``) with a
JAX key taken from Gymnasium's seeding (``self.np_random``), so ``reset(seed=s)`` always gives the same level and
later un-seeded resets continue the same stream. ``reset(options={"level": level})`` starts an episode on a given
level instead (a level pytree of the scenario; ``ScenarioVectorEnv.level(i)`` returns one).

Observations are ``world.observe`` as a ``Box(low, high, shape=(H, W, C))``: boolean planes become ``uint8`` 0/1;
integer observations keep their dtype with bounds that hold for the scenario (qa-kidnap: its counters' ranges, a
user's scenario: the dtype's range unless ``obs_bounds=(low, high)`` is given); float observations are unbounded.
Actions are ``Discrete(world.num_actions)`` in the order of ``world.actions``.

Episode ends: ``terminated`` is ``world.is_terminal`` of the next state; ``truncated`` is ``t >= horizon`` for an
episode that did not also terminate on that step (the same convention as ``worlds.vector.auto_reset_step``, so a
terminal transition is never reported as a time-out).

Compilation: reset and step are ``jax.jit`` functions cached per (scenario, distribution, U-or-not, mode), shared
by every environment instance of the same scenario object (``get_scenario`` returns the same object for the same
name and parameters), so a second instance compiles nothing.

``ScenarioVectorEnv`` steps ``num_envs`` episodes in ONE jitted, vmapped call per ``step``. Autoreset follows
Gymnasium 1.x ``AutoresetMode.NEXT_STEP`` by default (as ``SyncVectorEnv``): the step after an episode ends resets
that sub-environment instead of stepping it, ignoring its action and returning reward 0 and both flags False.
``autoreset_mode=AutoresetMode.SAME_STEP`` resets in the step that ends the episode instead: the returned
observation is the new episode's first one and the ended episode's last observation is in ``info["final_obs"]``
(object array, None where the episode did not end) with the mask ``info["_final_obs"]``. Every episode gets a
fresh level of the distribution, never a reused one: levels are drawn in batches into a buffer (``buffer_size``
levels per draw, one jitted vmapped sampler call, keys from the seeded stream) and each restarting env takes the
next unused one, so the sampler stays out of the compiled step.
``metadata["autoreset_mode"]`` says which mode an instance uses. With ``utility_info=True``,
``info["utility"][term]`` is a float array over envs: U of the transition each env took in this call (0 for an env
that was reset instead, in NEXT_STEP mode).

``aligntriage.interop.registration`` registers ``aligntriage/<scenario>-v0`` for every built-in scenario, with both
an entry point (``gymnasium.make``) and a vector entry point (``gymnasium.make_vec``).
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from aligntriage.errors import AligntriageError
from aligntriage.scenario import Scenario

__all__ = ["ScenarioEnv", "ScenarioVectorEnv", "observation_space_for", "OBS_HIGH"]

OBS_HIGH = {
    # qa-kidnap's int32 planes: 0/1 planes, ``progress`` in [0, hard_steps - 1], ``wait`` in [0, question_every].
    "qa-kidnap": lambda params: max(1, int(params["question_every"]), int(params["hard_steps"]) - 1),
}
"""Per built-in scenario name with integer (non-boolean) observations: ``params -> high`` (low is 0)."""


# --------------------------------------------------------------------------------------------------------------
# helpers


def _resolve(scenario_or_name: Scenario | str, params: dict | None) -> Scenario:
    from aligntriage.worlds import get_scenario

    if isinstance(scenario_or_name, Scenario):
        if params:
            raise AligntriageError("params apply to a scenario given by name; this one is already built")
        return scenario_or_name
    return get_scenario(str(scenario_or_name), **(params or {}))


def _seed_key(rng: np.random.Generator) -> np.ndarray:
    """A raw (threefry, ``uint32[2]``) JAX key drawn from a Gymnasium generator: 64 bits of the seeded stream."""
    return rng.integers(0, 2**32, size=2, dtype=np.uint32)


def _obs_of(world):
    def observe(state):
        obs = world.observe(state)
        return obs.astype(jnp.uint8) if obs.dtype == jnp.bool_ else obs

    return observe


@functools.lru_cache(maxsize=None)
def _raw_obs_struct(scenario: Scenario) -> jax.ShapeDtypeStruct:
    """Shape and dtype of ``world.observe`` (as the world returns it) for a train level."""
    world, sample = scenario.world, scenario.distribution("train").sample
    state = jax.eval_shape(lambda k: world.reset(k, sample(k)), jax.random.PRNGKey(0))
    return jax.eval_shape(world.observe, state)


def observation_space_for(scenario: Scenario, obs_bounds: tuple | None = None) -> spaces.Box:
    """The ``Box`` of one observation of a scenario's world (see the module doc for the bounds)."""
    raw = _raw_obs_struct(scenario)
    is_bool = raw.dtype == jnp.bool_
    dtype = np.dtype(np.uint8) if is_bool else np.dtype(raw.dtype)
    if obs_bounds is not None:
        low, high = obs_bounds
    elif is_bool:
        low, high = 0, 1
    elif np.issubdtype(dtype, np.integer):
        if scenario.name in OBS_HIGH:
            low, high = 0, OBS_HIGH[scenario.name](scenario.params)
        else:
            info = np.iinfo(dtype)
            low, high = info.min, info.max
    else:
        low, high = -np.inf, np.inf
    return spaces.Box(low=low, high=high, shape=tuple(raw.shape), dtype=dtype)


_SAMPLER_OPTIONS = {"xla_backend_optimization_level": 0}
"""Compiler options of the functions that draw levels: unoptimised XLA halves their compile time (coinrun's sampler:
about 4 s to 2 s on 2 cores) and they run once per episode (single env) or once per buffer of levels (vector env),
where the few extra microseconds do not matter. Step functions are compiled with full optimisation."""


def _where(mask, new, old):
    """Per-env select over a batched pytree: ``mask`` is ``bool[n]``."""
    return jax.tree.map(lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b), new, old)


# --------------------------------------------------------------------------------------------------------------
# compiled functions, shared by every instance of the same scenario object


@functools.lru_cache(maxsize=None)
def _single_reset_fns(scenario: Scenario, dist: str):
    world, sample, observe = scenario.world, scenario.distribution(dist).sample, _obs_of(scenario.world)

    def reset_sampled(key):
        k_level, k_reset = jax.random.split(key)
        state = world.reset(k_reset, sample(k_level))
        return state, observe(state)

    def reset_on(key, level):
        state = world.reset(key, level)
        return state, observe(state)

    return jax.jit(reset_sampled, compiler_options=_SAMPLER_OPTIONS), jax.jit(reset_on)


def _transition(scenario: Scenario, with_utility: bool):
    """``(s, a) -> (s', R, terminated, truncated[, U terms])`` for one env, pure."""
    world, reward = scenario.world, scenario.reward

    def transition(state, action):
        nxt = world.step(state, action)
        r = reward(state, action, nxt).astype(jnp.float32)
        terminated = jnp.asarray(world.is_terminal(nxt), bool)
        truncated = (nxt.t >= world.horizon) & ~terminated
        if with_utility:
            return nxt, r, terminated, truncated, scenario.utility_terms(state, action, nxt)
        return nxt, r, terminated, truncated, None

    return transition


@functools.lru_cache(maxsize=None)
def _single_step_fn(scenario: Scenario, with_utility: bool):
    transition, observe = _transition(scenario, with_utility), _obs_of(scenario.world)

    def step(state, action):
        nxt, r, terminated, truncated, utility = transition(state, action)
        return nxt, observe(nxt), r, terminated, truncated, utility

    return jax.jit(step)


def buffer_size(num_envs: int) -> int:
    """Levels drawn per refill of a vector env's level buffer: every reset takes the next unused one."""
    return max(4 * num_envs, 64)


@functools.lru_cache(maxsize=None)
def _level_source(scenario: Scenario, dist: str):
    """``refill(key, size) -> (key, levels, reset_keys)``: ``size`` fresh levels of a distribution, jitted."""
    sample = scenario.distribution(dist).sample

    def refill(key, size):
        key, k_levels, k_reset = jax.random.split(key, 3)
        return key, jax.vmap(sample)(jax.random.split(k_levels, size)), jax.random.split(k_reset, size)

    return jax.jit(refill, static_argnums=1, compiler_options=_SAMPLER_OPTIONS)


@functools.lru_cache(maxsize=None)
def _vector_fns(scenario: Scenario, with_utility: bool, same_step: bool):
    """(reset_given(levels, keys), reset_masked(...), step(...)), jitted; no level sampling inside any of them.

    Envs that restart take the next levels of a buffer of fresh draws (``_level_source``) in env order, starting at
    ``cursor``: keeping the sampler out of the step keeps it cheap to compile and to run.
    """
    world = scenario.world
    transition = jax.vmap(_transition(scenario, with_utility))
    v_observe = jax.vmap(_obs_of(world))

    def reset_given(levels, keys, n):
        """Every env on the first ``n`` of ``levels`` (the buffer's front, or levels a user gave)."""
        states = jax.vmap(world.reset)(keys[:n], jax.tree.map(lambda leaf: leaf[:n], levels))
        return states, v_observe(states)

    def restart(states, mask, levels, keys, cursor):
        idx = jnp.clip(cursor + jnp.cumsum(mask) - 1, 0, keys.shape[0] - 1)
        fresh = jax.vmap(world.reset)(keys[idx], jax.tree.map(lambda leaf: leaf[idx], levels))
        return _where(mask, fresh, states)

    def reset_masked(states, mask, levels, keys, cursor):
        states = restart(states, mask, levels, keys, cursor)
        return states, v_observe(states)

    def step(states, actions, autoreset, levels, keys, cursor):
        nxt, r, terminated, truncated, utility = transition(states, actions)
        if same_step:
            done = terminated | truncated
            final_obs = v_observe(nxt)
            states = restart(nxt, done, levels, keys, cursor)
            return states, v_observe(states), r, terminated, truncated, utility, final_obs, done
        # NEXT_STEP: envs whose episode ended on the previous call are reset now instead of stepped.
        states = restart(nxt, autoreset, levels, keys, cursor)
        r = jnp.where(autoreset, 0.0, r)
        terminated, truncated = terminated & ~autoreset, truncated & ~autoreset
        if utility is not None:
            utility = {name: jnp.where(autoreset, 0.0, value) for name, value in utility.items()}
        return states, v_observe(states), r, terminated, truncated, utility, None, terminated | truncated

    return jax.jit(reset_given, static_argnums=2), jax.jit(reset_masked), jax.jit(step)


# --------------------------------------------------------------------------------------------------------------
# single environment


class ScenarioEnv(gymnasium.Env):
    """One episode at a time of a scenario's world, reward R only (U in ``info`` only with ``utility_info=True``)."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        scenario_or_name: Scenario | str,
        dist: str = "train",
        params: dict | None = None,
        utility_info: bool = False,
        render_mode: str | None = None,
        obs_bounds: tuple | None = None,
    ):
        self.scenario = _resolve(scenario_or_name, params)
        self.scenario.distribution(dist)  # UnknownName for a bad distribution, before anything compiles
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            valid = ", ".join(self.metadata["render_modes"])
            raise AligntriageError(f"unknown render_mode '{render_mode}'; valid: {valid}")
        self.dist = dist
        self.utility_info = bool(utility_info)
        self.render_mode = render_mode
        world = self.scenario.world
        self.observation_space = observation_space_for(self.scenario, obs_bounds)
        self.action_space = spaces.Discrete(world.num_actions)
        self._reset_sampled, self._reset_on = _single_reset_fns(self.scenario, dist)
        self._step = _single_step_fn(self.scenario, self.utility_info)
        self.state = None

    @property
    def level(self):
        """The current episode's level (a pytree of the scenario's ``Level``)."""
        if self.state is None:
            raise AligntriageError("the environment has not been reset")
        return self.state.level

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        key = _seed_key(self.np_random)
        if options and options.get("level") is not None:
            self.state, obs = self._reset_on(key, options["level"])
        else:
            self.state, obs = self._reset_sampled(key)
        return np.array(obs), {}

    def step(self, action):
        if self.state is None:
            raise AligntriageError("call reset() before step()")
        self.state, obs, reward, terminated, truncated, utility = self._step(self.state, np.int32(action))
        obs, reward, terminated, truncated, utility = jax.device_get((obs, reward, terminated, truncated, utility))
        info = {}
        if self.utility_info:
            info["utility"] = {name: float(value) for name, value in utility.items()}
        return np.array(obs), float(reward), bool(terminated), bool(truncated), info

    def render(self):
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; create the env with render_mode='ansi'")
            return None
        if self.state is None:
            return ""
        return "\n".join(self.scenario.world.render(jax.device_get(self.state)))


# --------------------------------------------------------------------------------------------------------------
# vector environment


class ScenarioVectorEnv(gymnasium.vector.VectorEnv):
    """``num_envs`` episodes of a scenario stepped together in one jitted vmapped call; autoreset as documented."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        scenario_or_name: Scenario | str,
        num_envs: int,
        dist: str = "train",
        params: dict | None = None,
        utility_info: bool = False,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        obs_bounds: tuple | None = None,
    ):
        if int(num_envs) < 1:
            raise AligntriageError(f"num_envs must be >= 1, got {num_envs}")
        mode = AutoresetMode(autoreset_mode)
        if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise AligntriageError(f"autoreset_mode must be NextStep or SameStep, got {mode.value}")
        self.scenario = _resolve(scenario_or_name, params)
        self.scenario.distribution(dist)
        self.num_envs = int(num_envs)
        self.dist = dist
        self.utility_info = bool(utility_info)
        self.autoreset_mode = mode
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.render_mode = None
        self.single_observation_space = observation_space_for(self.scenario, obs_bounds)
        self.single_action_space = spaces.Discrete(self.scenario.world.num_actions)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._refill = _level_source(self.scenario, dist)
        self._reset_given, self._reset_masked, self._step = _vector_fns(
            self.scenario, self.utility_info, mode == AutoresetMode.SAME_STEP)
        self._buffer_size = buffer_size(self.num_envs)
        self._key = None
        self._buffer = None  # (levels, reset keys) of fresh draws; envs that restart take them from _cursor on
        self._cursor = 0
        self.states = None
        self._autoreset = np.zeros(self.num_envs, bool)

    def _ensure_buffer(self, needed: int) -> None:
        if self._buffer is None or self._cursor + needed > self._buffer_size:
            self._key, levels, keys = self._refill(self._key, self._buffer_size)
            self._buffer, self._cursor = (levels, keys), 0

    def level(self, i: int):
        """Sub-environment ``i``'s current level (a pytree of the scenario's ``Level``)."""
        if self.states is None:
            raise AligntriageError("the environment has not been reset")
        return jax.tree.map(lambda leaf: leaf[i], self.states.level)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset every sub-environment (or those of ``options["reset_mask"]``); ``seed`` is one int for the batch.

        A full reset draws a new level buffer, so ``reset(seed=s)`` fixes everything that follows.
        ``options={"levels": levels}`` starts every env on a given level (a pytree with a leading ``num_envs`` axis).
        """
        super().reset(seed=seed)
        if seed is not None or self._key is None:
            self._key = jnp.asarray(_seed_key(self.np_random))
        options = options or {}
        mask = options.get("reset_mask")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_:
                raise AligntriageError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},)")
            if self.states is None:
                raise AligntriageError("reset_mask needs a full reset first")
            self._ensure_buffer(int(mask.sum()))
            self.states, obs = self._reset_masked(self.states, mask, *self._buffer, np.int32(self._cursor))
            self._cursor += int(mask.sum())
            self._autoreset = self._autoreset & ~mask
            return np.array(obs), {}
        self._buffer = None
        self._ensure_buffer(self.num_envs)
        levels = options.get("levels")
        if levels is None:
            levels, self._cursor = self._buffer[0], self.num_envs
        self.states, obs = self._reset_given(levels, self._buffer[1], self.num_envs)
        self._autoreset = np.zeros(self.num_envs, bool)
        return np.array(obs), {}

    def step(self, actions):
        if self.states is None:
            raise AligntriageError("call reset() before step()")
        actions = np.asarray(actions, dtype=np.int32).reshape(self.num_envs)
        next_step = self.autoreset_mode == AutoresetMode.NEXT_STEP
        self._ensure_buffer(int(self._autoreset.sum()) if next_step else self.num_envs)
        self.states, *out = self._step(self.states, actions, self._autoreset, *self._buffer, np.int32(self._cursor))
        obs, reward, terminated, truncated, utility, final_obs, done = jax.device_get(out)
        info: dict[str, Any] = {}
        if next_step:
            self._cursor += int(self._autoreset.sum())
            self._autoreset = np.asarray(done, bool).copy()
        else:
            self._cursor += int(done.sum())
            if done.any():
                objs = np.full(self.num_envs, None, dtype=object)
                for i in np.flatnonzero(done):
                    objs[i] = np.array(final_obs[i])
                info["final_obs"], info["_final_obs"] = objs, np.asarray(done, bool).copy()
        if self.utility_info:
            info["utility"] = {name: np.asarray(value, np.float64) for name, value in utility.items()}
        return (np.array(obs), np.asarray(reward, np.float64), np.asarray(terminated, bool).copy(),
                np.asarray(truncated, bool).copy(), info)

    def close_extras(self, **kwargs):
        self.states = None
