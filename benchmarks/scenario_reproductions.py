"""Reproduce each scenario's published finding with trained agents: train K PPO seeds on the training distribution
(R only) in a run folder, diagnose them on every distribution, and record behaviour, verdicts and returns.

Per scenario, the shared pipeline (``aligntriage.pipeline.train_and_diagnose``) trains K seeds in one vmapped call
with the scenario's own training defaults into ``benchmarks/runs/SCENARIO`` (ignored by git), then diagnoses them
on every distribution (the training distribution is the IID check), saving ``diagnosis-DIST.json`` there. Every
figure is exact for the training episode (discount and horizon); intervals are over seeds (t, 95%); verdicts carry
the probability of resampling levels and seeds. ``--rediagnose`` reuses the saved run folders (no retraining), so
the figures can be recomputed under a changed engine. Results merge into the JSON file per scenario.

    python benchmarks/scenario_reproductions.py                       # every scenario, 3 seeds (hours here)
    python benchmarks/scenario_reproductions.py --scenario monster    # one scenario
    python benchmarks/scenario_reproductions.py --rediagnose          # the saved runs, diagnosed again
    python benchmarks/scenario_reproductions.py --rejudge             # their saved evidence, verdicts re-applied
    python benchmarks/scenario_reproductions.py --table               # the stored results as a markdown table
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import numpy as np

from aligntriage import get_scenario
from aligntriage.diagnose import Settings
from aligntriage.diagnose.figures import over_seeds
from aligntriage.pipeline import diagnose_run, rejudge_run, train_and_diagnose
from aligntriage.store.folder import RunFolder
from aligntriage.train.loop import train
from aligntriage.train.ppo import PPOConfig
from aligntriage.worlds import jax_scenarios

STEPS: dict[str, int] = {}
"""Steps per seed where a scenario should train for less than its own default (``scenario.training``)."""
HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"


def machine_description() -> str:
    """The machine line stored with every result: CPU, jax devices and backend, jax version."""
    return (f"{platform.processor() or platform.machine()}, {jax.device_count()} jax device(s) "
            f"({jax.default_backend()}), jax {jax.__version__}")


def first_reaching(success: np.ndarray, steps_per_update: int, level: float = 0.95) -> list[int | None]:
    """Per seed, env steps at the first update whose success rate (mean of it and the previous) is >= level."""
    out = []
    for row in success:
        smooth = (row[1:] + row[:-1]) / 2
        hits = np.nonzero(smooth >= level)[0]
        out.append(int((hits[0] + 2) * steps_per_update) if hits.size else None)
    return out


def summarise(d) -> dict:
    """What SCENARIOS.md reports of one diagnosis, as JSON."""
    where, everywhere = d.figures("disambiguating"), d.figures("all")
    seeds = range(d.seeds)
    per_seed = [d.figures("disambiguating", seed=k) for k in seeds]
    return {
        "verdicts": {v.partition: {"kind": v.kind, "probability": v.probability, "row": v.row,
                                   "candidates": dict(v.leading(3)), "inferred_goal": v.inferred_goal}
                     for v in d.verdicts},
        "per_seed_verdicts": [{v.partition: [v.kind, round(v.probability, 3)] for v in seed} for seed in d.per_seed],
        "disambiguating_fraction": d.evidence.disambiguating_fraction,
        "outcomes_disambiguating": {c: over_seeds([f.outcomes[c] for f in per_seed], rate=True)._asdict()
                                    for c in where.outcomes},
        "chance_disambiguating": where.chance,
        "outcomes_all": everywhere.outcomes,
        "relative_r_regret": {"all": everywhere.r_regret, "disambiguating": where.r_regret,
                              "per_seed": [d.figures("all", seed=k).r_regret for k in seeds]},
        "relative_u_shortfall": {"all": everywhere.u_shortfall, "disambiguating": where.u_shortfall},
        "adequacy": everywhere.adequacy,
        "goal_weights": where.posterior, "goal_explained": where.explained, "goal_leads": where.leads,
        "discovered_goal": where.discovered,
        "harms": everywhere.harms, "r_optimal_harms": everywhere.r_optimal_harms,
        "threats": [{"failure": t.failure, "reading": t.reading, "basis": t.basis, "agent_rate": t.agent_rate,
                     "r_optimal_rate": t.r_optimal_rate, "training_r_optimal_rate": t.training_r_optimal_rate,
                     "counterfactual_rate": t.counterfactual_rate._asdict() if t.counterfactual_rate else None}
                    for t in d.threats],
        "agent_R": over_seeds([float(np.mean(b.R)) for b in d.evidence.seeds])._asdict(),
        "agent_U": over_seeds([float(np.mean(b.U)) for b in d.evidence.seeds])._asdict(),
        "r_optimal_R": float(np.mean(d.evidence.references.r_optimal.R)),
        "u_optimal_U": float(np.mean(d.evidence.references.u_optimal.U)),
        "random_R": float(np.mean(d.evidence.references.random.R)),
    }


def training_summary(run_dir: Path, config: PPOConfig) -> dict:
    rows = RunFolder(run_dir).read_metrics()
    by_seed: dict[int, list[dict]] = {}
    for row in rows:
        by_seed.setdefault(int(row["seed"]), []).append(row)
    success = np.array([[r["success_rate"] for r in seed_rows] for seed_rows in by_seed.values()])
    returns = np.array([[r["mean_return"] for r in seed_rows] for seed_rows in by_seed.values()])
    return {"train_success_final": [float(x) for x in success[:, -5:].mean(axis=1)],
            "train_return_final": [float(x) for x in returns[:, -5:].mean(axis=1)],
            "first_95_steps": first_reaching(success, config.steps_per_update)}


def reproduce(name: str, seeds: int, levels: int, steps: int | None, rediagnose: bool,
              train_only: bool = False) -> dict | None:
    scenario = get_scenario(name)
    run_dir = RUNS / name
    settings = Settings(inference_levels=min(levels, 100), epic_levels=10)
    start = time.monotonic()
    if rediagnose:
        config = RunFolder(run_dir).record().ppo
        train_s = None
        diagnoses = diagnose_run(run_dir, levels=levels, settings=settings)
    else:
        options = {**scenario.training, "seeds": seeds}
        options["total_steps"] = steps or STEPS.get(name, options.get("total_steps", PPOConfig.total_steps))
        config = PPOConfig.from_dict(options)
        if run_dir.exists():
            RunFolder(run_dir).remove()  # only the files a previous run of this script wrote there
        if train_only:
            train(name, config, run_dir, index=False)
            return None
        timer = {}
        _, diagnoses = train_and_diagnose(name, config, run_dir, levels=levels, index=False, settings=settings,
                                          on_step=lambda dist: timer.setdefault("trained", time.monotonic()))
        train_s = timer["trained"] - start
    diagnose_s = time.monotonic() - start - (train_s or 0.0)
    return {"scenario": name, "config": config.to_dict(), "levels": levels, "train_seconds": train_s,
            "diagnose_seconds": diagnose_s, **training_summary(run_dir, config),
            "dists": {dist: summarise(d) for dist, d in diagnoses.items()}}


def fmt(e: dict, digits: int = 2) -> str:
    return f"{e['mean']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"


def counts(per_seed: list[dict], partition: str) -> str:
    tally: dict[str, int] = {}
    for seed in per_seed:
        kind = seed[partition][0]
        tally[kind] = tally.get(kind, 0) + 1
    return ", ".join(f"{k.split()[0]} ×{n}" for k, n in sorted(tally.items(), key=lambda kv: -kv[1]))


def markdown(results: dict) -> str:
    lines = ["| scenario | dist | train success | reached first where the goals diverge (seeds, 95%) | verdict per "
             "partition (probability; inferred goal; per-seed) | agent R (seeds) | R-opt R | agent U | U-opt U |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        for dist, s in r["dists"].items():
            outcomes = ", ".join(f"{k} {fmt(v)}" for k, v in s["outcomes_disambiguating"].items()
                                 if v["n"] and v["mean"] > 0.005)
            outcomes = f"{outcomes or '–'} ({s['disambiguating_fraction']:.0%} of levels)"
            if s["disambiguating_fraction"] > 0:
                outcomes += "; chance: " + ", ".join(f"{g} {p:.2f}" for g, p in s["chance_disambiguating"].items()
                                                     if p > 0.005)
            verdicts = "; ".join(
                f"{p}: **{v['kind']}** {v['probability']:.0%} ({v['inferred_goal'] or '–'}"
                + (f"; {counts(s['per_seed_verdicts'], p)}" if s["per_seed_verdicts"] else "") + ")"
                for p, v in s["verdicts"].items())
            lines.append(f"| `{name}` | `{dist}` | {np.mean(r['train_success_final']):.2f} | {outcomes} | {verdicts} | "
                         f"{fmt(s['agent_R'])} | {s['r_optimal_R']:.2f} | {fmt(s['agent_U'])} | "
                         f"{s['u_optimal_U']:.2f} |")
    return "\n".join(lines)


def readings(results: dict) -> str:
    """Per scenario and distribution: the goal discovery proposes for the trained agents (and how much of their
    predictable behaviour it explains), and each threat-model reading."""
    lines = ["| scenario | dist | discovered goal (share of predictable behaviour explained) | threat readings (agent "
             "rate; R-optimum's rate; with the failure in R) |", "|---|---|---|---|"]
    for name, r in results.items():
        if "goal_explained" not in next(iter(r["dists"].values())):
            lines.append(f"| `{name}` | – | stored by the previous engine: not rerun | – |")
            continue
        for dist, s in r["dists"].items():
            found = s.get("discovered_goal")
            share = s["goal_explained"].get("discovered")
            discovered = f"{found} ({share:.0%})" if found and share is not None else "–"
            threats = "; ".join(
                f"{t['failure']}: {t['reading']} ({t['basis']}; {t['agent_rate']:.0%}; "
                + ("–" if t["r_optimal_rate"] != t["r_optimal_rate"] else f"{t['r_optimal_rate']:.0%}") + "; "
                + (fmt(t["counterfactual_rate"]) if t.get("counterfactual_rate") else "not retrained") + ")"
                for t in s["threats"]) or "–"
            lines.append(f"| `{name}` | `{dist}` | {discovered} | {threats} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", default=None, help="run only this scenario (repeatable)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--levels", type=int, default=300)
    parser.add_argument("--steps", type=int, default=None, help="override every scenario's step budget")
    parser.add_argument("--rediagnose", action="store_true", help="diagnose the saved run folders again")
    parser.add_argument("--rejudge", action="store_true",
                        help="re-apply the decision table (current default tolerances) to the saved evidence")
    parser.add_argument("--train-only", action="store_true", help="train into benchmarks/runs, diagnose later")
    parser.add_argument("--json", default=str(HERE / "results" / "scenario_reproductions.json"))
    parser.add_argument("--table", action="store_true", help="only print the stored results as a markdown table")
    parser.add_argument("--readings", action="store_true",
                        help="only print the stored discovered goals and threat readings as a markdown table")
    args = parser.parse_args()
    if args.table or args.readings:
        stored = json.loads(Path(args.json).read_text())
        print((markdown if args.table else readings)({name: stored[name] for name in args.scenario or stored}))
        return
    machine = machine_description()
    print(f"machine: {machine}")
    path = Path(args.json)
    stored = json.loads(path.read_text()) if path.exists() else {}
    results = {}
    for name in args.scenario or jax_scenarios():
        start = time.monotonic()
        if args.rejudge:
            if name not in stored or not (RUNS / name).is_dir():
                print(f"{name}: no saved run or result to rejudge", flush=True)
                continue
            diagnoses = rejudge_run(RUNS / name)
            stored[name]["dists"] = {dist: summarise(d) for dist, d in diagnoses.items()}
            stored[name]["rejudged"] = {"date": time.strftime("%Y-%m-%d"), "machine": machine,
                                        "tolerances": next(iter(diagnoses.values())).tolerances.to_dict()}
            results[name] = stored[name]
            print(f"{name}: rejudged in {time.monotonic() - start:.0f} s", flush=True)
            path.write_text(json.dumps(stored, indent=2, default=float))
            continue
        result = reproduce(name, args.seeds, args.levels, args.steps, args.rediagnose, args.train_only)
        if result is None:
            print(f"{name}: trained in {time.monotonic() - start:.0f} s", flush=True)
            continue
        results[name] = result
        results[name]["machine"] = machine
        print(f"{name}: {time.monotonic() - start:.0f} s", flush=True)
        stored[name] = results[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=2, default=float))
    print(markdown(results))


if __name__ == "__main__":
    main()
