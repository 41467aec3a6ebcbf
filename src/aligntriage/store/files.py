"""Atomic, pickle-free files: JSON, CSV and msgpack pytrees.

Every write goes to a temporary file in the same folder and is moved into place with ``os.replace``, so a run
killed mid-write leaves the previous version intact, never a half-written file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from flax import serialization

from aligntriage.errors import AligntriageError


def write_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_bytes(data) -> bytes:
    """The bytes ``write_json`` writes: sorted keys, so the same data always gives the same file."""
    return (json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n").encode()


def write_json(path: Path, data) -> None:
    write_atomic(path, json_bytes(data))


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def read_json(path: Path, what: str = "file"):
    path = Path(path)
    if not path.is_file():
        raise AligntriageError(f"{what} '{path}' does not exist")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AligntriageError(f"{what} '{path}' is not valid JSON: {exc}") from exc


def csv_bytes(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue().encode()


def write_csv(path: Path, rows: list[dict]) -> None:
    write_atomic(path, csv_bytes(rows))


def read_csv(path: Path, what: str = "CSV file") -> list[dict]:
    """Rows of a CSV file with typed cells; a missing file is no rows, a damaged one (not text, a row with more or
    fewer cells than the header) an AligntriageError naming the line."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise AligntriageError(f"{what} '{path}' is damaged: not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="\0extra")
    rows = []
    try:
        for row in reader:
            if "\0extra" in row or None in row.values():
                width = len(reader.fieldnames or [])
                raise AligntriageError(f"{what} '{path}' is damaged at line {reader.line_num}: expected {width} "
                                       "cells like its header")
            rows.append({k: number_or_text(v) for k, v in row.items()})
    except csv.Error as exc:
        raise AligntriageError(f"{what} '{path}' is damaged at line {reader.line_num}: {exc}") from None
    return rows


def number_or_text(text: str):
    """A typed value (CSV cell, ``KEY=VALUE`` option) read as int, else float, else left as text."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


def tree_bytes(tree) -> bytes:
    """A pytree of arrays as msgpack (flax serialization): no code is ever executed on load."""
    return serialization.to_bytes(tree)


def save_tree(path: Path, tree) -> None:
    write_atomic(path, tree_bytes(tree))


def load_tree(path: Path, template=None):
    """Load a msgpack pytree, restored into ``template``'s structure when given, else as nested dicts."""
    path = Path(path)
    if not path.is_file():
        raise AligntriageError(f"checkpoint '{path}' does not exist")
    data = path.read_bytes()
    try:
        state = serialization.msgpack_restore(data)
        return state if template is None else serialization.from_state_dict(template, state)
    except Exception as exc:  # msgpack and flax raise many types on damaged input
        raise AligntriageError(f"checkpoint '{path}' is corrupt or from another configuration: "
                               f"{type(exc).__name__}") from exc
