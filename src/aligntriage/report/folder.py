"""What a run folder holds, read once for the report: the run record and how far training got, the typed
diagnoses (and every diagnosis file that could not be read, with the reason), training metrics and the scenario."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aligntriage.diagnose.engine import Diagnosis
from aligntriage.errors import AligntriageError
from aligntriage.store.files import read_csv, read_json
from aligntriage.store.folder import RunFolder

OLDER = "from an older aligntriage; diagnose again (aligntriage diagnose RUN_DIR)"


@dataclass(frozen=True)
class Skipped:
    """A diagnosis file the report could not use, and why."""

    file: str
    reason: str


def _older_format(data: dict) -> bool:
    """The untyped layout of aligntriage before typed records: evidence keyed by 'deploy' and 'train', verdicts
    holding a 'verdict' string."""
    evidence = data.get("evidence")
    verdicts = data.get("verdicts")
    nested = isinstance(evidence, dict) and {"deploy", "train"} <= evidence.keys()
    untyped = isinstance(verdicts, list) and any(isinstance(v, dict) and "verdict" in v for v in verdicts)
    return nested or untyped


def load_diagnosis(path: Path) -> Diagnosis | Skipped:
    """The typed diagnosis in ``path``, or why it cannot be read."""
    try:
        data = read_json(path, "diagnosis")
    except AligntriageError as exc:
        return Skipped(path.name, str(exc))
    if not isinstance(data, dict):
        return Skipped(path.name, "it does not hold a JSON object")
    if _older_format(data):
        return Skipped(path.name, OLDER)
    try:
        return Diagnosis.from_dict(data)
    except AligntriageError as exc:
        return Skipped(path.name, str(exc))


def training_progress(record: dict, alive=None) -> str | None:
    """None for a finished run (or one that never trained); else what was trained, as the report's banner says it:
    'incomplete: trained N of M steps'. ``alive`` answers whether a 'running' run's process still lives."""
    ppo = record.get("ppo") if isinstance(record.get("ppo"), dict) else None
    status = record.get("status", "complete")
    if ppo is None or status == "complete":
        return None
    done, total = int(record.get("steps") or 0), ppo.get("total_steps")
    done, total = (f"{n:,}" if isinstance(n, int) else str(n) for n in (done, total))  # as RunRecord says it
    if status == "running" and alive is not None and alive():
        return f"still training: {done} of {total} steps so far"
    why = {"interrupted": "training was interrupted; resume it with aligntriage train SCENARIO --resume --out "
                          "RUN_DIR",
           "running": "the training process stopped without finishing (killed?)"}.get(status, f"status '{status}'")
    return f"incomplete: trained {done} of {total} steps ({why})"


def _process_alive(run_dir: Path):
    """Whether the run index knows a live process training this folder (False when the index cannot say; an
    index that does not exist is not created)."""
    def alive() -> bool:
        import sqlite3

        from aligntriage.store.index import INDEX_FILE, RunIndex, default_store

        store = default_store()
        if not (store.is_file() or (store / INDEX_FILE).is_file()):
            return False
        try:
            row = RunIndex(store).find_path(run_dir)
        except (AligntriageError, OSError, sqlite3.Error):
            return False
        return bool(row) and row.get("status") == "running"

    return alive


class RunView:
    """What a run folder holds, read once."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        if not self.dir.is_dir():
            raise AligntriageError(f"run folder '{self.dir}' does not exist")
        record = read_json(self.dir / RunFolder.RUN, "run file")
        if not isinstance(record, dict):
            raise AligntriageError(f"run file '{self.dir / 'run.json'}' does not hold a JSON object")
        self.record = record
        self.kind = str(record.get("kind", "train"))
        self.progress = training_progress(record, _process_alive(self.dir))
        self.diagnoses: dict[str, Diagnosis] = {}
        self.skipped: list[Skipped] = []
        for path in sorted(self.dir.glob(RunFolder.DIAGNOSIS_PATTERN)):
            loaded = load_diagnosis(path)
            if isinstance(loaded, Skipped):
                self.skipped.append(loaded)
            else:
                self.diagnoses[loaded.dist] = loaded
        try:
            self.metrics = read_csv(self.dir / RunFolder.METRICS, "metrics file")
        except AligntriageError as exc:
            self.metrics = []
            self.skipped.append(Skipped(RunFolder.METRICS, str(exc)))
        self.scenario, self.scenario_error = self._scenario()
        if self.scenario is not None:
            order = list(self.scenario.distributions)
            self.diagnoses = dict(sorted(self.diagnoses.items(),
                                         key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))

    def _scenario(self):
        from aligntriage.worlds import get_scenario

        name, params = self.record.get("scenario"), self.record.get("params") or {}
        if not name and self.diagnoses:
            first = next(iter(self.diagnoses.values()))
            name, params = first.scenario, first.params
        if not name:
            return None, "the run names no scenario"
        try:
            return get_scenario(str(name), **params), None
        except AligntriageError as exc:
            return None, str(exc)

    @property
    def scenario_name(self) -> str:
        return str(self.record.get("scenario") or (self.scenario.name if self.scenario else "?"))

    def focus(self) -> Diagnosis | None:
        """The diagnosis the summary is about: ``deploy`` when present, else the first off-training one."""
        if not self.diagnoses:
            return None
        if "deploy" in self.diagnoses:
            return self.diagnoses["deploy"]
        return next((d for d in self.diagnoses.values() if d.dist != d.train_dist),
                    next(iter(self.diagnoses.values())))

    def describe(self, dist: str) -> str:
        if self.scenario is not None and dist in self.scenario.distributions:
            return self.scenario.distributions[dist].description
        return ""
