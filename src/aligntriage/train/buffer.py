"""The level buffer of prioritised level replay, as pure JAX over a small pytree (vmapped over seeds, carried through
the jitted PPO updates, saved in the checkpoint).

A buffer holds up to B distinct levels with a score each (higher: more worth replaying), the update at which each
was last drawn (its staleness) and how often it was drawn. Replay draws levels with robust PLR's probabilities
(Jiang et al. 2021): ``(1 - s) P_rank + s P_stale``, where ``P_rank`` is proportional to ``(1 / rank) ** (1 / T)``
over the scores and ``P_stale`` to the updates since a level was last drawn. A batch of scored candidates is
inserted by replacing the lowest-scored (or empty) slots wherever a candidate scores higher, which keeps the B best
of buffer and candidates; a candidate equal to a level already in the buffer updates that level's score instead.
Levels are told apart by a 64-bit hash of their leaves.

Nothing here knows where scores come from: ``plr`` scores from the rollouts inside the jitted update, the exact
curators (``aligntriage.train.curate``) from the solver between chunks of updates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from aligntriage.worlds.vector import mix32

EMPTY = -1
"""The level id of an episode whose level is neither in the buffer nor a candidate of the current update."""


class LevelBuffer(NamedTuple):
    levels: Any  # level pytree with a leading [B] axis
    score: jax.Array  # [B] float32
    last: jax.Array  # [B] int32: the update at which the level was last drawn (or inserted)
    filled: jax.Array  # [B] bool
    draws: jax.Array  # [B] int32: how often the level was drawn into a replay pool
    tag: jax.Array  # [B, 2] uint32: the level's hash
    key: jax.Array  # the curator's own PRNG key
    scored_at: jax.Array  # int32: the update of the last exact scoring pass (-1: none yet)
    pending: Any  # [C] candidate levels for the next exact scoring pass
    pending_score: jax.Array  # [C] float32: their scores, set by the pass
    held_score: jax.Array  # [B] float32: the held levels' new scores, set by the pass
    unapplied: jax.Array  # bool: the pass's scores wait for the next update to apply them


def capacity(buffer: LevelBuffer) -> int:
    return buffer.score.shape[-1]


def empty(pending, size: int, key: jax.Array) -> LevelBuffer:
    """An empty buffer of ``size`` slots, shaped like (and with) the candidate levels ``pending`` [C]."""
    levels = jax.tree.map(lambda leaf: jnp.repeat(jnp.asarray(leaf)[:1], size, axis=0), pending)
    count = jax.tree.leaves(pending)[0].shape[0]
    return LevelBuffer(levels, jnp.zeros(size, jnp.float32), jnp.zeros(size, jnp.int32), jnp.zeros(size, bool),
                       jnp.zeros(size, jnp.int32), jnp.zeros((size, 2), jnp.uint32), key, jnp.int32(-1), pending,
                       jnp.zeros(count, jnp.float32), jnp.zeros(size, jnp.float32), jnp.array(False))


def _words(leaf: jax.Array, count: int) -> jax.Array:
    """Each level's leaf as uint32 words [count, n] (floats by their bits)."""
    leaf = jnp.asarray(leaf).reshape(count, -1)
    if jnp.issubdtype(leaf.dtype, jnp.floating):
        return jax.lax.bitcast_convert_type(leaf.astype(jnp.float32), jnp.uint32)
    return jax.lax.bitcast_convert_type(leaf.astype(jnp.int32), jnp.uint32)


def tags(levels) -> jax.Array:
    """A 64-bit hash [N, 2] of each of a stack of levels: two salted sums of position-keyed mixed words."""
    count = jax.tree.leaves(levels)[0].shape[0]
    words = jnp.concatenate([_words(leaf, count) for leaf in jax.tree.leaves(levels)], axis=1)
    position = jnp.arange(words.shape[1], dtype=jnp.uint32)
    out = []
    for salt in (jnp.uint32(0x2545F491), jnp.uint32(0x9E3779B9)):
        mixed = mix32(words * jnp.uint32(0x85EBCA6B) ^ mix32(position * salt + salt))
        out.append(mix32(mixed.sum(axis=1, dtype=jnp.uint32) ^ salt))
    return jnp.stack(out, axis=1)


def replay_weights(buffer: LevelBuffer, update: jax.Array, temperature: float, staleness: float) -> jax.Array:
    """Robust PLR's replay distribution [B] over the filled slots (zero elsewhere)."""
    size = capacity(buffer)
    filled = buffer.filled
    order = jnp.argsort(-jnp.where(filled, buffer.score, -jnp.inf), stable=True)
    rank = jnp.zeros(size, jnp.float32).at[order].set(jnp.arange(1, size + 1, dtype=jnp.float32))
    by_score = jnp.where(filled, (1.0 / rank) ** (1.0 / temperature), 0.0)
    by_score = by_score / jnp.maximum(by_score.sum(), 1e-30)
    age = jnp.where(filled, update - buffer.last, 0).astype(jnp.float32)
    uniform = filled / jnp.maximum(filled.sum(), 1)
    by_age = jnp.where(age.sum() > 0, age / jnp.maximum(age.sum(), 1e-30), uniform)
    return (1.0 - staleness) * by_score + staleness * by_age


def can_replay(buffer: LevelBuffer) -> jax.Array:
    """Replay starts once the buffer is at least half full (robust PLR's minimum fill ratio)."""
    return buffer.filled.sum() >= math.ceil(capacity(buffer) / 2)


def draw(weights: jax.Array, key: jax.Array, count: int) -> jax.Array:
    """``count`` slots drawn with replacement from ``weights`` (inverse CDF: one uniform per draw)."""
    cdf = jnp.cumsum(weights)
    u = jax.random.uniform(key, (count,)) * cdf[-1]
    return jnp.clip(jnp.searchsorted(cdf, u, side="right"), 0, weights.shape[0] - 1).astype(jnp.int32)


def mark_drawn(buffer: LevelBuffer, slots: jax.Array, update: jax.Array, replay: jax.Array) -> LevelBuffer:
    """Record a replay pool: the drawn slots are fresh again and counted (no change when ``replay`` is False)."""
    size = capacity(buffer)
    target = jnp.where(replay, slots, size)
    return buffer._replace(last=buffer.last.at[target].set(update, mode="drop"),
                           draws=buffer.draws.at[target].add(1, mode="drop"))


def rescore(buffer: LevelBuffer, scores: jax.Array, which: jax.Array) -> LevelBuffer:
    """New scores [B] for the filled slots flagged in ``which`` [B]."""
    return buffer._replace(score=jnp.where(which & buffer.filled, scores, buffer.score).astype(jnp.float32))


def insert(buffer: LevelBuffer, levels, scores: jax.Array, valid: jax.Array,
           update: jax.Array) -> tuple[LevelBuffer, jax.Array, jax.Array]:
    """Insert scored candidates [C] (those flagged ``valid``) where they beat the buffer's lowest scores.

    Returns the buffer, the slot each candidate now occupies [C] (EMPTY if it was not kept) and which slots
    received a new level [B]. Pairing the best new candidates with the worst slots, and replacing while the
    candidate scores higher, keeps the B highest-scored levels of buffer and candidates (the replaced pairs are a
    prefix, since candidate scores fall and slot scores rise along the pairing); ties keep the incumbent.
    """
    size, count = capacity(buffer), scores.shape[0]
    scores = scores.astype(jnp.float32)
    tag = tags(levels)
    same = (tag[:, None, :] == buffer.tag[None]).all(-1) & buffer.filled[None] & valid[:, None]  # [C, B]
    known = same.any(axis=1)
    known_slot = jnp.argmax(same, axis=1)
    twin = (tag[:, None, :] == tag[None]).all(-1) & valid[None] & valid[:, None]
    first = ~jnp.tril(twin, -1).any(axis=1)  # no earlier valid candidate is the same level
    refresh = valid & known & first
    score = buffer.score.at[jnp.where(refresh, known_slot, size)].set(scores, mode="drop")
    new = valid & ~known & first
    order_c = jnp.argsort(-jnp.where(new, scores, -jnp.inf), stable=True)
    slot_score = jnp.where(buffer.filled, score, -jnp.inf)
    order_s = jnp.argsort(slot_score, stable=True)
    pairs = min(size, count)
    cand, slot = order_c[:pairs], order_s[:pairs]
    take = new[cand] & (scores[cand] > slot_score[slot])
    target = jnp.where(take, slot, size)

    def put(into, values):
        return into.at[target].set(values, mode="drop")

    buffer = buffer._replace(
        levels=jax.tree.map(lambda into, leaf: put(into, leaf[cand]), buffer.levels, levels),
        score=put(score, scores[cand]),
        last=put(buffer.last, jnp.broadcast_to(update, (pairs,)).astype(jnp.int32)),
        filled=put(buffer.filled, jnp.ones(pairs, bool)),
        draws=put(buffer.draws, jnp.zeros(pairs, jnp.int32)),
        tag=put(buffer.tag, tag[cand]),
    )
    placed = jnp.full(count, EMPTY, jnp.int32).at[jnp.where(take, cand, count)].set(slot, mode="drop")
    placed = jnp.where(refresh, known_slot, placed)
    replaced = jnp.zeros(size, bool).at[target].set(True, mode="drop")
    return buffer, placed, replaced


def follow(env_level: jax.Array, placed: jax.Array, replaced: jax.Array) -> jax.Array:
    """Each env's level id after an insertion: a candidate that was kept becomes its slot, a replaced slot and a
    candidate that was not kept become EMPTY."""
    size = replaced.shape[0]
    candidate = env_level >= size
    as_candidate = placed[jnp.clip(env_level - size, 0, placed.shape[0] - 1)]
    stale = (env_level >= 0) & ~candidate & replaced[jnp.clip(env_level, 0, size - 1)]
    return jnp.where(candidate, as_candidate, jnp.where(stale, EMPTY, env_level))


class Curator(NamedTuple):
    """What the curated PPO update asks of a level curator: pure JAX functions on one seed's state.

    ``learn`` is None for a curator whose scores come from outside the update (the exact solver); ``robust``
    means an update that does not replay only scores its fresh levels and takes no gradient step (robust PLR).
    """

    size: int
    init: Callable  # (key, candidate levels [C]) -> state
    draw: Callable  # (state, update, fresh pool) -> (state, replay, slots [pool], levels [pool])
    learn: Callable | None  # (state, update, replay, slot_scores [B], slot_seen [B], fresh [pool], scores [pool],
    #                          seen [pool]) -> (state, placed [pool], replaced [B])
    summary: Callable  # state -> (mean score of the held levels, fraction of slots filled)
    robust: bool


def apply_pass(state: LevelBuffer, update: jax.Array) -> LevelBuffer:
    """Apply an exact scoring pass's scores (when one is waiting): rescore the held levels, insert the candidates."""
    scored = rescore(state, state.held_score, state.filled)
    scored, _, _ = insert(scored, state.pending, state.pending_score, jnp.ones_like(state.pending_score, bool),
                          update)
    return jax.tree.map(lambda new, old: jnp.where(state.unapplied, new, old),
                        scored._replace(unapplied=jnp.array(False)), state)


def plr_curator(size: int, pool: int, replay_prob: float, temperature: float, staleness: float, estimated: bool,
                candidates: int, mutate: Callable | None = None) -> Curator:
    """Robust PLR over a ``LevelBuffer``: replay (probability ``replay_prob`` once half full) draws a pool from the
    buffer; otherwise the update trains on fresh levels.

    ``estimated``: scores come from the update's rollouts, and a fresh update only scores (robust PLR). Otherwise
    they come from exact scoring passes between updates: each update first applies a waiting pass's scores, then
    sets aside ``candidates`` levels for the next pass, the first of its fresh pool, of which a share
    ``replay_prob`` are, with ``mutate``, edits of buffer levels drawn by the replay distribution (ACCEL).
    """
    edits = round(replay_prob * candidates) if mutate is not None else 0

    def init(key, pending):
        return empty(pending, size, key)

    def draw_pool(state: LevelBuffer, update, fresh):
        if not estimated:
            state = apply_pass(state, update)
        key, k_replay, k_slots, k_parent, k_edit = jax.random.split(state.key, 5)
        replay = can_replay(state) & (jax.random.uniform(k_replay) < replay_prob)
        weights = replay_weights(state, update, temperature, staleness)
        slots = draw(weights, k_slots, pool)
        state = mark_drawn(state._replace(key=key), slots, update, replay)
        if not estimated:
            pending = jax.tree.map(lambda leaf: leaf[:candidates], fresh)
            if edits:
                parents = jax.tree.map(lambda leaf: leaf[draw(weights, k_parent, candidates)], state.levels)
                children = jax.vmap(mutate)(jax.random.split(k_edit, candidates), parents)
                edit = (jnp.arange(candidates) < edits) & state.filled.any()
                pending = jax.tree.map(lambda c, f: jnp.where(edit.reshape((-1,) + (1,) * (c.ndim - 1)), c, f),
                                       children, pending)
            state = state._replace(pending=pending)
        return state, replay, slots, jax.tree.map(lambda leaf: leaf[slots], state.levels)

    def learn(state, update, replay, slot_scores, slot_seen, fresh, scores, seen):
        state = rescore(state, slot_scores, slot_seen)
        return insert(state, fresh, scores, seen & ~replay, update)

    def summary(state: LevelBuffer):
        held = state.filled.sum()
        return jnp.where(state.filled, state.score, 0.0).sum() / jnp.maximum(held, 1), held / size

    return Curator(size, init, draw_pool, learn if estimated else None, summary, robust=estimated)
