"""Commands over the run store: ``runs``, ``show-run``, ``compare``, ``rm``, ``export`` and ``doctor``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from aligntriage.cli.app import app, console, errors, user_errors
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
    scan: Optional[Path] = typer.Option(None, "--scan", help="First register every run folder found under DIR "
                                        "(folders that do not check out are listed and skipped)."),
) -> None:
    """List the runs in the index."""
    from aligntriage.store import RunIndex, index_run
    from aligntriage.store.folder import RUN_KINDS, RunFolder

    if kind is not None and kind not in RUN_KINDS:
        raise UnknownName("run kind", kind, RUN_KINDS)
    verdict = _full_verdict(verdict) if verdict else None
    index = RunIndex()
    if scan is not None:
        if not scan.is_dir():
            raise AligntriageError(f"'{scan}' is not a folder")
        found, skipped = 0, []
        for path in sorted(scan.rglob(RunFolder.RUN)):
            try:
                index_run(path.parent)
                found += 1
            except AligntriageError as exc:
                skipped.append(str(exc))
        console.print(f"registered {found} run folder(s) under {scan}", markup=False, highlight=False)
        for reason in skipped:
            errors.print(f"skipped: {reason}", markup=False, highlight=False, soft_wrap=True)
    rows = index.runs(scenario=scenario, verdict=verdict, kind=kind)
    table = Table(title=escape(f"runs in {index.path}"))
    for column in ("id", "kind", "scenario", "dist", "seeds", "steps", "status"):
        table.add_column(column, no_wrap=True)
    for column in ("verdicts", "date"):
        table.add_column(column, overflow="fold")
    for r in rows:
        status, steps = _progress(r)
        table.add_row(str(r["id"]), r["kind"], escape(r["scenario"]), escape(r["dist"] or "–"),
                      str(r["seeds"] or "–"), steps, status, _verdict_text(r["verdicts"]),
                      (r["created"] or "")[:16].replace("T", " "))
    console.print(table)
    if not rows:
        console.print("no runs match" if (scenario or verdict or kind) else "no runs yet: try 'aligntriage run "
                      "coinrun'")


def _progress(row: dict) -> tuple[str, str]:
    """(status, steps) cells; an unfinished training run shows 'N of M' steps trained (from its run.json)."""
    from aligntriage.store.folder import TRAINING_KINDS, RunFolder

    steps = f"{row['steps']:,}" if row["steps"] else "–"
    if row["status"] == "complete" or row["kind"] not in TRAINING_KINDS:
        return row["status"], steps
    try:
        record = RunFolder(row["path"]).record()
    except AligntriageError:
        return f"{row['status']} (run.json damaged)", steps
    return row["status"], f"{record.steps_done:,} of {record.steps_total:,}"


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
    from aligntriage.store.folder import RunFolder

    run_id, path = _run_ref(ref)
    folder = RunFolder(path)
    record = folder.record()
    head = Table(title=escape(f"run {run_id if run_id is not None else '(not indexed)'}: {path}"), show_header=False)
    head.add_column("field")
    head.add_column("value", overflow="fold")
    status = record.incomplete_note(live=folder.live() is not None) or record.status
    for key, value in (("kind", record.kind), ("scenario", record.scenario), ("status", status),
                       ("created", record.created)):
        head.add_row(key, escape(str(value)))
    head.add_row("level params", escape(", ".join(f"{k}={v}" for k, v in record.params.items()) or "defaults"))
    if record.ppo is not None:
        ppo = record.ppo
        head.add_row("training", ", ".join(f"{k}={getattr(ppo, k)}" for k in (
            "dist", "total_steps", "seeds", "network", "width", "depth", "ent_coef", "gamma")))
    head.add_row("files", escape(", ".join(sorted(p.name for p in path.iterdir() if not p.name.startswith(".")))))
    console.print(head)
    skipped = []
    for diagnosis_path in folder.diagnosis_files().values():
        try:
            diagnosis = _diagnosis(diagnosis_path)
        except AligntriageError as exc:
            skipped.append(str(exc))
            continue
        print_diagnosis(console, diagnosis)
    for reason in skipped:
        errors.print(f"skipped: {reason}", markup=False, highlight=False, soft_wrap=True)


def _diagnosis(path: Path):
    """The typed diagnosis in ``path``; the report's loader, so every view reads the same files the same way."""
    from aligntriage.report.folder import Skipped, load_diagnosis

    diagnosis = load_diagnosis(path)
    if isinstance(diagnosis, Skipped):
        raise AligntriageError(f"diagnosis file '{path}' cannot be read: {diagnosis.reason}")
    return diagnosis


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
        from aligntriage.store.folder import RunFolder

        file = RunFolder(path).file(RunFolder.diagnosis_name(dist))
        if not file.is_file():
            have = sorted(RunFolder(path).diagnosis_files())
            raise AligntriageError(f"run '{ref}' has no diagnosis on '{dist}'; it has: {', '.join(have) or 'none'}")
        columns.append((f"{run_id if run_id is not None else path.name}", _diagnosis(file)))
    table = Table(title=f"comparison on '{dist}'", show_lines=True)
    table.add_column("")
    for label, d in columns:
        table.add_column(f"run {label}\n{d.scenario} · {d.policy}", overflow="fold")
    from aligntriage.report.terminal import verdict_cell

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
            (verdict_cell(v) for v in d.verdicts if v.partition == p), "–")))
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
    """Remove runs from the index and delete the files aligntriage wrote in their folders (a file it did not write
    stays, and so does its folder)."""
    from aligntriage.store import RunIndex
    from aligntriage.store.folder import RunFolder

    index = RunIndex()
    rows = []
    for ref in refs:
        if not ref.isdigit():
            raise AligntriageError(f"'{ref}' is not a run id; rm takes the ids listed by 'aligntriage runs'")
        rows.append(index.get(int(ref)))
    for row in rows:
        folder = RunFolder(row["path"])
        for member in [folder, *folder.nested_runs()] if not keep_files and folder.path.is_dir() else []:
            pid = member.live()
            if pid is not None:
                raise AligntriageError(f"run {row['id']} is in use by another aligntriage process (pid {pid}) in "
                                       f"'{member.path}'; wait for it to finish")
    for row in rows:
        folder = RunFolder(row["path"])
        what = "index entry" if keep_files else f"index entry and the files aligntriage wrote in {row['path']}"
        if not yes and not typer.confirm(f"remove run {row['id']} ({row['scenario']}): {what}?"):
            continue
        kept = []
        if not keep_files and folder.path.is_dir():
            nested = [str(m.path.resolve()) for m in folder.nested_runs()]
            with folder.claim():
                kept = folder.remove()
            for path in nested:
                member = index.find_path(Path(path))
                if member is not None:
                    index.remove(member["id"])
        index.remove(row["id"])
        console.print(f"removed run {row['id']}")
        if kept:
            console.print(f"kept folder {row['path']}: it holds files aligntriage did not write "
                          f"({', '.join(kept[:5])}{', ...' if len(kept) > 5 else ''})", markup=False, highlight=False)


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
    if out is not None and to == "csv":
        from aligntriage.cli.main import writable_file

        writable_file(out, "--out")
    _, path = _run_ref(ref)
    target = formats[to](path, out)
    console.print(f"wrote {target}", markup=False, highlight=False)


@app.command("doctor")
@user_errors
def doctor(
    repair: bool = typer.Option(False, "--repair", help="Repair what can be repaired (see the plan it prints)."),
    accept_edits: bool = typer.Option(False, "--accept-edits", help="With --repair: record hand-edited files as "
                                      "they are now."),
) -> None:
    """Check the run index and every indexed run folder: damage (missing or changed files, a run.json that does
    not validate, index entries out of date or pointing nowhere) and leftovers of interrupted commands, with what
    --repair does about each. Exit code 0: nothing damaged; 1: something is."""
    from aligntriage.store.doctor import check_store, repair_findings

    findings = check_store()
    if accept_edits and not repair:
        raise AligntriageError("--accept-edits needs --repair")
    if not findings:
        console.print("doctor: the index and every run folder check out")
        return
    for finding in findings:
        console.print(f"{finding.severity}: {finding.where}: {finding.problem} — repair: {finding.repair}",
                      markup=False, highlight=False, soft_wrap=True)
    damaged = [f for f in findings if f.severity == "damage"]
    if not repair:
        console.print(f"doctor: {len(damaged)} damaged, {len(findings) - len(damaged)} leftover(s); "
                      "'aligntriage doctor --repair' applies the repairs above")
        raise typer.Exit(1 if damaged else 0)
    repaired, left = repair_findings(findings, accept_edits)
    console.print(f"doctor: repaired {repaired}; {len(left)} need you (listed above with what to do)")
    raise typer.Exit(1 if left else 0)
