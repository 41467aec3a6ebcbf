"""JAX's persistent compilation cache, on by default, so a program compiled by one run is read back by the next.

The CLI sets it up once when it starts: in the user's cache directory (``platformdirs``), or in
``$ALIGNTRIAGE_COMPILE_CACHE_DIR``; ``--no-compile-cache`` or ``ALIGNTRIAGE_COMPILE_CACHE=0`` turn it off. Every
compile is cached, however small or quick (JAX's defaults skip those under a second, which here is most of them).
The choice is also written to the environment (``JAX_*`` variables included), so the processes a command starts
(Ray workers, subprocesses) share the cache or stay off it. A cached program is the program XLA would compile
again, so nothing computed changes.

The folder is kept under ``MAX_BYTES`` by ``prune``, once when the cache is set up, dropping the programs used
longest ago. JAX's own size limit is left off: it rescans and locks the whole folder on every compile and rewrites
an access-time file on every read, which cost a diagnosis seconds once the folder held a few hundred programs.
"""

from __future__ import annotations

import os
from pathlib import Path

from aligntriage.errors import AligntriageError

SWITCH = "ALIGNTRIAGE_COMPILE_CACHE"
FOLDER = "ALIGNTRIAGE_COMPILE_CACHE_DIR"
MAX_BYTES = 1 << 30
"""Past this, at set-up, the least recently used programs are dropped (a run of every scenario writes tens of MB)."""
SUFFIXES = ("-cache", "-atime")
"""The files JAX writes in the folder: programs, and their access times (written only while JAX's limit is on)."""
_SETTINGS = {  # jax config name -> value when on; each is also exported as its JAX_* environment variable
    "jax_enable_compilation_cache": True,
    "jax_persistent_cache_min_compile_time_secs": 0.0,
    "jax_persistent_cache_min_entry_size_bytes": -1,
    "jax_compilation_cache_max_size": -1,  # no rescan per compile: ``prune`` keeps the folder bounded instead
}


def default_folder() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("aligntriage", appauthor=False)) / "jax-compile"


def configured_folder(enabled: bool = True) -> Path | None:
    """The folder the cache would use, from the environment; None when it is turned off."""
    switch = os.environ.get(SWITCH, "1").strip()
    if switch not in ("0", "1"):
        raise AligntriageError(f"{SWITCH} must be 0 (off) or 1 (on), got '{switch}'")
    if not enabled or switch == "0":
        return None
    return Path(os.environ.get(FOLDER) or default_folder()).expanduser()


def setup(enabled: bool = True) -> Path | None:
    """Turn JAX's persistent cache on in the configured folder (or off); returns the folder, None when off."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    folder = configured_folder(enabled)
    if folder is None:
        os.environ[SWITCH] = "0"
        os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"
        jax.config.update("jax_enable_compilation_cache", False)
        compilation_cache.reset_cache()
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AligntriageError(f"cannot use '{folder}' for the compilation cache ({exc.strerror}); "
                               f"set {FOLDER} to another folder or {SWITCH}=0") from None
    prune(folder)
    os.environ[FOLDER] = str(folder)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(folder)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    for name, value in _SETTINGS.items():
        os.environ[name.upper()] = str(value).lower()
        jax.config.update(name, value)
    compilation_cache.reset_cache()  # a compile before this point must not have settled the cache as unused
    return folder


def prune(folder: Path, limit: int = MAX_BYTES) -> int:
    """Delete the cached programs used longest ago (by access, else modification time) until the folder's programs
    fit in ``limit`` bytes, each with its access-time file. Touches no other file; another process deleting one
    first is fine. Returns the bytes freed."""
    programs = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(SUFFIXES[0]) and entry.is_file(follow_symlinks=False):
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                programs.append((max(info.st_atime, info.st_mtime), info.st_size, entry.path))
    total, freed = sum(size for _, size, _ in programs), 0
    for _, size, path in sorted(programs):
        if total <= limit:
            break
        for name in (path, path[: -len(SUFFIXES[0])] + SUFFIXES[1]):
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass
        total, freed = total - size, freed + size
    return freed
