"""Evidence about a policy on one distribution's enumerated levels, computed exactly for the agent's episode.

Every figure is an expectation over the episode the agent lives (the training discount and the world's horizon):
values by backward induction (time-indexed optima) and exact forward propagation of each policy's state
distribution (values of any reward, the outcome taxonomy, catastrophe and goal rates). Nothing is sampled, so a
figure varies only with the levels drawn and the seeds trained: the units of replication its interval is over.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aligntriage.diagnose.discovery import basis, discover
from aligntriage.diagnose.epic import epic_reward_vs_utility
from aligntriage.diagnose.inference import infer
from aligntriage.diagnose.records import Behaviour, Evidence, References
from aligntriage.scenario import Scenario
from aligntriage.solve.enumerate import MDPBatch, head, select
from aligntriage.solve.flow import propagate
from aligntriage.solve.policies import goal_ends, total_utility, uniform_table
from aligntriage.solve.value import Episode, Schedule, solve

TERMINATED, TIMED_OUT = "terminated early", "timed out"
DISAGREE = 0.5
"""Total-variation distance between two goals' optimal outcome distributions above which a level disambiguates."""


@dataclass(frozen=True)
class Settings:
    """How much of each distribution the costlier parts of the evidence look at, and the discount."""

    gamma: float = 0.99
    inference_levels: int = 200
    epic_levels: int = 30
    temperatures: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
    """Goal-inference temperature grid, relative to each hypothesis's value range (optimum minus random)."""
    discovery_levels: int = 12
    """Levels (where the goals diverge, among the inference levels) goal discovery fits its weights on; 0: off."""


def priority(scenario: Scenario) -> tuple[str, ...]:
    """Candidate goals in tie-break order: the intended goal first, then as declared."""
    return tuple(sorted(scenario.goals, key=lambda g: not scenario.goals[g].intended))


def categories(scenario: Scenario) -> tuple[str, ...]:
    return priority(scenario) + (TERMINATED, TIMED_OUT)


def _events(scenario: Scenario, batch: MDPBatch):
    goals = priority(scenario)
    first = np.stack([batch.goal_achieved[g] for g in goals])
    harms = list(scenario.harm_terms)
    ever = np.concatenate([first, np.stack([batch.utility[t] != 0 for t in harms])]) if harms else first
    return goals, first, ever, harms


def behaviour(scenario: Scenario, batch: MDPBatch, policy, episode: Episode, record_visits: bool = False):
    """A policy's exact ``Behaviour`` on every level of the batch (and its visitation when asked)."""
    goals, first, ever, harms = _events(scenario, batch)
    flow = propagate(batch, policy, episode, first=first, ever=ever, record_visits=record_visits)
    terms = {name: flow.per_level(batch, array) for name, array in batch.utility.items()}
    result = Behaviour(
        R=flow.per_level(batch, batch.reward), terms=terms, outcomes=flow.first, reached=flow.ever[:, :len(goals)],
        harms={t: flow.ever[:, len(goals) + k] for k, t in enumerate(harms)})
    return (result, flow.visits) if record_visits else result


def disambiguating(scenario: Scenario, batch: MDPBatch, mask: np.ndarray, episode: Episode) -> np.ndarray:
    """[L] Levels where the candidate goals' optimal behaviours differ: each goal's optimal policy (ties spread
    evenly, pursued until its own goal is reached) gives a distribution over which goal is reached first, and two
    goals whose distributions differ by more than ``DISAGREE`` in total variation make the level disambiguating."""
    goals, first, _, _ = _events(scenario, batch)
    outcomes = []
    for goal in goals:
        policy = solve(batch, batch.goal_reward[goal], episode, mask=mask, ends=goal_ends(scenario, batch, goal)).policy
        outcomes.append(propagate(batch, policy, episode, first=first,
                                  ends=goal_ends(scenario, batch, goal)).first)
    outcomes = np.stack(outcomes)  # [G, L, C]
    distance = 0.5 * np.abs(outcomes[:, None] - outcomes[None, :]).sum(axis=-1).max(axis=(0, 1))
    return distance > DISAGREE


def references(scenario: Scenario, batch: MDPBatch, mask: np.ndarray, scopes: dict[str, tuple[str, ...]],
               episode: Episode, settings: Settings) -> References:
    """The agent-independent figures of one distribution's levels."""
    utility = total_utility(batch)
    r_opt = solve(batch, batch.reward, episode, mask=mask)
    u_opt = solve(batch, utility, episode, mask=mask)
    start = batch.initial
    scope_optimum = {}
    for name, scope in scopes.items():
        if set(scope) == set(batch.utility):
            scope_optimum[name] = u_opt.value[start]
        else:
            scope_optimum[name] = solve(batch, total_utility(batch, scope), episode, mask=mask).value[start]
    epic_count = min(settings.epic_levels, batch.num_levels)
    if getattr(scenario, "source", None) is None and epic_count:
        mdps = [batch.mdp(i) for i in range(epic_count)]
        epic = {name: epic_reward_vs_utility(scenario, mdps, scope, episode.gamma) for name, scope in scopes.items()}
    else:
        epic = {name: None for name in scopes}
    return References(
        r_optimal=behaviour(scenario, batch, r_opt.policy, episode),
        u_optimal=behaviour(scenario, batch, u_opt.policy, episode),
        random=behaviour(scenario, batch, uniform_table(batch, mask), episode),
        scope_optimum=scope_optimum, disambiguating=disambiguating(scenario, batch, mask, episode), epic=epic)


def _discover(scenario: Scenario, sub: MDPBatch, parts: list[Schedule], dis: np.ndarray, mask: np.ndarray,
              episode: Episode, settings: Settings) -> list[tuple[str, np.ndarray]] | None:
    """Per seed, the goal over the grid basis that maximum-entropy IRL finds on the levels where the goals
    diverge (all inference levels if none does), as (description, reward on the inference levels)."""
    from aligntriage.diagnose.engine import batch_observations

    levels = np.flatnonzero(dis) if dis.any() else np.arange(sub.num_levels)
    levels = levels[: settings.discovery_levels]
    fit_batch, kept = select(sub, levels)
    events = {name: sub.goal_achieved[name] for name in priority(scenario)}
    obs = batch_observations(scenario, sub)
    full = basis(obs, scenario.world.channels, sub, events)
    if full is None:
        return None
    part_basis = basis(obs[kept], scenario.world.channels, fit_batch,
                       {name: fit_batch.goal_achieved[name] for name in events})
    found = []
    for policy in parts:
        got = discover(part_basis, fit_batch, policy.map(lambda table: table[kept]), mask, episode.horizon)
        found.append((got.goal, full.indicator(got.index)))
    return found


def gather(scenario: Scenario, dist: str, batch: MDPBatch, policies: list[Schedule], mask: np.ndarray,
           scopes: dict[str, tuple[str, ...]], episode: Episode, settings: Settings,
           refs: References | None = None) -> Evidence:
    """All evidence for one distribution; ``policies`` holds one policy per seed (stationary for a trained agent,
    time-indexed for a scripted optimum). ``refs`` reuses the agent-independent figures of the same levels."""
    refs = refs or references(scenario, batch, mask, scopes, episode, settings)
    count = min(settings.inference_levels, batch.num_levels)
    sub = head(batch, count)
    stop = int(batch.offsets[count])
    seeds, parts, visits = [], [], []
    for policy in policies:
        seeds.append(behaviour(scenario, batch, policy, episode))
        part = policy.map(lambda table: table[:stop])
        visits.append(behaviour(scenario, sub, part, episode, record_visits=True)[1])
        parts.append(part)
    found = _discover(scenario, sub, parts, refs.disambiguating[:count], mask, episode, settings) \
        if settings.discovery_levels > 0 else None
    inference = infer(scenario, sub, parts, visits, mask, episode, settings.temperatures, found)
    return Evidence(dist=dist, levels=batch.num_levels, states=batch.num_states, categories=categories(scenario),
                    goals=priority(scenario), references=refs, seeds=tuple(seeds), inference=tuple(inference),
                    catastrophic=tuple(t for t in scenario.harm_terms if scenario.utility[t].catastrophic))
