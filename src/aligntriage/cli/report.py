"""``aligntriage report``: write a run's self-contained HTML report."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import typer

from aligntriage.cli.app import app, console, user_errors
from aligntriage.errors import AligntriageError
from aligntriage.store.folder import RunFolder


@app.command("report")
@user_errors
def report_command(
    run: str = typer.Argument(..., help="A run id (as listed by 'aligntriage runs') or a run folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write the report (default "
                                       f"RUN_DIR/{RunFolder.REPORT})."),
) -> None:
    """Write one self-contained HTML file: verdicts and why, training curves, goal inference, where the agent goes,
    and episodes."""
    from aligntriage.report.html import write_report
    from aligntriage.store import resolve_run

    run_dir = resolve_run(run)
    folder = RunFolder(run_dir)
    inside = out is None or out.resolve().parent == folder.path.resolve()
    if out is not None and out.is_dir():
        raise AligntriageError(f"--out '{out}' is a folder; give a file name")
    with folder.claim(new=False) if inside else nullcontext():
        with console.status("writing the HTML report…"):
            try:
                path = write_report(run_dir, out)
            except OSError as exc:
                raise AligntriageError(f"cannot write the report to '{out or run_dir}': {exc.strerror}") from None
        if inside:
            folder.adopt(path.name)
    console.print(f"report: {path}", markup=False, highlight=False, soft_wrap=True)
