"""PPO in JAX, PureJaxRL-style: rollout (vmap over envs, scan over steps) and update (GAE, clipped objective,
entropy bonus, value loss, gradient clipping, annealed learning rate) compiled together; seeds are vmapped.

The training process sees only the world, the reward provision process R and a level sampler: ``make_trainer``
takes exactly those, so U and the candidate goals cannot leak into training.
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

from aligntriage.errors import AligntriageError
from aligntriage.scenario import World
from aligntriage.train.network import NETWORKS, ActorCritic
from aligntriage.worlds.vector import auto_reset_step, reset_from_pool


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

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.rollout

    @property
    def num_updates(self) -> int:
        return max(1, self.total_steps // self.steps_per_update)

    def validate(self) -> PPOConfig:
        if self.network not in NETWORKS:
            raise AligntriageError(f"unknown network '{self.network}'; valid: {', '.join(NETWORKS)}")
        positive = ("total_steps", "seeds", "num_envs", "rollout", "epochs", "minibatches", "width", "depth", "pool")
        for name in positive:
            if getattr(self, name) < 1:
                raise AligntriageError(f"{name} must be >= 1, got {getattr(self, name)}")
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
                                          ("vf_coef", 0.0, False, None), ("max_grad_norm", 0.0, True, None)):
            value = getattr(self, name)
            above = value > low if open_low else value >= low
            if not (math.isfinite(value) and above and (high is None or value <= high)):
                bound = f"{'> ' if open_low else '>= '}{low:g}" + (f" and <= {high:g}" if high is not None else "")
                raise AligntriageError(f"{name.replace('_', '-')} must be {bound}, got {value}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

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


def make_trainer(world: World, reward: Callable, sample_level: Callable, config: PPOConfig) -> Trainer:
    """Build jitted PPO functions from the world, R and a level sampler only."""
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

    def init_one(key: jax.Array) -> Runner:
        k_net, k_pool, k_env, key = jax.random.split(key, 4)
        levels = sample_pool(k_pool)
        env_state = jax.vmap(lambda k: reset_from_pool(world, levels, k))(jax.random.split(k_env, n_envs))
        params = network.init(k_net, observe(env_state))
        state = TrainState.create(apply_fn=network.apply, params=params, tx=tx)
        return Runner(state, env_state, jnp.zeros(n_envs), key, jnp.int32(0))

    def update_one(runner: Runner, _) -> tuple[Runner, dict]:
        train_state, env_state, episode_return, key, update = runner
        key, k_pool = jax.random.split(key)
        levels = sample_pool(k_pool)

        def act(carry, _):
            env_state, episode_return, key = carry
            key, k_act, k_env = jax.random.split(key, 3)
            obs = observe(env_state)
            logits, value = network.apply(train_state.params, obs)
            action = jax.random.categorical(k_act, logits)
            log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=1)[:, 0]
            env_state, tr = env_step(levels, jax.random.split(k_env, n_envs), env_state, action)
            done = tr.terminated | tr.truncated
            total = episode_return + tr.reward
            step = Rollout(obs, action, log_prob, value, tr.reward, done, jnp.where(done, total, jnp.nan))
            return (env_state, jnp.where(done, 0.0, total), key), step

        (env_state, episode_return, key), batch = jax.lax.scan(
            act, (env_state, episode_return, key), None, config.rollout
        )
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
        finished = ~jnp.isnan(batch.finished_return)
        episodes = finished.sum()
        returns = jnp.where(finished, batch.finished_return, 0.0)
        finite = {  # one flag per update, cheap next to the update itself; the training loop stops on a False
            "finite_reward": jnp.isfinite(batch.reward).all(),
            "finite_loss": jnp.isfinite(aux[0]).all() & jnp.isfinite(aux[1]).all() & jnp.isfinite(aux[2]).all(),
            "finite_params": jnp.all(jnp.stack([jnp.isfinite(leaf).all()
                                                for leaf in jax.tree.leaves(train_state.params)])),
        }
        metrics = {
            **finite,
            "episodes": episodes,
            "mean_return": returns.sum() / jnp.maximum(episodes, 1),
            "success_rate": (finished & (batch.finished_return > 0)).sum() / jnp.maximum(episodes, 1),
            "policy_loss": aux[0].mean(),
            "value_loss": aux[1].mean(),
            "entropy": aux[2].mean(),
            "approx_kl": aux[3].mean(),
        }
        return Runner(train_state, env_state, episode_return, key, update + 1), metrics

    def run_one(runner: Runner, num_updates: int):
        return jax.lax.scan(update_one, runner, None, num_updates)

    # Seeds are initialised one after another (lax.map), not vmapped: a vmapped orthogonal initialiser (batched
    # QR) with several layers deadlocks the XLA CPU runtime here (jax 0.10.2, 2+ seeds, 2 hidden layers).
    init = jax.jit(lambda keys: jax.lax.map(init_one, keys))
    run = jax.jit(jax.vmap(run_one, in_axes=(0, None)), static_argnums=1)
    return Trainer(config, network, init, run)


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
