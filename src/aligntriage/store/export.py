"""Training metrics out of a run folder, into the formats people's own tools read."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from aligntriage.errors import AligntriageError
from aligntriage.store.files import csv_bytes, write_atomic
from aligntriage.store.folder import RunFolder


def _rows(folder: RunFolder) -> list[dict]:
    if not folder.file(RunFolder.METRICS).is_file():
        raise AligntriageError(f"run '{folder.path}' ({folder.record().kind}) has no training metrics to export")
    rows = folder.read_metrics()
    for line, row in enumerate(rows, start=2):
        missing = [k for k in ("update", "seed", "steps") if not isinstance(row.get(k), int)]
        if missing:
            raise AligntriageError(f"metrics file '{folder.file(RunFolder.METRICS)}' is damaged at line {line}: "
                                   f"'{missing[0]}' is not an integer")
    return rows


@contextmanager
def _output(folder: RunFolder, out: Path | None, default: str):
    """The output path, with the run folder claimed (and the output recorded in its manifest) when it lies
    inside it."""
    target = Path(out) if out is not None else folder.file(default)
    if target.resolve().parent != folder.path.resolve():
        yield target
        return
    with folder.claim(new=False):
        yield target
        folder.adopt(target.name)


def export_csv(run_dir: Path, out: Path | None = None) -> Path:
    """One tidy CSV: a row per update and seed, with the scenario and training distribution on every row."""
    folder = RunFolder(run_dir)
    record = folder.record()
    extra = {"scenario": record.scenario, "dist": record.ppo.dist if record.ppo else record.dist}
    rows = [{**extra, **row} for row in _rows(folder)]
    with _output(folder, out, RunFolder.METRICS_EXPORT) as target:
        try:
            write_atomic(target, csv_bytes(rows))
        except OSError as exc:
            raise AligntriageError(f"cannot write '{target}': {exc.strerror}") from None
    return target


def export_tensorboard(run_dir: Path, out: Path | None = None) -> Path:
    """TensorBoard event files, one sub-folder per seed, x-axis = environment steps."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise AligntriageError("TensorBoard export needs tensorboardX: pip install 'aligntriage[tensorboard]'") \
            from None
    folder = RunFolder(run_dir)
    rows = _rows(folder)
    metrics = [k for k in rows[0] if k not in ("update", "seed", "steps")] if rows else []
    with _output(folder, out, RunFolder.TENSORBOARD) as target:
        writers = {}
        try:
            for row in rows:
                seed = row["seed"]
                if seed not in writers:
                    writers[seed] = SummaryWriter(logdir=str(target / f"seed-{seed}"))
                for name in metrics:
                    writers[seed].add_scalar(f"train/{name}", float(row[name]), row["steps"])
        finally:
            for writer in writers.values():
                writer.close()
    return target
