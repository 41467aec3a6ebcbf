"""Drive a PPO training run: chunks of jitted updates, a rich progress bar, checkpoints, Ctrl-C and resume.

A run folder holds ``run.json`` (scenario, level parameters, training settings, status), ``checkpoint.msgpack``
(every seed's full training state), ``params.msgpack`` (the policy parameters alone, stacked over seeds) and
``metrics.csv`` (one row per update and seed). All writes are atomic; the checkpoint and the metrics are always
written together, so a resumed run continues exactly where the saved one stopped.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import jax
import numpy as np

from aligntriage.errors import AligntriageError
from aligntriage.store.files import csv_bytes, json_bytes, load_tree, tree_bytes
from aligntriage.store.folder import RunFolder, RunRecord
from aligntriage.store.index import index_run
from aligntriage.train.curate import check_curriculum, make_curator
from aligntriage.train.ppo import PPOConfig, chunk_updates, make_trainer, network_for, policy_from_params, seed_keys
from aligntriage.worlds import get_scenario

REWARD_PATCH = "reward_patch"
"""The run.json field of a run trained on R plus U terms: {term: weight}."""
SAVE_EVERY_S = 30.0
FINITE = ("finite_reward", "finite_loss", "finite_params")


def read_run(run_dir: Path) -> RunRecord:
    """A run folder's validated record (a damaged or incomplete ``run.json`` is a one-line error)."""
    return RunFolder(run_dir).record()


def read_training_run(run_dir: Path) -> RunRecord:
    """The record of a run that holds a trained policy."""
    record = read_run(run_dir)
    if not record.training:
        raise AligntriageError(f"run folder '{run_dir}' is a {record.kind} run and holds no trained policy")
    return record


@contextmanager
def _interrupt_flag():
    """Turn the first Ctrl-C into a flag checked between chunks, so the run can save before it stops."""
    flag = {"set": False}
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if flag["set"]:
            previous_handler = previous if callable(previous) else signal.default_int_handler
            previous_handler(signum, frame)
        flag["set"] = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _non_finite(metrics: dict, config: PPOConfig, done: int) -> str | None:
    """What went non-finite first in a chunk (per-update flags from the jitted update), or None."""
    flags = np.stack([np.asarray(metrics[k]) for k in FINITE])  # [3, seeds, updates]
    if flags.all():
        return None
    what, seed, update = (int(i[0]) for i in np.nonzero(~flags))
    names = {"finite_reward": "rewards", "finite_loss": "losses", "finite_params": "parameters"}
    return f"{names[FINITE[what]]} of seed {config.seed + seed} at update {done + update + 1}"


def train(
    scenario: str,
    config: PPOConfig,
    out: Path,
    params: dict | None = None,
    resume: bool = False,
    on_progress: Callable[[dict], None] | None = None,
    kind: str = "train",
    index: bool = True,
    extra: dict | None = None,
) -> RunRecord:
    """Train (or resume) a run in ``out``; returns the final run record. Ctrl-C saves and marks it interrupted.

    The folder is claimed for the whole run (a second process training into it is refused). Non-finite rewards,
    losses or parameters stop training with a one-line error; the checkpoint on disk is then the last finite one.
    ``index=False`` leaves registering the run to the caller (a sweep worker on another machine must not write to
    its own run index); ``extra`` adds fields to ``run.json`` (e.g. the sweep a run belongs to)."""
    folder = RunFolder(out)
    with folder.claim(new=not resume):
        return _train(folder, scenario, config, params, resume, on_progress, kind, index, extra)


def _train(folder: RunFolder, scenario, config, params, resume, on_progress, kind, index, extra) -> RunRecord:
    out = folder.path
    if resume:
        record = folder.record()
        if not record.training:
            raise AligntriageError(f"run folder '{out}' is a {record.kind} run; only training runs resume")
        config = record.ppo
    else:
        record = RunRecord.new(kind, scenario, params, ppo=config.validate(), **(extra or {}))
    sc = run_scenario(record)
    sc.distribution(config.dist)  # a clear error for an unknown distribution before anything compiles
    check_curriculum(sc, config)
    # The training process gets the world, R and its level sampler (the curator's level space under a curriculum).
    levels = sc.distribution(config.level_space).sample
    trainer = make_trainer(sc.world, sc.reward, levels, config, sc.mutate)
    curator = make_curator(sc.world, sc.reward, config)
    runner = trainer.init(seed_keys(config))
    rows = []
    if resume and folder.file(RunFolder.CHECKPOINT).exists():
        runner = load_tree(folder.file(RunFolder.CHECKPOINT), runner)
        rows = folder.read_metrics()
    done = int(np.asarray(runner.update)[0])
    if rows and len(rows) != done * config.seeds:
        raise AligntriageError(f"run folder '{out}': {RunFolder.METRICS} has {len(rows)} rows but the checkpoint is "
                               f"at update {done} of {config.seeds} seed(s); the folder is damaged")
    if curator is not None and curator.due(runner) and done < config.num_updates:
        runner = curator.score(runner)  # before anything is written: a level the solver cannot take fails cleanly
    record = record.replace(status="running")
    folder.write_record(record)
    if index:
        index_run(out)

    def save(status: str, saved_runner, saved_rows, saved_done) -> None:
        nonlocal record
        record = record.replace(status=status, update=saved_done, steps=saved_done * config.steps_per_update)
        folder.write_many({RunFolder.CHECKPOINT: tree_bytes(saved_runner),
                           RunFolder.PARAMS: tree_bytes(saved_runner.train_state.params),
                           RunFolder.METRICS: csv_bytes(saved_rows),
                           RunFolder.RUN: json_bytes(record.to_dict())})
        if index:
            index_run(out)

    chunk = chunk_updates(config)
    last_save = time.monotonic()
    with _interrupt_flag() as interrupted:
        while done < config.num_updates and not interrupted["set"]:
            n = min(chunk, config.num_updates - done)
            start = time.monotonic()
            finite_runner = runner
            if curator is not None:
                n = curator.chunk(done, n)
                if curator.due(runner):
                    try:
                        runner = curator.score(runner)
                    except AligntriageError:
                        save("failed", finite_runner, rows, done)
                        raise
            runner, metrics = trainer.run(runner, n)
            metrics = jax.device_get(metrics)
            elapsed = time.monotonic() - start
            bad = _non_finite(metrics, config, done)
            if bad is not None:
                save("failed", finite_runner, rows, done)
                raise AligntriageError(f"training produced non-finite {bad}; stopped and kept the last finite state "
                                       f"(update {done} of {config.num_updates}) in '{out}'. Check the scenario's "
                                       "reward for NaN or inf, or lower --lr")
            for u in range(n):
                for s in range(config.seeds):
                    rows.append({"update": done + u + 1, "seed": config.seed + s,
                                 "steps": (done + u + 1) * config.steps_per_update,
                                 **{k: float(v[s, u]) for k, v in metrics.items() if k not in FINITE}})
            done += n
            if on_progress:
                on_progress({
                    "update": done, "updates": config.num_updates, "steps": done * config.steps_per_update,
                    "total_steps": config.num_updates * config.steps_per_update,
                    "steps_per_s": n * config.steps_per_update * config.seeds / max(elapsed, 1e-9),
                    "mean_return": float(np.mean(metrics["mean_return"][:, -1])),
                    "success_rate": float(np.mean(metrics["success_rate"][:, -1])),
                })
            if time.monotonic() - last_save > SAVE_EVERY_S:
                save("running", runner, rows, done)
                last_save = time.monotonic()
        save("interrupted" if interrupted["set"] else "complete", runner, rows, done)
    return record


def run_scenario(record: RunRecord):
    """The scenario a run was trained on: its level parameters, and its reward patch if it has one (R plus some U
    terms: a counterfactual or a mitigation run)."""
    return get_scenario(record.scenario, **record.params).with_reward(record.extra.get(REWARD_PATCH))


def load_policy(run_dir: Path, seed_index: int = 0):
    """The trained policy of one seed as a plain ``policy(obs) -> action probabilities``. The saved parameters
    must fit the network the run's scenario and settings build (a run.json naming another scenario would otherwise
    fail deep inside flax)."""
    record = read_training_run(run_dir)
    config = record.ppo
    if not 0 <= seed_index < config.seeds:
        raise AligntriageError(f"seed index {seed_index} out of range; the run has {config.seeds} seed(s)")
    sc = get_scenario(record.scenario, **record.params)
    path = RunFolder(run_dir).file(RunFolder.PARAMS)
    params = load_tree(path)
    network = network_for(sc.world, config)
    key = jax.random.PRNGKey(0)
    obs = jax.eval_shape(lambda k: sc.world.observe(sc.world.reset(k, sc.distribution(config.dist).sample(k))), key)
    expected = jax.eval_shape(network.init, key, jax.ShapeDtypeStruct((1, *obs.shape), obs.dtype))
    want = jax.tree_util.tree_flatten_with_path(expected)[0]
    try:
        got = jax.tree_util.tree_flatten_with_path(params)[0]
    except Exception:  # whatever msgpack restored, it is not a parameter tree
        got = []
    shapes_got = {jax.tree_util.keystr(p): np.shape(v)[1:] for p, v in got}
    for p, leaf in want:
        name = jax.tree_util.keystr(p)
        if shapes_got.get(name) != tuple(leaf.shape):
            raise AligntriageError(f"'{path}' does not fit the network of scenario '{record.scenario}' with the "
                                   f"run's settings (parameter {name}: saved {shapes_got.get(name, 'nothing')}, "
                                   f"expected {tuple(leaf.shape)}); run.json and the parameters disagree")
    if len(shapes_got) != len(want) or any(np.shape(v)[:1] != (config.seeds,) for _, v in got):
        raise AligntriageError(f"'{path}' does not hold {config.seeds} seed(s) of the run's network")
    one = jax.tree.map(lambda leaf: np.asarray(leaf)[seed_index], params)
    return policy_from_params(network, one)
