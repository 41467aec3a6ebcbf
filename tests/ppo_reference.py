"""Main's PPO trainer as it was before curricula (commit 3d2f3a1), frozen: ``dr`` training must match it bit for
bit (tests/test_curriculum.py). Update it only together with an intended change to dr's numerics."""

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from aligntriage.train.ppo import Rollout, Runner, Trainer, network_for
from aligntriage.worlds.vector import auto_reset_step, reset_from_pool


def make_trainer(world, reward, sample_level, config) -> Trainer:
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
