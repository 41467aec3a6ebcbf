"""Run folders: the one home of every file name aligntriage writes inside a run folder, the exclusive claim a command
holds on its folder, the manifest of what aligntriage wrote there, and ``run.json`` read as a typed ``RunRecord``.

Claim. A command that writes into a run folder first takes an exclusive ``flock`` on ``.aligntriage.lock`` in it and
holds it until it ends, so two ``train --out dup`` cannot both run: the second is refused before it writes anything.
The kernel drops the lock when its process dies, even by SIGKILL, so a killed run never leaves a stale claim. Claims
are re-entrant within one process (``run`` claims its folder, then training claims it again).

Manifest. ``.aligntriage-manifest.json`` lists each file aligntriage wrote with its SHA-256 and size (and the
sub-folders it made: a sweep's points, a TensorBoard export). ``rm`` deletes only those, then the folder if nothing
else is left, never a file a user put there. A write records the new checksum next to the previous one before the
file is replaced and drops the previous one after, so a process killed at any point leaves every file matching one
of the two: ``doctor`` tells an interrupted write (tidied by ``--repair``) from a damaged or edited file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import fnmatch
import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aligntriage.errors import AligntriageError
from aligntriage.store import files

RUN_KINDS = ("train", "run", "diagnose", "control", "sweep", "mitigate")
STATUSES = ("running", "interrupted", "complete", "failed")
TRAINING_KINDS = ("train", "run")
MANIFEST_VERSION = 1


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def scenario_ref(name: str) -> str:
    """How a run records its scenario: a built-in's name, or a user scenario file's absolute path, so the run can
    be diagnosed and resumed from any working directory."""
    return str(Path(name).expanduser().resolve()) if name.endswith(".py") else name


@dataclass(frozen=True)
class RunRecord:
    """``run.json``, typed. Reading validates every field a command relies on and names the first bad one; nothing
    missing is ever filled in with a default. Fields this type does not model are kept verbatim in ``extra``."""

    kind: str
    scenario: str
    params: dict[str, Any]
    status: str
    created: str
    ppo: Any = None
    """The PPOConfig of a training run (kinds train and run); None otherwise."""
    update: int | None = None
    steps: int | None = None
    dist: str | None = None
    policy: str | None = None
    seeds: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, kind: str, scenario: str, params: dict | None = None, **fields_) -> RunRecord:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        extra = {k: v for k, v in fields_.items() if k not in known}
        typed = {k: v for k, v in fields_.items() if k in known}
        typed.setdefault("status", "running" if kind in TRAINING_KINDS else "complete")
        typed.setdefault("created", now())
        if kind in TRAINING_KINDS:
            typed.setdefault("update", 0)
        return cls(kind=kind, scenario=scenario_ref(scenario), params=dict(params or {}), extra=extra, **typed)

    def replace(self, **changes) -> RunRecord:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = {"kind": self.kind, "scenario": self.scenario, "params": dict(self.params), "status": self.status,
                "created": self.created, **self.extra}
        if self.ppo is not None:
            data["ppo"] = self.ppo.to_dict()
        for name in ("update", "steps", "dist", "policy", "seeds"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        return data

    @property
    def training(self) -> bool:
        return self.kind in TRAINING_KINDS

    @property
    def steps_done(self) -> int:
        return (self.update or 0) * self.ppo.steps_per_update if self.ppo is not None else 0

    @property
    def steps_total(self) -> int:
        return self.ppo.num_updates * self.ppo.steps_per_update if self.ppo is not None else 0

    def incomplete_note(self, live: bool = False) -> str | None:
        """``incomplete: trained N of M steps`` for a training run that did not finish (None when it did)."""
        if not self.training or self.status == "complete":
            return None
        state = {"running": "still training" if live else "incomplete", "interrupted": "incomplete",
                 "failed": "failed"}[self.status]
        return f"{state}: trained {self.steps_done:,} of {self.steps_total:,} steps"

    @classmethod
    def from_dict(cls, data, where: str) -> RunRecord:
        """Validate a parsed ``run.json``; ``where`` names the file in the one-line error."""
        if not isinstance(data, dict):
            raise AligntriageError(f"{where} does not hold a JSON object")
        check = _Fields(data, where)
        kind = check.choice("kind", RUN_KINDS)
        scenario = check.text("scenario")
        params = check.mapping("params")
        for key, value in params.items():
            if isinstance(value, (dict, list)) or value is None:
                raise AligntriageError(f"{where}: field 'params.{key}' must be a number or text, got {value!r}")
        status = check.choice("status", STATUSES)
        created = check.text("created")
        ppo = update = None
        if kind in TRAINING_KINDS:
            ppo = _ppo_config(check.mapping("ppo"), where)
            update = check.integer("update", low=0)
            if update > ppo.num_updates:
                raise AligntriageError(f"{where}: field 'update' is {update}, more than the run's "
                                       f"{ppo.num_updates} updates")
        steps = check.integer("steps", low=0, optional=True)
        dist = check.text("dist", optional=True)
        policy = check.text("policy", optional=True)
        seeds = check.integer("seeds", low=1, optional=True)
        check.integer("sweep_id", low=1, optional=True)
        modelled = {"kind", "scenario", "params", "status", "created", "ppo", "update", "steps", "dist", "policy",
                    "seeds"}
        extra = {k: v for k, v in data.items() if k not in modelled}
        return cls(kind, scenario, params, status, created, ppo, update, steps, dist, policy, seeds, extra)


class _Fields:
    """Typed access to one JSON object's fields, each failure a one-line error naming the field."""

    def __init__(self, data: dict, where: str, prefix: str = ""):
        self.data, self.where, self.prefix = data, where, prefix

    def _get(self, name: str, optional: bool):
        if name not in self.data or (optional and self.data[name] is None):
            if optional:
                return None
            raise AligntriageError(f"{self.where}: field '{self.prefix}{name}' is missing")
        return self.data[name]

    def _bad(self, name: str, what: str, value) -> AligntriageError:
        return AligntriageError(f"{self.where}: field '{self.prefix}{name}' must be {what}, got {value!r}")

    def text(self, name: str, optional: bool = False) -> str | None:
        value = self._get(name, optional)
        if value is not None and (not isinstance(value, str) or not value):
            raise self._bad(name, "non-empty text", value)
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        value = self._get(name, False)
        if value not in choices:
            raise self._bad(name, f"one of {', '.join(choices)}", value)
        return value

    def integer(self, name: str, low: int | None = None, optional: bool = False) -> int | None:
        value = self._get(name, optional)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
            raise self._bad(name, "an integer" + (f" >= {low}" if low is not None else ""), value)
        return value

    def number(self, name: str) -> float:
        value = self._get(name, False)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._bad(name, "a number", value)
        return value

    def boolean(self, name: str) -> bool:
        value = self._get(name, False)
        if not isinstance(value, bool):
            raise self._bad(name, "true or false", value)
        return value

    def mapping(self, name: str) -> dict:
        value = self._get(name, False)
        if not isinstance(value, dict):
            raise self._bad(name, "a JSON object", value)
        return value


def _ppo_config(data: dict, where: str):
    """Every PPOConfig field present and of its type: a run's training settings are never filled in by defaults.
    The one exception is the curriculum, which came later: a run.json without it trained with domain randomisation
    (``dr``), and a dr run leaves out the settings only a curator reads."""
    from aligntriage.train.ppo import CURATOR_FIELDS, PPOConfig

    check = _Fields(data, where, "ppo.")
    values = {}
    curated = data.get("curriculum", "dr") != "dr"
    for f in dataclasses.fields(PPOConfig):
        if f.name not in data and (f.name == "curriculum" or (f.name in CURATOR_FIELDS and not curated)):
            continue
        kind = type(f.default)
        if kind is bool:
            values[f.name] = check.boolean(f.name)
        elif kind is int:
            values[f.name] = check.integer(f.name)
        elif kind is float:
            values[f.name] = float(check.number(f.name))
        else:
            values[f.name] = check.text(f.name)
    unknown = sorted(set(data) - set(values))
    if unknown:
        raise AligntriageError(f"{where}: unknown field 'ppo.{unknown[0]}'")
    try:
        return PPOConfig(**values).validate()
    except AligntriageError as exc:
        raise AligntriageError(f"{where}: field 'ppo' is invalid: {exc}") from None


@dataclass(frozen=True)
class Finding:
    """One thing ``doctor`` found in a run folder or the index: ``damage`` (data is missing or wrong) or a
    ``leftover`` of an interrupted command (harmless; ``--repair`` tidies it), with what repairing does."""

    where: str
    problem: str
    repair: str
    severity: str = "damage"
    fix: Any = None
    """What ``repair`` runs (None: nothing can be repaired automatically)."""
    accept: Any = None
    """What ``repair --accept-edits`` runs for a file changed by hand."""


_HELD: dict[str, int] = {}
"""The claims this process holds: resolved folder path -> lock file descriptor (claims are re-entrant)."""


class RunFolder:
    """One run folder: the names of its files, the claim on it, its manifest, and its record."""

    RUN = "run.json"
    CHECKPOINT = "checkpoint.msgpack"
    PARAMS = "params.msgpack"
    METRICS = "metrics.csv"
    REPORT = "report.html"
    CONTROL = "control.json"
    PARETO = "control-pareto.png"
    SWEEP = "sweep.json"
    MITIGATION = "mitigation.json"
    MITIGATION_FIGURE = "mitigation.png"
    SUMMARY = "summary.json"
    SUMMARY_CSV = "summary.csv"
    POINT_SUMMARY = "point-summary.json"
    METRICS_EXPORT = "metrics-export.csv"
    TENSORBOARD = "tensorboard"
    MANIFEST = ".aligntriage-manifest.json"
    LOCK = ".aligntriage.lock"
    DIAGNOSIS_PATTERN = "diagnosis-*.json"
    SWEEP_FIGURE_PATTERN = "sweep-*.png"
    OWN = (LOCK, MANIFEST)
    KNOWN_FILES = (RUN, CHECKPOINT, PARAMS, METRICS, REPORT, CONTROL, PARETO, SWEEP, MITIGATION, MITIGATION_FIGURE,
                   SUMMARY, SUMMARY_CSV,
                   POINT_SUMMARY, METRICS_EXPORT)
    KNOWN_PATTERNS = (DIAGNOSIS_PATTERN, SWEEP_FIGURE_PATTERN)

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder('{self.path}')"

    # names ----------------------------------------------------------------------------------------------------------

    @staticmethod
    def diagnosis_name(dist: str) -> str:
        return f"diagnosis-{dist}.json"

    @staticmethod
    def sweep_figure_name(knob: str) -> str:
        return f"sweep-{knob}.png"

    def file(self, name: str) -> Path:
        return self.path / name

    def diagnosis_files(self) -> dict[str, Path]:
        """{dist: path} of the saved diagnoses, by file name."""
        return {p.stem.removeprefix("diagnosis-"): p for p in sorted(self.path.glob(self.DIAGNOSIS_PATTERN))}

    @classmethod
    def known(cls, name: str) -> bool:
        """Whether a name is one aligntriage writes in a run folder (the fallback for folders without a manifest)."""
        return name in cls.KNOWN_FILES or any(fnmatch.fnmatchcase(name, p) for p in cls.KNOWN_PATTERNS)

    @staticmethod
    def temp_owner(name: str) -> str | None:
        """The file a leftover temporary file of ``files.write_atomic`` was going to replace (None: not one)."""
        if name.startswith(".") and name.endswith(".tmp") and name.count(".") >= 3:
            return name[1:].rsplit(".", 2)[0]
        return None

    # state ----------------------------------------------------------------------------------------------------------

    def is_run(self) -> bool:
        return self.file(self.RUN).is_file()

    def foreign_entries(self) -> list[str]:
        """Entries that are not aligntriage's own bookkeeping (lock, manifest): what makes a folder non-empty."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if p.name not in self.OWN)

    def live(self) -> int | None:
        """The pid of another process holding the claim on this folder, else None."""
        lock = self.file(self.LOCK)
        if self._key() in _HELD or not lock.is_file():
            return None
        try:
            fd = os.open(lock, os.O_RDONLY)
        except OSError:
            return None
        try:
            return None if _try_lock(fd, shared=True) else (_read_pid(lock) or -1)
        finally:
            os.close(fd)

    def _key(self) -> str:
        return str(self.path.resolve())

    # claim ----------------------------------------------------------------------------------------------------------

    @contextmanager
    def claim(self, new: bool | None = None, flag: str = "--out") -> Iterator[RunFolder]:
        """Hold the folder exclusively for the block. ``new=True``: the folder must be new, empty, or hold only
        aligntriage's bookkeeping; ``new=False``: it must hold a run; ``None``: either. A refused claim writes
        nothing; a claim that created the folder removes it again if the block left nothing in it."""
        key = self._key()
        if key in _HELD:
            yield self
            return
        self.check_claimable(new, flag)
        created_dir, created_lock = not self.path.exists(), not self.file(self.LOCK).exists()
        fd = self._lock(flag)
        try:
            self.check_claimable(new, flag)  # again, now that no one else can change it
        except BaseException:
            _unlock(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD[key] = fd
        try:
            yield self
        finally:
            del _HELD[key]
            if created_lock and not self.foreign_entries() and not self.has_manifest():
                self.file(self.LOCK).unlink(missing_ok=True)
                if created_dir:
                    try:
                        self.path.rmdir()
                    except OSError:
                        pass
            _unlock(fd)

    def _lock(self, flag: str) -> int:
        """An exclusive lock on the lock file, re-opened if a releasing holder unlinked the file meanwhile."""
        lock = self.file(self.LOCK)
        while True:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise AligntriageError(f"cannot write the run folder '{self.path}': {exc.strerror}") from None
            if not _try_lock(fd):
                pid = _read_pid(lock)
                os.close(fd)
                raise AligntriageError(f"run folder '{self.path}' is in use by another aligntriage process"
                                       f"{f' (pid {pid})' if pid else ''}; wait for it to finish or choose another "
                                       f"{flag}")
            try:
                if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            _unlock(fd)

    def check_claimable(self, new: bool | None, flag: str = "--out") -> None:
        """The one-line error ``claim`` would give now (commands call it early, before any output)."""
        if self.path.exists() and not self.path.is_dir():
            raise AligntriageError(f"{flag} '{self.path}' is a file, not a folder")
        if new is True:
            if self.is_run():
                raise AligntriageError(f"run folder '{self.path}' already holds a run; choose another {flag}")
            others = self.foreign_entries()
            if others:
                raise AligntriageError(f"{flag} '{self.path}' is not empty and holds no run (it has "
                                       f"{', '.join(others[:3])}{', ...' if len(others) > 3 else ''}); choose a new "
                                       "or empty folder")
        elif new is False and not self.is_run():
            raise AligntriageError(f"'{self.path}' holds no run (no {self.RUN})")

    def _held(self) -> None:
        if self._key() not in _HELD:
            raise RuntimeError(f"{self}: write without a claim; wrap it in 'with folder.claim():'")

    # record ---------------------------------------------------------------------------------------------------------

    def record(self) -> RunRecord:
        if not self.path.is_dir():
            raise AligntriageError(f"run folder '{self.path}' does not exist")
        path = self.file(self.RUN)
        return RunRecord.from_dict(files.read_json(path, "run file"), f"run file '{path}'")

    def write_record(self, record: RunRecord) -> None:
        self.write_json(self.RUN, record.to_dict())

    def read_metrics(self) -> list[dict]:
        """``metrics.csv`` rows, each cell checked to be a number (a damaged file is a one-line error)."""
        path = self.file(self.METRICS)
        rows = files.read_csv(path, "metrics file")
        for line, row in enumerate(rows, start=2):
            for key, value in row.items():
                if isinstance(value, str):
                    raise AligntriageError(f"metrics file '{path}' is damaged at line {line}: '{key}' is "
                                           f"{value!r}, not a number")
        return rows

    # writing --------------------------------------------------------------------------------------------------------

    def write_many(self, contents: dict[str, bytes]) -> None:
        """Write several files atomically, each recorded in the manifest (see the module docstring)."""
        self._held()
        manifest = self.manifest()
        entries = manifest["files"]
        for name, data in contents.items():
            previous = entries.get(name, {}).get("sha256")
            entries[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "previous": previous}
        self._write_manifest(manifest)
        for name, data in contents.items():
            files.write_atomic(self.file(name), data)
        for name in contents:
            entries[name].pop("previous", None)
        self._write_manifest(manifest)

    def write(self, name: str, data: bytes) -> None:
        self.write_many({name: data})

    def write_json(self, name: str, data) -> None:
        self.write_many({name: files.json_bytes(data)})

    def write_csv(self, name: str, rows: list[dict]) -> None:
        self.write_many({name: files.csv_bytes(rows)})

    def adopt(self, name: str) -> None:
        """Record a file or sub-folder that another writer made in this folder (a report, a point's run folder)."""
        self._held()
        manifest = self.manifest()
        path = self.file(name)
        if path.is_dir():
            if name not in manifest["folders"]:
                manifest["folders"].append(name)
                manifest["folders"].sort()
        elif path.is_file():
            data = path.read_bytes()
            manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        else:
            return
        self._write_manifest(manifest)

    def manifest(self) -> dict:
        path = self.file(self.MANIFEST)
        empty = {"version": MANIFEST_VERSION, "files": {}, "folders": []}
        if not path.is_file():
            return empty
        data = files.read_json(path, "manifest")
        if not (isinstance(data, dict) and isinstance(data.get("files"), dict)
                and isinstance(data.get("folders"), list)):
            raise AligntriageError(f"manifest '{path}' is damaged; 'aligntriage doctor --repair' rebuilds it")
        return data

    def _write_manifest(self, manifest: dict) -> None:
        files.write_atomic(self.file(self.MANIFEST), files.json_bytes(manifest))

    def has_manifest(self) -> bool:
        return self.file(self.MANIFEST).is_file()

    # rm -------------------------------------------------------------------------------------------------------------

    def owned(self) -> tuple[list[str], list[str]]:
        """(files, sub-folders) aligntriage wrote here: the manifest's, plus known names and leftover temporary
        files of known names (a folder from before manifests, or a write interrupted before it was recorded)."""
        try:
            manifest = self.manifest()
        except AligntriageError:
            manifest = {"files": {}, "folders": []}
        names = set(manifest["files"])
        folders = {f for f in manifest["folders"] if (self.path / f).is_dir()}
        for entry in self.path.iterdir() if self.path.is_dir() else ():
            owner = self.temp_owner(entry.name)
            if entry.is_file() and (self.known(entry.name) or (owner and (self.known(owner) or owner in names
                                                                          or owner == self.MANIFEST))):
                names.add(entry.name)
            elif entry.is_dir() and not self.has_manifest() and entry.name == self.TENSORBOARD:
                folders.add(entry.name)
            elif entry.is_dir() and not self.has_manifest() and RunFolder(entry).is_run() \
                    and self._record_kind() == "sweep":
                folders.add(entry.name)
        return sorted(n for n in names if (self.path / n).is_file()), sorted(folders)

    def _record_kind(self) -> str | None:
        try:
            return files.read_json(self.file(self.RUN), "run file").get("kind")
        except (AligntriageError, AttributeError):
            return None

    def nested_runs(self) -> list[RunFolder]:
        """Run folders inside this one that it owns (a sweep's points), recursively."""
        _, folders = self.owned()
        out = []
        for name in folders:
            sub = RunFolder(self.path / name)
            if sub.is_run():
                out.extend([sub, *sub.nested_runs()])
        return out

    def remove(self) -> list[str]:
        """Delete what aligntriage wrote here (nested run folders included), then the folder if nothing else is
        left; returns the entries kept because aligntriage did not write them."""
        if not self.path.is_dir():
            return []
        self._held()
        names, folders = self.owned()
        for name in folders:
            sub = RunFolder(self.path / name)
            if sub.is_run():
                with sub.claim(new=False):
                    sub.remove()
            elif name == self.TENSORBOARD or name in self.manifest().get("folders", []):
                shutil.rmtree(self.path / name, ignore_errors=True)
        for name in names:
            if name != self.MANIFEST:
                (self.path / name).unlink(missing_ok=True)
        self.file(self.MANIFEST).unlink(missing_ok=True)
        self.file(self.LOCK).unlink(missing_ok=True)
        kept = self.foreign_entries()
        if not kept:
            try:
                self.path.rmdir()
            except OSError:
                kept = self.foreign_entries()
        return kept

    # doctor ---------------------------------------------------------------------------------------------------------

    def check(self) -> list[Finding]:
        """What is wrong in this folder: damage (a missing or changed file, a run.json that does not validate) and
        leftovers of interrupted writes, each with what ``repair`` would do."""
        where = str(self.path)
        if not self.path.is_dir():
            return [Finding(where, "the run folder is gone", "drop its index entry")]
        findings: list[Finding] = []
        try:
            self.record()
        except AligntriageError as exc:
            findings.append(Finding(where, str(exc), "none possible: restore run.json, or drop the run with "
                                    "'aligntriage rm ID --keep-files'"))
        live = self.live() is not None
        try:
            manifest = self.manifest()
        except AligntriageError as exc:
            return findings + [Finding(where, str(exc), "rebuild the manifest from the files present",
                                       fix=self._rebuild_manifest)]
        if not self.has_manifest():
            if self.foreign_entries():
                findings.append(Finding(where, "no manifest (a run folder from an older aligntriage)",
                                        "write one listing the files aligntriage names", "leftover",
                                        self._rebuild_manifest))
            return findings
        for name, entry in sorted(manifest["files"].items()):
            path = self.file(name)
            previous = entry.get("previous", "absent")
            if not path.is_file():
                if previous is None:
                    findings.append(Finding(f"{where}/{name}", "a first write was interrupted before the file "
                                            "appeared", "drop it from the manifest", "leftover",
                                            self._settle(name, None)))
                else:
                    findings.append(Finding(f"{where}/{name}", "missing: aligntriage wrote it and it is gone",
                                            "none possible: restore it from a backup"))
                continue
            digest = _sha256(path)
            if digest == entry["sha256"]:
                if previous != "absent" and not live:
                    findings.append(Finding(f"{where}/{name}", "a write finished but was not marked done",
                                            "mark it done", "leftover", self._settle(name, entry["sha256"])))
            elif previous not in ("absent", None) and digest == previous:
                if not live:
                    findings.append(Finding(f"{where}/{name}", "a write was interrupted; the previous version is "
                                            "intact", "keep the previous version", "leftover",
                                            self._settle(name, previous)))
            elif not live:
                findings.append(Finding(f"{where}/{name}", "changed since aligntriage wrote it (damaged or "
                                        "edited by hand)", "none possible: restore it, or accept the edit with "
                                        "'aligntriage doctor --repair --accept-edits'",
                                        accept=lambda n=name: self.accept(n)))
        if not live:
            for entry in sorted(self.path.iterdir()):
                owner = self.temp_owner(entry.name)
                if entry.is_file() and owner is not None:
                    findings.append(Finding(f"{where}/{entry.name}", f"temporary file of an interrupted write of "
                                            f"{owner}", "delete it", "leftover",
                                            lambda p=entry: p.unlink(missing_ok=True)))
        for name in manifest["folders"]:
            sub = RunFolder(self.path / name)
            if sub.path.is_dir() and sub.is_run():
                findings.extend(sub.check())
        return findings

    def accept(self, name: str) -> None:
        """Record a file's current bytes as what aligntriage wrote (``doctor --accept-edits``)."""
        with self.claim():
            self.adopt(name)

    def _settle(self, name: str, digest: str | None):
        def fix() -> None:
            with self.claim():
                manifest = self.manifest()
                if digest is None:
                    manifest["files"].pop(name, None)
                else:
                    manifest["files"][name] = {"sha256": digest, "size": self.file(name).stat().st_size}
                self._write_manifest(manifest)
        return fix

    def _rebuild_manifest(self) -> None:
        with self.claim():
            self.file(self.MANIFEST).unlink(missing_ok=True)
            names, folders = self.owned()
            manifest = {"version": MANIFEST_VERSION, "files": {}, "folders": folders}
            for name in names:
                if self.temp_owner(name) is None:
                    data = self.file(name).read_bytes()
                    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            self._write_manifest(manifest)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _try_lock(fd: int, shared: bool = False) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    if shared:
        fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def _unlock(fd: int) -> None:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_pid(lock: Path) -> int | None:
    try:
        text = lock.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
