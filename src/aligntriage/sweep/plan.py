"""A sweep from start to end: plan the grid points, run them on a backend, register every run, summarise.

A sweep folder holds ``sweep.json`` (the plan and each point's status), ``run.json`` (so the sweep is itself a run
in the index, kind ``sweep``, with a report), one run folder per grid point, ``summary.json``/``summary.csv`` and
``sweep-KNOB.png`` figures. Rerunning with ``resume`` skips points whose summary exists and resumes interrupted
training from its checkpoint.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from aligntriage.errors import AligntriageError, UnknownName
from aligntriage.store import RunIndex, index_run
from aligntriage.store.files import csv_bytes, json_bytes, read_json
from aligntriage.store.folder import RunFolder, RunRecord, scenario_ref
from aligntriage.store.index import summarise_run
from aligntriage.sweep.backends import BACKENDS, run_local, run_ray
from aligntriage.sweep.figures import knob_figure
from aligntriage.sweep.grid import grid_points, parse_grid, point_folder, split_point
from aligntriage.train.curate import check_curriculum
from aligntriage.train.ppo import PPOConfig
from aligntriage.worlds import get_scenario


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def plan_sweep(scenario: str, grid_items: list[str], seeds: int, out: Path, level_params: dict | None = None,
               training: dict | None = None, levels: int = 200, dists: list[str] | None = None) -> dict:
    """The sweep's plan: one JSON-able spec per grid point, every name checked before anything runs."""
    level_params = dict(level_params or {})
    base = get_scenario(scenario, **level_params)
    grid = parse_grid(grid_items, base)
    dists = list(dists or (["deploy"] if "deploy" in base.distributions else list(base.distributions)[1:2]))
    for dist in dists:
        base.distribution(dist)
    if seeds < 1:
        raise AligntriageError(f"seeds must be >= 1, got {seeds}")
    specs = []
    for index, values in enumerate(grid_points(grid)):
        knobs, level = split_point(values)
        point_params = {**level_params, **level}
        point_scenario = get_scenario(scenario, **point_params)
        settings = {**point_scenario.training, **{k: v for k, v in (training or {}).items() if v is not None},
                    **knobs, "seeds": seeds}
        config = PPOConfig.from_dict(settings).validate()
        point_scenario.distribution(config.dist)
        check_curriculum(point_scenario, config)
        specs.append({"index": index, "values": values, "scenario": scenario_ref(scenario),
                      "level_params": point_params, "config": config.to_dict(), "levels": levels, "dists": dists,
                      "run_dir": str(Path(out) / point_folder(index, values)), "sweep_dir": str(out)})
    return {"kind": "sweep", "scenario": scenario_ref(scenario), "params": level_params, "grid": grid, "seeds": seeds,
            "levels": levels, "dists": dists, "training": training or {}, "points": specs}


def load_plan(out: Path, scenario: str | None = None) -> dict:
    """The plan saved in a sweep folder, to resume it without retyping its settings."""
    plan_file = RunFolder(out).file(RunFolder.SWEEP)
    if not plan_file.is_file():
        raise AligntriageError(f"--resume: no sweep in '{out}'")
    saved = read_json(plan_file, "sweep plan")
    keys = ("kind", "scenario", "params", "grid", "seeds", "levels", "dists", "training", "points")
    missing = [k for k in keys if not isinstance(saved, dict) or k not in saved]
    if missing:
        raise AligntriageError(f"sweep plan '{plan_file}' is damaged: field '{missing[0]}' is missing")
    if scenario is not None and scenario_ref(scenario) != saved["scenario"]:
        raise AligntriageError(f"--resume: '{out}' holds a sweep of '{saved['scenario']}', not '{scenario}'")
    return {k: saved[k] for k in keys}


def _check_same(saved: dict, plan: dict) -> None:
    for key in ("scenario", "params", "grid", "seeds", "levels", "dists"):
        if saved.get(key) != plan.get(key):
            raise AligntriageError(f"--resume: this sweep's {key} ({plan.get(key)}) differs from the saved one "
                                   f"({saved.get(key)}); resume with the same settings or use another --out")


def run_sweep(plan: dict, out: Path, backend: str = "local", resume: bool = False, workers: int | None = None,
              address: str | None = None, on_point: Callable[[dict], None] | None = None) -> dict:
    """Run a planned sweep; returns its summary (status ``complete`` or ``interrupted``). The sweep folder is
    claimed for the whole sweep; each point's worker claims its own point folder."""
    if backend not in BACKENDS:
        raise UnknownName("backend", backend, list(BACKENDS))
    folder = RunFolder(out)
    plan_file = folder.file(RunFolder.SWEEP)
    if plan_file.exists() and not resume:
        raise AligntriageError(f"'{out}' already holds a sweep; add --resume to finish it, or choose another --out")
    if resume and not plan_file.exists():
        raise AligntriageError(f"--resume: no sweep in '{out}'")
    with folder.claim(new=not resume):
        return _run_sweep(folder, plan, backend, resume, workers, address, on_point)


def _run_sweep(folder: RunFolder, plan, backend, resume, workers, address, on_point) -> dict:
    out = folder.path
    if resume:
        _check_same(read_json(folder.file(RunFolder.SWEEP), "sweep plan"), plan)
    index = RunIndex()
    sweep_id = index.upsert_sweep(out, plan["scenario"], plan["grid"], plan["seeds"], "running")
    for spec in plan["points"]:
        spec["sweep_id"] = sweep_id
    created = folder.record().created if resume and folder.is_run() else _now()
    record = {**plan, "sweep_id": sweep_id, "backend": backend, "status": "running", "created": created}
    run_record = RunRecord.new("sweep", plan["scenario"], plan["params"], status="running", seeds=plan["seeds"],
                               created=created, grid=plan["grid"], sweep_id=sweep_id)
    folder.write_many({RunFolder.SWEEP: json_bytes(record), RunFolder.RUN: json_bytes(run_record.to_dict())})
    index_run(out)
    results: dict[int, dict] = {}

    def on_result(summary: dict) -> None:
        results[summary["point"]] = summary
        point = RunFolder(summary["run_dir"])
        if point.path.is_dir():
            folder.adopt(point.path.name)
        if point.is_run():
            index.upsert({**summarise_run(point.path), "sweep_id": sweep_id})
        if on_point:
            on_point(summary)

    if backend == "local":
        finished = run_local(plan["points"], on_result, workers)
    else:
        finished = run_ray(plan["points"], on_result, address)
    points = [results.get(s["index"], {"point": s["index"], "values": s["values"], "run_dir": s["run_dir"],
                                       "status": "not run"}) for s in plan["points"]]
    for spec in plan["points"]:
        if Path(spec["run_dir"]).is_dir():
            folder.adopt(Path(spec["run_dir"]).name)
    status = "complete" if finished and all(p["status"] == "complete" for p in points) else "interrupted"
    summary = {"scenario": plan["scenario"], "grid": plan["grid"], "seeds": plan["seeds"], "status": status,
               "backend": backend, "dists": plan["dists"], "points": points}
    outputs = {RunFolder.SUMMARY: json_bytes(summary), RunFolder.SUMMARY_CSV: csv_bytes(summary_rows(summary))}
    if status == "complete":
        for knob in plan["grid"]:
            outputs[RunFolder.sweep_figure_name(knob)] = knob_figure(summary, knob, plan["dists"][0])
    record["status"] = status
    outputs[RunFolder.SWEEP] = json_bytes(record)
    outputs[RunFolder.RUN] = json_bytes(run_record.replace(status=status).to_dict())
    folder.write_many(outputs)
    index.upsert_sweep(out, plan["scenario"], plan["grid"], plan["seeds"], status)
    index_run(out)
    return summary


def summary_rows(summary: dict) -> list[dict]:
    """A flat row per point and diagnosed distribution, for CSV and for people's own plots."""
    rows = []
    for p in summary["points"]:
        for dist, d in (p.get("dists") or {}).items():
            row = {"point": p["point"], **p["values"], "dist": dist, "status": p["status"], "seeds": p.get("seeds")}
            for metric in ("proxy_rate", "intended_rate", "U", "R"):
                for part in ("mean", "low", "high"):
                    row[f"{metric}_{part}"] = d[metric][part]
            for partition, counts in d["verdict_counts"].items():
                row[f"verdicts_{partition}"] = "; ".join(f"{v}: {n}" for v, n in counts.items())
            rows.append(row)
        if not p.get("dists"):
            rows.append({"point": p["point"], **p["values"], "status": p["status"]})
    return rows
