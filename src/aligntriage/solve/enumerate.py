"""Enumerate the reachable MDP of one level by breadth-first search over the jitted step function.

Generic for any scenario: a state is keyed by the values of its non-level leaves (with ``t`` zeroed unless the
world is time-dependent), each BFS layer steps the whole frontier under every action in one jitted call, and the
result holds, per (state, action): the next state's index, R, every U term, and every candidate goal's reward and
achievement flag. Terminal states are absorbing rows with zero reward.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from aligntriage.errors import AligntriageError
from aligntriage.scenario import Scenario

DEFAULT_MAX_STATES = 200_000


@dataclass
class MDP:
    """The reachable MDP of one level; arrays are indexed by enumerated state (0 is the initial state)."""

    level: object
    states: object  # the state pytree (level stripped) with a leading [S] axis, numpy
    next_state: np.ndarray  # [S, A] int32
    terminal: np.ndarray  # [S] bool
    reward: np.ndarray  # [S, A] R
    utility: dict[str, np.ndarray]  # term -> [S, A]
    goal_reward: dict[str, np.ndarray]  # goal -> [S, A]
    goal_achieved: dict[str, np.ndarray]  # goal -> [S, A] bool
    index: dict[bytes, int]
    time_dependent: bool

    @property
    def num_states(self) -> int:
        return int(self.terminal.shape[0])

    @property
    def num_actions(self) -> int:
        return int(self.next_state.shape[1])

    def index_of(self, state) -> int:
        """Index of a live state (with its level) in this MDP."""
        key = _keys(_canonical(state._replace(level=None), self.time_dependent), single=True)[0]
        if key not in self.index:
            raise AligntriageError("state is not reachable in this level's enumerated MDP")
        return self.index[key]

    def indices_of(self, states) -> np.ndarray:
        """Indices of a batch of live states (leading axis), -1 where a state is not in the MDP."""
        keys = _keys(_canonical(states._replace(level=None), self.time_dependent))
        return np.array([self.index.get(key, -1) for key in keys], np.int64)


def _canonical(dyn, time_dependent: bool):
    return dyn if time_dependent else dyn._replace(t=jnp.zeros_like(dyn.t))


def _keys(dyn, single: bool = False) -> list[bytes]:
    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(dyn)]
    if single:
        leaves = [leaf[None] for leaf in leaves]
    rows = np.concatenate([leaf.reshape(leaf.shape[0], -1).astype(np.int32) for leaf in leaves], axis=1)
    rows = np.ascontiguousarray(rows)
    return rows.view(np.dtype((np.void, rows.shape[1] * 4))).ravel().tolist()


@functools.lru_cache(maxsize=32)
def expander(scenario: Scenario):
    """Jitted ``(level, frontier) -> per-(state, action) outcomes`` for one scenario."""
    world = scenario.world
    actions = jnp.arange(world.num_actions, dtype=jnp.int32)
    goals = list(scenario.goals.values())
    goal_rewards = [goal.reward_fn() for goal in goals]

    def one(level, dyn, action):
        state = dyn._replace(level=level)
        nxt = world.step(state, action)
        ended = world.is_terminal(nxt)
        if world.time_dependent:
            ended = ended | (nxt.t >= world.horizon)
        return (
            _canonical(nxt._replace(level=None), world.time_dependent),
            ended,
            scenario.reward(state, action, nxt).astype(jnp.float32),
            jnp.stack([term.value(state, action, nxt).astype(jnp.float32) for term in scenario.utility.values()]),
            jnp.stack([fn(state, action, nxt).astype(jnp.float32) for fn in goal_rewards]),
            jnp.stack([goal.achieved(state, action, nxt) for goal in goals]),
        )

    per_state = jax.vmap(one, in_axes=(None, None, 0))
    return jax.jit(jax.vmap(lambda level, dyn: per_state(level, dyn, actions), in_axes=(None, 0)))


def _bucket(n: int) -> int:
    return max(8, 1 << (n - 1).bit_length())


def _take(tree, idx):
    return jax.tree.map(lambda leaf: leaf[idx], tree)


def _pad(tree, size: int):
    return jax.tree.map(lambda leaf: np.concatenate([leaf, np.repeat(leaf[:1], size - leaf.shape[0], 0)]), tree)


def enumerate_mdp(scenario: Scenario, level, max_states: int = DEFAULT_MAX_STATES) -> MDP:
    """Breadth-first enumeration of every state reachable from the level's initial state."""
    world = scenario.world
    expand = expander(scenario)
    num_actions = world.num_actions
    init = world.reset(jax.random.PRNGKey(0), level)
    init_dyn = jax.tree.map(lambda leaf: np.asarray(leaf)[None], _canonical(init._replace(level=None),
                                                                              world.time_dependent))
    index = {_keys(init_dyn)[0]: 0}
    layers = [init_dyn]
    terminal = [bool(world.is_terminal(init))]
    rows: dict[str, list] = {"src": [], "next": [], "reward": [], "utility": [], "goal_reward": [], "achieved": []}
    frontier, frontier_idx = init_dyn, np.array([0])
    if terminal[0]:
        frontier_idx = frontier_idx[:0]
    while frontier_idx.size:
        count = frontier_idx.size
        nxt, ended, reward, utility, goal_reward, achieved = jax.device_get(
            expand(level, _pad(frontier, _bucket(count)))
        )
        flat = jax.tree.map(lambda leaf: leaf[:count].reshape((count * num_actions,) + leaf.shape[2:]), nxt)
        ended = ended[:count].reshape(-1)
        next_idx = np.empty(count * num_actions, np.int64)
        fresh = []
        for i, key in enumerate(_keys(flat)):
            found = index.get(key)
            if found is None:
                found = len(index)
                index[key] = found
                fresh.append(i)
                terminal.append(bool(ended[i]))
            next_idx[i] = found
        if len(index) > max_states:
            raise AligntriageError(
                f"level of scenario '{scenario.name}' has more than {max_states} reachable states; "
                "use smaller levels or raise max_states"
            )
        rows["src"].append(frontier_idx)
        rows["next"].append(next_idx.reshape(count, num_actions))
        rows["reward"].append(reward[:count])
        rows["utility"].append(utility[:count])
        rows["goal_reward"].append(goal_reward[:count])
        rows["achieved"].append(achieved[:count])
        fresh = np.array(fresh, np.int64)
        new_states = _take(flat, fresh)
        layers.append(new_states)
        first_new = len(index) - fresh.size
        alive = ~ended[fresh]
        frontier = _take(new_states, np.nonzero(alive)[0])
        frontier_idx = first_new + np.nonzero(alive)[0]

    num_states = len(index)
    terminal_arr = np.array(terminal, bool)
    next_state = np.repeat(np.arange(num_states, dtype=np.int32)[:, None], num_actions, axis=1)
    src = np.concatenate(rows["src"]) if rows["src"] else np.zeros(0, np.int64)

    def scatter(parts, trailing=(), dtype=np.float32):
        out = np.zeros((num_states, num_actions) + trailing, dtype)
        if parts:
            out[src] = np.concatenate(parts)
        return out

    if rows["next"]:
        next_state[src] = np.concatenate(rows["next"])
    num_terms, num_goals = len(scenario.utility), len(scenario.goals)
    utility = scatter(rows["utility"], (num_terms,))
    goal_reward = scatter(rows["goal_reward"], (num_goals,))
    achieved = scatter(rows["achieved"], (num_goals,), bool)
    return MDP(
        level=level,
        states=jax.tree.map(lambda *leaves: np.concatenate(leaves), *layers),
        next_state=next_state,
        terminal=terminal_arr,
        reward=scatter(rows["reward"]),
        utility={name: utility[..., k] for k, name in enumerate(scenario.utility)},
        goal_reward={name: goal_reward[..., k] for k, name in enumerate(scenario.goals)},
        goal_achieved={name: achieved[..., k] for k, name in enumerate(scenario.goals)},
        index=index,
        time_dependent=world.time_dependent,
    )


@dataclass
class MDPBatch:
    """The disjoint union of many levels' MDPs in one global state space.

    Solvers and walks run on the union at once (one array operation covers every level); ``offsets[i]`` is level
    i's initial state and ``level_of_state`` maps each global state back to its level.
    """

    levels: object  # stacked levels [L]
    states: object  # state pytree without level [S]
    next_state: np.ndarray  # [S, A] global indices
    terminal: np.ndarray
    reward: np.ndarray
    utility: dict[str, np.ndarray]
    goal_reward: dict[str, np.ndarray]
    goal_achieved: dict[str, np.ndarray]
    offsets: np.ndarray  # [L + 1]
    level_of_state: np.ndarray  # [S]
    indices: list[dict[bytes, int]]
    time_dependent: bool

    @property
    def num_levels(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def num_states(self) -> int:
        return int(self.terminal.shape[0])

    @property
    def initial(self) -> np.ndarray:
        return self.offsets[:-1]


def stack_mdps(mdps: list[MDP]) -> MDPBatch:
    sizes = np.array([m.num_states for m in mdps])
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def cat(name):
        return {key: np.concatenate([getattr(m, name)[key] for m in mdps]) for key in getattr(mdps[0], name)}

    return MDPBatch(
        levels=jax.tree.map(lambda *leaves: np.stack([np.asarray(x) for x in leaves]), *[m.level for m in mdps]),
        states=jax.tree.map(lambda *leaves: np.concatenate(leaves), *[m.states for m in mdps]),
        next_state=np.concatenate([m.next_state + off for m, off in zip(mdps, offsets)]),
        terminal=np.concatenate([m.terminal for m in mdps]),
        reward=np.concatenate([m.reward for m in mdps]),
        utility=cat("utility"),
        goal_reward=cat("goal_reward"),
        goal_achieved=cat("goal_achieved"),
        offsets=offsets,
        level_of_state=np.repeat(np.arange(len(mdps)), sizes),
        indices=[m.index for m in mdps],
        time_dependent=mdps[0].time_dependent,
    )


def enumerate_levels(scenario: Scenario, levels, max_states: int = DEFAULT_MAX_STATES) -> MDPBatch:
    """Enumerate every level of a stacked batch and join them into one MDPBatch."""
    levels = jax.device_get(levels)
    count = jax.tree.leaves(levels)[0].shape[0]
    return stack_mdps([enumerate_mdp(scenario, _take(levels, i), max_states) for i in range(count)])


def select(batch: MDPBatch, levels) -> tuple[MDPBatch, np.ndarray]:
    """The batch of the chosen levels only (in that order), and the union indices of their states."""
    levels = np.asarray(levels, np.int64)
    starts, stops = batch.offsets[levels], batch.offsets[levels + 1]
    sizes = stops - starts
    keep = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)]) if levels.size else np.zeros(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    shift = np.repeat(offsets[:-1] - starts, sizes)  # old index + shift = new index, per kept state

    def cut(arrays):
        return {key: value[keep] for key, value in arrays.items()}

    chosen = MDPBatch(
        levels=jax.tree.map(lambda leaf: np.asarray(leaf)[levels], batch.levels),
        states=jax.tree.map(lambda leaf: leaf[keep], batch.states),
        next_state=batch.next_state[keep] + shift[:, None], terminal=batch.terminal[keep],
        reward=batch.reward[keep], utility=cut(batch.utility), goal_reward=cut(batch.goal_reward),
        goal_achieved=cut(batch.goal_achieved), offsets=offsets,
        level_of_state=np.repeat(np.arange(levels.size), sizes), indices=[batch.indices[i] for i in levels],
        time_dependent=batch.time_dependent,
    )
    return chosen, keep


def head(batch: MDPBatch, count: int) -> MDPBatch:
    """The first ``count`` levels of a batch."""
    return select(batch, np.arange(count))[0]


def level_mdp(batch: MDPBatch, i: int) -> MDP:
    """Level ``i`` of a batch as its own MDP (indices relative to its initial state)."""
    start, stop = int(batch.offsets[i]), int(batch.offsets[i + 1])

    def cut(arrays):
        return {key: value[start:stop] for key, value in arrays.items()}

    return MDP(
        level=jax.tree.map(lambda leaf: leaf[i], batch.levels),
        states=jax.tree.map(lambda leaf: leaf[start:stop], batch.states),
        next_state=(batch.next_state[start:stop] - start).astype(np.int32), terminal=batch.terminal[start:stop],
        reward=batch.reward[start:stop], utility=cut(batch.utility), goal_reward=cut(batch.goal_reward),
        goal_achieved=cut(batch.goal_achieved), index=batch.indices[i], time_dependent=batch.time_dependent,
    )
