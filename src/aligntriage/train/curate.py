"""Exact-regret level curation (``plr-exact``, ``accel-exact``): the solver's part, run on the host between chunks of
jitted PPO updates.

Every ``score_every`` (K) updates a scoring pass, for every seed at once:
1. takes the buffer's levels and its ``new_levels`` candidates (set aside by the last update from its fresh pool of
   level-space levels; for ``accel-exact`` a share ``replay_prob`` of them are one ``mutate`` of a buffer level
   drawn by the replay distribution, ACCEL's edits);
2. enumerates the levels it has not met yet in one batched ``enumerate_levels`` call and solves each one's optimum
   V*_R once (kept while the level is held or a candidate);
3. evaluates each seed's current policy exactly on those levels: its action table over the enumerated states,
   then one forward ``propagate`` gives V^pi_R at each level's start;
4. hands the regrets V*_R(start) - V^pi_R(start) to the buffer, whose next update rescores the held levels and
   inserts the candidates that beat the lowest-scored ones (``aligntriage.train.buffer.apply_pass``).
Regret is over the training episode (the world's horizon, the training discount) and is not normalised: the
objective the anchor argues for is minimax expected regret, and dividing by a level's range V* - V_random would
inflate levels on which little can be gained.

The curator is built from the world and R only: it enumerates levels through a *training view* of the world (R,
with a constant placeholder for U and for the goals), so U and the candidate goals are never computed. A pass is a
pure function of the checkpointed state, so a resumed run scores exactly as an uninterrupted one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from types import MappingProxyType
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from aligntriage.errors import AligntriageError, UnknownName
from aligntriage.scenario import Goal, Scenario, Term, World
from aligntriage.solve.enumerate import MDP, enumerate_levels, stack_mdps
from aligntriage.solve.flow import propagate
from aligntriage.solve.tables import CHUNK, observations
from aligntriage.solve.value import Episode, solve
from aligntriage.train.buffer import tags
from aligntriage.train.ppo import PPOConfig, network_for


def check_curriculum(scenario: Scenario, config: PPOConfig) -> None:
    """One-line errors, before anything compiles, for a curriculum the scenario cannot run."""
    if config.curriculum == "dr":
        return
    if config.curate_from not in scenario.distributions:
        raise UnknownName("curation distribution", config.curate_from, scenario.distributions,
                          f"scenario '{scenario.name}'")
    if config.curriculum in ("plr", "plr-exact"):
        distinct = distinct_levels(scenario, config.curate_from, 4 * config.buffer_size)
        if distinct < math.ceil(config.buffer_size / 2):
            raise AligntriageError(
                f"--curriculum {config.curriculum} replays once its buffer is half full, but "
                f"'{config.curate_from}' of scenario '{scenario.name}' gave only {distinct} distinct levels in "
                f"{4 * config.buffer_size} draws, fewer than half of buffer_size {config.buffer_size}: replay would "
                f"never start and training would be dr; use buffer_size <= {2 * distinct}, or accel-exact")
    if config.curriculum == "accel-exact" and scenario.mutate is None:
        raise AligntriageError(f"--curriculum accel-exact edits levels with the scenario's mutate(key, level), and "
                               f"scenario '{scenario.name}' declares none; use --curriculum plr-exact, or give "
                               "Scenario.build a mutate= (coinrun and maze have one)")


def distinct_levels(scenario: Scenario, dist: str, draws: int) -> int:
    """How many distinct levels ``draws`` samples of a distribution hold (the level space PLR can fill its buffer
    from; some distributions, such as maze's training mazes, repeat a few dozen layouts)."""
    keys = jax.random.split(jax.random.PRNGKey(0), draws)
    found = np.asarray(jax.jit(lambda k: tags(jax.vmap(scenario.distribution(dist).sample)(k)))(keys))
    return int(np.unique(found, axis=0).shape[0])


@functools.lru_cache(maxsize=16)
def training_view(world: World, reward: Callable) -> Scenario:
    """The world and R as a scenario the enumerator accepts, with a zero U term and a never-reached goal: what the
    training process may know about a level."""

    def zero(s, a, s2):
        return jnp.float32(0.0)

    def never(s, a, s2):
        return jnp.bool_(False)

    return Scenario(name="curriculum level space", summary="", world=world, distributions=MappingProxyType({}),
                    reward=reward, reward_description="R", utility=MappingProxyType({"none": Term("none", zero, "")}),
                    goals=MappingProxyType({"none": Goal("none", never, "", intended=True)}),
                    partitions=MappingProxyType({}), affordances=MappingProxyType({}))


class _Known(NamedTuple):
    mdp: MDP
    best: float  # V*_R at the level's start


def _level_keys(levels, count: int) -> list[bytes]:
    leaves = [np.ascontiguousarray(leaf) for leaf in jax.tree.leaves(levels)]
    return [b"".join(leaf[i].tobytes() for leaf in leaves) for i in range(count)]


def _take(levels, idx):
    return jax.tree.map(lambda leaf: np.asarray(leaf)[idx], levels)


class ExactCurator:
    """The host side of plr-exact and accel-exact: ``due(runner)`` says whether a scoring pass is owed, ``score``
    runs it, ``chunk`` keeps the jitted chunks from running past the next pass. The candidates (drawn, and for
    accel-exact edited, inside the jitted update) and the insertion (at the start of the next update) are the
    buffer's; the pass only scores."""

    def __init__(self, world: World, reward: Callable, config: PPOConfig):
        self.config = config
        self.view = training_view(world, reward)
        self.episode = Episode(config.gamma, world.horizon)
        network = network_for(world, config)
        self._probs = jax.jit(lambda params, obs: jax.nn.softmax(network.apply(params, obs)[0]))
        self.known: dict[bytes, _Known] = {}

    def due(self, runner) -> bool:
        update = int(np.asarray(runner.update)[0])
        return update % self.config.score_every == 0 and int(np.asarray(runner.curator.scored_at)[0]) != update

    def chunk(self, done: int, n: int) -> int:
        """At most ``n`` updates, stopping at the next pass."""
        return min(n, self.config.score_every - done % self.config.score_every)

    def score(self, runner):
        """The scoring pass (see the module docstring); returns the runner with the scores waiting to be applied."""
        update = int(np.asarray(runner.update)[0])
        state = runner.curator
        held, filled, pending = jax.device_get((state.levels, state.filled, state.pending))
        seeds, size = filled.shape
        count = self.config.new_levels
        slots = [np.flatnonzero(filled[s]) for s in range(seeds)]
        levels = [jax.tree.map(lambda a, b: np.concatenate([a, b]), _take(held, (s, slots[s])), _take(pending, s))
                  for s in range(seeds)]
        keys = [_level_keys(lv, slots[s].size + count) for s, lv in enumerate(levels)]
        self._learn(levels, keys)
        params = jax.device_get(runner.train_state.params)
        held_score = np.zeros((seeds, size), np.float32)
        pending_score = np.zeros((seeds, count), np.float32)
        for s in range(seeds):
            regret = self._regret(jax.tree.map(lambda leaf, s=s: leaf[s], params), keys[s])
            held_score[s, slots[s]] = regret[:slots[s].size]
            pending_score[s] = regret[slots[s].size:]
        self._forget(keys)
        state = state._replace(held_score=jnp.asarray(held_score), pending_score=jnp.asarray(pending_score),
                               unapplied=jnp.ones(seeds, bool), scored_at=jnp.full(seeds, update, jnp.int32))
        return runner._replace(curator=state)

    def _learn(self, levels: list, keys: list[list[bytes]]) -> None:
        """Enumerate and solve, in one batch, every level not met before."""
        new: dict[bytes, tuple[int, int]] = {}
        for s, seed_keys in enumerate(keys):
            for i, key in enumerate(seed_keys):
                if key not in self.known and key not in new:
                    new[key] = (s, i)
        if not new:
            return
        stacked = jax.tree.map(lambda *leaves: np.stack(leaves),
                               *[_take(levels[s], i) for s, i in new.values()])
        try:
            batch = enumerate_levels(self.view, stacked)
        except AligntriageError as exc:
            raise AligntriageError(f"--curriculum {self.config.curriculum} enumerates every level it scores: "
                                   f"{exc}") from None
        best = solve(batch, batch.reward, self.episode).value[batch.initial]
        for i, key in enumerate(new):
            self.known[key] = _Known(batch.mdp(i), float(best[i]))

    def _regret(self, params, keys: list[bytes]) -> np.ndarray:
        """max(V*_R - V^pi_R, 0) at the start of each level, for the policy with these parameters."""
        known = [self.known[key] for key in keys]
        batch = stack_mdps([k.mdp for k in known])
        table = self._table(params, observations(self.view, batch))
        # the per-state loop's arithmetic: a regret of exactly 0 stays 0, so a curated run replays the levels it
        # replayed before the sparse path existed, to the bit
        value = propagate(batch, table, self.episode, sparse=False).per_level(batch, batch.reward)
        return np.maximum(np.array([k.best for k in known]) - value, 0.0)

    def _table(self, params, obs: np.ndarray) -> np.ndarray:
        """The policy's action probabilities at every state, in fixed-size chunks (one compilation)."""
        parts = []
        for start in range(0, obs.shape[0], CHUNK):
            part = obs[start:start + CHUNK]
            padded = np.concatenate([part, np.repeat(part[:1], CHUNK - part.shape[0], 0)])
            parts.append(np.asarray(self._probs(params, padded))[:part.shape[0]])
        table = np.concatenate(parts).astype(np.float64)
        return table / table.sum(axis=1, keepdims=True)

    def _forget(self, keys: list[list[bytes]]) -> None:
        """Keep only the levels of this pass (a level neither held nor kept now is unlikely to come back)."""
        keep = {key for seed_keys in keys for key in seed_keys}
        self.known = {key: value for key, value in self.known.items() if key in keep}


def make_curator(world: World, reward: Callable, config: PPOConfig) -> ExactCurator | None:
    """The host-side curator of an exact curriculum (None for the others), from the world and R only."""
    return ExactCurator(world, reward, config) if config.exact else None
