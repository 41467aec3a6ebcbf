"""``monster`` variants: train PPO on versions of the scenario that change how much shields matter, and diagnose
each the same way as benchmarks/scenario_reproductions.py (smaller: 60 levels), to see which mechanics make agents
value shields in training and keep collecting them at deployment (Shah et al.'s finding).

Each variant changes scenario parameters (``get_scenario("monster", **params)``) and PPO settings. Rows measured
before the observation gained its ``clock`` channel are marked † in the table (stored with
``before_clock_channel``); rerunning them measures the current world.

    python benchmarks/monster_variants.py              # every variant (about 50 minutes on 2 CPU cores)
    python benchmarks/monster_variants.py --variant "used up, harm 2"   # one variant, merged into the results
    python benchmarks/monster_variants.py --table      # the stored results as a markdown table
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scenario_reproductions import fmt, machine_description, summarise, train_and_diagnose

from aligntriage import get_scenario
from aligntriage.diagnose import Settings
from aligntriage.train.ppo import PPOConfig

HERE = Path(__file__).resolve().parent
USED_UP = {"stay": 0, "train_monsters": 3}  # the scenario's defaults before monsters stayed after hurting
SMALL_FAST = {"width": 64, "total_steps": 1_500_000}  # the PPO defaults, not the scenario's 256-wide 12M-step run
VARIANTS = {
    "monsters that stay (the defaults), 64-wide MLP, 1.5M steps": ({}, SMALL_FAST),
    "monsters that stay, hit only on the agent's cell (reach 0), 3 of them, 64-wide, 1.5M": (
        {"reach": 0, "train_monsters": 3}, SMALL_FAST),
    "used-up monsters: 3 of them, each gone after one hurt (the old defaults)": (USED_UP, SMALL_FAST),
    "used up, harm 2": ({**USED_UP, "harm": 2}, SMALL_FAST),
    "used up, harm 2, CNN, 4M steps, entropy 0.001": ({**USED_UP, "harm": 2}, {
        "width": 64, "network": "cnn", "total_steps": 4_000_000, "ent_coef": 0.001}),
    "used up, 1 respawning monster, 8M steps, entropy 0.001": ({**USED_UP, "respawn": 1, "train_monsters": 1}, {
        "width": 64, "total_steps": 8_000_000, "ent_coef": 0.001}),
    "used up, the paper's lengths: 25-step training, 200-step deployment": (
        {**USED_UP, "train_horizon": 25, "deploy_horizon": 200}, SMALL_FAST),
    "used up, 2 monsters that always come back (meet on the agent's cell, back to the lair)": (
        {**USED_UP, "train_monsters": 2, "reach": 0, "respawn": 1}, SMALL_FAST),
    "the same, CNN, 4M steps, entropy 0.001": ({**USED_UP, "train_monsters": 2, "reach": 0, "respawn": 1}, {
        "width": 64, "network": "cnn", "total_steps": 4_000_000, "ent_coef": 0.001}),
}


def run(params: dict, ppo: dict, seeds: int, levels: int) -> dict:
    scenario = get_scenario("monster", **params)
    config = PPOConfig.from_dict({**scenario.training, "seeds": seeds, **ppo})
    metrics, diagnoses, train_s, _ = train_and_diagnose(scenario, config, levels,
                                                        Settings(inference_levels=levels, epic_levels=2))
    return {"params": params, "config": config.to_dict(), "levels": levels, "train_seconds": train_s,
            "train_return_final": [float(x) for x in np.asarray(metrics["mean_return"])[:, -5:].mean(axis=1)],
            "dists": {dist: summarise(d, dist) for dist, d in diagnoses.items()}}


def markdown(results: dict) -> str:
    lines = ["| variant | dist | agent R (seeds) | R-opt R | shields first (chance) | apples first (chance) | "
             "verdict (inferred goal; per seed) |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        for dist, s in r["dists"].items():
            out, chance = s["outcomes_disambiguating"], s["outcomes_chance_disambiguating"]
            per_seed = ", ".join(v["task"].split()[0] for v in s["per_seed_verdicts"])
            mark = " †" if r.get("before_clock_channel") else ""
            lines.append(f"| {name}{mark} | `{dist}` | {fmt(s['agent_R_seeds'])} | {fmt(s['r_optimal_R'])} | "
                         f"{out['shields']['mean']:.2f} ({chance['shields']['mean']:.2f}) | "
                         f"{out['apples']['mean']:.2f} ({chance['apples']['mean']:.2f}) | "
                         f"{s['verdicts']['task']} ({s['inferred_goal']['task']}; {per_seed}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--levels", type=int, default=60)
    parser.add_argument("--json", default=str(HERE / "results" / "monster_variants.json"))
    parser.add_argument("--variant", action="append", choices=tuple(VARIANTS), default=None,
                        help="run only this variant (repeatable); results merge into the JSON file")
    parser.add_argument("--table", action="store_true", help="only print the stored results as a markdown table")
    args = parser.parse_args()
    path = Path(args.json)
    if args.table:
        print(markdown(json.loads(path.read_text())))
        return
    machine = machine_description()
    print(f"machine: {machine}")
    stored = json.loads(path.read_text()) if path.exists() else {}
    results = {}
    for name in args.variant or VARIANTS:
        params, ppo = VARIANTS[name]
        start = time.monotonic()
        results[name] = {**run(params, ppo, args.seeds, args.levels), "machine": machine}
        print(f"{name}: {time.monotonic() - start:.0f} s", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        stored[name] = results[name]
        path.write_text(json.dumps(stored, indent=2, default=float))
    print(markdown(results))


if __name__ == "__main__":
    main()
