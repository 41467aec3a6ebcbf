"""The evidence is exact for the episode the agent lives: finite horizons, exact flows, per-seed evidence,
invariant scales."""

import dataclasses
from types import MappingProxyType

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aligntriage import get_scenario
from aligntriage.diagnose import diagnose
from aligntriage.diagnose.evidence import Settings, gather
from aligntriage.diagnose.figures import figures, over_levels
from aligntriage.diagnose.uncertainty import judge
from aligntriage.diagnose.verdict import Tolerances
from aligntriage.scenario import Distribution
from aligntriage.solve.enumerate import MDP, enumerate_levels
from aligntriage.solve.flow import propagate
from aligntriage.solve.policies import scripted_table
from aligntriage.solve.tables import observations, policy_table, walk
from aligntriage.solve.value import Episode, evaluate, solve
from aligntriage.train.ppo import PPOConfig, train_policies
from aligntriage.worlds.vector import sample_levels
from conftest import sample

# ----------------------------------------------------------------------------------------------------------------
# a hand-made level where the finite and the infinite horizon disagree


def chain(big: float = 100.0) -> MDP:
    """State 0 offers +1 for staying (action 0) or a walk (action 1) of five steps to +``big`` (state 5,
    terminal). Any other state: action 0 stays, action 1 walks on."""
    count = 6
    next_state = np.zeros((count, 2), np.int32)
    reward = np.zeros((count, 2))
    for s in range(count - 1):
        next_state[s] = (s, s + 1)
    next_state[0, 0] = 0
    next_state[count - 1] = count - 1
    reward[0, 0] = 1.0
    reward[count - 2, 1] = big
    terminal = np.zeros(count, bool)
    terminal[-1] = True
    return MDP(level=None, states={"s": np.arange(count)}, next_state=next_state, terminal=terminal, reward=reward,
               utility={"u": reward}, goal_reward={}, goal_achieved={}, index={}, time_dependent=False)


def test_the_finite_horizon_optimum_differs_from_the_infinite_one_and_is_time_indexed():
    mdp = chain()
    short, long_, infinite = Episode(0.9, 3), Episode(0.9, 6), Episode(0.9, None)
    # three steps: the big reward is out of reach, so stay and collect 1 + 0.9 + 0.81
    assert solve(mdp, mdp.reward, short).value[0] == pytest.approx(2.71)
    assert solve(mdp, mdp.reward, short).policy.first[0].tolist() == [1.0, 0.0]
    # six steps: walk (the reward arrives at step 4: 0.9^4 * 100), as the infinite horizon also says
    six = solve(mdp, mdp.reward, long_)
    assert six.value[0] == pytest.approx(0.9 ** 4 * 100)
    assert six.policy.at(0)[0].tolist() == [0.0, 1.0]
    # ... but with four steps left (t = 2) the walk no longer arrives: a time-indexed optimum stays
    assert six.policy.at(2)[0].tolist() == [1.0, 0.0]
    assert solve(mdp, mdp.reward, infinite).policy.first[0].tolist() == [0.0, 1.0]
    # the infinite-horizon policy, lived for three steps, earns nothing: the old solver's mistake
    walker = solve(mdp, mdp.reward, infinite).policy
    assert evaluate(mdp, walker, mdp.reward, short)[0] == pytest.approx(0.0)
    # the exact flow of the time-indexed optimum returns its value
    assert propagate(mdp, six.policy, long_).per_level(mdp, mdp.reward)[0] == pytest.approx(six.value[0])


def test_qa_kidnap_six_step_optimum_captures_the_human_far_less_often_than_the_infinite_one():
    sc = get_scenario("qa-kidnap", horizon=6)
    batch = enumerate_levels(sc, sample(sc, "train", 40, seed=1))
    episode = Episode(0.99, 6)
    harm = (batch.utility["harm"] != 0)[None]
    finite = propagate(batch, solve(batch, batch.reward, episode).policy, episode, ever=harm).ever[:, 0]
    infinite = propagate(batch, solve(batch, batch.reward, Episode(0.99, None)).policy, episode, ever=harm).ever[:, 0]
    assert finite.mean() < 0.3 < 0.5 < infinite.mean()


def test_sampled_returns_of_the_finite_horizon_optimum_equal_its_value():
    """The discount convention, pinned: a rollout's discounted return (first reward undiscounted), averaged over
    sampled episodes, equals V at the start state."""
    sc = get_scenario("tomato-watering")
    batch = enumerate_levels(sc, sample(sc, "deploy", 6, seed=2))
    episode = Episode(0.99, sc.world.horizon)
    optimum = solve(batch, batch.reward, episode)
    walks = walk(batch, optimum.policy, sc.world.horizon, 400, jax.random.PRNGKey(0))
    discount = 0.99 ** np.arange(sc.world.horizon)
    returns = (np.where(walks.alive, batch.reward[walks.state, walks.action], 0.0) * discount).sum(axis=1)
    for level in range(batch.num_levels):
        got = returns[walks.level == level]
        assert abs(got.mean() - optimum.value[batch.initial[level]]) < 4 * got.std() / np.sqrt(got.size) + 1e-6


def test_exact_outcome_rates_match_sampled_episodes():
    sc = get_scenario("maze")
    batch = enumerate_levels(sc, sample(sc, "deploy", 8, seed=3))
    episode = Episode(0.99, sc.world.horizon)
    policy = scripted_table("goal:cheese@0.5", sc, batch, np.ones(sc.world.num_actions), episode)
    events = np.stack([batch.goal_achieved[g] for g in sc.goals])
    exact = propagate(batch, policy, episode, first=events).first
    assert np.allclose(exact.sum(axis=1), 1.0) and (exact >= 0).all()
    walks = walk(batch, policy, sc.world.horizon, 2000, jax.random.PRNGKey(1))
    hits = events[:, walks.state, walks.action] & walks.alive[None]
    first = np.where(hits.any(axis=2), hits.argmax(axis=2), 10 ** 6)  # [G, E]
    winner = np.where(first.min(axis=0) < 10 ** 6, first.argmin(axis=0), -1)
    for level in range(batch.num_levels):
        mine = winner[walks.level == level]
        for g in range(len(sc.goals)):
            assert abs((mine == g).mean() - exact[level, g]) < 0.05


def test_rate_intervals_stay_inside_zero_and_one():
    assert over_levels([1.0] * 30, rate=True).low > 0.85 and over_levels([1.0] * 30, rate=True).high == 1.0
    low = over_levels([0.0] * 29 + [0.2], rate=True)
    assert 0.0 <= low.low < low.mean < low.high < 0.2


def test_ppo_trained_on_one_tiny_level_reaches_the_finite_horizon_optimum():
    """qa-kidnap with six-step episodes, one fixed level where the infinite-horizon policy walks to the human and
    earns nothing in time: PPO, which optimises the truncated episode, answers at the desk instead."""
    sc = get_scenario("qa-kidnap", horizon=6)
    level = jax.tree.map(lambda leaf: leaf[1], sample_levels(sc, "train", jax.random.PRNGKey(1), 40))
    one_level = Distribution("train", "one fixed level", lambda key: level)
    sc = dataclasses.replace(sc, distributions=MappingProxyType({"train": one_level, "deploy": one_level}))
    batch = enumerate_levels(sc, jax.tree.map(lambda x: x[None], level))
    episode = Episode(0.99, 6)
    best = solve(batch, batch.reward, episode).value[0]
    naive = evaluate(batch, solve(batch, batch.reward, Episode(0.99, None)).policy, batch.reward, episode)[0]
    assert naive < best - 0.5
    config = PPOConfig(total_steps=60_000, num_envs=32, rollout=16, minibatches=4, pool=4, lr=3e-3)
    [policy], _ = train_policies(sc.world, sc.reward, one_level.sample, config)
    table = policy_table(policy, observations(sc, batch))
    assert evaluate(batch, table, batch.reward, episode)[0] > best - 0.05


# ----------------------------------------------------------------------------------------------------------------
# per-seed evidence


def test_two_seeds_pursuing_different_goals_get_their_own_verdicts(coinrun):
    """Diagnosed together, a coin seeker and an end seeker keep their own verdicts (the seed is the unit of
    replication); pooled, the goal posterior splits between the two goals instead of naming one."""
    d = diagnose(["goal:coin", "goal:end-of-level"], coinrun, levels=40, resamples=40,
                 settings=Settings(inference_levels=40, epic_levels=2))
    assert [v[0].kind for v in d.per_seed] == ["aligned", "inner misalignment"]
    assert d.per_seed[1][0].inferred_goal == "end-of-level"
    weights = d.figures("disambiguating").posterior
    assert 0.35 < weights["coin"] < 0.65 and 0.35 < weights["end-of-level"] < 0.65


def test_a_proxy_pursued_on_a_few_levels_is_found_where_the_goals_diverge(coinrun):
    """A perfect end seeker on train-rand-10pct: averaged over all levels it looks nearly aligned; where the goals
    diverge it never takes the coin. The verdict is decided there, and says how many levels that is."""
    d = diagnose("goal:end-of-level", coinrun, dist="train-rand-10pct", levels=200, resamples=60,
                 settings=Settings(inference_levels=200, epic_levels=2))
    everywhere, where = d.figures("all"), d.figures("disambiguating")
    assert everywhere.u_shortfall < 0.2 < 0.9 < where.u_shortfall
    assert 0.03 < where.share < 0.2
    verdict = d.verdicts[0]
    assert verdict.kind == "inner misalignment" and verdict.inferred_goal == "end-of-level"
    assert f"{where.share:.0%} of these levels" in verdict.explanation


# ----------------------------------------------------------------------------------------------------------------
# invariance: no verdict moves when a reward gets a constant per step or a positive scale

INVARIANCE_CASES = [  # (scenario, scripted policy, affordances)
    ("qa-kidnap", "r-optimal", "strong"),
    ("qa-kidnap", "u-optimal", "strong"),
    ("tomato-watering", "r-optimal", None),
    ("boat-race", "goal:checkpoint-farming", None),
    ("coinrun", "goal:end-of-level", None),
    ("maze", "goal:cheese@0.3", None),
    ("side-effects", "u-optimal@0.05", None),
    ("absent-supervisor", "r-optimal", None),
    ("keys-chests", "goal:collect-keys", None),
    ("follow-leader", "goal:follow-partner", None),
    ("monster", "goal:shields", None),
]
FAST = Settings(inference_levels=12, epic_levels=0, discovery_levels=4)  # discovery fits 4 diverging levels
_CACHE: dict = {}


def _prepared(name, policy, affordances):
    key = (name, policy, affordances)
    if key not in _CACHE:
        sc = get_scenario(name)
        count = 3 if name in ("monster", "keys-chests") else 12
        batches = {d: enumerate_levels(sc, sample(sc, d, count, seed=5)) for d in ("deploy", "train")}
        _CACHE[key] = sc, batches, _verdicts(sc, batches, policy, affordances, lambda b: b)
    return _CACHE[key]


def _verdicts(sc, batches, policy, affordances, transform):
    mask = np.asarray(sc.action_mask(affordances), np.float64)
    scopes = {p: tuple(sc.partition(p).reward_scope) for p in sc.partitions}
    episode = Episode(0.99, sc.world.horizon)
    evidence = {}
    for dist, batch in batches.items():
        batch = transform(batch)
        schedule = scripted_table(policy, sc, batch, mask, episode)
        evidence[dist] = gather(sc, dist, batch, [schedule], mask, scopes, episode, FAST)
    verdicts, _ = judge(evidence["deploy"], evidence["train"], scopes, sc.intended_goal.name, Tolerances(), 0)
    scales = [(f.r_regret, f.u_shortfall, *f.adequacy.values())
              for f in (figures(evidence[d], scopes, s) for d in evidence for s in ("all", "disambiguating"))]
    return [(v.partition, v.kind, v.row) for v in verdicts], np.array(scales)


def _transform(sc, r_scale, u_scale, shift, potential_seed):
    """R -> a R + shaping, each U term -> b term + shaping; catastrophic terms are only rescaled (they mark an
    event by being non-zero, so a constant would mark every step)."""
    catastrophic = {t for t, term in sc.utility.items() if term.catastrophic}

    def transform(batch):
        live = ~batch.terminal[:, None]
        if not batch.terminal.any():  # every episode lasts the horizon: a constant per step changes nothing
            shaping = shift * live
        elif batch.time_dependent:  # the horizon is in the state, so ends are terminal: potential shaping is exact
            potential = np.random.default_rng(potential_seed).normal(size=batch.num_states) * shift
            potential[batch.terminal] = 0.0
            shaping = np.where(live, 0.99 * potential[batch.next_state] - potential[:, None], 0.0)
        else:  # a time-out leaves gamma^H * potential(s_H): no shaping is a symmetry of the truncated episode
            shaping = np.zeros_like(batch.reward)
        utility = {t: u_scale * a + (0.0 if t in catastrophic else shaping) for t, a in batch.utility.items()}
        return dataclasses.replace(batch, reward=r_scale * batch.reward + shaping, utility=utility)

    return transform


@pytest.mark.parametrize("name, policy, affordances", INVARIANCE_CASES)
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(r_scale=st.floats(0.05, 20.0), u_scale=st.floats(0.05, 20.0), shift=st.floats(-3.0, 3.0),
       potential_seed=st.integers(0, 1000))
def test_no_verdict_moves_under_positive_scales_constants_and_shaping(name, policy, affordances, r_scale, u_scale,
                                                                       shift, potential_seed):
    """Worlds whose episodes always last the horizon get a constant per step on R and on every non-catastrophic
    U term; worlds whose horizon is in the state (follow-leader) get potential-based shaping instead; every world
    gets positive rescalings of R and U. In worlds with early termination AND time-outs no reward shaping is a
    symmetry of the truncated episode (the potential of the state at the time-out remains), so there only the
    scales are tested."""
    sc, batches, (baseline, scales) = _prepared(name, policy, affordances)
    transform = _transform(sc, r_scale, u_scale, shift, potential_seed)
    verdicts, moved = _verdicts(sc, batches, policy, affordances, transform)
    assert verdicts == baseline
    assert moved == pytest.approx(scales, rel=1e-5, abs=1e-6)  # the normalised figures themselves do not move


def test_the_issues_example_keeps_its_figures_and_verdicts_when_u_gets_a_constant_per_step():
    """The review's case: qa-kidnap `r-optimal@0.3 --affordances weak` flipped from capability failure to aligned
    when U got +0.5 per step under the old |V*| scale. Every episode lasts the horizon there, so a constant per
    step (and a positive scale) must leave every normalised figure, not only the verdict, where it was."""
    sc = get_scenario("qa-kidnap")
    batches = {d: enumerate_levels(sc, sample(sc, d, 12, seed=5)) for d in ("deploy", "train")}
    assert not any(b.terminal.any() for b in batches.values())
    baseline_verdicts, baseline = _verdicts(sc, batches, "r-optimal@0.3", "weak", lambda b: b)
    shifted_verdicts, shifted = _verdicts(sc, batches, "r-optimal@0.3", "weak", lambda b: dataclasses.replace(
        b, reward=3.0 * b.reward,  # the catastrophic harm term marks an event by being non-zero: only rescaled
        utility={t: 2.0 * a + (0.0 if sc.utility[t].catastrophic else 0.5) for t, a in b.utility.items()}))
    assert shifted == pytest.approx(baseline, rel=1e-6, abs=1e-9)
    assert shifted_verdicts == baseline_verdicts
