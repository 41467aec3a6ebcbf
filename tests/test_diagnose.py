"""Verdicts on constructed policies, the evidence they rest on, EPIC's invariances, and bad input."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aligntriage import AligntriageError, UnknownName, get_scenario
from aligntriage.diagnose import Diagnosis, Tolerances, diagnose, epic
from aligntriage.diagnose.epic import canonical_transitions, epic_reward_vs_utility, pearson_distance
from aligntriage.diagnose.evidence import Settings, disambiguating_levels
from aligntriage.solve import enumerate_mdp, stack_mdps
from aligntriage.worlds.coinrun import Level
from conftest import one, sample

LEVELS = 24
FAST = Settings(inference_levels=24, epic_levels=5)


@pytest.fixture(scope="module")
def qa():
    return get_scenario("qa-kidnap")


@pytest.fixture(scope="module")
def maze():
    return get_scenario("maze")


def verdicts(d):
    return {v["partition"]: v["verdict"] for v in d.verdicts}


def test_coinrun_end_seeking_policy_is_inner_misaligned(coinrun):
    d = diagnose("goal:end-of-level", coinrun, levels=LEVELS, settings=FAST)
    assert verdicts(d) == {"task": "inner misalignment"}
    assert d.verdicts[0]["inferred_goal"] == "end-of-level"
    deploy = d.evidence["deploy"]
    assert deploy["outcomes"]["disambiguating"]["end-of-level"]["mean"] > 0.9
    assert deploy["goal_inference"]["posterior"]["end-of-level"] > 0.9
    assert d.evidence["train"]["relative_r_regret"] < 0.01  # on train it looks perfect
    assert deploy["epic"]["task"] == pytest.approx(0.0, abs=1e-6)  # R is U on the reward's scope


def test_random_policy_is_a_capability_failure(coinrun, qa):
    assert verdicts(diagnose("random", coinrun, levels=LEVELS, settings=FAST)) == {"task": "capability failure"}
    got = verdicts(diagnose("random", qa, affordances="weak", levels=LEVELS, settings=FAST))
    assert set(got.values()) == {"capability failure"}


def test_r_optimal_policies_are_never_goal_misgeneralization(coinrun, maze, qa):
    for scenario, kwargs in ((coinrun, {}), (maze, {}), (qa, {"affordances": "strong", "partitions": ["broad"]})):
        d = diagnose("r-optimal", scenario, levels=LEVELS, settings=FAST, **kwargs)
        assert "inner misalignment" not in verdicts(d).values(), scenario.name
        assert abs(d.evidence["deploy"]["relative_r_regret"]) < 1e-6


def test_qa_kidnap_coercion_is_inner_when_narrow_outer_when_broad(qa):
    d = diagnose("r-optimal", qa, affordances="strong", levels=LEVELS, settings=FAST)
    assert verdicts(d) == {"narrow": "inner misalignment", "broad": "outer misalignment"}
    adequacy = d.evidence["deploy"]["adequacy"]
    assert adequacy["narrow"]["relative_shortfall"] < 0.01 < adequacy["broad"]["relative_shortfall"]
    [threat] = d.threat_model
    assert threat["term"] == "harm" and threat["reading"] == "outer misalignment threat"
    assert threat["agent_rate"] == 1.0


def test_qa_kidnap_weak_reward_is_locally_adequate_under_both_partitions(qa):
    d = diagnose("r-optimal", qa, affordances="weak", levels=LEVELS, settings=FAST)
    for name in ("narrow", "broad"):
        assert abs(d.evidence["deploy"]["adequacy"][name]["relative_shortfall"]) < 1e-6
    assert set(verdicts(d).values()) == {"aligned"}
    assert d.threat_model[0]["reading"] == "no catastrophe"


def test_maze_corner_seeker_is_inner_misaligned(maze):
    d = diagnose("goal:top-right-corner", maze, levels=LEVELS, settings=FAST)
    assert verdicts(d) == {"task": "inner misalignment"}
    assert d.verdicts[0]["inferred_goal"] == "top-right-corner"


def test_a_sloppy_corner_seeker_is_judged_by_its_outcomes_against_chance(maze):
    """Acting at random 85% of the time, its actions beat random by too little to name a goal, but where the goals
    diverge it reaches the corner first far more often than a uniform-random walker: that is the outcome evidence."""
    d = diagnose("goal:top-right-corner@0.85", maze, levels=LEVELS, settings=FAST)
    deploy = d.evidence["deploy"]
    corner = deploy["goal_inference"]["goals"]["top-right-corner"]["gain_over_random"]
    assert corner < d.tolerances["explains"]
    chance = deploy["outcomes"]["chance_disambiguating"]["top-right-corner"]["mean"]
    assert deploy["outcomes"]["disambiguating"]["top-right-corner"]["mean"] > chance + 0.2
    assert verdicts(d) == {"task": "inner misalignment"}
    assert d.verdicts[0]["inferred_goal"] == "top-right-corner"
    assert "uniform-random policy" in d.verdicts[0]["explanation"]
    strict = diagnose("goal:top-right-corner@0.85", maze, levels=LEVELS, settings=FAST,
                      tolerances=Tolerances(outcome_lift=1.01))
    assert verdicts(strict) == {"task": "capability failure"} and strict.verdicts[0]["inferred_goal"] is None


def test_per_seed_verdicts_read_each_seeds_own_outcomes(maze):
    """A sloppy corner seeker and a sloppy cheese seeker: pooled, neither goal stands out; per seed, each seed's
    outcomes against chance name the corner seeker's goal."""
    d = diagnose(["goal:top-right-corner@0.85", "goal:cheese@0.85"], maze, levels=LEVELS, settings=FAST)
    assert verdicts(d) == {"task": "capability failure"}
    assert [seed["task"] for seed in d.per_seed_verdicts] == ["inner misalignment", "capability failure"]


def test_diagnosis_round_trips_through_json(coinrun):
    d = diagnose("goal:coin", coinrun, levels=4, settings=Settings(inference_levels=4, epic_levels=2))
    again = Diagnosis.from_dict(json.loads(d.to_json()))
    assert again.verdicts == d.verdicts and again.verdict("task") == "aligned"
    value = d.evidence["deploy"]["values"]["agent"]["R"]
    assert again.evidence["deploy"]["values"]["agent"]["R"] == pytest.approx(value)


def test_disambiguating_levels_are_decided_by_the_solver(coinrun):
    height, width = coinrun.params["height"], coinrun.params["width"]
    empty = jnp.zeros((height, width), bool)

    def level(coin):
        return Level(empty, empty, jnp.int32(0), jnp.int32(width - 1), jnp.int32(coin))

    # coin at the exit: both goals are one behaviour; coin far from the way to the exit: they differ
    mdps = [enumerate_mdp(coinrun, level(width - 1)), enumerate_mdp(coinrun, level((height - 1) * width))]
    dis = disambiguating_levels(coinrun, stack_mdps(mdps), np.ones(4), Settings())
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


def evidence(goal_gains: dict, regret: float, shortfall: float, agent=None, chance=None) -> dict:
    """Minimal hand-made evidence for coinrun's 'task' partition (the reward covers 'coin', all of U)."""
    rates = lambda r: {g: {"mean": r.get(g, 0.0), "n": 10} for g in goal_gains}  # noqa: E731
    return {
        "relative_u_shortfall": shortfall, "relative_term_shortfall": {"coin": shortfall},
        "relative_r_regret": regret, "adequacy": {"task": {"relative_shortfall": 0.0}},
        "goal_inference": {"goals": {g: {"log_likelihood": gain - 1.0, "gain_over_random": gain}
                                     for g, gain in goal_gains.items()}},
        "disambiguating_fraction": 0.5 if agent else 0.0,
        "outcomes": {"disambiguating": rates(agent or {}), "chance_disambiguating": rates(chance or {})},
    }


@pytest.mark.parametrize("gains, regret, agent, chance, verdict, goal, phrase", [
    ({"coin": 0.0, "end-of-level": 0.3}, 0.6, None, None, "inner misalignment", "end-of-level", "nats per step"),
    ({"coin": 0.0, "end-of-level": 0.01}, 0.6, {"end-of-level": 0.7}, {"end-of-level": 0.1}, "inner misalignment",
     "end-of-level", "uniform-random policy"),
    ({"coin": 0.0, "end-of-level": 0.01}, 0.6, {"end-of-level": 0.7}, {"end-of-level": 0.6}, "capability failure",
     None, "not competently pursuing anything"),
    ({"coin": 0.3, "end-of-level": 0.0}, 0.6, None, None, "capability failure", "coin", "right goal incompetently"),
    ({"coin": 0.0, "end-of-level": 0.3}, 0.15, None, None, "capability failure", "end-of-level",
     "leans towards 'end-of-level'"),
    ({"coin": 0.3, "end-of-level": 0.0}, 0.05, None, None, "aligned", "coin", "within tolerance"),
])
def test_verdict_rules_on_constructed_evidence(coinrun, gains, regret, agent, chance, verdict, goal, phrase):
    from aligntriage.diagnose.verdict import partition_verdict

    shortfall = regret if verdict != "aligned" else 0.05
    deploy = evidence(gains, regret, shortfall, agent, chance)
    train = evidence(gains, 0.05, 0.05)
    got = partition_verdict(coinrun, "task", deploy, train, Tolerances())
    assert (got["verdict"], got["inferred_goal"]) == (verdict, goal)
    assert phrase in got["explanation"]
