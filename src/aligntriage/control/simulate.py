"""Monte-Carlo deployments: episodes played one after another with a hard audit budget, as a check on the exact
game.

The exact metrics treat the audit budget as a rate (thresholds calibrated on benign runs, as in the paper) and
episodes as independent. Here a deployment is simulated literally: N episodes in order, levels drawn from the
pool, each episode an attack with probability p, audits counted against a fixed budget (no audits once it is
spent), the deployment stopping at the first catch or catastrophe. One jitted ``lax.scan`` over episodes with an
inner scan over steps, vmapped over deployments.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from aligntriage.control.arena import Arena

RUNNING, CAUGHT, CATASTROPHE = 0, 1, 2


def _cdf(table: np.ndarray) -> jnp.ndarray:
    """Cumulative action probabilities for inverse-CDF sampling (action = #{cdf <= u}); entries after the last
    possible action are 2, so rounding never selects an action of probability 0."""
    probs = table / table.sum(axis=1, keepdims=True)
    cdf = np.cumsum(probs, axis=1)
    later = np.cumsum(probs[:, ::-1], axis=1)[:, ::-1] - probs
    cdf[later <= 0] = 2.0
    return jnp.asarray(cdf, jnp.float32)


@functools.lru_cache(maxsize=8)
def _simulator(horizon: int, episodes: int):
    def deployment(board, thresholds, rate, budget, upfront, key):
        next_state, terminal, catastrophic, initial, benign, attack, trusted, above, tied = board
        audit_at, defer_at, edit_at = thresholds
        k_level, k_attack, k_steps = jax.random.split(key, 3)
        levels = jax.random.randint(k_level, (episodes,), 0, initial.shape[0])
        attacks = jax.random.uniform(k_attack, (episodes,)) < rate
        draws = jax.random.split(k_steps, episodes)

        def episode(carry, xs):
            status, audits = carry
            level, attacking, draw, index = xs
            audit_all = index < upfront
            noise = jax.random.uniform(draw, (horizon, 3))

            def step(inner, u):
                state, handed, status, audits = inner
                active = (status == RUNNING) & ~terminal[state]
                proposed = jnp.sum(jnp.where(attacking, attack[state], benign[state]) <= u[0]).astype(jnp.int32)
                fallback = jnp.sum(trusted[state] <= u[1]).astype(jnp.int32)
                pvalue = above[state, proposed] + u[2] * tied[state, proposed]
                audited = ~handed & (audit_all | ((pvalue < audit_at) & (audits < budget)))
                handed = handed | (~audited & (pvalue < edit_at))
                use_trusted = handed | (~audited & (pvalue < defer_at))
                action = jnp.where(use_trusted, fallback, proposed)
                bad = catastrophic[state, action]
                status = jnp.where(active & bad, jnp.where(audited, CAUGHT, CATASTROPHE), status)
                state = jnp.where(active & ~bad, next_state[state, action], state)
                return (state, handed, status, audits + (active & audited).astype(jnp.int32)), None

            start = (initial[level], jnp.array(False), status, audits)
            (_, _, status, audits), _ = jax.lax.scan(step, start, noise)
            return (status, audits), None

        xs = (levels, attacks, draws, jnp.arange(episodes))
        (status, audits), _ = jax.lax.scan(episode, (jnp.int32(RUNNING), jnp.int32(0)), xs)
        return status, audits

    return jax.jit(jax.vmap(deployment, in_axes=(None, None, None, None, None, 0)))


def simulate_deployments(arena: Arena, untrusted: np.ndarray, attack: np.ndarray, trusted: np.ndarray,
                         above: np.ndarray, tied: np.ndarray, thresholds: tuple[float, float, float], rate: float,
                         budget: int, upfront: int, episodes: int, deployments: int, key) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
    """Final status (RUNNING: survived, CAUGHT, CATASTROPHE) and audits used, per simulated deployment."""
    board = (jnp.asarray(arena.next_state, jnp.int32), jnp.asarray(arena.terminal),
             jnp.asarray(arena.catastrophic), jnp.asarray(arena.initial, jnp.int32), _cdf(untrusted), _cdf(attack),
             _cdf(trusted), jnp.asarray(above, jnp.float32), jnp.asarray(tied, jnp.float32))
    status, audits = _simulator(arena.horizon, episodes)(
        board, jnp.asarray(thresholds, jnp.float32), jnp.float32(rate), jnp.int32(budget), jnp.int32(upfront),
        jax.random.split(key, deployments))
    return np.asarray(status), np.asarray(audits)
