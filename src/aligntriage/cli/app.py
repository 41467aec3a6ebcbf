"""What every command shares: the typer app, the consoles, one-line user errors and ``KEY=VALUE`` parsing.

Commands live in one module per concern (``main``: scenarios, training, diagnosis; ``runs``: the run store;
``report``; ``sweep``; ``control``) and register themselves on ``app``.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from aligntriage import compile_cache
from aligntriage.errors import AligntriageError
from aligntriage.store.files import number_or_text

# The click that typer runs on (newer typers vendor their own copy): its usage-error base class and Abort.
_CLICK_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class OneLineErrors(TyperGroup):
    """Usage errors (a missing argument, ``--steps abc``, a value out of an option's range) as one line and exit
    code 2, like every other user error, instead of click's usage box."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except _CLICK_ERROR as exc:
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError":
                console.print(ctx.get_help() if ctx is not None else str(exc), markup=False, highlight=False)
                sys.exit(0)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            message = " ".join(exc.format_message().split())
            raw = _raw_value(getattr(exc, "param", None), args[0] if args else kwargs.get("args"))
            if raw is not None and repr(raw) not in message and f"'{raw}'" not in message:
                message = f"{message.rstrip('.')}, got '{raw}'"
            errors.print(f"error: {message}{hint}", markup=False, highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            errors.print("aborted", markup=False, highlight=False)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def _raw_value(param, argv) -> str | None:
    """What the user typed for the option a usage error is about (so the message names the bad value)."""
    argv = list(argv if argv is not None else sys.argv[1:])
    for opt in getattr(param, "opts", None) or []:
        for i, token in enumerate(argv):
            if token == opt and i + 1 < len(argv):
                return argv[i + 1]
            if token.startswith(opt + "="):
                return token[len(opt) + 1:]
    return None


app = typer.Typer(
    cls=OneLineErrors,
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
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise AligntriageError(f"level parameter '{item}' must look like KEY=VALUE")
        if key in params:
            raise AligntriageError(f"level parameter '{key}' given twice ({params[key]} and {raw})")
        params[key] = number_or_text(raw.strip())
    return params


def at_least(*checks: tuple[str, int | None, int]) -> None:
    """(flag, value, lowest allowed) for each integer option; the first value out of range is a one-line error."""
    for flag, value, low in checks:
        if value is not None and value < low:
            raise AligntriageError(f"{flag} must be >= {low}, got {value}")


def writable_index() -> None:
    """Refuse up front, before any work or file, a command that must register a run in a read-only index."""
    from aligntriage.store import RunIndex
    from aligntriage.store.index import index_path

    path = index_path()
    if not path.exists():  # created when the first run registers; only its folder must be writable
        parent = next((p for p in path.parents if p.exists()), Path("/"))
        if not os.access(parent, os.W_OK):
            raise AligntriageError(f"cannot create the run index '{path}': '{parent}' is not writable; use --store "
                                   "DIR")
        return
    index = RunIndex()
    if not index.writable:
        raise AligntriageError(f"the run index '{index.path}' is read-only: listing runs works, but this command "
                               "must register one; make it writable or use --store DIR")


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
