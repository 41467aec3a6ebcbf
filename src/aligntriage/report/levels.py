"""What a report draws on single levels: exact state visitation, the policy at every free cell, sampled episodes.

A report looks at one or two levels, not hundreds, so each is enumerated on its own and every quantity is exact
where it can be: visitation is the expected number of visits per episode (the state distribution pushed through
the enumerated transitions for the horizon), not a count of a few sampled walks. Levels are drawn exactly as the
diagnosis drew them (same key), so "level 3 of deploy" here is level 3 of the diagnosis's sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from aligntriage.diagnose.evidence import Settings, disambiguating_levels, taxonomy
from aligntriage.errors import AligntriageError
from aligntriage.scenario import Scenario
from aligntriage.solve.enumerate import MDPBatch, enumerate_mdp, stack_mdps
from aligntriage.solve.policies import goal_solution, scripted_names, scripted_table
from aligntriage.solve.tables import Walks, observations, policy_table, walk

MOVE_DELTAS = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}  # (dx, dy) in image coordinates
MAX_SEARCH = 8


@dataclass
class LevelView:
    """One enumerated level with the agent's and every candidate goal's policy table over its states."""

    dist: str
    index: int
    disambiguating: bool
    batch: MDPBatch
    obs: np.ndarray  # [S, H, W, C]
    agent_cell: np.ndarray  # [S] flat cell of the agent, -1 where the observation shows none
    agent: np.ndarray  # [S, A]
    goals: dict[str, np.ndarray] = field(default_factory=dict)
    goal_ends: dict[str, np.ndarray | None] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.obs.shape[1], self.obs.shape[2]


class AgentSource:
    """Where the agent's action probabilities come from: a trained run's seed 0, or a scripted policy's name."""

    def __init__(self, scenario: Scenario, run_dir: Path, policy_label: str, mask: np.ndarray, gamma: float):
        self.scenario, self.mask, self.gamma = scenario, mask, gamma
        self.policy = None
        self.scripted = None
        if (Path(run_dir) / "params.msgpack").is_file():
            from aligntriage.train.loop import load_policy

            self.policy = load_policy(run_dir, 0)
            self.label = "the trained agent (seed 0)"
        elif policy_label in scripted_names(scenario):
            self.scripted = policy_label
            self.label = f"the scripted policy '{policy_label}'"
        else:
            raise AligntriageError("the run folder holds no trained parameters and no scripted policy name")

    def table(self, batch: MDPBatch, obs: np.ndarray) -> np.ndarray:
        if self.scripted is not None:
            return scripted_table(self.scripted, self.scenario, batch, self.mask, self.gamma)
        table = policy_table(self.policy, obs) * self.mask
        return table / np.maximum(table.sum(axis=1, keepdims=True), 1e-12)


def agent_cells(obs: np.ndarray, channels: tuple[str, ...]) -> np.ndarray:
    """The agent's flat cell in every observation, read from its ``agent`` channel (-1 where absent)."""
    if "agent" not in channels or obs.ndim != 4:
        raise AligntriageError("the scenario's observation has no 'agent' grid channel")
    plane = obs[..., channels.index("agent")].reshape(obs.shape[0], -1) > 0
    return np.where(plane.any(axis=1), plane.argmax(axis=1), -1)


def _diagnosis_levels(scenario: Scenario, dist: str, seed: int, count: int, first: int):
    """The first ``first`` levels of the diagnosis's own sample of ``dist`` (the keys ``diagnose`` and
    ``sample_levels`` derive), in one jitted call on those keys alone: it compiles in a fraction of the time the
    op-by-op ``sample_levels`` takes whenever that is not still in JAX's cache, and yields the same levels."""
    key = jax.random.fold_in(jax.random.PRNGKey(seed), sum(map(ord, dist)))
    k_levels, _ = jax.random.split(key)
    keys = jax.random.split(k_levels, count)[:first]
    return jax.device_get(jax.jit(jax.vmap(scenario.distribution(dist).sample))(keys))


def level_view(scenario: Scenario, source: AgentSource, dist: str, seed: int, count: int,
               want_disambiguating: bool) -> LevelView:
    """The first of the diagnosis's levels of ``dist`` that disambiguates the goals (when wanted and one is found
    among the first few), else its first level."""
    first = min(count, MAX_SEARCH if want_disambiguating else 1)
    levels = _diagnosis_levels(scenario, dist, seed, count, first)
    settings = Settings(gamma=source.gamma)
    chosen = None
    for i in range(first):
        batch = stack_mdps([enumerate_mdp(scenario, jax.tree.map(lambda leaf: leaf[i], levels))])
        dis = bool(disambiguating_levels(scenario, batch, source.mask, settings)[0])
        if chosen is None or dis:
            chosen = (i, batch, dis)
        if dis:
            break
    index, batch, dis = chosen
    obs = observations(scenario, batch)
    cells = agent_cells(obs, scenario.world.channels)
    view = LevelView(dist, index, dis, batch, obs, cells, source.table(batch, obs))
    for name, goal in scenario.goals.items():
        view.goals[name] = goal_solution(scenario, batch, name, source.mask, source.gamma).policy
        view.goal_ends[name] = batch.goal_achieved[name] if goal.terminal else None
    return view


def occupancy(batch: MDPBatch, table: np.ndarray, horizon: int, ends: np.ndarray | None = None) -> np.ndarray:
    """Expected visits per episode of every state, from the initial state, following ``table`` for ``horizon``
    steps; terminal states and transitions in ``ends`` (a goal achieved) stop the episode after the visit."""
    num = batch.num_states
    mass = np.zeros(num)
    mass[batch.initial[0]] = 1.0
    visits = mass.copy()
    live = ~batch.terminal
    cont = np.ones_like(table, bool) if ends is None else ~ends
    targets = batch.next_state.ravel()
    for _ in range(horizon):
        flow = mass[:, None] * table * live[:, None]
        if not flow.any():
            break
        visits += np.bincount(targets, weights=flow.ravel(), minlength=num)
        mass = np.bincount(targets, weights=(flow * cont).ravel(), minlength=num)
    return visits


def cell_visits(view: LevelView, visits: np.ndarray) -> np.ndarray:
    """State visitation summed per grid cell [H, W]."""
    height, width = view.shape
    seen = view.agent_cell >= 0
    flat = np.bincount(view.agent_cell[seen], weights=visits[seen], minlength=height * width)
    return flat.reshape(height, width)


def context_states(view: LevelView, channels: tuple[str, ...]) -> dict[int, int]:
    """For every cell, the first enumerated live state that shows the level exactly as at the start except for
    the agent's position: the situation a vector field compares across cells."""
    keep = [k for k, name in enumerate(channels) if name != "agent"]
    rest = view.obs[..., keep].reshape(view.obs.shape[0], -1)
    same = (rest == rest[view.batch.initial[0]]).all(axis=1) & ~view.batch.terminal & (view.agent_cell >= 0)
    states = {}
    for state in np.nonzero(same)[0]:
        states.setdefault(int(view.agent_cell[state]), int(state))
    return states


def policy_field(view: LevelView, table: np.ndarray, actions: tuple[str, ...], channels: tuple[str, ...]):
    """Per cell (x, y, dx, dy, p_stay): the expected move under ``table`` in the start situation, and the
    probability of actions that are not moves."""
    width = view.shape[1]
    moves = np.array([MOVE_DELTAS.get(name, (0, 0)) for name in actions], float)
    is_move = np.array([name in MOVE_DELTAS for name in actions])
    rows = []
    for cell, state in sorted(context_states(view, channels).items()):
        probs = table[state]
        dx, dy = probs @ moves
        rows.append((cell % width, cell // width, dx, dy, float(probs[~is_move].sum())))
    return np.array(rows, float).reshape(-1, 5)


@dataclass
class Episode:
    dist: str
    level: int
    disambiguating: bool
    outcome: str
    states: np.ndarray  # global state indices, the start state first and the final state last
    actions: list[str]


def episodes(scenario: Scenario, view: LevelView, count: int, seed: int = 0) -> list[Episode]:
    """``count`` sampled episodes of the agent on the view's level, with their outcome in the diagnosis's
    taxonomy."""
    walks: Walks = walk(view.batch, view.agent, scenario.world.horizon, count, jax.random.PRNGKey(seed))
    labels = taxonomy(scenario, view.batch, walks)
    result = []
    for e in range(count):
        alive = walks.alive[e]
        states = np.concatenate([walks.state[e][alive], [walks.final[e]]])
        actions = [scenario.world.actions[a] for a in walks.action[e][alive]]
        result.append(Episode(view.dist, view.index, view.disambiguating, labels[e], states, actions))
    return result
