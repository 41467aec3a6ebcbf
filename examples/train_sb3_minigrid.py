"""Train a Stable-Baselines3 PPO agent on minigrid-red-tile's training distribution, the way a researcher would.

    python examples/train_sb3_minigrid.py --steps 200000 --out runs/red-tile-ppo.zip
    aligntriage diagnose minigrid-red-tile --policy sb3:runs/red-tile-ppo.zip

The environment is the scenario's gymnasium id, so the agent sees exactly what the diagnosis replays: MiniGrid's
egocentric 7x7 view through ``ImgObsWrapper`` (the wrapper the scenario file declares). Needs the ``interop``
extra (minigrid, torch, stable-baselines3).
"""

from __future__ import annotations

import argparse
import time

import gymnasium
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import aligntriage  # noqa: F401  (registers the aligntriage/<scenario>-v0 ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--out", default="runs/red-tile-ppo.zip")
    args = parser.parse_args()
    torch.set_num_threads(1)  # a 64x64 MLP: extra threads only contend for the cores the environments need
    params = {"size": args.size}
    envs = make_vec_env(lambda: gymnasium.make("aligntriage/minigrid-red-tile-v0", dist="train", params=params),
                        n_envs=args.envs, seed=args.seed)
    model = PPO("MlpPolicy", envs, n_steps=128, batch_size=256, n_epochs=4, learning_rate=5e-4, gamma=0.99,
                ent_coef=0.01, seed=args.seed, policy_kwargs={"normalize_images": False}, verbose=0)
    start = time.perf_counter()
    model.learn(total_timesteps=args.steps)
    elapsed = time.perf_counter() - start
    returns = [info["r"] for info in model.ep_info_buffer]
    print(f"trained {args.steps} steps in {elapsed:.0f} s ({time.process_time():.0f} s CPU); mean return of the "
          f"last {len(returns)} training episodes {sum(returns) / max(len(returns), 1):.3f}")
    model.save(args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
