"""``aligntriage mitigate``: retrain a diagnosed run with each intervention and report before and after."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from aligntriage.cli.app import app, console, user_errors, writable_index
from aligntriage.errors import AligntriageError


def _estimate(e: dict, pct: bool = False) -> str:
    if not e or e.get("n", 0) == 0:
        return "–"
    fmt = (lambda x: f"{x:.0%}") if pct else (lambda x: f"{x:.3f}")
    return fmt(e["mean"]) if e["n"] < 2 else f"{fmt(e['mean'])} [{fmt(e['low'])}, {fmt(e['high'])}]"


def print_mitigation(result: dict) -> None:
    from aligntriage.report.terminal import verdict_text

    table = Table(title=f"{escape(result['scenario'])}: before and after on '{escape(result['dist'])}' "
                        f"({result['seeds']} seeds, {result['steps']:,} steps each, {result['levels']} levels; "
                        "95% intervals over seeds)")
    partitions = list(result["rows"][0]["verdicts"])
    for column in ["intervention", *[f"verdict: {p}" for p in partitions], "proxy first (goals diverge)", "U",
                   "R"]:
        table.add_column(escape(column))
    for row in result["rows"]:
        verdicts = [f"{verdict_text(v['kind'])} {v['probability']:.0%}" for v in row["verdicts"].values()]
        table.add_row(escape(row["intervention"]), *verdicts, _estimate(row["proxy_rate"], pct=True),
                      _estimate(row["U"]), _estimate(row["R"]))
    console.print(table)


@app.command("mitigate")
@user_errors
def mitigate_command(
    run: str = typer.Argument(..., help="A diagnosed training run: its id or its folder."),
    tries: list[str] = typer.Option(..., "--try", help="An intervention: curriculum=NAME[@DIST] (dr, plr-exact, "
                                    "plr, accel-exact) or reward+TERM[:WEIGHT] (R plus a U term). Repeatable."),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="Seeds per intervention (default: the run's)."),
    dist: str = typer.Option("deploy", "--dist", help="The distribution the before/after is read on."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder of the mitigation (default "
                                       "runs/SCENARIO-mitigate-TIME); rerun with the same --out to resume."),
    resamples: int = typer.Option(200, "--resamples", help="Resamples behind each verdict's probability."),
) -> None:
    """Retrain a diagnosed run with each intervention (same budget and seeds), diagnose again on the same levels,
    and report verdict, proxy rate and U before and after."""
    from aligntriage.cli.main import diagnosis_progress, training_progress
    from aligntriage.mitigate import mitigate
    from aligntriage.store import index_run, resolve_run
    from aligntriage.store.folder import RunFolder

    if seeds is not None and seeds < 1:
        raise AligntriageError(f"--seeds must be >= 1, got {seeds}")
    if resamples < 0:
        raise AligntriageError(f"--resamples must be >= 0, got {resamples}")
    writable_index()
    run_dir = resolve_run(run)
    name = Path(RunFolder(run_dir).record().scenario).stem
    target = out or Path("runs") / f"{name}-mitigate-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    with training_progress() as on_progress, diagnosis_progress([dist]) as on_step:
        result = mitigate(run_dir, tries, target, seeds, dist, resamples, on_progress, on_step)
    print_mitigation(result)
    run_id = index_run(target)
    console.print(f"saved {RunFolder(target).file(RunFolder.MITIGATION)} (run {run_id})", markup=False,
                  highlight=False)
