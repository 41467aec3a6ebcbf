"""``aligntriage sweep``: seeds x knobs, trained and diagnosed locally or on a Ray cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from aligntriage.cli.app import ParamOption, app, console, parse_params, user_errors, writable_index
from aligntriage.errors import AligntriageError
from aligntriage.store.folder import RunFolder


def _ci(e: dict, pct: bool = False) -> str:
    if e.get("n", 0) == 0:
        return "–"
    scale, unit = (100.0, "%") if pct else (1.0, "")
    return f"{e['mean'] * scale:.1f}{unit} [{e['low'] * scale:.1f}, {e['high'] * scale:.1f}]" if pct else \
        f"{e['mean']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"


def print_summary(summary: dict) -> None:
    dist = summary["dists"][0]
    table = Table(title=f"{summary['scenario']} sweep, {summary['seeds']} seed(s) per point, diagnosed on '{dist}' "
                  "(95% intervals over seeds)", show_lines=True)
    table.add_column("point", no_wrap=True)
    for column in ("verdicts (per seed)", "proxy goal (disamb.)", "intended goal (disamb.)", "U return",
                   "R return"):
        table.add_column(column, overflow="fold")
    for p in summary["points"]:
        label = "\n".join(f"{k}={v}" for k, v in p["values"].items())
        d = (p.get("dists") or {}).get(dist)
        if d is None:
            table.add_row(label, p["status"], "–", "–", "–", "–")
            continue
        verdicts = "\n".join(f"{part}: " + ", ".join(f"{v} ×{n}" for v, n in counts.items())
                             for part, counts in d["verdict_counts"].items())
        table.add_row(label, verdicts, _ci(d["proxy_rate"], pct=True), _ci(d["intended_rate"], pct=True),
                      _ci(d["U"]), _ci(d["R"]))
    console.print(table)


@app.command("sweep")
@user_errors
def sweep(
    scenario: str = typer.Argument(..., help="Scenario name or path to a scenario file."),
    grid: Optional[list[str]] = typer.Option(None, "--grid", help="KEY=V1,V2,... (repeatable). Keys: training "
                                             "knobs dist, steps, width, depth, network, ent_coef, gamma, lr, envs, "
                                             "rollout, epochs, curriculum (dr, plr-exact, plr, accel-exact), "
                                             "curate_from, replay_prob, score_every, buffer_size, or any level "
                                             "parameter of the scenario."),
    seeds: int = typer.Option(3, "--seeds", help="Seeds per grid point, trained together in one vmapped call."),
    backend: str = typer.Option("local", "--backend", help="local (process pool) or ray."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address ('auto' for the running "
                                          "cluster); without it the ray backend starts a local one."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Local processes (default: one per core)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Training steps per seed, unless the grid sets "
                                        "them."),
    levels: int = typer.Option(200, "--levels", help="Sampled levels per diagnosed distribution."),
    diagnose_on: Optional[list[str]] = typer.Option(None, "--diagnose-on", help="Distribution(s) to diagnose on "
                                                    "(default: deploy)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Sweep folder (default runs/SCENARIO-sweep-TIME)."),
    resume: bool = typer.Option(False, "--resume", help="Finish the sweep in --out with its saved settings, "
                                "skipping finished points."),
    params: Optional[list[str]] = ParamOption,
) -> None:
    """Train and diagnose every grid point for K seeds; print and save the summary and its figures."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from aligntriage.cli.main import at_least, default_run_dir
    from aligntriage.errors import UnknownName
    from aligntriage.sweep import load_plan, plan_sweep, run_sweep
    from aligntriage.sweep.backends import BACKENDS

    at_least(("--seeds", seeds, 1), ("--workers", workers, 1), ("--steps", steps, 1), ("--levels", levels, 2))
    if backend not in BACKENDS:
        raise UnknownName("backend", backend, BACKENDS)
    if resume and out is None:
        raise AligntriageError("--resume needs --out SWEEP_DIR")
    if not grid and not resume:
        raise AligntriageError("a sweep needs at least one --grid KEY=V1,V2,...")
    out = out or default_run_dir(scenario, "sweep")
    if resume:
        plan = load_plan(out, scenario)
        seeds = plan["seeds"]
    else:
        plan = plan_sweep(scenario, grid, seeds, out, level_params=parse_params(params),
                          training={"total_steps": steps}, levels=levels, dists=diagnose_on)
    writable_index()
    RunFolder(out).check_claimable(new=not resume)
    points = len(plan["points"])
    console.print(f"sweep of {points} point(s) × {seeds} seed(s) on the {backend} backend → {out}")
    columns = (TextColumn("[bold]sweep[/bold]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("points", total=points, info="starting workers…")

        def on_point(summary: dict) -> None:
            label = " ".join(f"{k}={v}" for k, v in summary["values"].items())
            progress.update(task, advance=1 if summary["status"] == "complete" else 0,
                            info=f"{label}: {summary['status']}")

        summary = run_sweep(plan, out, backend=backend, resume=resume, workers=workers, address=address,
                            on_point=on_point)
    print_summary(summary)
    folder = RunFolder(out)
    console.print(f"saved {folder.file(RunFolder.SUMMARY)}, {folder.file(RunFolder.SUMMARY_CSV)}"
                  + (f" and figures {RunFolder.SWEEP_FIGURE_PATTERN} in {out}" if summary["status"] == "complete"
                     else ""), markup=False, highlight=False)
    if summary["status"] != "complete":
        console.print(f"sweep interrupted; finish it with: aligntriage sweep {scenario} --out {out} --resume",
                      markup=False, highlight=False)
        raise typer.Exit(130)
    from aligntriage.report.html import write_report

    with folder.claim(new=False):
        report = write_report(out)
        folder.adopt(RunFolder.REPORT)
    console.print(f"report: {report}", markup=False, highlight=False)
