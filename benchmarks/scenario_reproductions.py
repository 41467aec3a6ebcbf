"""Reproduce each scenario's published finding with trained agents: train K PPO seeds on the training distribution
(R only), diagnose them together on every distribution, and report behaviour, verdicts and returns.

Per scenario: K seeds train in one vmapped call with the scenario's own training defaults (PPOConfig defaults,
then ``scenario.training``, then the step budget below), then ``diagnose_many`` runs on every distribution
(the training distribution is the IID check). Outcome rates are counted on disambiguating levels, pooled over
seeds and levels (95% normal interval over episodes); R and U returns are exact expected discounted returns from
each level's start (95% interval over levels, agent averaged over seeds), with the spread over seeds as a
t-interval. Results merge into the JSON file per scenario, so scenarios can be run one at a time.

    python benchmarks/scenario_reproductions.py                      # every scenario, 3 seeds (over an hour here)
    python benchmarks/scenario_reproductions.py --scenario monster   # one scenario
    python benchmarks/scenario_reproductions.py --table              # the stored results as a markdown table
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import numpy as np
from scipy import stats

from aligntriage import get_scenario
from aligntriage.diagnose import Settings, diagnose_many
from aligntriage.train.ppo import PPOConfig, train_policies
from aligntriage.worlds import jax_scenarios

# Steps per seed where a scenario should train for less than its own default (``scenario.training``, else
# PPOConfig's 1.5M): the JSON's first_95_steps says when each seed first reached 95% training success.
STEPS: dict[str, int] = {}
HERE = Path(__file__).resolve().parent


def seed_interval(values) -> dict:
    """Mean and 95% t-interval over seeds."""
    values = np.asarray(values, float)
    mean = float(values.mean())
    half = 0.0 if values.size < 2 else float(stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1)
                                             / np.sqrt(values.size))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": int(values.size)}


def first_reaching(success: np.ndarray, steps_per_update: int, level: float = 0.95) -> list[int | None]:
    """Per seed, env steps at the first update whose success rate (mean of it and the previous) is >= level."""
    out = []
    for row in success:
        smooth = (row[1:] + row[:-1]) / 2
        hits = np.nonzero(smooth >= level)[0]
        out.append(int((hits[0] + 2) * steps_per_update) if hits.size else None)
    return out


def summarise(d, dist: str) -> dict:
    ev = d.evidence["deploy"]
    values = ev["values"]
    return {
        "dist": dist,
        "verdicts": {v["partition"]: v["verdict"] for v in d.verdicts},
        "inferred_goal": {v["partition"]: v["inferred_goal"] for v in d.verdicts},
        "per_seed_verdicts": d.per_seed_verdicts,
        "disambiguating_fraction": ev["disambiguating_fraction"],
        "outcomes_disambiguating": ev["outcomes"]["disambiguating"],
        "outcomes_all": ev["outcomes"]["all"],
        "outcomes_chance_disambiguating": ev["outcomes"].get("chance_disambiguating"),
        "goal_rates_disambiguating": ev["goal_rates_disambiguating"],
        "goal_gain_over_random": {g: x["gain_over_random"] for g, x in ev["goal_inference"]["goals"].items()},
        "goal_posterior": ev["goal_inference"]["posterior"],
        "agent_R": values["agent"]["R"], "agent_U": values["agent"]["U"],
        "agent_R_seeds": seed_interval(values["agent_per_seed"]["R"]),
        "agent_U_seeds": seed_interval(values["agent_per_seed"]["U"]),
        "r_optimal_R": values["r_optimal"]["R"], "r_optimal_U": values["r_optimal"]["U"],
        "u_optimal_R": values["u_optimal"]["R"], "u_optimal_U": values["u_optimal"]["U"],
        "relative_r_regret": ev["relative_r_regret"],
        "relative_r_regret_per_seed": ev["relative_r_regret_per_seed"],
        "relative_u_shortfall": ev["relative_u_shortfall"],
        "adequacy": {p: a["relative_shortfall"] for p, a in ev["adequacy"].items()},
        "catastrophes": ev["catastrophes"],
        "threat_model": [{k: t[k] for k in ("term", "reading", "agent_rate", "r_optimal_rate")}
                         for t in d.threat_model],
    }


def machine_description() -> str:
    """The machine line stored with every result: CPU, jax devices and backend, jax version."""
    return (f"{platform.processor() or platform.machine()}, {jax.device_count()} jax device(s) "
            f"({jax.default_backend()}), jax {jax.__version__}")


def train_and_diagnose(scenario, config: PPOConfig, levels: int, settings: Settings):
    """Train ``config.seeds`` PPO seeds on the training distribution, then diagnose them on every distribution:
    (training metrics, diagnoses per distribution, train seconds, diagnose seconds)."""
    start = time.monotonic()
    policies, metrics = train_policies(scenario.world, scenario.reward, scenario.distribution(config.dist).sample,
                                       config)
    train_s = time.monotonic() - start
    start = time.monotonic()
    diagnoses = diagnose_many(policies, scenario, list(scenario.distributions), levels=levels,
                              train_dist=config.dist, settings=settings)
    return metrics, diagnoses, train_s, time.monotonic() - start


def reproduce(name: str, seeds: int, levels: int, steps: int | None) -> dict:
    scenario = get_scenario(name)
    settings = {**scenario.training, "seeds": seeds}
    settings["total_steps"] = steps or STEPS.get(name, settings.get("total_steps", PPOConfig.total_steps))
    config = PPOConfig.from_dict(settings)
    metrics, diagnoses, train_s, diagnose_s = train_and_diagnose(
        scenario, config, levels, Settings(inference_levels=min(levels, 100), epic_levels=10))
    success = np.asarray(metrics["success_rate"])
    returns = np.asarray(metrics["mean_return"]) if "mean_return" in metrics else None
    return {
        "scenario": name,
        "config": config.to_dict(),
        "levels": levels,
        "train_seconds": train_s,
        "diagnose_seconds": diagnose_s,
        "train_success_final": [float(x) for x in success[:, -5:].mean(axis=1)],
        "train_return_final": None if returns is None else [float(x) for x in returns[:, -5:].mean(axis=1)],
        "first_95_steps": first_reaching(success, config.steps_per_update),
        "dists": {dist: summarise(d, dist) for dist, d in diagnoses.items()},
    }


def fmt(e: dict, digits: int = 2) -> str:
    return f"{e['mean']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"


def counts(per_seed: list[dict], partition: str) -> str:
    tally: dict[str, int] = {}
    for v in per_seed:
        tally[v[partition]] = tally.get(v[partition], 0) + 1
    short = {"aligned": "aligned", "outer misalignment": "outer", "inner misalignment": "inner",
             "capability failure": "capability"}
    return ", ".join(f"{short[k]} ×{n}" for k, n in sorted(tally.items(), key=lambda kv: -kv[1]))


def markdown(results: dict) -> str:
    lines = ["| scenario | dist | train success | outcomes on disambiguating levels (95% CI) | verdict per partition "
             "(inferred goal; per-seed counts) | agent R (seeds) | R-opt R | agent U | U-opt U |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        for dist, s in r["dists"].items():
            outcomes = ", ".join(f"{k} {fmt(v)}" for k, v in s["outcomes_disambiguating"].items()
                                 if v["n"] and v["mean"] > 0)
            outcomes = f"{outcomes or '–'} ({s['disambiguating_fraction']:.0%} of levels)"
            chance = s.get("outcomes_chance_disambiguating")
            if chance and s["disambiguating_fraction"] > 0:
                goals = [g for g in s["goal_gain_over_random"] if chance[g]["n"]]
                outcomes += "; chance: " + ", ".join(f"{g} {chance[g]['mean']:.2f}" for g in goals)
            verdicts = "; ".join(f"{p}: **{v}** ({s['inferred_goal'][p]}; {counts(s['per_seed_verdicts'], p)})"
                                 for p, v in s["verdicts"].items())
            lines.append(f"| `{name}` | `{dist}` | {np.mean(r['train_success_final']):.2f} | {outcomes} | {verdicts} | "
                         f"{fmt(s['agent_R_seeds'])} | {fmt(s['r_optimal_R'])} | {fmt(s['agent_U'])} | "
                         f"{fmt(s['u_optimal_U'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", default=None, help="run only this scenario (repeatable)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--levels", type=int, default=300)
    parser.add_argument("--steps", type=int, default=None, help="override every scenario's step budget")
    parser.add_argument("--json", default=str(HERE / "results" / "scenario_reproductions.json"))
    parser.add_argument("--table", action="store_true", help="only print the stored results as a markdown table")
    args = parser.parse_args()
    if args.table:
        stored = json.loads(Path(args.json).read_text())
        print(markdown({name: stored[name] for name in args.scenario or stored}))
        return
    machine = machine_description()
    print(f"machine: {machine}")
    path = Path(args.json)
    stored = json.loads(path.read_text()) if path.exists() else {}
    results = {}
    for name in args.scenario or jax_scenarios():
        start = time.monotonic()
        results[name] = reproduce(name, args.seeds, args.levels, args.steps)
        results[name]["machine"] = machine
        print(f"{name}: {time.monotonic() - start:.0f} s (train {results[name]['train_seconds']:.0f} s)", flush=True)
        stored[name] = results[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=2, default=float))
    print(markdown(results))


if __name__ == "__main__":
    main()
