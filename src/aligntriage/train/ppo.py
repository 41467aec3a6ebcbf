"""PPO in JAX, PureJaxRL-style: rollout (vmap over envs, scan over steps) and update (GAE, clipped objective,
entropy bonus, value loss, gradient clipping, annealed learning rate) compiled together; seeds are vmapped.

The training process sees only the world, the reward provision process R and a level sampler: ``make_trainer``
takes exactly those, so U and the candidate goals cannot leak into training. Under a curriculum other than ``dr``
the sampler is the curator's level space and the update draws its level pool through a curator
(``aligntriage.train.buffer``) whose state rides along in the runner; the exact curators' scores are set between
chunks of updates by ``aligntriage.train.curate``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from aligntriage.errors import AligntriageError, UnknownName
from aligntriage.scenario import World
from aligntriage.train.buffer import EMPTY, Curator, follow, plr_curator
from aligntriage.train.network import NETWORKS, ActorCritic
from aligntriage.worlds.vector import auto_reset_step, pool_index, reset_from_pool

CURRICULA = {
    "dr": "domain randomisation: every update draws its levels from the training distribution",
    "plr-exact": "prioritised level replay scored by the agent's exact R-regret per level",
    "plr": "robust prioritised level replay scored by positive value loss from the rollouts",
    "accel-exact": "ACCEL: replay plus small mutations of buffer levels, kept when their exact R-regret is high",
}
EXACT_CURRICULA = ("plr-exact", "accel-exact")
CURATOR_FIELDS = ("curate_from", "buffer_size", "replay_prob", "staleness", "score_temperature", "score_every",
                  "new_levels")
"""PPOConfig fields that only a curriculum other than dr reads (left out of a dr run's run.json)."""


@dataclass(frozen=True)
class PPOConfig:
    """Training-process knobs. ``total_steps`` counts env steps per seed."""

    dist: str = "train"
    total_steps: int = 1_500_000
    seeds: int = 1
    seed: int = 0
    num_envs: int = 256
    rollout: int = 64
    epochs: int = 4
    minibatches: int = 4
    lr: float = 5e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    width: int = 64
    depth: int = 2
    network: str = "mlp"
    pool: int = 512
    curriculum: str = "dr"
    curate_from: str = "deploy"
    """The curator's level space: the distribution its new levels come from (``dist`` stays the run's nominal
    training distribution, the diagnosis's IID check)."""
    buffer_size: int = 256
    replay_prob: float = 0.5
    staleness: float = 0.3
    score_temperature: float = 0.3
    score_every: int = 10
    """Updates between two exact scoring passes (K)."""
    new_levels: int = 64
    """Fresh (or, for accel-exact, partly mutated) levels each exact scoring pass scores as candidates."""

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.rollout

    @property
    def num_updates(self) -> int:
        return max(1, self.total_steps // self.steps_per_update)

    @property
    def level_space(self) -> str:
        """The distribution the training's level sampler draws from: ``dist`` under dr, else ``curate_from``."""
        return self.dist if self.curriculum == "dr" else self.curate_from

    @property
    def exact(self) -> bool:
        """Whether the curriculum's scores come from the exact solver."""
        return self.curriculum in EXACT_CURRICULA

    def validate(self) -> PPOConfig:
        if self.network not in NETWORKS:
            raise AligntriageError(f"unknown network '{self.network}'; valid: {', '.join(NETWORKS)}")
        if self.curriculum not in CURRICULA:
            raise UnknownName("curriculum", self.curriculum, CURRICULA)
        positive = ("total_steps", "seeds", "num_envs", "rollout", "epochs", "minibatches", "width", "depth", "pool",
                    "buffer_size", "score_every", "new_levels")
        for name in positive:
            if getattr(self, name) < 1:
                raise AligntriageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.curriculum != "dr" and self.new_levels > self.pool:
            raise AligntriageError(f"new_levels ({self.new_levels}) must be <= pool ({self.pool}): an exact scoring "
                                   "pass takes its candidates from an update's fresh pool")
        if (self.num_envs * self.rollout) % self.minibatches:
            raise AligntriageError(
                f"num_envs * rollout ({self.steps_per_update}) must be divisible by minibatches ({self.minibatches})"
            )
        if not 0.0 <= self.gamma < 1.0:
            raise AligntriageError(f"gamma must be in [0, 1), got {self.gamma}")
        if self.seed < 0:
            raise AligntriageError(f"seed must be >= 0, got {self.seed}")
        for name, low, open_low, high in (("lr", 0.0, True, 1.0), ("gae_lambda", 0.0, False, 1.0),
                                          ("clip", 0.0, True, None), ("ent_coef", 0.0, False, None),
                                          ("vf_coef", 0.0, False, None), ("max_grad_norm", 0.0, True, None),
                                          ("replay_prob", 0.0, False, 1.0), ("staleness", 0.0, False, 1.0),
                                          ("score_temperature", 0.0, True, None)):
            value = getattr(self, name)
            above = value > low if open_low else value >= low
            if not (math.isfinite(value) and above and (high is None or value <= high)):
                bound = f"{'> ' if open_low else '>= '}{low:g}" + (f" and <= {high:g}" if high is not None else "")
                raise AligntriageError(f"{name.replace('_', '-')} must be {bound}, got {value}")
        return self

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.curriculum == "dr":
            for name in CURATOR_FIELDS:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> PPOConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AligntriageError(f"unknown training setting '{unknown[0]}'; valid: {', '.join(sorted(known))}")
        return cls(**data).validate()


class Runner(NamedTuple):
    """Everything one seed's training carries from update to update (what a checkpoint saves)."""

    train_state: TrainState
    env_state: object
    episode_return: jax.Array
    key: jax.Array
    update: jax.Array


class CuratedRunner(NamedTuple):
    """A Runner plus the curator's state and, per env, the id of the level its episode is on (a buffer slot,
    ``size + i`` for pool level i of a fresh update, or EMPTY). Episodes run on across updates, as under dr: one
    begun on a fresh level finishes in the next update even if that update replays (its steps then score nothing)."""

    train_state: TrainState
    env_state: object
    episode_return: jax.Array
    key: jax.Array
    update: jax.Array
    curator: object
    env_level: jax.Array


class Rollout(NamedTuple):
    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array
    finished_return: jax.Array


def network_for(world: World, config: PPOConfig) -> ActorCritic:
    return ActorCritic(world.num_actions, config.width, config.depth, config.network)


@dataclass(frozen=True)
class Trainer:
    """``init(keys) -> runner`` and ``run(runner, n) -> (runner, metrics)``, both over a leading seed axis."""

    config: PPOConfig
    network: ActorCritic
    init: Callable
    run: Callable


def curator_for(config: PPOConfig, mutate: Callable | None = None) -> Curator | None:
    """The level curator of a config's curriculum (None for dr); ``mutate`` edits levels for accel-exact."""
    if config.curriculum == "dr":
        return None
    if config.curriculum == "accel-exact" and mutate is None:
        raise AligntriageError("--curriculum accel-exact needs the level space's mutate(key, level)")
    return plr_curator(config.buffer_size, config.pool, config.replay_prob, config.score_temperature,
                       config.staleness, estimated=not config.exact, candidates=config.new_levels,
                       mutate=mutate if config.curriculum == "accel-exact" else None)


def make_trainer(world: World, reward: Callable, sample_level: Callable, config: PPOConfig,
                 mutate: Callable | None = None) -> Trainer:
    """Build jitted PPO functions from the world, R and a level sampler only (and, for accel-exact, the level
    space's ``mutate``)."""
    config = config.validate()
    return make_trainer_with(world, reward, sample_level, config, curator_for(config, mutate))


def make_trainer_with(world: World, reward: Callable, sample_level: Callable, config: PPOConfig,
                      curator: Curator | None) -> Trainer:
    """``make_trainer`` with a given curator (None: draw every pool from ``sample_level``, as dr does); a benchmark
    passes another implementation of the same curator interface here."""
    config = config.validate()
    network = network_for(world, config)
    observe = jax.vmap(world.observe)
    env_step = jax.vmap(lambda levels, key, state, action: auto_reset_step(world, reward, levels, key, state, action),
                        in_axes=(None, 0, 0, 0))
    n_envs = config.num_envs
    grad_steps = config.num_updates * config.epochs * config.minibatches
    schedule = optax.linear_schedule(config.lr, 0.0, grad_steps) if config.anneal_lr else config.lr
    tx = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(schedule, eps=1e-5))

    def sample_pool(key):
        return jax.vmap(sample_level)(jax.random.split(key, config.pool))

    def start(key: jax.Array) -> tuple[Runner, object]:
        """A fresh runner and the pool its first episodes started on."""
        k_net, k_pool, k_env, key = jax.random.split(key, 4)
        levels = sample_pool(k_pool)
        env_state = jax.vmap(lambda k: reset_from_pool(world, levels, k))(jax.random.split(k_env, n_envs))
        params = network.init(k_net, observe(env_state))
        state = TrainState.create(apply_fn=network.apply, params=params, tx=tx)
        return Runner(state, env_state, jnp.zeros(n_envs), key, jnp.int32(0)), levels

    def init_one(key: jax.Array) -> Runner:
        return start(key)[0]

    def rollout(train_state, env_state, episode_return, key, levels, track=None):
        """``config.rollout`` steps of every env, episodes restarting on pool ``levels``. ``track`` =
        (env_level, pool_ids) also follows the id of the level each env's episode is on, returned per step."""

        def act(carry, _):
            if track is None:
                env_state, episode_return, key = carry
            else:
                env_state, episode_return, key, env_level = carry
            key, k_act, k_env = jax.random.split(key, 3)
            obs = observe(env_state)
            logits, value = network.apply(train_state.params, obs)
            action = jax.random.categorical(k_act, logits)
            log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=1)[:, 0]
            env_keys = jax.random.split(k_env, n_envs)
            env_state, tr = env_step(levels, env_keys, env_state, action)
            done = tr.terminated | tr.truncated
            total = episode_return + tr.reward
            step = Rollout(obs, action, log_prob, value, tr.reward, done, jnp.where(done, total, jnp.nan))
            if track is None:
                return (env_state, jnp.where(done, 0.0, total), key), step
            restart = track[1][jax.vmap(lambda k: pool_index(k, config.pool))(env_keys)]  # reset_from_pool's pick
            return (env_state, jnp.where(done, 0.0, total), key, jnp.where(done, restart, env_level)), (step, env_level)

        start = (env_state, episode_return, key) if track is None else (env_state, episode_return, key, track[0])
        return jax.lax.scan(act, start, None, config.rollout)

    def learn(train_state, env_state, batch, key):
        """GAE, then ``config.epochs`` epochs of clipped-objective minibatch steps; returns the new train state, the
        key, the advantages and the per-minibatch losses."""
        _, last_value = network.apply(train_state.params, observe(env_state))

        def gae(carry, step):
            advantage, next_value = carry
            reward, value, done = step
            delta = reward + config.gamma * next_value * (1 - done) - value
            advantage = delta + config.gamma * config.gae_lambda * (1 - done) * advantage
            return (advantage, value), advantage

        _, advantages = jax.lax.scan(
            gae, (jnp.zeros_like(last_value), last_value), (batch.reward, batch.value, batch.done), reverse=True
        )
        targets = advantages + batch.value

        def loss_fn(params, mb):
            logits, value = network.apply(params, mb["obs"])
            log_probs = jax.nn.log_softmax(logits)
            log_prob = jnp.take_along_axis(log_probs, mb["action"][:, None], axis=1)[:, 0]
            ratio = jnp.exp(log_prob - mb["log_prob"])
            adv = (mb["advantage"] - mb["advantage"].mean()) / (mb["advantage"].std() + 1e-8)
            policy_loss = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - config.clip, 1 + config.clip) * adv).mean()
            value_clipped = mb["value"] + jnp.clip(value - mb["value"], -config.clip, config.clip)
            value_loss = 0.5 * jnp.maximum((value - mb["target"]) ** 2, (value_clipped - mb["target"]) ** 2).mean()
            entropy = -(jnp.exp(log_probs) * log_probs).sum(-1).mean()
            total = policy_loss + config.vf_coef * value_loss - config.ent_coef * entropy
            return total, (policy_loss, value_loss, entropy, ((ratio - 1) - jnp.log(ratio)).mean())

        flat = jax.tree.map(
            lambda x: x.reshape((config.steps_per_update,) + x.shape[2:]),
            {"obs": batch.obs, "action": batch.action, "log_prob": batch.log_prob, "value": batch.value,
             "advantage": advantages, "target": targets},
        )

        def epoch(carry, _):
            train_state, key = carry
            key, k_perm = jax.random.split(key)
            order = jax.random.permutation(k_perm, config.steps_per_update)
            shuffled = jax.tree.map(
                lambda x: x[order].reshape((config.minibatches, -1) + x.shape[1:]), flat
            )

            def minibatch(train_state, mb):
                grads, aux = jax.grad(loss_fn, has_aux=True)(train_state.params, mb)
                return train_state.apply_gradients(grads=grads), aux

            train_state, aux = jax.lax.scan(minibatch, train_state, shuffled)
            return (train_state, key), aux

        (train_state, key), aux = jax.lax.scan(epoch, (train_state, key), None, config.epochs)
        return train_state, key, advantages, aux

    def report(batch, aux, train_state) -> dict:
        finished = ~jnp.isnan(batch.finished_return)
        episodes = finished.sum()
        returns = jnp.where(finished, batch.finished_return, 0.0)
        finite = {  # one flag per update, cheap next to the update itself; the training loop stops on a False
            "finite_reward": jnp.isfinite(batch.reward).all(),
            "finite_loss": jnp.isfinite(aux[0]).all() & jnp.isfinite(aux[1]).all() & jnp.isfinite(aux[2]).all(),
            "finite_params": jnp.all(jnp.stack([jnp.isfinite(leaf).all()
                                                for leaf in jax.tree.leaves(train_state.params)])),
        }
        return {
            **finite,
            "episodes": episodes,
            "mean_return": returns.sum() / jnp.maximum(episodes, 1),
            "success_rate": (finished & (batch.finished_return > 0)).sum() / jnp.maximum(episodes, 1),
            "policy_loss": aux[0].mean(),
            "value_loss": aux[1].mean(),
            "entropy": aux[2].mean(),
            "approx_kl": aux[3].mean(),
        }

    def update_one(runner: Runner, _) -> tuple[Runner, dict]:
        train_state, env_state, episode_return, key, update = runner
        key, k_pool = jax.random.split(key)
        levels = sample_pool(k_pool)
        (env_state, episode_return, key), batch = rollout(train_state, env_state, episode_return, key, levels)
        train_state, key, _, aux = learn(train_state, env_state, batch, key)
        return Runner(train_state, env_state, episode_return, key, update + 1), report(batch, aux, train_state)

    def init_curated(key: jax.Array) -> CuratedRunner:
        runner, levels = start(key)
        state = curator.init(jax.random.fold_in(key, 2), jax.tree.map(lambda leaf: leaf[:config.new_levels], levels))
        return CuratedRunner(*runner, state, jnp.full(n_envs, EMPTY, jnp.int32))

    def curated_update(runner: CuratedRunner, _) -> tuple[CuratedRunner, dict]:
        train_state, env_state, episode_return, key, update, state, env_level = runner
        size = curator.size
        key, k_pool = jax.random.split(key)
        fresh = sample_pool(k_pool)
        state, replay, slots, drawn = curator.draw(state, update, fresh)
        levels = jax.tree.map(lambda old, new: jnp.where(replay, old, new), drawn, fresh)
        pool_ids = jnp.where(replay, slots, size + jnp.arange(config.pool, dtype=jnp.int32))
        env_level = jnp.where(env_level >= size, EMPTY, env_level)  # an earlier update's fresh levels are gone
        (env_state, episode_return, key, env_level), (batch, ids) = rollout(
            train_state, env_state, episode_return, key, levels, (env_level, pool_ids))
        learned, key, advantages, aux = learn(train_state, env_state, batch, key)
        if curator.robust:  # a fresh update only scores its levels
            learned = jax.tree.map(lambda new, old: jnp.where(replay, new, old), learned, train_state)
        if curator.learn is not None:  # positive value loss: mean max(GAE advantage, 0) over each level's steps
            seen = ids >= 0
            segment = jnp.where(seen, ids, 0).reshape(-1)
            count = jax.ops.segment_sum(seen.reshape(-1).astype(jnp.float32), segment, size + config.pool)
            gain = jax.ops.segment_sum(jnp.where(seen, jnp.maximum(advantages, 0.0), 0.0).reshape(-1), segment,
                                       size + config.pool)
            score = gain / jnp.maximum(count, 1.0)
            state, placed, replaced = curator.learn(state, update, replay, score[:size], count[:size] > 0, fresh,
                                                    score[size:], count[size:] > 0)
            env_level = follow(env_level, placed, replaced)
        held_score, fill = curator.summary(state)
        metrics = {**report(batch, aux, learned), "replay": replay.astype(jnp.float32), "level_score": held_score,
                   "buffer_fill": fill}
        return CuratedRunner(learned, env_state, episode_return, key, update + 1, state, env_level), metrics

    step, first = (update_one, init_one) if curator is None else (curated_update, init_curated)

    def run_one(runner, count, capacity: int):
        """The first ``count`` of ``capacity`` updates, metrics in a ``capacity``-long buffer: the count is a traced
        loop bound, so one compiled program serves every chunk length up to ``capacity`` (a short last chunk, or
        a curriculum's chunks cut at its scoring passes, used to compile a program of their own)."""
        shapes = jax.eval_shape(step, runner, None)[1]
        buffers = jax.tree.map(lambda s: jnp.zeros((capacity,) + s.shape, s.dtype), shapes)

        def body(i, carry):
            runner, buffers = carry
            runner, metrics = step(runner, None)
            return runner, jax.tree.map(lambda buffer, m: buffer.at[i].set(m), buffers, metrics)

        return jax.lax.fori_loop(0, count, body, (runner, buffers))

    # Seeds are initialised one after another (lax.map), not vmapped: a vmapped orthogonal initialiser (batched
    # QR) with several layers deadlocks the XLA CPU runtime here (jax 0.10.2, 2+ seeds, 2 hidden layers).
    init = jax.jit(lambda keys: jax.lax.map(first, keys))
    compiled = jax.jit(jax.vmap(run_one, in_axes=(0, None, None)), static_argnums=2)

    def run(runner, num_updates: int):
        """``num_updates`` updates of every seed; the metrics come back to the host, cut to the updates run."""
        runner, metrics = compiled(runner, jnp.int32(num_updates), max(num_updates, chunk_updates(config)))
        return runner, jax.tree.map(lambda m: m[:, :num_updates], jax.device_get(metrics))

    return Trainer(config, network, init, run)


def chunk_updates(config: PPOConfig) -> int:
    """Updates per jitted call of a training run (about 20 calls in all, at most 10 updates each): progress,
    checkpoints and Ctrl-C are handled between calls."""
    return max(1, min(10, config.num_updates // 20))


def seed_keys(config: PPOConfig) -> jax.Array:
    """One key per seed: seed s of a run is always PRNGKey(config.seed + s)."""
    return jax.vmap(jax.random.PRNGKey)(config.seed + jnp.arange(config.seeds))


def policy_from_params(network: ActorCritic, params) -> Callable[[jax.Array], jax.Array]:
    """A plain ``policy(obs) -> action probabilities`` (works on one obs or a batch)."""

    def policy(obs: jax.Array) -> jax.Array:
        logits, _ = network.apply(params, obs)
        return jax.nn.softmax(logits)

    return policy


def train_policies(world: World, reward: Callable, sample_level: Callable, config: PPOConfig):
    """Train every seed to the end in one call; returns one plain policy per seed and the per-update metrics."""
    trainer = make_trainer(world, reward, sample_level, config)
    runner, metrics = trainer.run(trainer.init(seed_keys(config)), config.num_updates)
    params = jax.device_get(runner.train_state.params)
    policies = [policy_from_params(trainer.network, jax.tree.map(lambda leaf, s=s: leaf[s], params))
                for s in range(config.seeds)]
    return policies, jax.device_get(metrics)
