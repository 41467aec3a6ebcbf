"""The training process: PPO on R only."""
