"""``aligntriage report``: write a run's self-contained HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from aligntriage.cli.app import app, console, user_errors


@app.command("report")
@user_errors
def report_command(
    run: str = typer.Argument(..., help="A run id (as listed by 'aligntriage runs') or a run folder."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write the report (default RUN_DIR/report.html)."),
) -> None:
    """Write one self-contained HTML file: verdicts and why, training curves, goal inference, where the agent goes,
    and episodes."""
    from aligntriage.report.html import write_report
    from aligntriage.store import resolve_run

    run_dir = resolve_run(run)
    with console.status("writing the HTML report…"):
        path = write_report(run_dir, out)
    console.print(f"report: {path}", markup=False, highlight=False, soft_wrap=True)
