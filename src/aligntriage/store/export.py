"""Training metrics out of a run folder, into the formats people's own tools read."""

from __future__ import annotations

from pathlib import Path

from aligntriage.errors import AligntriageError
from aligntriage.store.files import read_csv, read_json, write_csv

METRICS = "metrics.csv"


def _rows(run_dir: Path) -> list[dict]:
    if not (run_dir / METRICS).is_file():
        kind = read_json(run_dir / "run.json", "run file").get("kind", "?")
        raise AligntriageError(f"run '{run_dir}' ({kind}) has no training metrics to export")
    return read_csv(run_dir / METRICS)


def export_csv(run_dir: Path, out: Path | None = None) -> Path:
    """One tidy CSV: a row per update and seed, with the scenario and training distribution on every row."""
    run_dir = Path(run_dir)
    record = read_json(run_dir / "run.json", "run file")
    out = Path(out) if out else run_dir / "metrics-export.csv"
    extra = {"scenario": record.get("scenario"), "dist": (record.get("ppo") or {}).get("dist")}
    write_csv(out, [{**extra, **row} for row in _rows(run_dir)])
    return out


def export_tensorboard(run_dir: Path, out: Path | None = None) -> Path:
    """TensorBoard event files, one sub-folder per seed, x-axis = environment steps."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise AligntriageError("TensorBoard export needs tensorboardX: pip install 'aligntriage[tensorboard]'") \
            from None
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir / "tensorboard"
    rows = _rows(run_dir)
    metrics = [k for k in rows[0] if k not in ("update", "seed", "steps")] if rows else []
    writers = {}
    try:
        for row in rows:
            seed = int(row["seed"])
            if seed not in writers:
                writers[seed] = SummaryWriter(logdir=str(out / f"seed-{seed}"))
            for name in metrics:
                writers[seed].add_scalar(f"train/{name}", float(row[name]), int(row["steps"]))
    finally:
        for writer in writers.values():
            writer.close()
    return out
