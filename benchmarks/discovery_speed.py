"""Goal discovery on one default coinrun level: maximum-causal-entropy IRL over the grid basis, warm.

The agent is the end-of-level seeker (its goal is struck from nothing: discovery does not look at the candidate
list except for their events, which are part of the basis). Timed after one warm-up call on the same level (the
first compiles the jitted soft pass), median of 5. Rerun: ``python benchmarks/discovery_speed.py``.
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import jax
import numpy as np

from aligntriage import get_scenario
from aligntriage.diagnose.discovery import basis, discover
from aligntriage.diagnose.engine import batch_observations, sample_batch
from aligntriage.solve.policies import scripted_table
from aligntriage.solve.value import Episode


def main() -> None:
    scenario = get_scenario("coinrun")
    batch = sample_batch(scenario, "deploy", 1, seed=0)
    mask = np.ones(scenario.world.num_actions)
    episode = Episode(0.99, scenario.world.horizon)
    policy = scripted_table("goal:end-of-level", scenario, batch, mask, episode)
    events = {name: batch.goal_achieved[name] for name in scenario.goals}
    features = basis(batch_observations(scenario, batch), scenario.world.channels, batch, events)
    found = discover(features, batch, policy, mask, scenario.world.horizon)
    times = []
    for _ in range(5):
        start = time.monotonic()
        found = discover(features, batch, policy, mask, scenario.world.horizon)
        times.append(time.monotonic() - start)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}; "
          f"load {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"one coinrun deploy level: {batch.num_states} states, {features.size} basis features, "
          f"{found.iterations} L-BFGS iterations; discovered '{found.goal}'")
    print(f"warm: median {statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f})")


if __name__ == "__main__":
    main()
