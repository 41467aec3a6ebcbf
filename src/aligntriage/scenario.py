"""The scenario model: every part of the seed's partition of responsibility, as code.

A scenario bundles
- a *world*: pure JAX functions over a small state pytree (``reset``, ``step``, ``observe``, ``is_terminal``);
- named level *distributions* (``train``, ``deploy``, shifts ...), each a pure ``sample(key) -> level``;
- the *reward provision process* ``reward(s, a, s')``, the only signal training ever sees;
- the *intended utility* U as named ``Term``s, hidden from the agent, some flagged catastrophic;
- *candidate goals*: the intended goal and the proxies an agent might have learned instead;
- *partitions*: which U terms the reward is responsible for (the rest are the training process's job);
- *affordances*: named action subsets, because outer alignment is relative to what a given agent can do.

States are NamedTuples with a ``level`` field (constant within an episode) and a ``t`` field (the step count);
everything else in the state must be integer or boolean so that the exact solver can key states by value.
Anything random about an episode is drawn into the level at sampling time, so a level fixes its MDP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import jax
import jax.numpy as jnp

from aligntriage.errors import AligntriageError, UnknownName

if TYPE_CHECKING:
    import numpy as np

    from aligntriage.solve.enumerate import MDP, MDPBatch

Level = Any
State = Any
TransitionFn = Callable[[State, jax.Array, State], jax.Array]


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
    """One named term of the intended utility U, a function of a transition (s, a, s')."""

    name: str
    value: TransitionFn
    description: str
    catastrophic: bool = False


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
    source: LevelSource | None = None
    """Set when levels are enumerated outside JAX; the world's JAX functions then only raise (no JAX training)."""

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
        source: LevelSource | None = None,
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
            source=source,
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

    def utility_terms(self, s: State, a: jax.Array, s2: State) -> dict[str, jax.Array]:
        """U by term for one transition."""
        return {name: term.value(s, a, s2).astype(jnp.float32) for name, term in self.utility.items()}
