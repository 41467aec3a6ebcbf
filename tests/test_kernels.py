"""The jitted kernels against the plain numpy backward induction they replace, on real levels and a random agent:
goal inference's soft scores, the hard optimum's values, first-step Q and strictly-informative steps, and the EM of
the goal mixture."""

import jax
import numpy as np
import pytest

from aligntriage.diagnose.figures import mixture
from aligntriage.solve.enumerate import enumerate_levels
from aligntriage.solve.flow import propagate
from aligntriage.solve.kernels import LOG_FLOOR, hard_backward, soft_scores
from aligntriage.solve.value import TIE, Episode, Schedule, backward, clean, continuation
from aligntriage.worlds.vector import sample_levels

EPISODE = Episode(0.95, 12)


@pytest.fixture(scope="module")
def batch(tiny_coinrun):
    return enumerate_levels(tiny_coinrun, sample_levels(tiny_coinrun, "deploy", jax.random.PRNGKey(3), 3))


def agents(batch, count=2):
    """A stationary random agent and a time-indexed one that changes halfway."""
    rng = np.random.default_rng(0)
    tables = [rng.dirichlet(np.ones(batch.next_state.shape[1]), batch.num_states) for _ in range(3)]
    which = np.array([1] * (EPISODE.horizon // 2) + [2] * (EPISODE.horizon - EPISODE.horizon // 2))
    return [Schedule.stationary(tables[0]), Schedule((tables[0], tables[1], tables[2]), which)][:count]


@pytest.mark.parametrize("temperature", [0.001, 0.05, 1.0])  # 0.001: some probabilities underflow
def test_soft_scores_equal_numpy_backward_induction(batch, temperature):
    allowed = np.array([True, True, False, True])
    reward = clean(batch, batch.reward)
    policies = agents(batch)
    rng = np.random.default_rng(1)
    weights = rng.random((EPISODE.horizon, len(policies), batch.num_states))
    expected = np.zeros((len(policies), batch.num_states))
    for t, _, table, _ in backward(batch, reward, EPISODE, allowed, None, temperature):
        with np.errstate(divide="ignore"):
            logp = np.where(allowed[None, :], np.maximum(np.log(table), LOG_FLOOR), 0.0)
        for k, policy in enumerate(policies):
            expected[k] += weights[t, k] * (policy.at(t) * logp).sum(axis=1)
    discount = EPISODE.gamma * continuation(batch)
    got = soft_scores(batch.next_state, discount, reward, allowed, temperature, weights, policies)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_hard_backward_equals_numpy_backward_induction(batch):
    allowed = np.array([True, False, True, True])
    reward = clean(batch, batch.reward)
    discount = EPISODE.gamma * continuation(batch)
    value, q, best, strict = hard_backward(batch.next_state, discount, reward, allowed, TIE, EPISODE.horizon)
    for t, q_t, table, value_t in backward(batch, reward, EPISODE, allowed, None, None):
        np.testing.assert_array_equal(best[t], table > 0)
        low = np.where(allowed[None, :], q_t, np.inf).min(axis=1)
        np.testing.assert_array_equal(strict[t], q_t.max(axis=1) - low > TIE * np.maximum(1, np.abs(value_t)))
    np.testing.assert_allclose(value, value_t, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.where(allowed, q, 0), np.where(allowed, q_t, 0), rtol=1e-12, atol=1e-12)


def numpy_mixture(log_likelihood, iterations=300):
    """The EM of the mixture over hypotheses as plain numpy: the reference the compiled loop must equal."""
    count, hyps = log_likelihood.shape
    weights = np.full(hyps, 1.0 / hyps)
    shifted = np.exp(log_likelihood - log_likelihood.max(axis=1, keepdims=True))
    for _ in range(iterations):
        resp = weights * shifted
        resp /= resp.sum(axis=1, keepdims=True)
        new = resp.mean(axis=0)
        converged = np.abs(new - weights).max() < 1e-7
        weights = new
        if converged:
            break
    resp = weights * shifted
    return weights, resp / resp.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("count, hyps, scale, iterations", [(1, 3, 1.0, 300), (9, 4, 10.0, 300), (40, 5, 0.1, 300),
                                                             (12, 3, 1.0, 7)])
def test_mixture_equals_numpy_em(count, hyps, scale, iterations):
    """Padded rows carry no weight, the iteration cap holds, and identical hypotheses keep identical weights."""
    log_likelihood = np.random.default_rng(count).normal(size=(count, hyps)) * scale
    log_likelihood[:, 1] = log_likelihood[:, 0]
    weights, resp = mixture(log_likelihood, iterations)
    expected_weights, expected_resp = numpy_mixture(log_likelihood, iterations)
    assert resp.shape == (count, hyps) and weights[0] == weights[1]
    np.testing.assert_allclose(weights, expected_weights, rtol=0, atol=1e-12)
    np.testing.assert_allclose(resp, expected_resp, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["coinrun", "boat-race"])  # boat-race: goal events that do not end the episode
def test_stationary_propagation_equals_the_general_loop(name, batch, tiny_coinrun):
    """The sparse-matrix path for stationary policies gives the general per-state loop's occupancy, outcome
    taxonomy, event rates and visitation."""
    from aligntriage import get_scenario
    from aligntriage.diagnose.evidence import _events

    scenario = tiny_coinrun if name == "coinrun" else get_scenario(name)
    if name != "coinrun":
        batch = enumerate_levels(scenario, sample_levels(scenario, "deploy", jax.random.PRNGKey(3), 2))
    _, first, ever, _ = _events(scenario, batch)
    ends = np.zeros(batch.next_state.shape, bool)
    ends[::7, 1] = True
    for table in (agents(batch, 1)[0].first, np.full(batch.next_state.shape, 0.25)):  # a random agent, uniform
        for kwargs in ({"first": first, "ever": ever}, {"first": first, "ends": ends}, {"ever": ever},
                       {"first": first, "ever": ever, "record_visits": True}):
            fast, slow = propagate(batch, table, EPISODE, **kwargs), propagate(batch, table, EPISODE, sparse=False,
                                                                                **kwargs)
            for got, expected in zip(fast, slow):
                assert (got is None) == (expected is None)
                if got is not None:
                    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
