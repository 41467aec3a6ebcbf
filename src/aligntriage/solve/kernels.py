"""Jitted float64 kernels for the solver's hottest loops: soft-optimal backward passes scored against an agent, and
the soft backward-then-forward pass that inverse RL evaluates at every step.

They compute exactly what the numpy reference (``solve.value.backward``, ``solve.flow.propagate``) does, as one
``lax.scan`` each, in float64 (``jax.enable_x64`` around the call) so that they agree with it to rounding. Arrays
are padded to a few sizes per power of two (``bucket``), so a handful of compilations serve every batch size.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

MIN_STATES = 256
FINE_STATES = 1 << 15
"""Past this many states a batch pads to the next eighth of the power of two above it instead of that power (at most
25% of padding, not 100%): a kernel's time grows with the padded size, and four compiles per octave cost less."""


def bucket(count: int) -> int:
    """The padded number of states of a batch of ``count``: a power of two, or past ``FINE_STATES`` the next
    multiple of an eighth of the power of two above (5/8, 6/8, 7/8 or 8/8 of it)."""
    whole = max(MIN_STATES, 1 << (max(count, 1) - 1).bit_length())
    if whole <= FINE_STATES:
        return whole
    step = whole // 8
    return -(-count // step) * step


def _pad(array: np.ndarray, size: int, axis: int, value=0):
    pad = [(0, 0)] * array.ndim
    pad[axis] = (0, size - array.shape[axis])
    return np.pad(array, pad, constant_values=value)


def padded_graph(next_state: np.ndarray, discount: np.ndarray, reward: np.ndarray):
    """The graph padded with absorbing, rewardless states (each pads to itself)."""
    count = next_state.shape[0]
    size = bucket(count)
    filler = np.repeat(np.arange(count, size)[:, None], next_state.shape[1], axis=1)
    nxt = np.concatenate([next_state, filler]).astype(np.int32)
    return nxt, _pad(discount, size, 0), _pad(reward, size, 0), size


def _soft(q, allowed, temperature):
    logits = jnp.where(allowed[None, :], q / temperature, -jnp.inf)
    top = logits.max(axis=1, keepdims=True)
    shifted = jnp.exp(logits - top)
    total = shifted.sum(axis=1, keepdims=True)
    table = shifted / total
    value = temperature * (top[:, 0] + jnp.log(total[:, 0] / allowed.sum()))
    return table, value


LOG_FLOOR = float(np.log(1e-300))
"""The log-probability an action whose soft-optimal probability underflows is scored at."""


def _soft_log(q, allowed, temperature):
    """The soft policy's log-probabilities (0 outside the allowed actions, at least ``LOG_FLOOR``) and its value,
    computed in log space: one exp per action and one log per state."""
    logits = jnp.where(allowed[None, :], q / temperature, -jnp.inf)
    top = logits.max(axis=1, keepdims=True)
    total = jnp.exp(logits - top).sum(axis=1, keepdims=True)
    logp = jnp.where(allowed[None, :], jnp.maximum(logits - top - jnp.log(total), LOG_FLOOR), 0.0)
    value = temperature * (top[:, 0] + jnp.log(total[:, 0] / allowed.sum()))
    return logp, value


@functools.partial(jax.jit, static_argnames=("horizon",))
def _scores(nxt, discount, reward, allowed, temperature, weights, tables, which, horizon):
    def body(carry, t):
        value, totals = carry
        q = jnp.where(allowed[None, :], reward + discount * value[nxt], -jnp.inf)
        logp, value = _soft_log(q, allowed, temperature)
        agent = tables[which[:, t]]  # [K, S, A]
        totals = totals + weights[t] * (agent * logp[None]).sum(axis=2)
        return (value, totals), None

    start = (jnp.zeros(nxt.shape[0]), jnp.zeros((which.shape[0], nxt.shape[0])))
    (_, totals), _ = jax.lax.scan(body, start, jnp.arange(horizon - 1, -1, -1))
    return totals


def soft_scores(next_state, discount, reward, allowed, temperature: float, weights: np.ndarray,
                schedules: list) -> np.ndarray:
    """[K, S] sum over steps of weights[t, k, s] * E_{a ~ agent k at t}[log pi_T,t(a | s)], where pi_T is the
    soft-optimal (temperature T) time-indexed policy of ``reward``: goal inference's inner loop."""
    horizon = weights.shape[0]
    count = next_state.shape[0]
    nxt, disc, rew, size = padded_graph(next_state, discount, reward)
    stack, which = [], np.zeros((len(schedules), horizon), np.int32)
    for k, schedule in enumerate(schedules):
        base = len(stack)
        stack.extend(_pad(table, size, 0) for table in schedule.tables)
        which[k] = base + np.array([int(schedule.which[t]) if t < schedule.which.size else 0
                                    for t in range(horizon)])
    with jax.enable_x64(True):
        totals = _scores(jnp.asarray(nxt), jnp.asarray(disc), jnp.asarray(rew), jnp.asarray(allowed),
                         jnp.float64(temperature), jnp.asarray(_pad(weights, size, 2)), jnp.asarray(np.stack(stack)),
                         jnp.asarray(which), horizon)
        return np.asarray(totals)[:, :count]


@functools.partial(jax.jit, static_argnames=("horizon",))
def _flow(nxt, cont, reward, allowed, start, horizon):
    def back(value, _):
        q = jnp.where(allowed[None, :], reward + cont * value[nxt], -jnp.inf)
        table, value = _soft(q, allowed, 1.0)
        return value, table

    value, tables = jax.lax.scan(back, jnp.zeros(nxt.shape[0]), None, horizon)

    def forward(carry, table):
        mass, occupancy = carry
        flow = mass[:, None] * table
        mass = jnp.zeros_like(mass).at[nxt.reshape(-1)].add((flow * cont).reshape(-1))
        return (mass, occupancy + flow), None

    (_, occupancy), _ = jax.lax.scan(forward, (start, jnp.zeros(nxt.shape, start.dtype)), tables[::-1])
    return value, occupancy


def soft_flow(next_state, cont, allowed, initial: np.ndarray, horizon: int):
    """For the undiscounted finite episode at temperature 1, a function of a reward [S, A] giving the soft value [S]
    at the first step and the state-action occupancy [S, A] of the soft-optimal policy from the initial states
    (inverse RL's objective and gradient). The graph goes to the device once; each call sends only the reward."""
    count = next_state.shape[0]
    nxt, cont_p, _, size = padded_graph(next_state, cont.astype(np.float64), np.zeros(next_state.shape))
    start = np.zeros(size)
    start[initial] = 1.0
    with jax.enable_x64(True):
        graph = (jnp.asarray(nxt), jnp.asarray(cont_p))
        rest = (jnp.asarray(allowed), jnp.asarray(start))

    def run(reward: np.ndarray):
        with jax.enable_x64(True):
            value, occupancy = _flow(*graph, jnp.asarray(_pad(reward, size, 0)), *rest, horizon)
            return np.asarray(value)[:count], np.asarray(occupancy)[:count]

    return run


@functools.partial(jax.jit, static_argnames=("horizon",))
def _hard(nxt, discount, reward, allowed, tie, horizon):
    def body(carry, _):
        value, _ = carry
        q = jnp.where(allowed[None, :], reward + discount * value[nxt], -jnp.inf)
        top = q.max(axis=1)
        margin = tie * jnp.maximum(1.0, jnp.abs(top))
        best = (q >= (top - margin)[:, None]) & allowed[None, :]
        low = jnp.where(allowed[None, :], q, jnp.inf).min(axis=1)
        return (top, q), (best, (top - low) > margin)

    start = (jnp.zeros(nxt.shape[0]), jnp.zeros(nxt.shape, reward.dtype))
    (value, q), (best, strict) = jax.lax.scan(body, start, None, horizon)
    return value, q, best[::-1], strict[::-1]


def hard_backward(next_state, discount, reward, allowed, tie: float, horizon: int):
    """Backward induction of the hard optimum over ``horizon`` steps: (V at the first step [S], Q there [S, A],
    the optimal-action masks of every step [H, S, A], and [H, S] where some allowed action is strictly worse)."""
    count = next_state.shape[0]
    nxt, disc, rew, _ = padded_graph(next_state, discount, reward)
    with jax.enable_x64(True):
        value, q, best, strict = _hard(jnp.asarray(nxt), jnp.asarray(disc), jnp.asarray(rew),
                                       jnp.asarray(allowed), jnp.float64(tie), horizon)
        return (np.asarray(value)[:count], np.asarray(q)[:count], np.asarray(best)[:, :count],
                np.asarray(strict)[:, :count])
