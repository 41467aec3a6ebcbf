"""Enumerate the reachable MDPs of many levels at once by breadth-first search over the jitted step function.

Generic for any scenario: a state is keyed by the values of its non-level leaves (with ``t`` zeroed unless the
world is time-dependent). The search runs over a chunk of levels together: each BFS layer steps the frontier of
every level in the chunk under every action in one jitted call (the frontier padded to one of three sizes, so a
scenario compiles at most three expanders) and one transfer back; states are then numbered per level in numpy,
in the order a single-level BFS meets them, so a level's MDP does not depend on the batch it is searched in.
The result holds, per (state, action): the next state's index, R, every U term, and every candidate goal's reward
and achievement flag. Terminal states are absorbing rows with zero reward.
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
LEVEL_CHUNK = 256
"""Levels searched together (a smaller batch is padded to it): bounds the search's working memory for big
batches and gives every call one level shape."""
MAX_ROWS = 4096
"""Frontier states per expander call; larger frontiers take several calls (and one transfer) per layer."""


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


def _rows(dyn, single: bool = False) -> np.ndarray:
    """Every state of a batch as one row of int32 words: the key material."""
    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(dyn)]
    if single:
        leaves = [leaf[None] for leaf in leaves]
    return np.concatenate([leaf.reshape(leaf.shape[0], -1).astype(np.int32) for leaf in leaves], axis=1)


def _void(rows: np.ndarray) -> list[bytes]:
    rows = np.ascontiguousarray(rows)
    return rows.view(np.dtype((np.void, rows.shape[1] * 4))).ravel().tolist()


def _keys(dyn, single: bool = False) -> list[bytes]:
    return _void(_rows(dyn, single))


@functools.lru_cache(maxsize=32)
def expander(scenario: Scenario):
    """Jitted ``(levels, level_of_row, frontier) -> per-(state, action) outcomes``: frontier row i is a state of
    level ``levels[level_of_row[i]]``, so one call steps states of many levels."""
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

    def expand(levels, which, dyn):
        rows = jax.tree.map(lambda leaf: leaf[which], levels)
        return jax.vmap(lambda level, state: per_state(level, state, actions))(rows, dyn)

    return jax.jit(expand)


@functools.lru_cache(maxsize=32)
def _initial(scenario: Scenario):
    """Jitted ``levels -> (canonical initial states, initial state terminal)``."""
    world = scenario.world

    def init(level):
        state = world.reset(jax.random.PRNGKey(0), level)
        return _canonical(state._replace(level=None), world.time_dependent), world.is_terminal(state)

    return jax.jit(jax.vmap(init))


def _bucket(n: int) -> int:
    """Padded frontier size: three sizes (64, 512, 4096) so a scenario compiles at most three expanders."""
    size = 64
    while size < n:
        size *= 8
    return min(size, MAX_ROWS)


def _take(tree, idx):
    return jax.tree.map(lambda leaf: leaf[idx], tree)


def _pad(tree, size: int):
    return jax.tree.map(lambda leaf: np.concatenate([leaf, np.repeat(leaf[:1], size - leaf.shape[0], 0)]), tree)


def _concat(trees):
    return jax.tree.map(lambda *leaves: np.concatenate(leaves), *trees)


def _expand(scenario: Scenario, levels, which: np.ndarray, states, rows: np.ndarray):
    """Outcomes under every action of every frontier state (row ``rows[i]`` of ``states``, a state of level
    ``which[i]``): the calls of one layer, each padded by repeating its first state, then one transfer."""
    expand = expander(scenario)
    calls = []
    for start in range(0, rows.size, MAX_ROWS):
        count = min(MAX_ROWS, rows.size - start)
        pick = np.full(_bucket(count), start)
        pick[:count] += np.arange(count)
        calls.append((count, expand(levels, which[pick].astype(np.int32), _take(states, rows[pick]))))
    parts = [jax.tree.map(lambda leaf, count=count: leaf[:count], out)
             for (count, _), out in zip(calls, jax.device_get([out for _, out in calls]))]
    return parts[0] if len(parts) == 1 else _concat(parts)


def _search(scenario: Scenario, levels, first: int, max_states: int) -> MDPBatch:
    """BFS over one chunk of levels; ``first`` is the chunk's first level in the caller's batch (for errors)."""
    world = scenario.world
    num_actions = world.num_actions
    count = jax.tree.leaves(levels)[0].shape[0]
    padded = jax.device_put(_pad(levels, LEVEL_CHUNK))  # one level shape: every call shares the compiles
    init, init_ended = jax.device_get(_initial(scenario)(padded))
    init, init_ended = _take(init, slice(count)), init_ended[:count]
    # Search numbers: a state's place in discovery order over the whole chunk, keyed by (level, state).
    known = dict(zip(_void(np.concatenate([np.arange(count, dtype=np.int32)[:, None], _rows(init)], 1)),
                     range(count)))
    found_level, found_ended, found_states = [np.arange(count)], [init_ended], [init]
    reached = np.ones(count, np.int64)
    rows: dict[str, list] = {"src": [], "next": [], "reward": [], "utility": [], "goal_reward": [], "achieved": []}
    alive = np.flatnonzero(~init_ended)
    source, frontier, frontier_num, frontier_level = init, alive, alive, alive  # frontier: rows of source
    while frontier_num.size:
        size = frontier_num.size
        nxt, ended, reward, utility, goal_reward, achieved = _expand(scenario, padded, frontier_level, source,
                                                                     frontier)
        flat = jax.tree.map(lambda leaf: leaf.reshape((size * num_actions,) + leaf.shape[2:]), nxt)
        ended = ended.reshape(-1)
        row_level = np.repeat(frontier_level, num_actions)
        keys = _void(np.concatenate([row_level.astype(np.int32)[:, None], _rows(flat)], 1))
        base = len(known)
        known.update(zip([key for key in dict.fromkeys(keys) if key not in known], range(base, len(keys) + base)))
        num = np.fromiter(map(known.__getitem__, keys), np.int64, len(keys))
        fresh_rows = np.flatnonzero(num >= base)
        fresh = fresh_rows[np.unique(num[fresh_rows], return_index=True)[1]]  # first row of each new state
        new_level = row_level[fresh]
        reached += np.bincount(new_level, minlength=count)
        if (reached > max_states).any():
            bad = first + int(np.argmax(reached > max_states))
            raise AligntriageError(
                f"level {bad} of scenario '{scenario.name}' has more than {max_states} reachable states; "
                "use smaller levels or raise max_states"
            )
        rows["src"].append(frontier_num)
        rows["next"].append(num.reshape(size, num_actions))
        rows["reward"].append(reward)
        rows["utility"].append(utility)
        rows["goal_reward"].append(goal_reward)
        rows["achieved"].append(achieved)
        new_states, new_ended = _take(flat, fresh), ended[fresh]
        found_level.append(new_level)
        found_ended.append(new_ended)
        found_states.append(new_states)
        alive = np.flatnonzero(~new_ended)
        source, frontier, frontier_num, frontier_level = new_states, alive, base + alive, new_level[alive]
    known.clear()  # before the per-level indices are built, so the two key sets are never held together
    return _assemble(scenario, levels, np.concatenate(found_level), np.concatenate(found_ended),
                     _concat(found_states), rows)


def _assemble(scenario: Scenario, levels, level_of: np.ndarray, ended: np.ndarray, states, rows) -> MDPBatch:
    """Order a chunk's states level by level (each level's in discovery order) and scatter the outcome rows."""
    num_actions = scenario.world.num_actions
    count = jax.tree.leaves(levels)[0].shape[0]
    order = np.argsort(level_of, kind="stable")
    place = np.empty_like(order)
    place[order] = np.arange(order.size)
    sizes = np.bincount(level_of, minlength=count)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    num_states = order.size
    next_state = np.repeat(np.arange(num_states, dtype=np.int64)[:, None], num_actions, axis=1)
    src = place[np.concatenate(rows["src"])] if rows["src"] else np.zeros(0, np.int64)
    if rows["next"]:
        next_state[src] = place[np.concatenate(rows["next"])]

    def scatter(parts, trailing=(), dtype=np.float32):
        out = np.zeros((num_states, num_actions) + trailing, dtype)
        if parts:
            out[src] = np.concatenate(parts)
        return out

    num_terms, num_goals = len(scenario.utility), len(scenario.goals)
    utility = scatter(rows["utility"], (num_terms,))
    goal_reward = scatter(rows["goal_reward"], (num_goals,))
    achieved = scatter(rows["achieved"], (num_goals,), bool)
    states = _take(states, order)
    keys = _keys(states)
    return MDPBatch(
        levels=jax.tree.map(np.asarray, levels),
        states=states,
        next_state=next_state,
        terminal=ended[order],
        reward=scatter(rows["reward"]),
        utility={name: np.ascontiguousarray(utility[..., k]) for k, name in enumerate(scenario.utility)},
        goal_reward={name: np.ascontiguousarray(goal_reward[..., k]) for k, name in enumerate(scenario.goals)},
        goal_achieved={name: np.ascontiguousarray(achieved[..., k]) for k, name in enumerate(scenario.goals)},
        offsets=offsets,
        level_of_state=np.repeat(np.arange(count), sizes),
        indices=[dict(zip(keys[lo:hi], range(hi - lo))) for lo, hi in zip(offsets[:-1], offsets[1:])],
        time_dependent=scenario.world.time_dependent,
    )


def enumerate_mdp(scenario: Scenario, level, max_states: int = DEFAULT_MAX_STATES) -> MDP:
    """Breadth-first enumeration of every state reachable from the level's initial state (a batch of one)."""
    stacked = jax.tree.map(lambda leaf: np.asarray(leaf)[None], jax.device_get(level))
    batch = _search(scenario, stacked, 0, max_states)
    mdp = batch.mdp(0)
    mdp.level = level
    return mdp


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

    def mdp(self, i: int) -> MDP:
        """Level i's MDP on its own (local state indices)."""
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])

        def part(table):
            return {name: arr[lo:hi] for name, arr in table.items()}

        return MDP(
            level=_take(self.levels, i),
            states=_take(self.states, slice(lo, hi)),
            next_state=(self.next_state[lo:hi] - lo).astype(np.int32),
            terminal=self.terminal[lo:hi],
            reward=self.reward[lo:hi],
            utility=part(self.utility),
            goal_reward=part(self.goal_reward),
            goal_achieved=part(self.goal_achieved),
            index=self.indices[i],
            time_dependent=self.time_dependent,
        )


def _join(batches: list[MDPBatch]) -> MDPBatch:
    """One batch of the levels of several, in order."""
    if len(batches) == 1:
        return batches[0]
    starts = np.cumsum([0] + [b.num_states for b in batches])

    def cat(name):
        return {key: np.concatenate([getattr(b, name)[key] for b in batches]) for key in getattr(batches[0], name)}

    return MDPBatch(
        levels=_concat([b.levels for b in batches]),
        states=_concat([b.states for b in batches]),
        next_state=np.concatenate([b.next_state + start for b, start in zip(batches, starts)]),
        terminal=np.concatenate([b.terminal for b in batches]),
        reward=np.concatenate([b.reward for b in batches]),
        utility=cat("utility"),
        goal_reward=cat("goal_reward"),
        goal_achieved=cat("goal_achieved"),
        offsets=np.concatenate([[0]] + [b.offsets[1:] + start for b, start in zip(batches, starts)]).astype(np.int64),
        level_of_state=np.repeat(np.arange(sum(b.num_levels for b in batches)),
                                 np.concatenate([np.diff(b.offsets) for b in batches])),
        indices=[index for b in batches for index in b.indices],
        time_dependent=batches[0].time_dependent,
    )


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
    """Enumerate every level of a stacked batch into one MDPBatch: the same MDPs, state for state, as stacking
    ``enumerate_mdp`` of each level, searched ``LEVEL_CHUNK`` levels at a time."""
    levels = jax.device_get(levels)
    count = jax.tree.leaves(levels)[0].shape[0]
    return _join([_search(scenario, _take(levels, slice(lo, lo + LEVEL_CHUNK)), lo, max_states)
                  for lo in range(0, count, LEVEL_CHUNK)])


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
