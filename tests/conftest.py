"""Shared fixtures: scenarios and jitted functions are built once per session so tests don't recompile."""

import atexit
import functools
import os
import shutil
import tempfile

# Single-threaded XLA, as a sweep's pool workers pinned to one core run: two xdist workers share two cores, and the
# compilation cache (keyed by the flags) then serves the programs of the tests, their subprocesses, Ray workers and
# pool workers alike.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1 --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")
# Tests never touch the user's run index, not even one ALIGNTRIAGE_STORE points at: they always get their own.
SESSION_STORE = os.environ["ALIGNTRIAGE_STORE"] = tempfile.mkdtemp(prefix="aligntriage-test-store-")
# nor the user's compilation cache: a cache of this test session's own, shared by its xdist workers (whose parent
# is the controller) and inherited by the processes tests start, so a program compiled once is read by all of them
os.environ["ALIGNTRIAGE_COMPILE_CACHE_DIR"] = os.path.join(
    tempfile.gettempdir(), "aligntriage-test-compile-cache-"
    + str(os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid()))

import jax
import numpy as np
import pytest

from aligntriage import compile_cache, get_scenario

compile_cache.setup()  # creates the folder
if not os.environ.get("PYTEST_XDIST_WORKER"):  # the controller (or a run without xdist) removes it at the end
    atexit.register(shutil.rmtree, os.environ["ALIGNTRIAGE_COMPILE_CACHE_DIR"], ignore_errors=True)
atexit.register(shutil.rmtree, SESSION_STORE, ignore_errors=True)


HEAVY_FIRST = ("test_sweep.py", "test_misgeneralization.py", "test_mitigate.py", "test_curriculum.py",
               "test_exactness.py", "test_faults.py", "test_report.py", "test_store.py")
"""Modules whose tests take longest, longest first: xdist hands out work in collection order, so a long test
collected last (the sweep tests come late alphabetically) keeps one worker busy after the other has finished."""
ONE_WORKER = ("test_misgeneralization.py", "test_mitigate.py", "test_report.py", "test_store.py", "test_train.py",
              "test_external_policies.py")
"""Modules whose module-scoped fixtures train or diagnose: their tests run on one worker, so the fixture is built
once rather than once on each worker that draws one of them."""


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.name in ONE_WORKER and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


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


def greedy_value(mdp, reward, policy, gamma, horizon):
    """Exact discounted return over ``horizon`` steps of the greedy (argmax) policy from every state, by a plain
    backward loop: an independent check on the library's evaluation. ``policy`` is a table or a schedule."""
    from aligntriage.solve.value import as_schedule

    schedule = as_schedule(policy)
    states = np.arange(mdp.num_states)
    alive = ~mdp.terminal
    value = np.zeros(mdp.num_states)
    for t in reversed(range(horizon)):
        act = schedule.at(t).argmax(axis=1)
        nxt = mdp.next_state[states, act]
        value = np.where(alive, reward[states, act] + gamma * np.where(alive[nxt], value[nxt], 0.0), 0.0)
    return value


def episode(scenario, gamma=0.99):
    """The episode a scenario's agent lives: its world's horizon, discount ``gamma``."""
    from aligntriage.solve.value import Episode

    return Episode(gamma, scenario.world.horizon)


@pytest.fixture(autouse=True)
def _session_store(monkeypatch):
    """Each test starts with the session's run index: the CLI's ``--store`` writes ALIGNTRIAGE_STORE into the
    environment (for the processes a command starts), which in one test process would carry over to later tests."""
    monkeypatch.setenv("ALIGNTRIAGE_STORE", SESSION_STORE)  # the value set at import: the environment may hold a leak
