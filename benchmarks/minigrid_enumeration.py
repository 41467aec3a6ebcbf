"""Enumerating one MiniGrid 8x8 level through the environment itself, against a naive deep-copy search.

For each level (``DoorKey-8x8``: a key that can be carried and dropped anywhere, a locked door; and
``minigrid-red-tile``'s 8x8 deployment room: navigation only), time ``MiniGridSource.enumerate`` (restore the state
into the environment, step each action, key the result by its contents, copy the grid only after a step changed
it, no observation per step) against the peer, the search a user would write first: ``copy.deepcopy`` of the
whole environment for every (state, action), then ``env.step`` (which also renders the step's observation). Both
key states the same way; the script checks they find the same number of states. Each round times both once, one
after the other, so load that comes and goes hits both; the ratio is the median over rounds of
(peer time / enumeration time). CPU seconds of the process (``time.process_time``) are reported beside the wall
clock: on a shared machine they are the steadier figure.

    python benchmarks/minigrid_enumeration.py --rounds 5 --json benchmarks/results/minigrid_enumeration.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from pathlib import Path

from minigrid.envs import DoorKeyEnv
from minigrid.wrappers import ImgObsWrapper

from aligntriage import get_scenario
from aligntriage.interop.minigrid import Levels, minigrid_scenario
from aligntriage.scenario import Goal, Partition, Term


def doorkey_scenario():
    return minigrid_scenario(
        name="doorkey-8x8", summary="MiniGrid-DoorKey-8x8", wrappers=[ImgObsWrapper],
        distributions=[Levels("train", "DoorKey-8x8", lambda: DoorKeyEnv(size=8)),
                       Levels("deploy", "DoorKey-8x8", lambda: DoorKeyEnv(size=8))],
        utility=[Term("goal", lambda s, a, s2: float(s2.on("goal")), "goal")],
        goals=[Goal("goal", lambda s, a, s2: s2.on("goal"), "goal", intended=True)],
        partitions=[Partition("task", ("goal",), "")])


def naive_search(make, seed: int) -> int:
    """Breadth-first search by deep copies of the whole environment (the peer); returns the state count."""
    env = make().unwrapped
    env.reset(seed=seed)

    def key(e):
        carried = b"" if e.carrying is None else bytes(e.carrying.encode())
        return e.grid.encode().tobytes() + carried + bytes([*map(int, e.agent_pos), int(e.agent_dir)])

    seen, frontier = {key(env)}, [env]
    while frontier:
        node = frontier.pop()
        for action in range(node.action_space.n):
            child = copy.deepcopy(node)
            child.step_count = 0
            _, _, terminated, _, _ = child.step(action)
            k = key(child)
            if k not in seen:
                seen.add(k)
                if not terminated:
                    frontier.append(child)
    return len(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    red = get_scenario("minigrid-red-tile", size=8)
    cases = [("DoorKey-8x8", doorkey_scenario(), "train"), ("minigrid-red-tile 8x8", red, "deploy")]
    rows = []
    for label, scenario, dist in cases:
        source = scenario.source
        ours, peer, ours_cpu, peer_cpu, states = [], [], [], [], None
        for _ in range(args.rounds):
            start, cpu = time.perf_counter(), time.process_time()
            mdp = source.enumerate(dist, args.seed)
            ours.append(time.perf_counter() - start)
            ours_cpu.append(time.process_time() - cpu)
            start, cpu = time.perf_counter(), time.process_time()
            count = naive_search(source.levels[dist].make, args.seed)
            peer.append(time.perf_counter() - start)
            peer_cpu.append(time.process_time() - cpu)
            if count != mdp.num_states:
                raise SystemExit(f"{label}: the two searches disagree ({mdp.num_states} vs {count} states)")
            states = mdp.num_states
        ratio = statistics.median(p / o for p, o in zip(peer, ours))
        row = {"level": label, "states": states, "transitions": states * mdp.num_actions,
               "enumerate_s": statistics.median(ours), "naive_deepcopy_s": statistics.median(peer),
               "enumerate_cpu_s": statistics.median(ours_cpu), "naive_deepcopy_cpu_s": statistics.median(peer_cpu),
               "speedup": ratio, "rounds": args.rounds}
        rows.append(row)
        print(f"{label}: {states} states, enumerate {row['enumerate_s']:.3f} s ({row['enumerate_cpu_s']:.3f} s "
              f"CPU), naive deepcopy {row['naive_deepcopy_s']:.3f} s ({row['naive_deepcopy_cpu_s']:.3f} s CPU), "
              f"{ratio:.1f}x (median of {args.rounds} rounds)")
    import gymnasium
    import minigrid

    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
                         f"{platform.python_version()}, minigrid {minigrid.__version__}, gymnasium "
                         f"{gymnasium.__version__}", "load_average": os.getloadavg(), "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
