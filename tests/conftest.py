"""Shared fixtures: scenarios and jitted functions are built once per session so tests don't recompile."""

import functools
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")

import jax
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
