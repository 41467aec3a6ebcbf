"""PPO training speed: our JAX PPO (``aligntriage.train.ppo``) against Stable-Baselines3 PPO, same scenario, same run.

Both train on ``coinrun`` (default parameters, ``train`` distribution) with the same PPO shape: ``--envs`` parallel
envs x ``--rollout`` steps per update, ``--epochs`` epochs of ``--minibatches`` minibatches, an actor and a critic
MLP of two tanh layers of 64 units each, lr 5e-4 annealed linearly, gamma 0.99, GAE lambda 0.95, clip 0.2 (value
clipping too), entropy 0.01, value coefficient 0.5, gradient norm clip 0.5, Adam eps 1e-5.

- ours: ``make_trainer(world, R, train sampler, PPOConfig(...))``; one timed call is ``trainer.run(runner, n)``
  for n = ``--ours-steps`` / (envs * rollout) updates (rollout and update scanned inside one jit), blocked on with
  ``jax.block_until_ready``; the first call (compile + run) is excluded.
- SB3: ``stable_baselines3.PPO("MlpPolicy", ...)`` with ``net_arch=dict(pi=[64, 64], vf=[64, 64])``,
  ``activation_fn=torch.nn.Tanh``, ``n_steps=rollout``, ``batch_size=envs*rollout/minibatches``, ``n_epochs=epochs``,
  ``clip_range_vf=0.2``, device cpu. The environment is ``ScenarioVectorEnv`` (all envs in one jitted vmapped step,
  SAME_STEP autoreset) behind ``SB3VecEnv``, a thin SB3 ``VecEnv`` adapter in this file (``terminal_observation``
  and ``TimeLimit.truncated`` in the per-env infos, as SB3 expects). ``--sb3-env dummy`` uses SB3's ``DummyVecEnv``
  over ``envs`` separate ``ScenarioEnv`` instances instead (a Python loop of per-env jitted calls: slower).
  One timed call is ``model.learn(--sb3-steps, reset_num_timesteps=False)``; a first one-update ``learn`` (model
  setup, first env reset, torch warm-up) is excluded.

Timed calls alternate ``--rounds`` times (ours, SB3, ours, SB3, ...) so that load from other processes falls on
both alike. Reported: env-steps per second (steps trained / median wall time of the timed calls) and the ratio,
the median over rounds of (our rate / SB3's rate) in the same round. The environment's own speed under a random
policy through the same ``ScenarioVectorEnv`` + adapter is reported too, as SB3's ceiling.

    python benchmarks/ppo_vs_sb3.py --ours-steps 262144 --sb3-steps 131072 --rounds 15 [--json OUT]

(the defaults; about 2 minutes on an idle 2-core machine, longer under load: the SB3 side slows down most).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time

import gymnasium
import jax
import numpy as np

from aligntriage.interop.gymnasium_env import ScenarioEnv, ScenarioVectorEnv
from aligntriage.train.ppo import PPOConfig, make_trainer, seed_keys
from aligntriage.worlds import get_scenario

SCENARIO, DIST = "coinrun", "train"


def machine() -> dict:
    import stable_baselines3
    import torch

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "load_avg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "stable_baselines3": stable_baselines3.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": np.__version__,
    }


def sb3_vec_env_class():
    """``SB3VecEnv``: SB3's VecEnv API over one ``ScenarioVectorEnv`` in SAME_STEP autoreset mode."""
    from stable_baselines3.common.vec_env import VecEnv

    class SB3VecEnv(VecEnv):
        def __init__(self, venv: ScenarioVectorEnv):
            if venv.metadata["autoreset_mode"] != gymnasium.vector.AutoresetMode.SAME_STEP:
                raise ValueError("SB3VecEnv needs a ScenarioVectorEnv with autoreset_mode=SAME_STEP")
            self.venv = venv
            super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
            self._actions = None

        def reset(self):
            seed = self._seeds[0]
            obs, _ = self.venv.reset(seed=seed)
            self._reset_seeds()
            self._reset_options()
            return obs

        def step_async(self, actions):
            self._actions = actions

        def step_wait(self):
            obs, reward, terminated, truncated, info = self.venv.step(self._actions)
            done = terminated | truncated
            infos = [{} for _ in range(self.num_envs)]
            for i in np.flatnonzero(done):
                infos[i]["terminal_observation"] = info["final_obs"][i]
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            return obs, reward.astype(np.float32), done, infos

        def close(self):
            self.venv.close()

        def get_attr(self, attr_name, indices=None):
            return [getattr(self.venv, attr_name) for _ in self._get_indices(indices)]

        def set_attr(self, attr_name, value, indices=None):
            setattr(self.venv, attr_name, value)

        def env_method(self, method_name, *method_args, indices=None, **method_kwargs):
            raise NotImplementedError("SB3VecEnv has no per-env methods")

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False for _ in self._get_indices(indices)]

    return SB3VecEnv


def make_sb3_env(kind: str, envs: int):
    if kind == "vector":
        return sb3_vec_env_class()(ScenarioVectorEnv(SCENARIO, envs, dist=DIST,
                                                     autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP))
    from stable_baselines3.common.vec_env import DummyVecEnv

    return DummyVecEnv([lambda: ScenarioEnv(SCENARIO, dist=DIST) for _ in range(envs)])


def make_sb3_model(env, args):
    import torch
    from stable_baselines3 import PPO

    lr = args.lr
    return PPO(
        "MlpPolicy",
        env,
        learning_rate=lambda progress_remaining: lr * progress_remaining,
        n_steps=args.rollout,
        batch_size=args.envs * args.rollout // args.minibatches,
        n_epochs=args.epochs,
        gamma=0.99,
        gae_lambda=0.95,
        clip_range=0.2,
        clip_range_vf=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh),
        device="cpu",
        seed=0,
        verbose=0,
    )


def time_phases(model) -> dict:
    """Wrap the model's ``collect_rollouts`` and ``train`` to add up their wall time (where SB3's time goes)."""
    totals = {"collect_rollouts": 0.0, "train": 0.0}
    for name in totals:
        inner = getattr(model, name)

        def timed(*args, _inner=inner, _name=name, **kwargs):
            start = time.perf_counter()
            try:
                return _inner(*args, **kwargs)
            finally:
                totals[_name] += time.perf_counter() - start

        setattr(model, name, timed)
    return totals


def env_only_rate(env, steps: int) -> float:
    """Random-policy steps/s through the SB3 adapter: the environment's share of SB3's time, as a ceiling."""
    env.reset()
    rng = np.random.default_rng(0)
    n = env.num_envs
    env.step(rng.integers(0, env.action_space.n, n))
    start = time.perf_counter()
    for _ in range(steps):
        env.step(rng.integers(0, env.action_space.n, n))
    return n * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, default=256)
    parser.add_argument("--rollout", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--minibatches", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--ours-steps", type=int, default=262_144,
                        help="env steps per timed call of our trainer (rounded down to whole updates)")
    parser.add_argument("--sb3-steps", type=int, default=131_072,
                        help="env steps per timed SB3 learn() call (rounded down to whole updates)")
    parser.add_argument("--rounds", type=int, default=15, help="timed calls of each, alternating")
    parser.add_argument("--sb3-env", choices=["vector", "dummy"], default="vector")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()

    per_update = args.envs * args.rollout
    ours_updates = max(1, args.ours_steps // per_update)
    sb3_updates = max(1, args.sb3_steps // per_update)
    info = machine()
    print(f"date: {datetime.date.today().isoformat()}")
    print(f"machine: {info['cpu']}, {info['cores']} cores ({info['cores_usable']} usable), "
          f"load avg at start {info['load_avg_at_start']}, {info['os']}")
    print(f"python {info['python']}, jax {info['jax']} ({info['jax_backend']}), torch {info['torch']} "
          f"({info['torch_threads']} threads), stable-baselines3 {info['stable_baselines3']}, "
          f"gymnasium {info['gymnasium']}, numpy {info['numpy']}")
    print(f"scenario {SCENARIO} ({DIST}), envs={args.envs} rollout={args.rollout} epochs={args.epochs} "
          f"minibatches={args.minibatches}: {per_update} env steps per update; timed calls: ours {ours_updates} "
          f"updates, SB3 {sb3_updates} updates, {args.rounds} rounds; SB3 env: {args.sb3_env}\n", flush=True)

    # ours
    scenario = get_scenario(SCENARIO)
    config = PPOConfig(dist=DIST, total_steps=per_update * ours_updates * (args.rounds + 1), num_envs=args.envs,
                       rollout=args.rollout, epochs=args.epochs, minibatches=args.minibatches, lr=args.lr,
                       width=64, depth=2, network="mlp", seeds=1)
    trainer = make_trainer(scenario.world, scenario.reward, scenario.distribution(DIST).sample, config)
    start = time.perf_counter()
    runner = jax.block_until_ready(trainer.init(seed_keys(config)))
    runner, metrics = jax.block_until_ready(trainer.run(runner, ours_updates))
    ours_first = time.perf_counter() - start
    print(f"ours: init + compile + first {ours_updates} updates {ours_first:.1f}s", flush=True)

    # SB3
    import torch

    env = make_sb3_env(args.sb3_env, args.envs)
    start = time.perf_counter()
    model = make_sb3_model(env, args)
    model.learn(per_update, reset_num_timesteps=True)
    sb3_first = time.perf_counter() - start
    print(f"sb3: setup + first update {sb3_first:.1f}s (torch threads {torch.get_num_threads()})", flush=True)

    phases = time_phases(model)
    ours_times, sb3_times = [], []
    for r in range(args.rounds):
        start = time.perf_counter()
        runner, metrics = jax.block_until_ready(trainer.run(runner, ours_updates))
        ours_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        model.learn(per_update * sb3_updates, reset_num_timesteps=False)
        sb3_times.append(time.perf_counter() - start)
        print(f"round {r + 1}: ours {per_update * ours_updates / ours_times[-1]:,.0f} steps/s "
              f"({ours_times[-1]:.2f}s), SB3 {per_update * sb3_updates / sb3_times[-1]:,.0f} steps/s "
              f"({sb3_times[-1]:.2f}s)", flush=True)

    ours_rate = per_update * ours_updates / statistics.median(ours_times)
    sb3_rate = per_update * sb3_updates / statistics.median(sb3_times)
    ratios = [(per_update * ours_updates / o) / (per_update * sb3_updates / s) for o, s in zip(ours_times, sb3_times)]
    ratio = statistics.median(ratios)
    sb3_phase_per_update = {name: total / (sb3_updates * args.rounds) for name, total in phases.items()}
    env_rate = env_only_rate(env, max(20, 2 * args.rollout)) if args.sb3_env == "vector" else None
    print()
    print(f"| trainer | env steps trained per timed call | steps/s (median of {args.rounds}) | vs SB3 |")
    print("|---|---:|---:|---:|")
    print(f"| ours (JAX, make_trainer) | {per_update * ours_updates:,} | {ours_rate:,.0f} | {ratio:.1f}x |")
    print(f"| Stable-Baselines3 PPO ({args.sb3_env} env) | {per_update * sb3_updates:,} | {sb3_rate:,.0f} | 1.0x |")
    print(f"\nratio ours/SB3 (median over rounds of same-round ratios): {ratio:.1f}x "
          f"[{', '.join(f'{x:.1f}' for x in ratios)}]; target >= 50x: {'met' if ratio >= 50 else 'NOT met'}")
    print("SB3 seconds per update (mean over timed calls): " +
          ", ".join(f"{name} {value:.3f}" for name, value in sb3_phase_per_update.items()) +
          f"; ours: {statistics.median(ours_times) / ours_updates:.3f} s per update, all phases")
    if env_rate is not None:
        print(f"environment alone (random actions, ScenarioVectorEnv via the SB3 adapter): {env_rate:,.0f} steps/s")
    print(f"last update of ours: mean_return {float(metrics['mean_return'][0, -1]):.3f}, "
          f"success_rate {float(metrics['success_rate'][0, -1]):.3f}")

    if args.json:
        with open(args.json, "w") as fh:
            json.dump({
                "machine": info, "args": vars(args), "ours_steps_per_s": ours_rate, "sb3_steps_per_s": sb3_rate,
                "ratio": ratio, "ratios": ratios, "ours_times_s": ours_times, "sb3_times_s": sb3_times,
                "ours_first_call_s": ours_first, "sb3_first_call_s": sb3_first, "env_only_steps_per_s": env_rate,
                "sb3_seconds_per_update_by_phase": sb3_phase_per_update,
            }, fh, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
