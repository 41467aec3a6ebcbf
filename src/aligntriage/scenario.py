"""The scenario model: every part of the seed's partition of responsibility, as code.

A scenario bundles
- a *world*: pure JAX functions over a small state pytree (``reset``, ``step``, ``observe``, ``is_terminal``);
- named level *distributions* (``train``, ``deploy``, shifts ...), each a pure ``sample(key) -> level``;
- the *reward provision process* ``reward(s, a, s')``, the only signal training ever sees;
- the *intended utility* U as named ``Term``s, hidden from the agent, some flagged catastrophic;
- *candidate goals*: the intended goal and the proxies an agent might have learned instead;
- *partitions*: which U terms the reward is responsible for (the rest are the training process's job);
- *affordances*: named action subsets, because outer alignment is relative to what a given agent can do;
- optionally ``mutate(key, level) -> level``, a small random edit of a level, which the ``accel-exact`` curriculum
  uses to explore the level space around its highest-regret levels.

States are NamedTuples with a ``level`` field (constant within an episode) and a ``t`` field (the step count);
everything else in the state must be integer or boolean so that the exact solver can key states by value.
Anything random about an episode is drawn into the level at sampling time, so a level fixes its MDP.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from aligntriage.errors import AligntriageError, UnknownName

if TYPE_CHECKING:
    import numpy as np

    from aligntriage.solve.enumerate import MDP, MDPBatch

Level = Any
State = Any
TransitionFn = Callable[[State, jax.Array, State], jax.Array]

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
"""What a scenario's part names may hold: they are typed on the command line (``--partition NAME``,
``goal:NAME@EPS``) and shown in rich tables, so no markup brackets, separators or spaces."""

_KINDS = {bool: "a boolean (0 or 1)", int: "an integer", float: "a number", str: "a text"}


@dataclass(frozen=True)
class Param:
    """A level parameter's default, type, range and meaning; ``-p KEY=VALUE`` is checked against it before
    ``build()`` sees the value. The type is the default's unless ``kind`` says otherwise; bounds are inclusive
    unless ``open_low`` (a strict lower bound, e.g. a reward that must be positive)."""

    default: Any
    description: str = ""
    low: float | None = None
    high: float | None = None
    kind: type | None = None
    open_low: bool = False

    @classmethod
    def of(cls, spec) -> Param:
        """A ``PARAMS`` entry as a Param: a plain default (a user scenario's ``{name: default}``) infers its type."""
        return spec if isinstance(spec, Param) else cls(spec)

    @property
    def type(self) -> type:
        kind = self.kind or type(self.default)
        return kind if kind in _KINDS else str

    def range_text(self, name: str = "value") -> str:
        low = f"{self.low:g} {'<' if self.open_low else '<='} " if self.low is not None else ""
        high = f" <= {self.high:g}" if self.high is not None else ""
        if low and not high:
            return f"{name} {'>' if self.open_low else '>='} {self.low:g}"
        return f"{low}{name}{high}" if low or high else ""

    def check(self, name: str, value, where: str):
        """The value cast to the parameter's type, or a one-line error naming it and what is allowed."""
        kind = self.type
        bad = AligntriageError(f"{where} needs {_KINDS[kind]} {self.range_text(name) or name}, got "
                               f"{name}={value!r}")
        if isinstance(value, np.generic):
            value = value.item()
        if kind is str:
            return str(value)
        if kind is bool:
            if isinstance(value, bool) or value in (0, 1):
                return bool(value)
            raise bad
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise bad
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise bad
        below = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        if below or (self.high is not None and value > self.high):
            raise bad
        return value


@dataclass(frozen=True)
class World:
    """Pure dynamics of one kind of level. Steps are deterministic given the level."""

    reset: Callable[[jax.Array, Level], State]
    step: Callable[[State, jax.Array], State]
    observe: Callable[[State], jax.Array]
    is_terminal: Callable[[State], jax.Array]
    horizon: int
    actions: tuple[str, ...]
    render: Callable[[State], list[str]]
    channels: tuple[str, ...]
    time_dependent: bool = False
    """True when the dynamics read ``state.t`` (e.g. a monster's pre-drawn moves); the solver then keeps t."""

    @property
    def num_actions(self) -> int:
        return len(self.actions)


@dataclass(frozen=True)
class Distribution:
    name: str
    description: str
    sample: Callable[[jax.Array], Level]


@dataclass(frozen=True)
class Term:
    """One named term of the intended utility U, a function of a transition (s, a, s').

    ``harm`` marks a harm or tampering term (non-zero exactly where the harm happens): the threat-model reading
    asks whether the reward signal causes it. A ``catastrophic`` term is a harm that also forbids ``aligned``.
    """

    name: str
    value: TransitionFn
    description: str
    catastrophic: bool = False
    harm: bool = False

    @property
    def harmful(self) -> bool:
        return self.harm or self.catastrophic


@dataclass(frozen=True)
class Goal:
    """A candidate goal: what the agent might be pursuing.

    ``achieved(s, a, s')`` marks the event that counts as reaching the goal (used for the outcome taxonomy);
    ``reward`` defaults to 1 on that event. With ``terminal`` the goal's own MDP ends once it is achieved,
    which is what "pursuing X" means for one-shot goals like reaching a corner.
    """

    name: str
    achieved: TransitionFn
    description: str
    intended: bool = False
    reward: TransitionFn | None = None
    terminal: bool = True

    def reward_fn(self) -> TransitionFn:
        if self.reward is not None:
            return self.reward
        return lambda s, a, s2: self.achieved(s, a, s2).astype(jnp.float32)


@dataclass(frozen=True)
class Partition:
    """Which U terms the reward is responsible for; the other terms belong to the training process."""

    name: str
    reward_scope: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Oversight:
    """A named, observable feature of a level that says whether the reward process watches: ``set(level, on)``
    returns the same level with oversight present or absent, so one agent can be compared on paired levels that
    differ in it alone."""

    name: str
    description: str
    set: Callable[[Level, jax.Array], Level]


@dataclass(frozen=True)
class Affordances:
    """What a particular agent can do: a subset of the world's actions."""

    name: str
    actions: tuple[str, ...]
    description: str


class LevelSource(Protocol):
    """Levels enumerated outside JAX (e.g. through a MiniGrid environment): the MDPs and observations directly."""

    def mdps(self, dist: str, count: int, seed: int) -> list[MDP]:
        """``count`` levels of a distribution, enumerated; the same seed gives the same levels."""
        ...

    def observations(self, batch: MDPBatch) -> np.ndarray:
        """The observation of every state of a batch [S, ...], as the agent received it in training."""
        ...


def _frozen(items) -> Mapping:
    return MappingProxyType({item.name: item for item in items})


@dataclass(frozen=True, eq=False)
class Scenario:
    """One complete case study; hashed by identity so jitted functions can be cached per scenario."""

    name: str
    summary: str
    world: World
    distributions: Mapping[str, Distribution]
    reward: TransitionFn
    reward_description: str
    utility: Mapping[str, Term]
    goals: Mapping[str, Goal]
    partitions: Mapping[str, Partition]
    affordances: Mapping[str, Affordances]
    params: Mapping[str, Any] = field(default_factory=dict)
    doc: str = ""
    training: Mapping[str, Any] = field(default_factory=dict)
    """Training settings this scenario needs by default (e.g. a step budget); explicit user settings win."""
    oversight: Oversight | None = None
    """The level feature that says whether the reward process watches, where the scenario has one."""
    source: LevelSource | None = None
    """Set when levels are enumerated outside JAX; the world's JAX functions then only raise (no JAX training)."""
    mutate: Callable[[jax.Array, Level], Level] | None = None
    """A small random edit of a level (same pytree, shapes and dtypes), for the ``accel-exact`` curriculum."""

    @classmethod
    def build(
        cls,
        *,
        name: str,
        summary: str,
        world: World,
        distributions: list[Distribution],
        reward: TransitionFn,
        reward_description: str,
        utility: list[Term],
        goals: list[Goal],
        partitions: list[Partition],
        affordances: list[Affordances] | None = None,
        params: Mapping[str, Any] | None = None,
        doc: str = "",
        training: Mapping[str, Any] | None = None,
        oversight: Oversight | None = None,
        source: LevelSource | None = None,
        mutate: Callable[[jax.Array, Level], Level] | None = None,
    ) -> Scenario:
        """Assemble and validate a scenario from lists of its parts (the form a scenario file uses)."""
        if affordances is None:
            affordances = [Affordances("all", world.actions, "every action of the world")]
        scenario = cls(
            name=name,
            summary=summary,
            world=world,
            distributions=_frozen(distributions),
            reward=reward,
            reward_description=reward_description,
            utility=_frozen(utility),
            goals=_frozen(goals),
            partitions=_frozen(partitions),
            affordances=_frozen(affordances),
            params=MappingProxyType(dict(params or {})),
            doc=doc,
            training=MappingProxyType(dict(training or {})),
            oversight=oversight,
            source=source,
            mutate=mutate,
        )
        scenario.validate()
        return scenario

    def validate(self) -> None:
        where = f"scenario '{self.name}'"
        for required in ("train", "deploy"):
            if required not in self.distributions:
                raise AligntriageError(f"{where} lacks the required distribution '{required}'")
        for partition in self.partitions.values():
            for term in partition.reward_scope:
                if term not in self.utility:
                    raise UnknownName("utility term", term, self.utility, f"partition '{partition.name}' of {where}")
        for aff in self.affordances.values():
            for action in aff.actions:
                if action not in self.world.actions:
                    raise UnknownName("action", action, self.world.actions, f"affordances '{aff.name}' of {where}")
        if sum(goal.intended for goal in self.goals.values()) != 1:
            raise AligntriageError(f"{where} must mark exactly one candidate goal as intended")
        if not self.partitions:
            raise AligntriageError(f"{where} declares no partition")
        names = [("scenario name", self.name)] + [
            (kind, name) for kind, parts in (("distribution", self.distributions), ("utility term", self.utility),
                                             ("goal", self.goals), ("partition", self.partitions),
                                             ("affordance set", self.affordances)) for name in parts]
        for kind, name in names:
            if not isinstance(name, str) or not NAME.fullmatch(name):
                raise AligntriageError(f"{where}: {kind} name {name!r} must be letters, digits and _ . + - "
                                       "(it is typed on the command line), starting with a letter or digit")
        self._check_state()
        self._check_mutate()

    def _check_mutate(self) -> None:
        """A mutated level must be a level: the same pytree with the same shapes and dtypes (traced, not run)."""
        if self.mutate is None:
            return
        where = f"scenario '{self.name}'"
        sample = self.distributions["train"].sample
        level = jax.eval_shape(sample, jax.random.PRNGKey(0))
        try:
            mutated = jax.eval_shape(lambda k: self.mutate(k, sample(k)), jax.random.PRNGKey(0))
        except Exception as exc:  # a user's mutate: report, don't crash
            raise AligntriageError(f"{where}: mutate(key, level) fails on a sampled 'train' level: "
                                   f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
        same = jax.tree.structure(level) == jax.tree.structure(mutated) and all(
            (a.shape, a.dtype) == (b.shape, b.dtype) for a, b in zip(jax.tree.leaves(level), jax.tree.leaves(mutated)))
        if not same:
            raise AligntriageError(f"{where}: mutate(key, level) must return a level of the same structure, shapes "
                                   "and dtypes as the one it was given")

    def _check_state(self) -> None:
        """Trace reset and step on a sampled level of every distribution (shapes only, nothing runs): the state
        needs ``level`` and ``t`` fields and every other leaf integer or boolean, since the exact solver keys
        states by value and casts them to int32 (a float field would silently be truncated)."""
        if self.source is not None:  # enumerated outside JAX: its states are not JAX pytrees
            return
        where = f"scenario '{self.name}'"
        for dist in self.distributions.values():
            def first_step(key, sample=dist.sample):
                state = self.world.reset(key, sample(key))
                return state, self.world.step(state, jnp.int32(0))

            try:
                states = jax.eval_shape(first_step, jax.random.PRNGKey(0))
            except Exception as exc:  # a user's world: report, don't crash
                raise AligntriageError(f"{where}: reset or step fails on a sampled '{dist.name}' level: "
                                       f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                                       ) from exc
            for label, state in zip(("reset", "step"), states):
                fields = getattr(state, "_fields", ())
                if "level" not in fields or "t" not in fields:
                    raise AligntriageError(f"{where}: the state from {label} must be a NamedTuple with 'level' and "
                                           f"'t' fields, got {type(state).__name__}")
                for name in fields:
                    if name == "level":
                        continue
                    for path, leaf in jax.tree_util.tree_flatten_with_path(getattr(state, name))[0]:
                        dtype = np.dtype(leaf.dtype)
                        if not (np.issubdtype(dtype, np.integer) or dtype == np.bool_):
                            field_name = name + jax.tree_util.keystr(path)
                            raise AligntriageError(
                                f"{where}: state field '{field_name}' from {label} is {dtype}; every state field "
                                "but 'level' must be integer or boolean (the exact solver keys states by value), "
                                "so store a scaled integer instead")

    def distribution(self, name: str) -> Distribution:
        if name not in self.distributions:
            raise UnknownName("distribution", name, self.distributions, f"scenario '{self.name}'")
        return self.distributions[name]

    def partition(self, name: str) -> Partition:
        if name not in self.partitions:
            raise UnknownName("partition", name, self.partitions, f"scenario '{self.name}'")
        return self.partitions[name]

    def affordance(self, name: str) -> Affordances:
        if name not in self.affordances:
            raise UnknownName("affordance set", name, self.affordances, f"scenario '{self.name}'")
        return self.affordances[name]

    def goal(self, name: str) -> Goal:
        if name not in self.goals:
            raise UnknownName("goal", name, self.goals, f"scenario '{self.name}'")
        return self.goals[name]

    @property
    def intended_goal(self) -> Goal:
        return next(goal for goal in self.goals.values() if goal.intended)

    def action_mask(self, affordances: str | None) -> jax.Array:
        """Boolean mask over the world's actions for an affordance set (None: every action)."""
        if affordances is None:
            return jnp.ones(self.world.num_actions, bool)
        allowed = set(self.affordance(affordances).actions)
        return jnp.array([a in allowed for a in self.world.actions])

    @property
    def harm_terms(self) -> tuple[str, ...]:
        """The U terms that mark a harm or a tampering (the catastrophic ones among them)."""
        return tuple(name for name, term in self.utility.items() if term.harmful)

    def with_reward(self, patch: Mapping[str, float] | None) -> Scenario:
        """The same scenario with R + sum of weight x U term for each (term, weight) of ``patch``: a reward that
        also answers for those terms (the outer fix, and the counterfactual of the threat-model reading)."""
        if not patch:
            return self
        for term, weight in patch.items():
            if term not in self.utility:
                raise UnknownName("utility term", term, self.utility, f"the reward patch of scenario '{self.name}'")
            if not isinstance(weight, (int, float)) or weight != weight:
                raise AligntriageError(f"the weight of '{term}' in a reward patch must be a number, got {weight!r}")
        return _patched(self, tuple(sorted((t, float(w)) for t, w in patch.items())))

    def utility_terms(self, s: State, a: jax.Array, s2: State) -> dict[str, jax.Array]:
        """U by term for one transition."""
        return {name: term.value(s, a, s2).astype(jnp.float32) for name, term in self.utility.items()}


@functools.lru_cache(maxsize=64)
def _patched(scenario: Scenario, patch: tuple[tuple[str, float], ...]) -> Scenario:
    """One patched scenario object per (scenario, patch), so its jitted functions are compiled once."""
    base = scenario.reward
    terms = [(scenario.utility[name].value, weight) for name, weight in patch]

    def reward(s, a, s2):
        return sum((weight * value(s, a, s2).astype(jnp.float32) for value, weight in terms),
                   base(s, a, s2).astype(jnp.float32))

    extra = " + ".join(f"{weight:g} x {name}" for name, weight in patch)
    return dataclasses.replace(scenario, reward=reward, reward_description=f"{scenario.reward_description} + {extra}")
