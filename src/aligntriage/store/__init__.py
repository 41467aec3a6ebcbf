"""Runs that last: atomic run folders (``files``) and the SQLite index over them (``index``)."""

from aligntriage.store.index import RunIndex, default_store, index_run, resolve_run

__all__ = ["RunIndex", "default_store", "index_run", "resolve_run"]
