"""The few diagnosed levels a report draws: where the agent and each goal's optimum go (exact visitation), the
agent's policy at every cell, and sampled episodes (pictures only: the evidence itself is exact).

The levels are the diagnosis's own, drawn from the keys ``diagnose`` derives in ONE jitted call for every
distribution shown (re-sampling op by op cost some thirty XLA compiles), and the levels where the goals diverge
are read off the diagnosis's evidence instead of being solved for again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from aligntriage.diagnose.engine import Diagnosis
from aligntriage.diagnose.evidence import TERMINATED, TIMED_OUT, priority
from aligntriage.errors import AligntriageError
from aligntriage.scenario import Scenario
from aligntriage.solve.enumerate import MDPBatch, enumerate_levels
from aligntriage.solve.flow import propagate
from aligntriage.solve.policies import goal_ends, goal_solution, scripted_names, scripted_table, split_noise
from aligntriage.solve.tables import observations, walk
from aligntriage.solve.value import Episode, Schedule, continuation
from aligntriage.store.folder import RunFolder

MOVES = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}  # (dx, dy) in image coordinates
QUICK = {"xla_backend_optimization_level": 0}
"""XLA options of the report's own jitted functions: each runs once or twice on a few levels, so compiling them
fast (about half the time on CPU) matters more than running them fast; the results are the same bits."""


@dataclass(frozen=True)
class Pick:
    """Level ``index`` of the diagnosis's sample of ``dist``."""

    dist: str
    index: int
    disambiguating: bool


def choose(d: Diagnosis) -> list[Pick]:
    """The diagnosed distribution's first level where the goals diverge (else its first level), its first level
    where they do not (when it has both kinds), and the training distribution's first level."""
    dis = np.asarray(d.evidence.references.disambiguating, bool)
    where, rest = np.flatnonzero(dis), np.flatnonzero(~dis)
    picks = [Pick(d.dist, int(where[0]) if where.size else 0, bool(where.size))]
    if where.size and rest.size:
        picks.append(Pick(d.dist, int(rest[0]), False))
    if d.train_dist != d.dist:
        picks.append(Pick(d.train_dist, 0, bool(d.iid.references.disambiguating[0])))
    return picks


@functools.lru_cache(maxsize=16)
def _sampler(scenario: Scenario, dists: tuple[str, ...], counts: tuple[int, ...]):
    """One jitted function drawing chosen levels of several distributions from the keys of
    ``diagnose.engine.sample_batch``: the distribution's name folded into the seed, split, one key per level."""
    samples = [scenario.distribution(dist).sample for dist in dists]

    def draw(seed, chosen):
        parts = []
        for dist, sample, count, index in zip(dists, samples, counts, chosen):
            key = jax.random.fold_in(jax.random.PRNGKey(seed), sum(map(ord, dist)))
            keys = jax.random.split(jax.random.split(key)[0], count)[index]
            parts.append(jax.vmap(sample)(keys))
        return jax.tree.map(lambda *leaves: jnp.concatenate(leaves), *parts)

    return jax.jit(draw, compiler_options=QUICK)


def diagnosed_levels(scenario: Scenario, d: Diagnosis, picks: list[Pick]):
    """The picked levels, stacked in the order of ``picks`` (which must be grouped by distribution)."""
    dists = tuple(dict.fromkeys(p.dist for p in picks))
    if [p.dist for p in picks] != [dist for dist in dists for p in picks if p.dist == dist]:
        raise ValueError("picks must be grouped by distribution")
    counts = tuple(d.evidence.levels if dist == d.dist else d.iid.levels for dist in dists)
    chosen = tuple(np.array([p.index for p in picks if p.dist == dist], np.int32) for dist in dists)
    return jax.device_get(_sampler(scenario, dists, counts)(d.seed, chosen))


@functools.lru_cache(maxsize=8)
def _network_probs(network):
    def probs(params, obs):
        logits, _ = network.apply(params, obs)
        return jax.nn.softmax(logits)

    return jax.jit(probs, compiler_options=QUICK)


def trained_table(run_dir: Path, scenario: Scenario, obs: np.ndarray) -> np.ndarray:
    """Seed 0's action probabilities at every observation; the jitted network takes its parameters as
    arguments, so one compile serves every run of the same architecture."""
    from aligntriage.store.files import load_tree
    from aligntriage.store.folder import RunFolder
    from aligntriage.train.loop import read_run
    from aligntriage.train.ppo import network_for

    network = network_for(scenario.world, read_run(run_dir).ppo)
    params = jax.tree.map(lambda leaf: np.asarray(leaf)[0], load_tree(RunFolder(run_dir).file(RunFolder.PARAMS)))
    size = max(256, 1 << (obs.shape[0] - 1).bit_length())
    padded = np.concatenate([obs, np.repeat(obs[:1], size - obs.shape[0], 0)])
    return np.asarray(_network_probs(network)(params, jnp.asarray(padded)), np.float64)[: obs.shape[0]]


def agent_cells(obs: np.ndarray, channels: tuple[str, ...]) -> np.ndarray:
    """The agent's flat cell in every observation, read from its ``agent`` channel (-1 where absent)."""
    if "agent" not in channels or obs.ndim != 4:
        raise AligntriageError("the scenario's observation has no 'agent' grid channel to draw levels from")
    plane = obs[..., channels.index("agent")].reshape(obs.shape[0], -1) > 0
    return np.where(plane.any(axis=1), plane.argmax(axis=1), -1)


@dataclass(frozen=True)
class Views:
    """The picked levels enumerated as one batch, with the agent's and every candidate goal's optimal policy."""

    picks: tuple[Pick, ...]
    batch: MDPBatch
    obs: np.ndarray  # [S, H, W, C]
    cell: np.ndarray  # [S] the agent's flat cell, -1 where the observation shows none
    agent: Schedule
    label: str  # who the agent is, for captions
    goals: dict[str, Schedule]
    ends: dict[str, np.ndarray | None]
    episode: Episode

    @property
    def shape(self) -> tuple[int, int]:
        return self.obs.shape[1], self.obs.shape[2]

    def states(self, k: int) -> np.ndarray:
        return np.arange(self.batch.offsets[k], self.batch.offsets[k + 1])

    def start(self, k: int) -> int:
        return int(self.batch.offsets[k])


def _agent(scenario, run_dir, d, batch, obs, mask, episode) -> tuple[Schedule, str]:
    if split_noise(d.policy)[0] in scripted_names(scenario):
        return scripted_table(d.policy, scenario, batch, mask, episode), f"the scripted policy '{d.policy}'"
    if RunFolder(run_dir).file(RunFolder.PARAMS).is_file():
        table = trained_table(run_dir, scenario, obs) * mask
        table /= np.maximum(table.sum(axis=1, keepdims=True), 1e-12)
        return Schedule.stationary(table), "the trained agent (seed 0)"
    raise AligntriageError(f"the run folder holds no trained parameters (params.msgpack) and the diagnosed policy "
                           f"'{d.policy}' is not a scripted one")


def draw(scenario: Scenario, run_dir: Path, d: Diagnosis) -> Views:
    """Enumerate the levels the report shows and every policy it draws on them."""
    if getattr(scenario, "source", None) is not None:
        raise AligntriageError("this scenario's levels come from an external source the report cannot draw")
    picks = choose(d)
    batch = enumerate_levels(scenario, diagnosed_levels(scenario, d, picks))
    obs = observations(scenario, batch)
    cell = agent_cells(obs, scenario.world.channels)
    mask = np.asarray(scenario.action_mask(d.affordances), np.float64)
    episode = Episode(d.settings.gamma, d.horizon)
    agent, label = _agent(scenario, run_dir, d, batch, obs, mask, episode)
    goals = {name: goal_solution(scenario, batch, name, mask, episode).policy for name in scenario.goals}
    ends = {name: goal_ends(scenario, batch, name) for name in scenario.goals}
    return Views(tuple(picks), batch, obs, cell, agent, label, goals, ends, episode)


def visitation(views: Views, policy: Schedule, ends: np.ndarray | None = None) -> np.ndarray:
    """[S] expected visits per episode of every state, exactly: the steps spent there (``propagate``'s
    visitation) plus the probability that the episode ends there (a goal reached, a terminal state, the horizon)."""
    batch, horizon = views.batch, views.episode.horizon
    visits = propagate(batch, policy, views.episode, ends=ends, record_visits=True).visits
    cont = continuation(batch, ends)
    arrivals = np.zeros(batch.num_states)
    for t in range(horizon):
        live = np.flatnonzero(visits[t])
        if live.size == 0:
            break
        flow = visits[t][live, None] * policy.at(t)[live]
        stop = ~cont[live] if t < horizon - 1 else np.ones_like(cont[live])
        arrivals += np.bincount(batch.next_state[live][stop], flow[stop], minlength=batch.num_states)
    return visits.sum(axis=0) + arrivals


def cell_grid(views: Views, k: int, per_state: np.ndarray) -> np.ndarray:
    """A per-state quantity of level ``k`` summed per grid cell [H, W]."""
    height, width = views.shape
    states = views.states(k)
    cells = views.cell[states]
    seen = cells >= 0
    return np.bincount(cells[seen], per_state[states][seen], minlength=height * width).reshape(height, width)


def context_states(views: Views, k: int, channels: tuple[str, ...]) -> dict[int, int]:
    """For every cell, the first live state of level ``k`` that shows the level exactly as at its start except for
    the agent's position: the situation a vector field compares across cells."""
    keep = [c for c, name in enumerate(channels) if name != "agent"]
    states = views.states(k)
    rest = views.obs[states][..., keep].reshape(states.size, -1)
    same = (rest == rest[0]).all(axis=1) & ~views.batch.terminal[states] & (views.cell[states] >= 0)
    found: dict[int, int] = {}
    for state in states[same]:
        found.setdefault(int(views.cell[state]), int(state))
    return found


def policy_field(views: Views, k: int, table: np.ndarray, actions: tuple[str, ...],
                 channels: tuple[str, ...]) -> np.ndarray:
    """[N, 5] per cell (x, y, dx, dy, p_other): the expected move under ``table`` in the start situation of level
    ``k``, and the probability of actions that are not moves."""
    width = views.shape[1]
    moves = np.array([MOVES.get(name, (0, 0)) for name in actions], float)
    is_move = np.array([name in MOVES for name in actions])
    rows = []
    for cell, state in sorted(context_states(views, k, channels).items()):
        probs = table[state]
        dx, dy = probs @ moves
        rows.append((cell % width, cell // width, dx, dy, float(probs[~is_move].sum())))
    return np.array(rows, float).reshape(-1, 5)


@dataclass(frozen=True)
class Walked:
    """One sampled episode of the agent on a picked level, with its outcome in the diagnosis's taxonomy."""

    pick: Pick
    outcome: str
    states: np.ndarray  # the start state first and the final state last
    actions: tuple[str, ...]


def outcome(batch: MDPBatch, goals: tuple[str, ...], states, actions, final: int) -> str:
    """The first candidate goal achieved (in priority order on a step), else how the episode stopped."""
    for state, action in zip(states, actions):
        for goal in goals:
            if batch.goal_achieved[goal][state, action]:
                return goal
    return TERMINATED if batch.terminal[final] else TIMED_OUT


def episodes(scenario: Scenario, views: Views, per_level: int, seed: int = 0) -> list[Walked]:
    """``per_level`` sampled episodes of the agent on every picked level (one jitted walk for all)."""
    walks = walk(views.batch, views.agent, views.episode.horizon, per_level, jax.random.PRNGKey(seed))
    goals = priority(scenario)
    result = []
    for e, level in enumerate(walks.level):
        alive = walks.alive[e]
        states, actions = walks.state[e][alive], walks.action[e][alive]
        label = outcome(views.batch, goals, states, actions, int(walks.final[e]))
        result.append(Walked(views.picks[level], label, np.concatenate([states, [walks.final[e]]]),
                             tuple(scenario.world.actions[a] for a in actions)))
    return result
