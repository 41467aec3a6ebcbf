"""Commands over the run store: ``runs``, ``show-run``, ``compare``, ``rm`` and ``export``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from aligntriage.cli.app import app, console, user_errors
from aligntriage.errors import AligntriageError, UnknownName


def _verdict_text(verdicts: dict) -> str:
    """``dist: partition=verdict`` lines, coloured by verdict."""
    from aligntriage.report.terminal import verdict_text

    lines = []
    for dist, per_partition in verdicts.items():
        parts = [f"{p}={verdict_text(v)}" for p, v in per_partition.items()]
        lines.append(f"{dist}: " + ", ".join(parts))
    return "\n".join(lines) or "–"


@app.command("runs")
@user_errors
def runs_command(
    scenario: Optional[str] = typer.Option(None, "--scenario", help="Only runs of this scenario."),
    verdict: Optional[str] = typer.Option(None, "--verdict", help="Only runs with this verdict on some "
                                          "distribution and partition (e.g. 'inner misalignment', or 'inner')."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Only runs of this kind (train, run, diagnose, sweep, "
                                       "control)."),
    scan: Optional[Path] = typer.Option(None, "--scan", help="First register every run folder found under DIR."),
) -> None:
    """List the runs in the index."""
    from aligntriage.store import RunIndex, index_run

    index = RunIndex()
    if scan is not None:
        if not scan.is_dir():
            raise AligntriageError(f"'{scan}' is not a folder")
        found = [index_run(p.parent) for p in sorted(scan.rglob("run.json"))]
        console.print(f"registered {len(found)} run folder(s) under {scan}")
    verdict = _full_verdict(verdict) if verdict else None
    rows = index.runs(scenario=scenario, verdict=verdict, kind=kind)
    table = Table(title=f"runs in {index.path}")
    for column in ("id", "kind", "scenario", "dist", "seeds", "steps", "status"):
        table.add_column(column, no_wrap=True)
    for column in ("verdicts", "date"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(str(r["id"]), r["kind"], r["scenario"], r["dist"] or "–", str(r["seeds"] or "–"),
                      f"{r['steps']:,}" if r["steps"] else "–", r["status"], _verdict_text(r["verdicts"]),
                      (r["created"] or "")[:16].replace("T", " "))
    console.print(table)
    if not rows:
        console.print("no runs match" if (scenario or verdict or kind) else "no runs yet: try 'aligntriage run "
                      "coinrun'")


def _full_verdict(text: str) -> str:
    from aligntriage.diagnose.kinds import VERDICTS, full_name

    name = full_name(text)
    if name is None:
        raise UnknownName("verdict", text, VERDICTS)
    return name


def _run_ref(ref: str) -> tuple[int | None, Path]:
    from aligntriage.store import RunIndex, resolve_run

    path = resolve_run(ref)
    row = RunIndex().find_path(path)
    return (row["id"] if row else None), path


@app.command("show-run")
@user_errors
def show_run(ref: str = typer.Argument(..., help="Run id (see 'aligntriage runs') or run folder.")) -> None:
    """Show one run: its settings, status, files, and the full diagnosis of each distribution."""
    from aligntriage.report.terminal import print_diagnosis
    from aligntriage.store.files import read_json

    run_id, path = _run_ref(ref)
    record = read_json(path / "run.json", "run file")
    head = Table(title=f"run {run_id if run_id is not None else '(not indexed)'}: {path}", show_header=False)
    head.add_column("field")
    head.add_column("value", overflow="fold")
    for key in ("kind", "scenario", "status", "created"):
        head.add_row(key, str(record.get(key, "–")))
    head.add_row("level params", ", ".join(f"{k}={v}" for k, v in record.get("params", {}).items()) or "defaults")
    if "ppo" in record:
        ppo = record["ppo"]
        head.add_row("training", ", ".join(f"{k}={ppo[k]}" for k in ("dist", "total_steps", "seeds", "network",
                                                                      "width", "depth", "ent_coef", "gamma")
                                           if k in ppo))
    head.add_row("files", ", ".join(sorted(p.name for p in path.iterdir() if not p.name.startswith("."))))
    console.print(head)
    for diagnosis_path in sorted(path.glob("diagnosis-*.json")):
        print_diagnosis(console, _diagnosis(diagnosis_path))


def _diagnosis(path: Path):
    from aligntriage.diagnose import Diagnosis
    from aligntriage.store.files import read_json

    try:
        return Diagnosis.from_dict(read_json(path, "diagnosis"))
    except TypeError:
        raise AligntriageError(f"diagnosis file '{path}' is malformed") from None


@app.command("compare")
@user_errors
def compare(
    refs: list[str] = typer.Argument(..., help="Two or more run ids or run folders."),
    dist: str = typer.Option("deploy", "--dist", help="Which distribution's diagnosis to compare."),
) -> None:
    """Side-by-side evidence and verdicts of several runs on one distribution."""
    if len(refs) < 2:
        raise AligntriageError("compare needs at least two runs")
    columns = []
    for ref in refs:
        run_id, path = _run_ref(ref)
        file = path / f"diagnosis-{dist}.json"
        if not file.is_file():
            have = sorted(p.stem.removeprefix("diagnosis-") for p in path.glob("diagnosis-*.json"))
            raise AligntriageError(f"run '{ref}' has no diagnosis on '{dist}'; it has: {', '.join(have) or 'none'}")
        columns.append((f"{run_id if run_id is not None else path.name}", _diagnosis(file)))
    table = Table(title=f"comparison on '{dist}'", show_lines=True)
    table.add_column("")
    for label, d in columns:
        table.add_column(f"run {label}\n{d.scenario} · {d.policy}", overflow="fold")
    from aligntriage.report.terminal import verdict_text

    def est(point: float, bounds, get, pct: bool = False) -> str:
        fmt = (lambda x: f"{x:.0%}") if pct else (lambda x: f"{x:.3f}")
        if bounds is None:
            return fmt(point)
        return f"{fmt(point)} [{fmt(get(bounds[0]))}, {fmt(get(bounds[1]))}]"

    def figure(d, subset: str, get, pct: bool = False) -> str:
        try:
            return est(get(d.figures("all" if subset == "iid" else subset, iid=subset == "iid")),
                       d.bounds.get(subset), get, pct)
        except KeyError:
            return "–"

    rows = [("train dist / levels / seeds", lambda d: f"{d.train_dist} / {d.levels} / {d.seeds}")]
    for partition in dict.fromkeys(v.partition for _, d in columns for v in d.verdicts):
        rows.append((f"verdict: {partition}", lambda d, p=partition: next(
            (f"{verdict_text(v.kind)} {v.probability:.0%}" for v in d.verdicts if v.partition == p), "–")))
    rows.append(("inferred goal", lambda d: d.verdicts[0].inferred_goal or "–"))
    rows.append(("relative R-regret", lambda d: figure(d, "all", lambda f: f.r_regret)))
    rows.append(("relative U shortfall", lambda d: figure(d, "all", lambda f: f.u_shortfall)))
    rows.append(("relative U shortfall (goals diverge)", lambda d: figure(d, "disambiguating",
                                                                          lambda f: f.u_shortfall)))
    rows.append(("disambiguating levels", lambda d: f"{d.evidence.disambiguating_fraction:.0%}"))
    goals = dict.fromkeys(g for _, d in columns for g in d.evidence.goals)
    for goal in goals:
        rows.append((f"reached first (goals diverge): {goal}", lambda d, g=goal: figure(
            d, "disambiguating", lambda f: f.outcomes.get(g, float("nan")), pct=True)))
    rows.append(("IID check (train R-regret)", lambda d: figure(d, "iid", lambda f: f.r_regret)))
    for label, fn in rows:
        table.add_row(label, *[fn(d) for _, d in columns])
    console.print(table)


@app.command("rm")
@user_errors
def rm(
    refs: list[str] = typer.Argument(..., help="Run ids to remove."),
    keep_files: bool = typer.Option(False, "--keep-files", help="Only drop the index entry; keep the folder."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove runs from the index and delete their folders."""
    from aligntriage.store import RunIndex

    index = RunIndex()
    rows = []
    for ref in refs:
        if not ref.isdigit():
            raise AligntriageError(f"'{ref}' is not a run id; rm takes the ids listed by 'aligntriage runs'")
        rows.append(index.get(int(ref)))
    for row in rows:
        what = "index entry" if keep_files else f"index entry and folder {row['path']}"
        if not yes and not typer.confirm(f"remove run {row['id']} ({row['scenario']}): {what}?"):
            continue
        index.remove(row["id"])
        if not keep_files and Path(row["path"]).is_dir():
            shutil.rmtree(row["path"])
        console.print(f"removed run {row['id']}")


@app.command("export")
@user_errors
def export(
    ref: str = typer.Argument(..., help="Run id or run folder."),
    to: str = typer.Option("csv", "--format", help="csv or tensorboard."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output file (csv) or folder (tensorboard)."),
) -> None:
    """Export a run's training metrics as one CSV or as TensorBoard event files (one folder per seed)."""
    from aligntriage.store.export import export_csv, export_tensorboard

    formats = {"csv": export_csv, "tensorboard": export_tensorboard}
    if to not in formats:
        raise UnknownName("export format", to, list(formats))
    _, path = _run_ref(ref)
    target = formats[to](path, out)
    console.print(f"wrote {target}")
