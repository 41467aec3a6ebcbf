"""What every command shares: the typer app, the consoles, one-line user errors and ``KEY=VALUE`` parsing.

Commands live in one module per concern (``main``: scenarios, training, diagnosis; ``runs``: the run store;
``report``; ``sweep``; ``control``) and register themselves on ``app``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from aligntriage import compile_cache
from aligntriage.errors import AligntriageError
from aligntriage.store.files import number_or_text

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Train agents in small exactly-solvable worlds and tell outer misalignment, inner misalignment and "
    "capability failure apart under a declared partition of responsibility.",
)
console = Console()
errors = Console(stderr=True)


def user_errors(fn):
    """Report AligntriageError as one line and exit 2 instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AligntriageError as exc:
            errors.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def parse_params(items: list[str] | None) -> dict:
    """``KEY=VALUE`` level-parameter overrides; values are read as int, float or text."""
    params = {}
    for item in items or []:
        if "=" not in item:
            raise AligntriageError(f"level parameter '{item}' must look like KEY=VALUE")
        key, raw = item.split("=", 1)
        params[key] = number_or_text(raw)
    return params


ParamOption = typer.Option(None, "--param", "-p", help="Level parameter override KEY=VALUE (repeatable).")


@app.callback()
@user_errors
def common_options(
    store: Optional[Path] = typer.Option(None, "--store", envvar="ALIGNTRIAGE_STORE", show_envvar=True,
                                         help="Folder of the run index (default: the user's data directory)."),
    no_compile_cache: bool = typer.Option(
        False, "--no-compile-cache",
        help=f"Don't read or write JAX's persistent compilation cache (also {compile_cache.SWITCH}=0; "
        f"{compile_cache.FOLDER} moves it from the user's cache directory)."),
) -> None:
    """Point every command, and the processes it starts, at one run store and one compilation cache."""
    if store is not None:
        os.environ["ALIGNTRIAGE_STORE"] = str(store)
    compile_cache.setup(enabled=not no_compile_cache)
