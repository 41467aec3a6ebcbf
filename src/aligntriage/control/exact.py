"""Exact per-episode outcomes of a protocol: a forward pass of probability mass through the enumerated MDP.

Mass flows over (state, who acts): the untrusted policy under monitoring, or the trusted policy once it took over.
Each step splits the untrusted policy's mass by the protocol's step probabilities (audit, defer, hand-over,
execute). A catastrophic action that is audited is *caught*; one that runs is a *catastrophe*; both end the
episode. Summing over the horizon gives, per level and exactly, the probability of each outcome and the expected
task return, audits, steps, deferred steps and hand-overs: one jitted ``lax.scan`` over steps for all levels.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from aligntriage.control.arena import Arena

FIELDS = ("caught", "catastrophe", "task", "audits", "steps", "deferred", "handover")


class Outcomes(NamedTuple):
    """Per-level expectations over one episode, each [L]."""

    caught: np.ndarray
    catastrophe: np.ndarray
    task: np.ndarray
    audits: np.ndarray
    steps: np.ndarray
    deferred: np.ndarray
    handover: np.ndarray
    visits: np.ndarray  # [S] expected steps taken in each state (for calibration)


@functools.lru_cache(maxsize=8)
def _flow(horizon: int):
    def run(next_state, terminal, catastrophic, task, initial, untrusted, trusted, audit, defer, edit, execute):
        num_states = next_state.shape[0]
        live = (~terminal).astype(jnp.float32)
        flat_next = next_state.reshape(-1)
        safe = (~catastrophic).astype(jnp.float32)
        bad = catastrophic.astype(jnp.float32)
        trusted_safe = trusted * safe
        trusted_bad = (trusted * bad).sum(1)
        trusted_task = (trusted_safe * task).sum(1)

        def spread(mass):
            return jnp.zeros(num_states, jnp.float32).at[flat_next].add(mass.reshape(-1))

        def body(carry, _):
            watched, handed, acc = carry
            watched, handed = watched * live, handed * live
            proposed = watched[:, None] * untrusted
            audited, executed = proposed * audit, proposed * execute
            deferred = (proposed * defer).sum(1)
            taken = handed + (proposed * edit).sum(1)
            trusted_mass = deferred + taken
            ran = (audited + executed) * safe
            step = jnp.stack([
                (audited * bad).sum(1),
                (executed * bad).sum(1) + trusted_mass * trusted_bad,
                (ran * task).sum(1) + trusted_mass * trusted_task,
                audited.sum(1),
                watched + handed,
                deferred,
                taken - handed,
            ])
            watched = spread(ran + deferred[:, None] * trusted_safe)
            handed = spread(taken[:, None] * trusted_safe)
            return (watched, handed, acc + step), None

        start = jnp.zeros(num_states, jnp.float32).at[initial].add(1.0)
        acc = jnp.zeros((len(FIELDS), num_states), jnp.float32)
        (_, _, acc), _ = jax.lax.scan(body, (start, jnp.zeros(num_states, jnp.float32), acc), None, length=horizon)
        return acc

    return jax.jit(run)


def episode_outcomes(arena: Arena, untrusted: np.ndarray, trusted: np.ndarray, probs: dict) -> Outcomes:
    """Exact per-level episode outcomes when ``untrusted`` proposes actions under the step probabilities ``probs``
    (see ``protocols.step_probabilities``) and ``trusted`` acts when deferred to or handed over."""
    f32 = functools.partial(jnp.asarray, dtype=jnp.float32)
    acc = _flow(arena.horizon)(
        jnp.asarray(arena.next_state, jnp.int32), jnp.asarray(arena.terminal), jnp.asarray(arena.catastrophic),
        f32(arena.task), jnp.asarray(arena.initial, jnp.int32), f32(untrusted), f32(trusted),
        f32(probs["audit"]), f32(probs["defer"]), f32(probs["edit"]), f32(probs["execute"]),
    )
    acc = np.asarray(acc, np.float64)
    per_level = np.stack([np.bincount(arena.level_of_state, row, minlength=arena.num_levels) for row in acc])
    return Outcomes(*per_level, visits=acc[FIELDS.index("steps")])
