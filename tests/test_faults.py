"""The fault and bad-input catalogue (issue 16): every bad input, damaged file and interrupted command a new user or
a reliability tester tried, as one parametrised case each.

Every case runs one command in a sandbox (its own run index, working directory and, where it needs one, a copy of
one tiny trained run shared by the session) and asserts three things: the exit code; one line naming the bad value
(for an error: the only line printed, starting with ``error:``); and that no file outside the ones the command owns
changed (SHA-256 of every file in the sandbox before and after). The groups follow the issue: data loss, silent
wrong behaviour, tracebacks, index recovery, and what already held. README's reliability section gives the counts.
"""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aligntriage.cli.main import app
from aligntriage.store import RunIndex, index_run
from aligntriage.store.files import load_tree
from aligntriage.store.folder import RunFolder
from aligntriage.store.index import SCHEMA_VERSION
from aligntriage.train.loop import train
from aligntriage.train.ppo import PPOConfig

runner = CliRunner()
TINY = {"height": 3, "width": 6}
TINY_ARGS = ["-p", "height=3", "-p", "width=6"]
CONFIG = PPOConfig(total_steps=4096, num_envs=16, rollout=16, minibatches=1, epochs=1, pool=32, width=16, depth=1)
FAST_TRAIN = ["--steps", "256", "--envs", "16", "--width", "16"]
USER_TRAIN = ["--steps", "256", "--envs", "8", "--width", "8", "--depth", "1"]

# A one-dimensional world written like a user's scenario file; the fault cases vary one line of it.
USER_WORLD = '''
from typing import NamedTuple

import jax
import jax.numpy as jnp

from aligntriage.scenario import Distribution, Goal, Partition, Scenario, Term, World

PARAMS = {"length": 4}


class Level(NamedTuple):
    goal: jax.Array


class State(NamedTuple):
    level: Level
    t: jax.Array
    pos: jax.Array
    fuel: jax.Array


def build(length=4):
    BUILD_HOOK
    def reset(key, level):
        return State(level, jnp.int32(0), jnp.int32(0), FUEL)

    def step(s, a):
        pos = jnp.clip(s.pos + jnp.where(a == 1, 1, -1), 0, length - 1).astype(jnp.int32)
        return State(s.level, s.t + 1, pos, jnp.maximum(s.fuel - 1, 0))

    def observe(s):
        return jax.nn.one_hot(s.pos, length)[None, :, None]

    def reached(s, a, s2):
        return (s2.pos == s2.level.goal) & (s.pos != s.level.goal)

    world = World(reset=reset, step=step, observe=observe, is_terminal=lambda s: s.pos == s.level.goal, horizon=10,
                  actions=("left", "right"), render=lambda s: ["." * length], channels=("agent",))
    sample = lambda key: Level(jnp.int32(length - 1))  # noqa: E731
    return Scenario.build(
        name="user-line", summary="SUMMARY", world=world,
        distributions=[Distribution("train", "goal at the end", sample), Distribution("deploy", "the same", sample)],
        reward=REWARD, reward_description="+1 at the goal",
        utility=[Term("goal", lambda s, a, s2: reached(s, a, s2).astype(jnp.float32), "+1 at the goal")],
        goals=[Goal("GOAL", reached, "reach the goal", intended=True), Goal("other", reached, "the same")],
        partitions=[Partition("task", ("goal",), "the reward covers the goal")])
'''
GOOD_REWARD = "lambda s, a, s2: reached(s, a, s2).astype(jnp.float32)"


def user_world(fuel="jnp.int32(5)", reward=GOOD_REWARD, goal="reach", summary="a line", hook="pass") -> str:
    return (USER_WORLD.replace("FUEL", fuel).replace("REWARD", reward).replace('"GOAL"', repr(goal))
            .replace("SUMMARY", summary).replace("BUILD_HOOK", hook))


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    """One tiny trained coinrun run (3x6 levels, 4,096 steps) shared by every case that needs one."""
    out = tmp_path_factory.mktemp("faults") / "trained"
    train("coinrun", CONFIG, out, params=TINY, index=False)
    return out


class Box:
    """A case's sandbox: working directory, run store and (optionally) a copy of the trained run."""

    def __init__(self, root: Path, trained: Callable[[], Path]):
        self.root, self._trained = root, trained
        self.store = root / "store"
        self.run = root / "run"

    def copy_run(self, register: bool = True) -> Path:
        shutil.copytree(self._trained(), self.run)
        if register:
            index_run(self.run, self.store)
        return self.run

    def edit_record(self, change: Callable[[dict], object]) -> None:
        path = self.run / RunFolder.RUN
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path


@dataclass
class Case:
    id: str
    group: str
    argv: list[str]
    expect: str
    code: int = 2
    setup: Callable[[Box], None] | None = None
    owns: tuple[str, ...] = ()
    check: Callable[[Box, str], None] | None = None
    read_only_index: bool = False
    """Open the index as a user without write access does (SQLite's read-only mode; chmod does not bind root)."""


def checksums(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.endswith(("-wal", "-shm")):
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def without(sums: dict[str, str], owns: tuple[str, ...]) -> dict[str, str]:
    return {k: v for k, v in sums.items() if not any(fnmatch.fnmatchcase(k, p) for p in owns)}


# Setups ---------------------------------------------------------------------------------------------------------


def thesis(box: Box) -> None:
    box.write("p/thesis.txt", "three years of work\n")


def trained_run(box: Box) -> None:
    box.copy_run()


def record_edit(change: Callable[[dict], object]) -> Callable[[Box], None]:
    def setup(box: Box) -> None:
        box.copy_run(register=False)
        box.edit_record(change)
    return setup


def killed(box: Box) -> None:
    """A run killed at update 2 of 16: its run.json still says running and no process holds its claim."""
    box.copy_run(register=False)

    def change(data):
        data.update(status="running", update=2, steps=2 * CONFIG.steps_per_update)
    box.edit_record(change)
    index_run(box.run, box.store)


def file_in_run(name: str, data: bytes) -> Callable[[Box], None]:
    def setup(box: Box) -> None:
        box.copy_run()
        (box.run / name).write_bytes(data)
    return setup


def user_file(**kw) -> Callable[[Box], None]:
    return lambda box: box.write("user.py", user_world(**kw))


def hold_lock(box: Box) -> None:
    """Another process's claim: a flock on the folder's lock file from a descriptor the command does not share."""
    box.copy_run()
    handle = open(box.run / RunFolder.LOCK, "a")  # noqa: SIM115 - held until the case ends
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    box.held = handle


def index_file(data: bytes) -> Callable[[Box], None]:
    def setup(box: Box) -> None:
        (box.store / "index.sqlite").write_bytes(data)
    return setup


def newer_index(box: Box) -> None:
    con = sqlite3.connect(box.store / "index.sqlite")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()


def scan_tree(box: Box) -> None:
    box.copy_run(register=False)
    shutil.copytree(box.run, box.root / "tree" / "good")
    shutil.move(str(box.run), box.root / "tree" / "bad")
    data = json.loads((box.root / "tree" / "bad" / RunFolder.RUN).read_text())
    del data["scenario"]
    (box.root / "tree" / "bad" / RunFolder.RUN).write_text(json.dumps(data))


def gone(box: Box) -> None:
    box.copy_run()
    shutil.rmtree(box.run)


def user_thesis_in_run(box: Box) -> None:
    box.copy_run()
    (box.run / "thesis.txt").write_text("mine\n")


# Checks ---------------------------------------------------------------------------------------------------------


def kept_thesis(box: Box, output: str) -> None:
    assert (box.run / "thesis.txt").read_text() == "mine\n"
    assert sorted(p.name for p in box.run.iterdir()) == ["thesis.txt"]
    assert RunIndex(box.store).runs() == []


def checkpoint_finite(box: Box, output: str) -> None:
    record = json.loads((box.root / "nan" / RunFolder.RUN).read_text())
    assert record["status"] == "failed"
    params = load_tree(box.root / "nan" / RunFolder.PARAMS)
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in _leaves(params))


def _leaves(tree):
    if isinstance(tree, dict):
        for value in tree.values():
            yield from _leaves(value)
    else:
        yield tree


def report_says(*needles: str) -> Callable[[Box, str], None]:
    def check(box: Box, output: str) -> None:
        text = (box.run / RunFolder.REPORT).read_text()
        for needle in needles:
            assert needle in text, needle
    return check


def registered(count: int) -> Callable[[Box, str], None]:
    def check(box: Box, output: str) -> None:
        assert len(RunIndex(box.store).runs()) == count
    return check


def first_run_intact(box: Box, output: str) -> None:
    assert json.loads((box.run / RunFolder.RUN).read_text())["status"] == "complete"


R = "{run}"
CASES = [
    # -- data lost ---------------------------------------------------------------------------------------------
    Case("diagnose-out-into-a-users-folder", "data loss",
         ["diagnose", "coinrun", "--policy", "random", "--levels", "2", "--out", "p", *TINY_ARGS],
         "'p' is not empty and holds no run (it has thesis.txt)", setup=thesis),
    Case("train-out-into-a-users-folder", "data loss", ["train", "coinrun", *FAST_TRAIN, "--out", "p", *TINY_ARGS],
         "'p' is not empty and holds no run", setup=thesis),
    Case("run-out-into-a-users-folder", "data loss", ["run", "coinrun", "--steps", "256", "--out", "p"],
         "'p' is not empty and holds no run", setup=thesis),
    Case("control-out-into-a-users-folder", "data loss", ["control", "qa-kidnap", "--out", "p"],
         "'p' is not empty and holds no run", setup=thesis),
    Case("sweep-out-into-a-users-folder", "data loss",
         ["sweep", "coinrun", "--grid", "dist=train", "--steps", "256", "--out", "p", *TINY_ARGS],
         "'p' is not empty and holds no run", setup=thesis),
    Case("out-is-a-file", "data loss",
         ["diagnose", "coinrun", "--policy", "random", "--levels", "2", "--out", "p/thesis.txt", *TINY_ARGS],
         "'p/thesis.txt' is a file, not a folder", setup=thesis),
    Case("rm-keeps-a-users-file", "data loss", ["rm", "1", "-y"], "kept folder", code=0,
         setup=user_thesis_in_run, owns=("run/*", "store/*"), check=kept_thesis),
    Case("second-train-into-a-claimed-folder", "data loss", ["train", "coinrun", "--resume", "--out", R],
         "is in use by another aligntriage process", setup=hold_lock, check=first_run_intact),
    Case("rm-a-run-in-use", "data loss", ["rm", "1", "-y"], "run 1 is in use by another aligntriage process",
         setup=hold_lock),
    Case("train-into-a-finished-run", "data loss", ["train", "coinrun", *FAST_TRAIN, "--out", R, *TINY_ARGS],
         "already holds a run; choose another --out", setup=trained_run),
    Case("resume-without-total-steps", "data loss", ["train", "coinrun", "--resume", "--out", R],
         "field 'ppo.total_steps' is missing", setup=record_edit(lambda d: d["ppo"].pop("total_steps"))),
    Case("resume-without-ppo", "data loss", ["train", "coinrun", "--resume", "--out", R], "field 'ppo' is missing",
         setup=record_edit(lambda d: d.pop("ppo"))),
    Case("resume-with-update-past-the-end", "data loss", ["train", "coinrun", "--resume", "--out", R],
         "field 'update' is 99, more than the run's 16 updates", setup=record_edit(lambda d: d.update(update=99))),
    Case("resume-a-diagnose-run", "data loss", ["train", "coinrun", "--resume", "--out", R],
         "is a diagnose run; only training runs resume",
         setup=record_edit(lambda d: d.update(kind="diagnose", policy="random", dist="deploy"))),
    # -- silent wrong behaviour ------------------------------------------------------------------------------------
    Case("nan-rewards-stop-training", "silent", ["train", "user.py", *USER_TRAIN, "--out", "nan"],
         "training produced non-finite rewards of seed 0 at update 1",
         setup=user_file(reward="lambda s, a, s2: jnp.where(s2.t > 2, jnp.nan, 0.0).astype(jnp.float32)"),
         owns=("nan/*", "store/*"), check=checkpoint_finite),
    Case("float-state-field", "silent", ["show", "user.py"], "state field 'fuel' from reset is float32",
         setup=user_file(fuel="jnp.float32(5.0)")),
    Case("int-param-given-a-fraction", "silent", ["show", "coinrun", "-p", "width=10.5"],
         "scenario 'coinrun' needs an integer width >= 6, got width=10.5"),
    Case("probability-above-one", "silent", ["show", "coinrun", "-p", "obstacle_prob=5.0"],
         "needs a number 0 <= obstacle_prob <= 1, got obstacle_prob=5.0"),
    Case("negative-probability", "silent", ["show", "coinrun", "-p", "pit_prob=-2.0"],
         "needs a number 0 <= pit_prob <= 1, got pit_prob=-2.0"),
    Case("nan-probability", "silent", ["show", "coinrun", "-p", "pit_prob=nan"], "got pit_prob=nan"),
    Case("param-given-twice", "silent", ["show", "coinrun", "-p", "width=6", "-p", "width=8"],
         "level parameter 'width' given twice (6 and 8)"),
    Case("param-without-value", "silent", ["show", "coinrun", "-p", "width"],
         "level parameter 'width' must look like KEY=VALUE"),
    Case("maze-size-fraction", "silent", ["show", "maze", "-p", "size=7.5"],
         "scenario 'maze' needs an integer size >= 5, got size=7.5"),
    Case("monster-flag-out-of-range", "silent", ["show", "monster", "-p", "stay=2"],
         "scenario 'monster' needs an integer 0 <= stay <= 1, got stay=2"),
    Case("qa-harm-too-small", "silent", ["show", "qa-kidnap", "-p", "harm_per_step=0.5"],
         "needs a number harm_per_step > 1, got harm_per_step=0.5"),
    Case("negative-lr", "silent", ["train", "coinrun", *FAST_TRAIN, "--lr", "-1", "--out", "t"],
         "lr must be > 0 and <= 1, got -1.0"),
    Case("nan-lr", "silent", ["train", "coinrun", *FAST_TRAIN, "--lr", "nan", "--out", "t"], "lr must be > 0"),
    Case("gamma-one", "silent", ["train", "coinrun", *FAST_TRAIN, "--gamma", "1.5", "--out", "t"],
         "gamma must be in [0, 1), got 1.5"),
    Case("negative-entropy-bonus", "silent", ["train", "coinrun", *FAST_TRAIN, "--ent-coef", "-0.1", "--out", "t"],
         "ent-coef must be >= 0, got -0.1"),
    Case("zero-steps", "silent", ["train", "coinrun", "--steps", "0"], "--steps must be >= 1, got 0"),
    Case("zero-seeds", "silent", ["train", "coinrun", "--seeds", "0"], "--seeds must be >= 1, got 0"),
    Case("zero-envs", "silent", ["train", "coinrun", "--envs", "0"], "--envs must be >= 1, got 0"),
    Case("steps-not-a-number", "silent", ["train", "coinrun", "--steps", "many"], "got 'many'"),
    Case("one-level", "silent", ["diagnose", "coinrun", "--policy", "random", "--levels", "1"],
         "--levels must be >= 2, got 1"),
    Case("negative-tolerance", "silent", ["diagnose", "coinrun", "--policy", "random", "--tol", "aligned=-0.1"],
         "tolerance aligned must be a number >= 0, got '-0.1'"),
    Case("nan-tolerance", "silent", ["diagnose", "coinrun", "--policy", "random", "--tol", "explained=nan"],
         "tolerance explained must be a number >= 0"),
    Case("audit-budget-above-one", "silent", ["control", "qa-kidnap", "--audit-budget", "2"],
         "audit-budget must be in [0, 1], got 2.0"),
    Case("zero-temperature", "silent", ["control", "qa-kidnap", "--trusted-temperature", "0"],
         "trusted temperature must be > 0, got 0.0"),
    Case("sweep-negative-lr", "silent", ["sweep", "coinrun", "--grid", "lr=-1", "--out", "s", *TINY_ARGS],
         "lr must be > 0 and <= 1, got -1"),
    Case("sweep-level-fraction", "silent", ["sweep", "coinrun", "--grid", "level.width=6.5", "--out", "s"],
         "needs an integer width >= 6, got width=6.5"),
    Case("resume-another-scenario", "silent", ["train", "maze", "--resume", "--steps", "999", "--out", R],
         "holds a run of 'coinrun', not 'maze'", setup=trained_run),
    Case("resume-with-other-steps", "silent", ["train", "coinrun", "--resume", "--steps", "999", "--out", R],
         "drop --steps 999 (the run's --steps is 4096)", setup=trained_run),
    Case("resume-with-other-params", "silent", ["train", "coinrun", "--resume", "-p", "width=8", "--out", R],
         "drop -p width=8 (the run's level parameters are height=3, width=6)", setup=trained_run),
    Case("params-for-a-trained-run", "silent", ["diagnose", R, "-p", "width=8"],
         "-p cannot change the level parameters of the trained run", setup=trained_run),
    Case("diagnose-a-killed-run-warns", "silent", ["diagnose", R, "--levels", "2"],
         "is incomplete: trained 512 of 4,096 steps", code=0, setup=killed, owns=("run/*", "store/*")),
    Case("show-run-of-a-killed-run", "silent", ["show-run", "1"], "incomplete: trained 512 of 4,096 steps", code=0,
         setup=killed),
    Case("runs-lists-a-killed-run", "silent", ["runs"], "512 of 4,096", code=0, setup=killed),
    Case("report-of-a-killed-run", "silent", ["report", R], "report:", code=0, setup=killed,
         owns=("run/*",), check=report_says("incomplete: trained 512 of 4,096 steps")),
    Case("report-names-a-skipped-diagnosis", "silent", ["report", R], "report:", code=0,
         setup=file_in_run("diagnosis-deploy.json", b"{broken"), owns=("run/*",),
         check=report_says("Skipped", "diagnosis-deploy.json")),
    # -- tracebacks ----------------------------------------------------------------------------------------------
    Case("int-for-a-float-param", "traceback", ["show", "coinrun", "-p", "obstacle_prob=1", *TINY_ARGS],
         "coinrun  dist=train  seed=0", code=0),
    Case("negative-horizon", "traceback", ["show", "coinrun", "-p", "horizon=-3"],
         "needs an integer horizon >= 1, got horizon=-3"),
    Case("user-build-raises", "traceback", ["show", "user.py"], "build() failed: RuntimeError: boom",
         setup=user_file(hook="raise RuntimeError('boom')")),
    Case("user-file-missing", "traceback", ["show", "nowhere.py"], "scenario file 'nowhere.py' does not exist"),
    Case("user-file-syntax-error", "traceback", ["show", "user.py"], "failed to import: SyntaxError",
         setup=lambda box: box.write("user.py", "def build(:\n")),
    Case("markup-in-a-goal-name", "traceback", ["show", "user.py"], "goal name 'fast[/]goal' must be letters",
         setup=user_file(goal="fast[/]goal")),
    Case("markup-in-a-description", "traceback", ["scenarios", "user.py"], "[/]oops", code=0,
         setup=user_file(summary="[/]oops")),
    Case("run-json-without-scenario", "traceback", ["diagnose", R, "--levels", "2"], "field 'scenario' is missing",
         setup=record_edit(lambda d: d.pop("scenario"))),
    Case("run-json-seeds-two", "traceback", ["diagnose", R, "--levels", "2"],
         "field 'ppo.seeds' must be an integer, got 'two'", setup=record_edit(lambda d: d["ppo"].update(seeds="two"))),
    Case("run-json-top-level-seeds-two", "traceback", ["show-run", R], "field 'seeds' must be an integer >= 1",
         setup=record_edit(lambda d: d.update(seeds="two"))),
    Case("run-json-wrong-scenario", "traceback", ["diagnose", R, "--levels", "2"],
         "does not fit the network of scenario 'maze'",
         setup=record_edit(lambda d: d.update(scenario="maze", params={}))),
    Case("run-json-unknown-status", "traceback", ["show-run", R], "field 'status' must be one of",
         setup=record_edit(lambda d: d.update(status="bogus"))),
    Case("run-json-params-a-list", "traceback", ["show-run", R], "field 'params' must be a JSON object",
         setup=record_edit(lambda d: d.update(params=[1, 2]))),
    Case("run-json-not-json", "traceback", ["show-run", R], "is not valid JSON",
         setup=file_in_run(RunFolder.RUN, b"{not json")),
    Case("run-json-a-list", "traceback", ["show-run", R], "does not hold a JSON object",
         setup=file_in_run(RunFolder.RUN, b"[1, 2]")),
    Case("metrics-garbage-export", "traceback", ["export", R, "--out", "m.csv"], "is damaged: not UTF-8 text",
         setup=file_in_run(RunFolder.METRICS, b"\xff\xfe\x00garbage")),
    Case("metrics-short-row-export", "traceback", ["export", R, "--out", "m.csv"], "is damaged at line 3",
         setup=file_in_run(RunFolder.METRICS, b"update,seed,steps,mean_return\n1,0,256,0.5\n2,0\n")),
    Case("metrics-text-cell-tensorboard", "traceback", ["export", R, "--format", "tensorboard", "--out", "tb"],
         "'mean_return' is 'abc', not a number",
         setup=file_in_run(RunFolder.METRICS, b"update,seed,steps,mean_return\n1,0,256,abc\n")),
    Case("metrics-damaged-report", "traceback", ["report", R], "report:", code=0,
         setup=file_in_run(RunFolder.METRICS, b"update,seed\n1\n"), owns=("run/*",),
         check=report_says("Skipped", "metrics.csv")),
    Case("png-into-a-missing-folder", "traceback", ["show", "coinrun", "--png", "/nonexistent/x.png"],
         "--png '/nonexistent/x.png': the folder '/nonexistent' does not exist"),
    Case("json-into-a-missing-folder", "traceback",
         ["diagnose", "coinrun", "--policy", "random", "--json", "no/such/d.json"],
         "--json 'no/such/d.json': the folder 'no/such' does not exist"),
    Case("corrupt-checkpoint-resume", "traceback", ["train", "coinrun", "--resume", "--out", R],
         "is corrupt or from another configuration", setup=file_in_run(RunFolder.CHECKPOINT, b"\x00garbage")),
    Case("corrupt-params-diagnose", "traceback", ["diagnose", R, "--levels", "2"],
         "is corrupt or from another configuration", setup=file_in_run(RunFolder.PARAMS, b"\x00garbage")),
    Case("malformed-diagnosis-compare", "traceback", ["compare", R, R],
         "diagnosis file", setup=file_in_run("diagnosis-deploy.json", b'{"dist": "deploy"}')),
    Case("missing-argument", "traceback", ["train"], "Missing argument 'scenario'"),
    Case("unknown-option", "traceback", ["runs", "--colour"], "No such option: --colour"),
    # -- the run index ----------------------------------------------------------------------------------------------
    Case("corrupt-index-advice", "index", ["runs"], "re-register runs with 'aligntriage runs --scan DIR'",
         setup=index_file(b"this is not a database" * 100)),
    Case("newer-index", "index", ["runs"], "newer than this aligntriage understands", setup=newer_index),
    Case("read-only-index-lists-runs", "index", ["runs"], "4,096", code=0, setup=trained_run,
         read_only_index=True),
    Case("read-only-index-refuses-a-new-run", "index",
         ["diagnose", "coinrun", "--policy", "random", "--levels", "2", "--out", "d", *TINY_ARGS],
         "is read-only: listing runs works, but this command must register one", read_only_index=True),
    Case("scan-skips-a-bad-folder", "index", ["runs", "--scan", "tree"], "skipped: run file", code=0,
         setup=scan_tree, owns=("store/*",), check=registered(1)),
    Case("scan-not-a-folder", "index", ["runs", "--scan", "nowhere"], "'nowhere' is not a folder"),
    Case("unknown-kind", "index", ["runs", "--kind", "bogus"], "unknown run kind 'bogus'; valid: control"),
    Case("rm-not-an-id", "index", ["rm", "run", "-y"], "'run' is not a run id"),
    Case("rm-unknown-id", "index", ["rm", "77", "-y"], "no run with id 77"),
    Case("doctor-clean", "index", ["doctor"], "the index and every run folder check out", code=0,
         setup=trained_run),
    Case("doctor-folder-gone", "index", ["doctor"], "its folder is gone — repair: drop the index entry", code=1,
         setup=gone),
    Case("doctor-edited-params", "index", ["doctor"], "params.msgpack: changed since aligntriage wrote it", code=1,
         setup=file_in_run(RunFolder.PARAMS, b"\x00edited")),
    Case("doctor-leftover-temp-file", "index", ["doctor"], "temporary file of an interrupted write of run.json",
         code=0, setup=file_in_run(".run.json.abc123_x.tmp", b"half")),
    Case("doctor-repair-removes-the-temp-file", "index", ["doctor", "--repair"], "doctor: repaired 1", code=0,
         setup=file_in_run(".run.json.abc123_x.tmp", b"half"), owns=("run/.run.json.abc123_x.tmp",)),
    Case("accept-edits-without-repair", "index", ["doctor", "--accept-edits"], "--accept-edits needs --repair"),
    # -- what held and must keep holding ------------------------------------------------------------------------------
    Case("unknown-scenario", "holds", ["show", "nope"], "unknown scenario 'nope'; valid: "),
    Case("unknown-distribution", "holds", ["show", "coinrun", "--dist", "moon"], "unknown distribution 'moon'"),
    Case("unknown-level-param", "holds", ["show", "coinrun", "-p", "colour=3"], "unknown level parameter 'colour'"),
    Case("unknown-policy", "holds", ["diagnose", "coinrun", "--policy", "greedy"], "unknown policy 'greedy'"),
    Case("unknown-network", "holds", ["train", "coinrun", "--network", "rnn", "--out", "t"],
         "unknown network 'rnn'"),
    Case("unknown-tolerance", "holds", ["diagnose", "coinrun", "--policy", "random", "--tol", "strictness=1"],
         "unknown tolerance 'strictness'"),
    Case("resume-without-out", "holds", ["train", "coinrun", "--resume"], "--resume needs --out RUN_DIR"),
    Case("diagnose-a-missing-folder", "holds", ["diagnose", "no/such/run"], "run folder 'no/such/run' does not exist"),
    Case("report-unknown-run", "holds", ["report", "987654"], "no run with id 987654"),
    Case("export-unknown-format", "holds", ["export", R, "--format", "parquet"], "unknown export format 'parquet'",
         setup=trained_run),
    Case("compare-one-run", "holds", ["compare", "1"], "compare needs at least two runs"),
]


def test_the_catalogue_is_large_and_covers_every_group():
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
    assert {c.group for c in CASES} == {"data loss", "silent", "traceback", "index", "holds"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault(case: Case, request, tmp_path, monkeypatch):
    box = Box(tmp_path, lambda: request.getfixturevalue("trained"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALIGNTRIAGE_STORE", str(box.store))
    RunIndex(box.store)
    if case.setup:
        case.setup(box)
    if case.read_only_index:
        monkeypatch.setattr(RunIndex, "writable", property(lambda self: False))
    before = checksums(tmp_path)
    argv = [a.replace(R, str(box.run)) for a in case.argv]
    try:
        result = runner.invoke(app, argv)
    finally:
        if hasattr(box, "held"):
            box.held.close()
    output = result.output
    assert "Traceback" not in output and result.exception is None or isinstance(result.exception, SystemExit), \
        output
    assert result.exit_code == case.code, output
    lines = [line for line in output.splitlines() if line.strip()]
    if case.code == 2:
        assert len(lines) == 1 and lines[0].startswith("error: "), output
        assert case.expect in lines[0], output
    else:
        assert any(case.expect in line for line in lines), output
    assert without(checksums(tmp_path), case.owns) == without(before, case.owns)
    if case.check:
        case.check(box, output)


def test_two_trainings_into_one_folder_at_once(tmp_path):
    """Two processes start ``train --out dup`` together: exactly one trains, the other is refused in one line
    before it writes anything, and the run on disk is the first one's, whole."""
    env = {**os.environ, "ALIGNTRIAGE_STORE": str(tmp_path / "store")}
    (tmp_path / "user.py").write_text(user_world())
    args = [sys.executable, "-m", "aligntriage", "train", str(tmp_path / "user.py"), *USER_TRAIN, "--out",
            str(tmp_path / "dup")]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    (refused,) = [err for code, _, err in results if code == 2]
    lines = refused.strip().splitlines()
    assert len(lines) == 1 and ("in use by another aligntriage process" in lines[0]
                                or "already holds a run" in lines[0]), refused
    record = RunFolder(tmp_path / "dup").record()
    assert record.status == "complete" and record.update == record.ppo.num_updates
    assert len(RunIndex(tmp_path / "store").runs()) == 1


def test_tests_never_use_the_callers_store():
    """conftest.py replaces any ALIGNTRIAGE_STORE the caller set with a fresh temporary folder."""
    store = os.environ["ALIGNTRIAGE_STORE"]
    assert Path(store).name.startswith("aligntriage-test-store-")


def test_nothing_loads_pickle():
    """No unpickling anywhere; torch weights only through ``torch.load(weights_only=True)``."""
    source = Path(__file__).parents[1] / "src" / "aligntriage"
    unsafe = re.compile(r"^\s*(import|from)\s+(pickle|cPickle|dill|joblib|cloudpickle)\b|pickle\.loads?\(|"
                        r"allow_pickle\s*=\s*True|torch\.load\((?![^\n]*weights_only=True)", re.M)
    offenders = [str(p) for p in source.rglob("*.py") if unsafe.search(p.read_text())]
    assert offenders == []


def test_a_user_scenario_path_is_stored_resolved(tmp_path, monkeypatch):
    """``diagnose path/to/file.py`` records the file's absolute path, so the run works from any folder."""
    monkeypatch.setenv("ALIGNTRIAGE_STORE", str(tmp_path / "store"))
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "user.py").write_text(user_world(summary="resolved-from-anywhere"))
    monkeypatch.chdir(tmp_path / "work")
    result = runner.invoke(app, ["diagnose", "user.py", "--policy", "random", "--levels", "2", "--out", "d"])
    assert result.exit_code == 0, result.output
    record = RunFolder(tmp_path / "work" / "d").record()
    assert record.scenario == str((tmp_path / "work" / "user.py").resolve())
    monkeypatch.chdir(tmp_path)
    shown = runner.invoke(app, ["report", str(tmp_path / "work" / "d")])
    assert shown.exit_code == 0, shown.output
    assert "resolved-from-anywhere" in (tmp_path / "work" / "d" / RunFolder.REPORT).read_text()
