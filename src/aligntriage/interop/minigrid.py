"""MiniGrid as a world: a scenario whose levels are enumerated through the MiniGrid environment itself.

A MiniGrid scenario file declares the environment constructor of each distribution (``Levels``; a level is one
seed of ``env.reset(seed=...)``), the observation wrappers the agent was trained with, and U terms and candidate
goals as plain Python functions of (state before, action, state after), where a state is a read-only
``MiniGridState`` (grid encoding, agent position and direction, carried object, step count). ``minigrid_scenario``
turns that into an ordinary ``Scenario`` whose ``source`` enumerates levels outside JAX:

- enumeration: breadth-first over the environment's own ``step``: each state is restored into the environment
  (grid and carried object, agent position and direction, step count), every action is stepped, and the state
  reached is keyed by its contents (``Grid.encode()``, carried object, position, direction, and the step count
  only when the scenario is ``time_dependent``). The grid is copied once per expanded state and again only after
  a step that changed it (pickup, drop, toggle), and ``step`` skips making the observation it would return (the
  environment's ``gen_obs`` is stubbed while enumerating, restored for an environment whose ``step`` reads it),
  so a navigation level costs one ``step`` and one ``encode`` per (state, action). A step that draws from the
  environment's random generator (e.g. moving obstacles) is refused: only deterministic dynamics enumerate.
- R is the environment's reward from ``step`` (MiniGrid's ``1 - 0.9 t / max_steps`` on the goal); without
  ``time_dependent`` the step counter is held at 0 when stepping, so that reward is ``1 - 0.9 / max_steps`` and the
  discount supplies the time preference. Reward wrappers used in training are not part of R; pass ``reward=`` to
  declare R as a function of (s, a, s') instead.
- observations: each enumerated state is restored (``Grid.decode`` of its encoding) and observed with
  ``gen_obs()`` passed through the declared wrappers' ``observation()`` methods, innermost first: exactly what
  ``gymnasium.make("aligntriage/NAME-v0")`` (the same wrappers) gave the agent in training. Only stateless
  observation wrappers can be replayed this way; a wrapper that changes ``step`` or ``reset`` is refused by name.

The scenario's ``world`` has the real horizon (the largest ``max_steps``), actions and channels, but its JAX
functions raise: aligntriage's own PPO cannot train these worlds (train with Stable-Baselines3 on the gymnasium
id and diagnose with ``--policy sb3:PATH.zip``). EPIC is not computed for them.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium
import numpy as np

from aligntriage.errors import AligntriageError, UnknownName
from aligntriage.scenario import Affordances, Distribution, Goal, Partition, Scenario, Term, World
from aligntriage.solve.enumerate import DEFAULT_MAX_STATES, MDP, MDPBatch

try:
    from minigrid.core.constants import COLOR_TO_IDX, IDX_TO_COLOR, IDX_TO_OBJECT, OBJECT_TO_IDX
    from minigrid.core.grid import Grid
    from minigrid.core.world_object import WorldObj
    from minigrid.minigrid_env import MiniGridEnv
except ModuleNotFoundError as exc:  # pragma: no cover - exercised only without the extra
    raise AligntriageError("MiniGrid scenarios need the minigrid package: pip install 'aligntriage[interop]'") from exc

__all__ = ["Levels", "MiniGridState", "MiniGridSource", "minigrid_scenario", "make_env"]

CHANNELS = ("object", "color", "state")
"""MiniGrid's cell encoding (``OBJECT_TO_IDX``, ``COLOR_TO_IDX``, door state)."""

_PASS_THROUGH = ("TimeLimit", "OrderEnforcing", "PassiveEnvChecker", "RecordEpisodeStatistics")
"""gymnasium wrappers that override step/reset but never touch the observation."""


@dataclass(frozen=True)
class Levels:
    """One distribution: ``make()`` builds the MiniGrid environment whose ``reset(seed=s)`` draws level s.

    ``seeds`` restricts the levels to a fixed set (e.g. a held-out list); by default any seed in [0, 2**31).
    """

    name: str
    description: str
    make: Callable[[], gymnasium.Env]
    seeds: Sequence[int] | None = None


class MiniGridState(NamedTuple):
    """A read-only MiniGrid state as U terms and goals see it. ``grid`` is ``Grid.encode()`` ([width, height, 3])."""

    grid: np.ndarray
    agent_pos: tuple[int, int]
    agent_dir: int
    carrying: tuple[int, int, int] | None
    step_count: int

    def cell(self, x: int, y: int) -> tuple[str, str, int]:
        """(object type, colour, state) of a cell, e.g. ``("goal", "green", 0)``; ``"empty"`` for nothing."""
        kind, color, state = (int(v) for v in self.grid[x, y])
        return IDX_TO_OBJECT[kind], IDX_TO_COLOR[color], state

    def _matches(self, x: int, y: int, kind: str, color: str | None) -> bool:
        if not (0 <= x < self.grid.shape[0] and 0 <= y < self.grid.shape[1]):
            return False
        cell = self.grid[x, y]
        return cell[0] == OBJECT_TO_IDX[kind] and (color is None or cell[1] == COLOR_TO_IDX[color])

    def find(self, kind: str, color: str | None = None) -> list[tuple[int, int]]:
        """Positions of every cell holding an object of that type (and colour)."""
        mask = self.grid[..., 0] == OBJECT_TO_IDX[kind]
        if color is not None:
            mask &= self.grid[..., 1] == COLOR_TO_IDX[color]
        return [(int(x), int(y)) for x, y in zip(*np.nonzero(mask))]

    @property
    def front(self) -> tuple[int, int]:
        dx, dy = ((1, 0), (0, 1), (-1, 0), (0, -1))[self.agent_dir]
        return self.agent_pos[0] + dx, self.agent_pos[1] + dy

    def on(self, kind: str, color: str | None = None) -> bool:
        """Whether the agent stands on such a cell (goal, floor, lava, open door)."""
        return self._matches(*self.agent_pos, kind, color)

    def facing(self, kind: str, color: str | None = None) -> bool:
        return self._matches(*self.front, kind, color)

    def adjacent(self, kind: str, color: str | None = None) -> bool:
        """Whether such an object is in one of the four cells next to the agent."""
        x, y = self.agent_pos
        return any(self._matches(x + dx, y + dy, kind, color) for dx, dy in ((1, 0), (0, 1), (-1, 0), (0, -1)))

    def carries(self, kind: str, color: str | None = None) -> bool:
        if self.carrying is None:
            return False
        return self.carrying[0] == OBJECT_TO_IDX[kind] and (color is None or self.carrying[1] == COLOR_TO_IDX[color])


def _unavailable(name: str, what: str):
    def raise_(*args, **kwargs):
        raise AligntriageError(
            f"scenario '{name}' is enumerated through its MiniGrid environment, not written in JAX: {what} is not "
            f"available (train with Stable-Baselines3 on gymnasium.make('aligntriage/{name}-v0') and diagnose with "
            "--policy sb3:PATH.zip)")

    return raise_


def _wrapper_chain(wrapped: gymnasium.Env) -> list[gymnasium.Wrapper]:
    """The wrappers around the base environment, outermost first; refuses any that would change observations
    in a way ``observation()`` alone cannot replay."""
    chain = []
    env = wrapped
    while isinstance(env, gymnasium.Wrapper):
        cls = type(env)
        if isinstance(env, gymnasium.ObservationWrapper):
            base = gymnasium.ObservationWrapper
        elif isinstance(env, gymnasium.ActionWrapper):
            base = gymnasium.ActionWrapper
        elif isinstance(env, gymnasium.RewardWrapper):
            base = gymnasium.RewardWrapper
        else:
            base = gymnasium.Wrapper
        if cls.__name__ not in _PASS_THROUGH and (cls.step is not base.step or cls.reset is not base.reset):
            raise AligntriageError(
                f"wrapper {cls.__name__} overrides step() or reset(); aligntriage replays each state's observation "
                "through the wrappers' observation() methods only: declare stateless observation wrappers "
                "(e.g. ImgObsWrapper, FullyObsWrapper, FlatObsWrapper)")
        chain.append(env)
        env = env.env
    return chain


def _copy_contents(contents):
    """A working copy of (grid, carried object): a new cell list with every object but walls copied (shallow),
    so pickup/drop (which replace cells) and toggles (which change an object) leave the original intact."""
    grid, carrying = contents
    clone = Grid(grid.width, grid.height)
    clone.grid = [obj if obj is None or obj.type == "wall" else copy.copy(obj) for obj in grid.grid]
    return clone, (None if carrying is None else copy.copy(carrying))


def _no_obs():
    return None


def _encode_obj(obj) -> tuple[int, int, int]:
    return (0, 0, 0) if obj is None else tuple(int(v) for v in obj.encode())


class _Env:
    """One level's environment: the wrapped env (for observations) and its MiniGrid base (stepped directly)."""

    def __init__(self, wrapped: gymnasium.Env, seed: int):
        self.wrapped = wrapped
        self.base = wrapped.unwrapped
        if not isinstance(self.base, MiniGridEnv):
            raise AligntriageError(f"expected a MiniGrid environment (a minigrid.MiniGridEnv), got "
                                   f"{type(self.base).__name__}")
        self.chain = _wrapper_chain(wrapped)
        self.base.reset(seed=int(seed))
        self.width, self.height = self.base.grid.width, self.base.grid.height

    def restore(self, grid, carrying, pos, direction, step_count) -> None:
        base = self.base
        base.grid, base.carrying = grid, carrying
        base.agent_pos, base.agent_dir, base.step_count = (int(pos[0]), int(pos[1])), int(direction), int(step_count)

    def observe(self):
        obs = self.base.gen_obs()
        for wrapper in reversed(self.chain):
            if isinstance(wrapper, gymnasium.ObservationWrapper):
                obs = wrapper.observation(obs)
        return obs


class MiniGridSource:
    """The ``LevelSource`` of a MiniGrid scenario: enumerated MDPs and replayed observations."""

    def __init__(self, name: str, levels: Sequence[Levels], wrappers: Sequence[Callable], utility: Sequence[Term],
                 goals: Sequence[Goal], reward: Callable | None, time_dependent: bool, max_states: int):
        self.name = name
        self.levels = {spec.name: spec for spec in levels}
        self.dist_names = list(self.levels)
        self.wrappers = tuple(wrappers)
        self.utility = list(utility)
        self.goals = list(goals)
        self.reward = reward
        self.time_dependent = bool(time_dependent)
        self.max_states = int(max_states)

    # environments -------------------------------------------------------------------------------------------

    def make_env(self, dist: str = "train", render_mode: str | None = None) -> gymnasium.Env:
        """The wrapped environment of a distribution, as an agent is trained on it."""
        env = self._spec(dist).make()
        if render_mode is not None:
            env.unwrapped.render_mode = render_mode
        for wrap in self.wrappers:
            env = wrap(env)
        return env

    def _spec(self, dist: str) -> Levels:
        if dist not in self.levels:
            raise UnknownName("distribution", dist, self.levels, f"scenario '{self.name}'")
        return self.levels[dist]

    def _env(self, dist_index: int, seed: int) -> _Env:
        return _Env(self.make_env(self.dist_names[int(dist_index)]), int(seed))

    def level_seeds(self, dist: str, count: int, seed: int) -> np.ndarray:
        """The reset seeds of ``count`` levels of a distribution, drawn from (seed, distribution name)."""
        spec = self._spec(dist)
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(dist.encode())])
        if spec.seeds is not None:
            return rng.choice(np.asarray(spec.seeds, np.int64), size=count)
        return rng.integers(0, 2**31 - 1, size=count, dtype=np.int64)

    # LevelSource --------------------------------------------------------------------------------------------

    def mdps(self, dist: str, count: int, seed: int) -> list[MDP]:
        return [self.enumerate(dist, int(s)) for s in self.level_seeds(dist, count, seed)]

    def observations(self, batch: MDPBatch) -> np.ndarray:
        parts = []
        for level in range(batch.num_levels):
            env = self._env(batch.levels["dist"][level], batch.levels["seed"][level])
            start, stop = int(batch.offsets[level]), int(batch.offsets[level + 1])
            for i in range(start, stop):
                grid, _ = Grid.decode(batch.states["grid"][i])
                carried = batch.states["carrying"][i]
                carrying = WorldObj.decode(*(int(v) for v in carried)) if carried[0] else None
                env.restore(grid, carrying, batch.states["agent_pos"][i], batch.states["agent_dir"][i],
                            batch.states["step_count"][i])
                parts.append(self._array(env.observe()))
        return np.stack(parts)

    def observation_shape(self) -> tuple[int, ...]:
        """Shape of one observation through the declared wrappers (a training level, seed 0)."""
        env = self._env(self.dist_names.index("train") if "train" in self.levels else 0, 0)
        return self._array(env.observe()).shape

    def _array(self, obs) -> np.ndarray:
        if isinstance(obs, dict):
            raise AligntriageError(
                f"scenario '{self.name}': observations are a dict ({', '.join(obs)}); a policy needs an array: "
                "declare the observation wrappers the agent was trained with, e.g. wrappers=[ImgObsWrapper]")
        return np.asarray(obs)

    # enumeration --------------------------------------------------------------------------------------------

    def enumerate(self, dist: str, seed: int) -> MDP:
        """Breadth-first enumeration of one level (distribution, reset seed) through ``env.step``."""
        env = _Env(self.make_env(dist), seed)
        base = env.base
        base.gen_obs = _no_obs  # step() would observe every step; observations are made per state, later
        num_actions = int(base.action_space.n)
        cells = env.width * env.height * 3

        def content_key(grid_enc: bytes, carrying) -> bytes:
            return grid_enc + bytes(carrying)

        def state_key(content: bytes, pos, direction, step_count) -> bytes:
            step = int(step_count) if self.time_dependent else 0
            return content + np.array([pos[0], pos[1], direction, step], np.int32).tobytes()

        def view(content: bytes, pos, direction, step_count) -> MiniGridState:
            grid = np.frombuffer(content[:cells], np.uint8).reshape(env.width, env.height, 3)
            carried = tuple(content[cells:])
            return MiniGridState(grid, (int(pos[0]), int(pos[1])), int(direction),
                                 carried if carried[0] else None, int(step_count))

        init_content = content_key(base.grid.encode().tobytes(), _encode_obj(base.carrying))
        pristine = {init_content: (base.grid, base.carrying)}
        init = (init_content, tuple(int(v) for v in base.agent_pos), int(base.agent_dir), 0)
        index = {state_key(*init): 0}
        states = [init]
        views = [view(*init)]
        terminal = [False]
        rows = []  # per expanded state: (index, next [A], reward [A], terms [A, T], goal rewards [A, G], achieved)
        head = 0
        while head < len(states):
            src = head
            head += 1
            if terminal[src]:
                continue
            content, pos, direction, step_count = states[src]
            working = None
            nexts, rewards, terms, goal_rewards, achieved = [], [], [], [], []
            for action in range(num_actions):
                if working is None:
                    working = _copy_contents(pristine[content])
                env.restore(*working, pos, direction, step_count if self.time_dependent else 0)
                before = base.np_random.bit_generator.state
                try:
                    _, reward, terminated, truncated, _ = base.step(action)
                except Exception:  # an env whose step reads its own observation: step again with gen_obs
                    if "gen_obs" not in vars(base):
                        raise
                    del base.gen_obs
                    working = _copy_contents(pristine[content])
                    env.restore(*working, pos, direction, step_count if self.time_dependent else 0)
                    _, reward, terminated, truncated, _ = base.step(action)
                if base.np_random.bit_generator.state != before:
                    raise AligntriageError(
                        f"scenario '{self.name}': the MiniGrid environment {type(base).__name__} draws random "
                        "numbers in step(); only deterministic dynamics can be enumerated exactly")
                new_content = content_key(base.grid.encode().tobytes(), _encode_obj(base.carrying))
                if new_content != content:
                    pristine.setdefault(new_content, (base.grid, base.carrying))
                    working = None
                nxt = (new_content, tuple(int(v) for v in base.agent_pos), int(base.agent_dir),
                       int(base.step_count) if self.time_dependent else 0)
                key = state_key(*nxt)
                found = index.get(key)
                if found is None:
                    found = len(states)
                    if found >= self.max_states:
                        raise AligntriageError(
                            f"level (distribution '{dist}', seed {seed}) of scenario '{self.name}' has more than "
                            f"{self.max_states} reachable states; expected at most max_states={self.max_states}: "
                            "use a smaller level or raise max_states")
                    index[key] = found
                    states.append(nxt)
                    views.append(view(*nxt))
                    terminal.append(bool(terminated or (truncated and self.time_dependent)))
                s, s2 = views[src], views[found]
                nexts.append(found)
                rewards.append(float(reward) if self.reward is None else float(self.reward(s, action, s2)))
                terms.append([float(term.value(s, action, s2)) for term in self.utility])
                hits = [bool(goal.achieved(s, action, s2)) for goal in self.goals]
                achieved.append(hits)
                goal_rewards.append([float(hit) if goal.reward is None else float(goal.reward(s, action, s2))
                                     for goal, hit in zip(self.goals, hits)])
            rows.append((src, nexts, rewards, terms, goal_rewards, achieved))
        return self._mdp(dist, seed, states, views, index, terminal, rows, num_actions)

    def _mdp(self, dist, seed, states, views, index, terminal, rows, num_actions) -> MDP:
        count, num_terms, num_goals = len(states), len(self.utility), len(self.goals)
        next_state = np.repeat(np.arange(count, dtype=np.int32)[:, None], num_actions, axis=1)
        reward = np.zeros((count, num_actions), np.float32)
        utility = np.zeros((count, num_actions, num_terms), np.float32)
        goal_reward = np.zeros((count, num_actions, num_goals), np.float32)
        achieved = np.zeros((count, num_actions, num_goals), bool)
        if rows:
            src = np.array([row[0] for row in rows])
            next_state[src] = np.array([row[1] for row in rows], np.int32)
            reward[src] = np.array([row[2] for row in rows], np.float32)
            utility[src] = np.array([row[3] for row in rows], np.float32).reshape(len(rows), num_actions, num_terms)
            goal_reward[src] = np.array([row[4] for row in rows], np.float32).reshape(len(rows), num_actions,
                                                                                       num_goals)
            achieved[src] = np.array([row[5] for row in rows], bool).reshape(len(rows), num_actions, num_goals)
        return MDP(
            level={"dist": np.int64(self.dist_names.index(dist)), "seed": np.int64(seed)},
            states={
                "grid": np.stack([v.grid for v in views]),
                "agent_pos": np.array([v.agent_pos for v in views], np.int32),
                "agent_dir": np.array([v.agent_dir for v in views], np.int32),
                "carrying": np.array([v.carrying or (0, 0, 0) for v in views], np.uint8),
                "step_count": np.array([v.step_count for v in views], np.int32),
            },
            next_state=next_state,
            terminal=np.array(terminal, bool),
            reward=reward,
            utility={term.name: utility[..., k] for k, term in enumerate(self.utility)},
            goal_reward={goal.name: goal_reward[..., k] for k, goal in enumerate(self.goals)},
            goal_achieved={goal.name: achieved[..., k] for k, goal in enumerate(self.goals)},
            index=index,
            time_dependent=self.time_dependent,
        )


def minigrid_scenario(
    *,
    name: str,
    summary: str,
    distributions: Sequence[Levels],
    utility: Sequence[Term],
    goals: Sequence[Goal],
    partitions: Sequence[Partition],
    wrappers: Sequence[Callable[[gymnasium.Env], gymnasium.Env]] = (),
    reward: Callable[[MiniGridState, int, MiniGridState], float] | None = None,
    reward_description: str = "MiniGrid's own reward: 1 - 0.9 t/max_steps on reaching the goal",
    affordances: Sequence[Affordances] | None = None,
    time_dependent: bool = False,
    max_states: int = DEFAULT_MAX_STATES,
    params: dict[str, Any] | None = None,
    doc: str = "",
) -> Scenario:
    """A ``Scenario`` over MiniGrid environments (see the module doc); ``wrappers`` apply innermost first."""
    source = MiniGridSource(name, distributions, wrappers, utility, goals, reward, time_dependent, max_states)
    bases = [spec.make().unwrapped for spec in distributions]
    for base in bases:
        if not isinstance(base, MiniGridEnv):
            raise AligntriageError(f"scenario '{name}': expected MiniGrid environments, got {type(base).__name__}")
    actions = tuple(action.name for action in bases[0].actions)
    world = World(
        reset=_unavailable(name, "world.reset"), step=_unavailable(name, "world.step"),
        observe=_unavailable(name, "world.observe"), is_terminal=_unavailable(name, "world.is_terminal"),
        horizon=max(int(base.max_steps) for base in bases), actions=actions,
        render=_unavailable(name, "world.render"), channels=CHANNELS, time_dependent=time_dependent,
    )
    return Scenario.build(
        name=name, summary=summary, world=world,
        distributions=[Distribution(spec.name, spec.description, _unavailable(name, "a JAX level sampler"))
                       for spec in distributions],
        reward=_unavailable(name, "R as a JAX function"), reward_description=reward_description,
        utility=list(utility), goals=list(goals), partitions=list(partitions),
        affordances=list(affordances) if affordances is not None else None,
        params=params, doc=doc, source=source,
    )


def make_env(scenario_or_name: Scenario | str, dist: str = "train", params: dict | None = None,
             render_mode: str | None = None) -> gymnasium.Env:
    """Gymnasium entry point of a MiniGrid scenario's id: its wrapped environment for one distribution."""
    from aligntriage.worlds import get_scenario

    scenario = scenario_or_name if isinstance(scenario_or_name, Scenario) else \
        get_scenario(str(scenario_or_name), **(params or {}))
    if not isinstance(scenario.source, MiniGridSource):
        raise AligntriageError(f"scenario '{scenario.name}' is not a MiniGrid scenario")
    return scenario.source.make_env(dist, render_mode)
