"""The persistent compilation cache: a CLI run fills it and the next one reads it back; the switches keep it empty."""

import os
import subprocess
import sys

from typer.testing import CliRunner

from aligntriage.cli.main import app


def cli(*args, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "aligntriage", *args], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> None:
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output


def entries(folder) -> set[str]:
    """The cached programs (beside them, files of last-access times)."""
    return {p.name for p in folder.glob("*-cache")} if folder.exists() else set()


def test_a_run_fills_the_cache_the_next_reads_it_and_the_switches_keep_it_off(tmp_path):
    on, env_off, flag_off = tmp_path / "on", tmp_path / "env-off", tmp_path / "flag-off"
    procs = [cli("show", "coinrun", ALIGNTRIAGE_COMPILE_CACHE_DIR=str(on)),
             cli("show", "coinrun", ALIGNTRIAGE_COMPILE_CACHE_DIR=str(env_off), ALIGNTRIAGE_COMPILE_CACHE="0"),
             cli("--no-compile-cache", "show", "coinrun", ALIGNTRIAGE_COMPILE_CACHE_DIR=str(flag_off))]
    for proc in procs:
        finish(proc)
    filled = entries(on)
    assert len(filled) >= 2  # the jitted sampler and the eager ops of a reset
    assert entries(env_off) == set() and entries(flag_off) == set()
    finish(cli("show", "coinrun", ALIGNTRIAGE_COMPILE_CACHE_DIR=str(on)))
    assert entries(on) == filled  # every program read back, none compiled and written again


def test_a_bad_switch_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("ALIGNTRIAGE_COMPILE_CACHE", "maybe")
    result = CliRunner().invoke(app, ["scenarios"])
    assert result.exit_code == 2
    assert result.output == "error: ALIGNTRIAGE_COMPILE_CACHE must be 0 (off) or 1 (on), got 'maybe'\n"


def test_prune_drops_the_programs_used_longest_ago_and_nothing_else(tmp_path):
    from aligntriage.compile_cache import prune

    for age, name in enumerate(["newest", "middle", "oldest"]):
        program = tmp_path / f"{name}-cache"
        program.write_bytes(b"x" * 100)
        (tmp_path / f"{name}-atime").write_bytes(b"t")
        os.utime(program, (1_000_000 - age * 1000, 1_000_000 - age * 1000))
    (tmp_path / "notes.txt").write_bytes(b"y" * 1000)  # not a cached program: never touched
    assert prune(tmp_path, limit=250) == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["middle-atime", "middle-cache", "newest-atime",
                                                          "newest-cache", "notes.txt"]
    assert prune(tmp_path, limit=200) == 0
    assert prune(tmp_path, limit=0) == 200 and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
