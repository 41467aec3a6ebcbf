"""Shared fixtures: scenarios and jitted functions are built once per session so tests don't recompile."""

import functools
import os
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
# Tests never touch the user's run index, not even one ALIGNTRIAGE_STORE points at: they always get their own.
os.environ["ALIGNTRIAGE_STORE"] = tempfile.mkdtemp(prefix="aligntriage-test-store-")

import jax
import numpy as np
import pytest

from aligntriage import get_scenario


@pytest.fixture(scope="session")
def coinrun():
    return get_scenario("coinrun")


@pytest.fixture(scope="session")
def tiny_coinrun():
    """A 3x6 coinrun: small enough for brute force over every action sequence."""
    return get_scenario("coinrun", height=3, width=6, horizon=20)


@functools.lru_cache(maxsize=None)
def _sampler(scenario, dist):
    return jax.jit(jax.vmap(scenario.distribution(dist).sample))


def sample(scenario, dist, count, seed=0):
    """``count`` levels of a distribution; one compiled sampler per (scenario, distribution) for the session."""
    return jax.device_get(_sampler(scenario, dist)(jax.random.split(jax.random.PRNGKey(seed), count)))


def one(levels, i):
    return jax.tree.map(lambda leaf: leaf[i], levels)


def greedy_value(mdp, reward, policy, gamma):
    """Exact discounted return of the greedy (argmax) policy from every state, by a dense linear solve: an
    independent check on the library's sparse policy evaluation."""
    states = np.arange(mdp.num_states)
    act = policy.argmax(axis=1)
    transition = np.zeros((mdp.num_states, mdp.num_states))
    transition[states, mdp.next_state[states, act]] = gamma
    return np.linalg.solve(np.eye(mdp.num_states) - transition, reward[states, act])
