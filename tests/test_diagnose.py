"""Verdicts of scripted policies on real scenarios, the evidence they rest on, EPIC's invariances, bad input."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aligntriage import AligntriageError, UnknownName, get_scenario
from aligntriage.diagnose import Diagnosis, Tolerances, diagnose, epic
from aligntriage.diagnose.engine import rejudge
from aligntriage.diagnose.epic import canonical_transitions, epic_reward_vs_utility, pearson_distance
from aligntriage.diagnose.evidence import Settings, disambiguating
from aligntriage.solve import enumerate_mdp, stack_mdps
from aligntriage.solve.value import Episode
from aligntriage.worlds.coinrun import Level
from conftest import one, sample

LEVELS = 24
FAST = Settings(inference_levels=24, epic_levels=5)
RESAMPLES = 50


@pytest.fixture(scope="module")
def qa():
    return get_scenario("qa-kidnap")


@pytest.fixture(scope="module")
def maze():
    return get_scenario("maze")


def run(policy, scenario, **kwargs):
    return diagnose(policy, scenario, levels=kwargs.pop("levels", LEVELS), settings=kwargs.pop("settings", FAST),
                    resamples=RESAMPLES, **kwargs)


def verdicts(d):
    return {v.partition: v.kind for v in d.verdicts}


def test_coinrun_end_seeking_policy_is_inner_misaligned(coinrun):
    d = run("goal:end-of-level", coinrun)
    assert verdicts(d) == {"task": "inner misalignment"}
    assert d.verdicts[0].inferred_goal == "end-of-level" and d.verdicts[0].row == "inner.goal"
    where = d.figures("disambiguating")
    assert where.outcomes["end-of-level"] > 0.99 and where.posterior["end-of-level"] > 0.9
    assert where.explained["end-of-level"] > 0.5 > where.explained["coin"]
    assert d.figures(iid=True).r_regret < 1e-9  # on train it looks perfect
    assert d.evidence.references.epic["task"] == pytest.approx(0.0, abs=1e-6)  # R is U on the reward's scope


def test_random_policy_is_a_capability_failure(coinrun, qa):
    d = run("random", coinrun)
    assert verdicts(d) == {"task": "capability failure"} and d.verdicts[0].row == "capability.iid"
    assert d.figures().r_regret == pytest.approx(1.0)  # random is the bottom of the normalised range
    got = verdicts(run("random", qa, affordances="weak"))
    assert set(got.values()) == {"capability failure"}


def test_r_optimal_policies_are_never_goal_misgeneralization(coinrun, maze, qa):
    for scenario, kwargs in ((coinrun, {}), (maze, {}), (qa, {"affordances": "strong", "partitions": ["broad"]})):
        d = run("r-optimal", scenario, **kwargs)
        assert "inner misalignment" not in verdicts(d).values(), scenario.name
        assert abs(d.figures().r_regret) < 1e-9


def test_qa_kidnap_coercion_is_inner_when_narrow_outer_when_broad(qa):
    d = run("r-optimal", qa, affordances="strong")
    assert verdicts(d) == {"narrow": "inner misalignment", "broad": "outer misalignment"}
    adequacy = d.figures().adequacy
    assert adequacy["narrow"] < 0.01 < adequacy["broad"]
    [threat] = d.threats
    assert threat.failure == "harm" and threat.reading == "outer misalignment threat"
    assert threat.agent_rate == pytest.approx(1.0)


def test_qa_kidnap_weak_reward_is_locally_adequate_under_both_partitions(qa):
    d = run("r-optimal", qa, affordances="weak")
    assert all(abs(v) < 1e-9 for v in d.figures().adequacy.values())
    assert set(verdicts(d).values()) == {"aligned"}
    assert d.threats[0].reading == "no catastrophe"


def test_maze_corner_seeker_is_inner_misaligned(maze):
    d = run("goal:top-right-corner", maze)
    assert verdicts(d) == {"task": "inner misalignment"}
    assert d.verdicts[0].inferred_goal == "top-right-corner"


def test_diagnosis_round_trips_through_json(coinrun):
    d = diagnose("goal:coin", coinrun, levels=4, settings=Settings(inference_levels=4, epic_levels=2), resamples=5)
    again = Diagnosis.from_dict(json.loads(d.to_json()))
    assert again.verdicts == d.verdicts and again.verdict("task").kind == "aligned"
    np.testing.assert_array_equal(again.evidence.seeds[0].R, d.evidence.seeds[0].R)
    np.testing.assert_array_equal(again.evidence.references.disambiguating, d.evidence.references.disambiguating)
    assert again.figures("disambiguating") == d.figures("disambiguating")


def test_rejudging_stored_evidence_equals_diagnosing_again_under_the_new_tolerances(coinrun):
    kwargs = dict(levels=8, settings=Settings(inference_levels=8, epic_levels=2), resamples=20)
    strict, lax = Tolerances(), Tolerances(aligned=2.0)
    before = diagnose(["goal:end-of-level", "goal:coin"], coinrun, tolerances=strict, **kwargs)
    again = diagnose(["goal:end-of-level", "goal:coin"], coinrun, tolerances=lax, **kwargs)
    assert before.verdict("task").kind != again.verdict("task").kind == "aligned"
    rejudged = rejudge(Diagnosis.from_dict(json.loads(before.to_json())), lax, resamples=20)
    assert rejudged.verdicts == again.verdicts and rejudged.per_seed == again.per_seed
    assert rejudged.bounds == again.bounds and rejudged.tolerances == lax
    with pytest.raises(AligntriageError, match="catastrophe tolerance"):
        rejudge(before, Tolerances(catastrophe=0.01))


def test_an_old_or_damaged_diagnosis_record_is_a_clear_error():
    with pytest.raises(AligntriageError, match="malformed or from an older aligntriage"):
        Diagnosis.from_dict({"scenario": "coinrun", "evidence": {"deploy": {}}})


def test_disambiguating_levels_are_decided_by_the_solver(coinrun):
    height, width = coinrun.params["height"], coinrun.params["width"]
    empty = jnp.zeros((height, width), bool)

    def level(coin):
        return Level(empty, empty, jnp.int32(0), jnp.int32(width - 1), jnp.int32(coin))

    # coin at the exit: both goals are one behaviour; coin far from the way to the exit: they differ
    mdps = [enumerate_mdp(coinrun, level(width - 1)), enumerate_mdp(coinrun, level((height - 1) * width))]
    dis = disambiguating(coinrun, stack_mdps(mdps), np.ones(4), Episode(0.99, coinrun.world.horizon))
    assert dis.tolist() == [False, True]


def test_epic_invariances():
    rng = np.random.default_rng(0)
    states, actions, gamma = 7, 3, 0.9
    triples = rng.normal(size=(states, actions, states))
    next_state = rng.integers(0, states, size=(states, actions))
    potential = rng.normal(size=states)
    shaped = 3.0 * triples + gamma * potential[None, None, :] - potential[:, None, None]
    base = canonical_transitions(triples, next_state, gamma)
    assert pearson_distance(base, canonical_transitions(shaped, next_state, gamma)) == pytest.approx(0.0, abs=1e-6)
    assert pearson_distance(base, base) == pytest.approx(0.0, abs=1e-7)
    other = canonical_transitions(rng.normal(size=triples.shape), next_state, gamma)
    assert pearson_distance(base, other) > 0.2
    assert pearson_distance(base, canonical_transitions(-triples, next_state, gamma)) == pytest.approx(1.0)


def test_epic_in_row_blocks_matches_the_dense_triples(monkeypatch):
    """EPIC evaluates the means over (A, S') a few states at a time; it must equal canonicalising the full
    [S, A, S] triples, here with blocks of 4 states so that a level spans several blocks and a padded one."""
    tomato = get_scenario("tomato-watering")
    levels = sample(tomato, "deploy", 2, seed=4)
    mdps = [enumerate_mdp(tomato, one(levels, i)) for i in range(2)]
    canon_r, canon_u = [], []
    for mdp in mdps:
        def pair(s, a, s2, level=mdp.level):
            s, s2 = s._replace(level=level), s2._replace(level=level)
            return tomato.reward(s, a, s2), tomato.utility["tomatoes"].value(s, a, s2)

        actions = jnp.arange(tomato.world.num_actions)
        triples = jax.vmap(jax.vmap(jax.vmap(pair, (None, None, 0)), (None, 0, None)), (0, None, None))(
            mdp.states, actions, mdp.states)
        alive = ~mdp.terminal
        canon_r.append(canonical_transitions(np.asarray(triples[0], np.float64), mdp.next_state, 0.99)[alive])
        canon_u.append(canonical_transitions(np.asarray(triples[1], np.float64), mdp.next_state, 0.99)[alive])
    dense = pearson_distance(np.concatenate(canon_r), np.concatenate(canon_u))
    monkeypatch.setattr(epic, "ROWS_PER_CALL", 4)
    assert all(mdp.num_states > 8 and mdp.num_states % 4 for mdp in mdps), [m.num_states for m in mdps]
    assert epic_reward_vs_utility(tomato, mdps, ("tomatoes",), 0.99) == pytest.approx(dense, abs=1e-5)
    assert dense > 0.05  # R and U really differ here, so the check compares something


def test_bad_input_is_a_clear_error(coinrun):
    with pytest.raises(UnknownName, match="unknown partition 'nope'.*valid: task"):
        diagnose("random", coinrun, partitions=["nope"], levels=4)
    with pytest.raises(UnknownName, match="unknown distribution 'elsewhere'"):
        diagnose("random", coinrun, dist="elsewhere", levels=4)
    with pytest.raises(UnknownName, match="unknown policy 'greedy'"):
        diagnose("greedy", coinrun, levels=4)
    with pytest.raises(UnknownName, match="unknown affordance set 'strong'"):
        diagnose("random", coinrun, affordances="strong", levels=4)
    with pytest.raises(AligntriageError, match="noise after '@' must be a number in \\[0, 1\\], got '2'"):
        diagnose("goal:coin@2", coinrun, levels=4)
    with pytest.raises(AligntriageError, match="levels must be >= 2"):
        diagnose("random", coinrun, levels=1)


