"""The run index: one SQLite database (WAL mode) that lists every run folder with what a reader filters on.

The run folder is the truth (``run.json``, checkpoints, metrics, ``diagnosis-*.json``, figures); the index is a
summary of it that ``index_run`` rewrites from those files in one transaction. SQLite in WAL mode lets several
processes register runs at once: writers queue on the database lock (``busy_timeout``) instead of failing, and a
process killed mid-transaction leaves the previous committed state, never a torn row. Where the database lives:
``--store``, else ``$ALIGNTRIAGE_STORE``, else the user's data directory (``platformdirs``).

The schema carries a version (``PRAGMA user_version``); opening an older database applies the missing migrations
in order, inside one transaction each.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aligntriage.errors import AligntriageError

STORE_ENV = "ALIGNTRIAGE_STORE"
INDEX_FILE = "index.sqlite"

# Each entry migrates the schema from version i to i + 1.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        scenario TEXT NOT NULL,
        dist TEXT,
        seeds INTEGER,
        steps INTEGER,
        status TEXT NOT NULL,
        verdicts TEXT NOT NULL DEFAULT '{}',
        created TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    CREATE INDEX runs_scenario ON runs (scenario);
    """,
    """
    ALTER TABLE runs ADD COLUMN sweep_id INTEGER;
    ALTER TABLE runs ADD COLUMN pid INTEGER;
    CREATE TABLE sweeps (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL UNIQUE,
        scenario TEXT NOT NULL,
        grid TEXT NOT NULL,
        seeds INTEGER NOT NULL,
        status TEXT NOT NULL,
        created TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def default_store() -> Path:
    """Where the index lives unless ``--store`` says otherwise."""
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV])
    import platformdirs

    return Path(platformdirs.user_data_dir("aligntriage", appauthor=False))


def index_path(store: Path | str | None = None) -> Path:
    """The index database of a store folder (or the database file itself), without creating anything."""
    store = Path(store) if store is not None else default_store()
    return store if store.suffix in (".sqlite", ".db") else store / INDEX_FILE


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _running(row: dict) -> bool:
    """Whether a run the index saw as running still is: a process holds its folder's claim (or, for a folder
    this machine cannot see, its process is alive)."""
    from aligntriage.store.folder import RunFolder

    folder = RunFolder(row["path"])
    if folder.path.is_dir():
        return folder.live() is not None
    return _pid_alive(row.get("pid"))


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunIndex:
    """The index of runs (and sweeps) in one store folder. Reading needs only read access; writing a read-only
    index is a one-line error."""

    def __init__(self, store: Path | str | None = None):
        self.store = Path(store) if store is not None else default_store()
        self.path = index_path(self.store)
        if not self.path.exists():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise AligntriageError(f"cannot create the run store at '{self.path.parent}': {exc.strerror}") \
                    from None
        self._migrate()

    @property
    def writable(self) -> bool:
        target = self.path if self.path.exists() else self.path.parent
        return os.access(target, os.W_OK) and os.access(self.path.parent, os.W_OK)

    def _open(self) -> sqlite3.Connection:
        if self.writable:
            return sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        uri = self.path.resolve().as_uri()
        try:
            con = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60.0, isolation_level=None)
            con.execute("PRAGMA user_version").fetchone()
            return con
        except sqlite3.OperationalError:  # a WAL database in a read-only folder without its -shm file
            return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, timeout=60.0, isolation_level=None)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode; callers open ``BEGIN IMMEDIATE`` transactions for writes."""
        try:
            con = self._open()
        except sqlite3.Error as exc:
            raise AligntriageError(f"cannot open the run index '{self.path}': {exc}") from None
        try:
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA busy_timeout = 60000")
            if self.writable:
                con.execute("PRAGMA journal_mode = WAL")
                con.execute("PRAGMA synchronous = NORMAL")
            yield con
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc) or "read-only" in str(exc):
                raise AligntriageError(f"the run index '{self.path}' is read-only: listing runs works, but this "
                                       "command must register one; make it writable or use --store DIR") from None
            raise AligntriageError(f"the run index '{self.path}' cannot be used ({exc}); if it is damaged, check it "
                                   "with 'aligntriage doctor'") from None
        except sqlite3.DatabaseError as exc:
            raise AligntriageError(f"the run index '{self.path}' is unreadable ({exc}); move it aside and "
                                   "re-register runs with 'aligntriage runs --scan DIR'") from None
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def _migrate(self) -> None:
        """Apply missing migrations; an up-to-date index is only read, so a read-only one opens."""
        if self.path.exists() and self._version() == SCHEMA_VERSION:
            return
        with self.transaction() as con:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            for target in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        con.execute(statement)
                con.execute(f"PRAGMA user_version = {target + 1}")

    def _version(self) -> int:
        with self.connect() as con:
            version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise AligntriageError(f"the run index '{self.path}' has schema version {version}, newer than this "
                                   f"aligntriage understands ({SCHEMA_VERSION}); upgrade aligntriage")
        return version

    def integrity(self) -> str:
        """SQLite's own check of the database file: 'ok' or what is wrong."""
        with self.connect() as con:
            return "; ".join(row[0] for row in con.execute("PRAGMA integrity_check"))

    @property
    def version(self) -> int:
        return self._version()

    def upsert(self, summary: dict) -> int:
        """Insert or update the row of one run folder (keyed by its absolute path); returns the run id."""
        fields = {k: summary.get(k) for k in ("kind", "scenario", "dist", "seeds", "steps", "status", "sweep_id",
                                               "pid")}
        fields["verdicts"] = json.dumps(summary.get("verdicts") or {}, sort_keys=True)
        fields["path"] = str(Path(summary["path"]).resolve())
        fields["updated"] = _now()
        with self.transaction() as con:
            row = con.execute("SELECT id FROM runs WHERE path = ?", (fields["path"],)).fetchone()
            if row is None:
                fields["created"] = summary.get("created") or _now()
                names = ", ".join(fields)
                marks = ", ".join("?" for _ in fields)
                cur = con.execute(f"INSERT INTO runs ({names}) VALUES ({marks})", tuple(fields.values()))
                return int(cur.lastrowid)
            sets = ", ".join(f"{k} = ?" for k in fields)
            con.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*fields.values(), row["id"]))
            return int(row["id"])

    def runs(self, scenario: str | None = None, verdict: str | None = None, kind: str | None = None,
             sweep_id: int | None = None) -> list[dict]:
        query, args = "SELECT * FROM runs WHERE 1 = 1", []
        for column, value in (("scenario", scenario), ("kind", kind), ("sweep_id", sweep_id)):
            if value is not None:
                query += f" AND {column} = ?"
                args.append(value)
        with self.connect() as con:
            rows = [self._row(r) for r in con.execute(query + " ORDER BY id", args)]
        if verdict is not None:
            rows = [r for r in rows if verdict in _verdict_values(r["verdicts"])]
        return rows

    def get(self, run_id: int) -> dict:
        with self.connect() as con:
            row = con.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise AligntriageError(f"no run with id {run_id} in the index '{self.path}'; list them with "
                                   "'aligntriage runs'")
        return self._row(row)

    def find_path(self, path: Path) -> dict | None:
        with self.connect() as con:
            row = con.execute("SELECT * FROM runs WHERE path = ?", (str(Path(path).resolve()),)).fetchone()
        return None if row is None else self._row(row)

    def remove(self, run_id: int) -> dict:
        row = self.get(run_id)
        with self.transaction() as con:
            con.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        return row

    def upsert_sweep(self, path: Path, scenario: str, grid: dict, seeds: int, status: str) -> int:
        path = str(Path(path).resolve())
        with self.transaction() as con:
            row = con.execute("SELECT id FROM sweeps WHERE path = ?", (path,)).fetchone()
            if row is None:
                cur = con.execute("INSERT INTO sweeps (path, scenario, grid, seeds, status, created, updated) "
                                  "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                  (path, scenario, json.dumps(grid), seeds, status, _now(), _now()))
                return int(cur.lastrowid)
            con.execute("UPDATE sweeps SET status = ?, updated = ? WHERE id = ?", (status, _now(), row["id"]))
            return int(row["id"])

    def sweeps(self) -> list[dict]:
        with self.connect() as con:
            rows = con.execute("SELECT * FROM sweeps ORDER BY id").fetchall()
        return [dict(r, grid=json.loads(r["grid"])) for r in rows]

    @staticmethod
    def _row(row: sqlite3.Row) -> dict:
        data = dict(row)
        data["verdicts"] = json.loads(data["verdicts"] or "{}")
        if data["status"] == "running" and not _running(data):
            data["status"] = "incomplete"
        return data


def _verdict_values(verdicts: dict) -> set[str]:
    """Every verdict named in a run's summary ({dist: {partition: verdict}})."""
    return {v for per_dist in verdicts.values() for v in per_dist.values()}


def summarise_run(run_dir: Path) -> dict:
    """What the index keeps about a run folder, read from its files (a damaged run.json is a one-line error)."""
    from aligntriage.store.files import read_json
    from aligntriage.store.folder import RunFolder

    folder = RunFolder(run_dir)
    record = folder.record()
    verdicts = {}
    for dist, path in folder.diagnosis_files().items():
        try:
            diagnosis = read_json(path, "diagnosis")
            verdicts[str(diagnosis.get("dist", dist))] = {v["partition"]: v.get("kind", v.get("verdict"))
                                                          for v in diagnosis.get("verdicts", [])}
        except (AligntriageError, AttributeError, KeyError, TypeError):
            continue  # a damaged diagnosis shows no verdict; 'aligntriage doctor' reports it
    return {
        "path": folder.path,
        "kind": record.kind,
        "scenario": record.scenario,
        "dist": record.dist or (record.ppo.dist if record.ppo else None),
        "seeds": record.seeds or (record.ppo.seeds if record.ppo else None),
        "steps": record.steps or (record.ppo.total_steps if record.ppo else None),
        "status": record.status,
        "verdicts": verdicts,
        "created": record.created,
        "sweep_id": record.extra.get("sweep_id"),
        "pid": os.getpid() if record.status == "running" else None,
    }


def index_run(run_dir: Path, store: Path | str | None = None) -> int:
    """Register (or refresh) a run folder in the index; returns its id. Call it after every write that changes
    what the index shows (status, diagnoses)."""
    return RunIndex(store).upsert(summarise_run(run_dir))


def resolve_run(ref: str | int, store: Path | str | None = None) -> Path:
    """A run folder from a run id (as listed by ``aligntriage runs``) or from a folder path."""
    from aligntriage.store.folder import RunFolder

    text = str(ref)
    if text.isdigit():
        return Path(RunIndex(store).get(int(text))["path"])
    path = Path(text)
    if RunFolder(path).is_run():
        return path
    raise AligntriageError(f"'{text}' is neither a run id in the index nor a run folder; list runs with "
                           "'aligntriage runs'")
