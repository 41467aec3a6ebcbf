"""Drive a PPO training run: chunks of jitted updates, a rich progress bar, checkpoints, Ctrl-C and resume.

A run folder holds ``run.json`` (scenario, level parameters, training settings, status), ``checkpoint.msgpack``
(every seed's full training state), ``params.msgpack`` (the policy parameters alone, stacked over seeds) and
``metrics.csv`` (one row per update and seed). All writes are atomic; the checkpoint and the metrics are always
written together, so a resumed run continues exactly where the saved one stopped.
"""

from __future__ import annotations

import datetime as dt
import signal
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import jax
import numpy as np

from aligntriage.errors import AligntriageError
from aligntriage.store.files import load_tree, read_csv, read_json, save_tree, write_csv, write_json
from aligntriage.store.index import index_run
from aligntriage.train.ppo import PPOConfig, make_trainer, network_for, policy_from_params, seed_keys
from aligntriage.worlds import get_scenario

RUN_FILE = "run.json"
CHECKPOINT = "checkpoint.msgpack"
PARAMS = "params.msgpack"
METRICS = "metrics.csv"
SAVE_EVERY_S = 30.0


def read_run(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise AligntriageError(f"run folder '{run_dir}' does not exist")
    return read_json(run_dir / RUN_FILE, "run file")


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


def _chunk_size(config: PPOConfig) -> int:
    return max(1, min(10, config.num_updates // 20))


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
) -> dict:
    """Train (or resume) a run in ``out``; returns the final run record. Ctrl-C saves and marks it interrupted.

    ``index=False`` leaves registering the run to the caller (a sweep worker on another machine must not write to
    its own run index); ``extra`` adds fields to ``run.json`` (e.g. the sweep a run belongs to)."""
    out = Path(out)
    if resume:
        record = read_run(out)
        scenario, params = record["scenario"], record["params"]
        config = PPOConfig.from_dict(record["ppo"])
    else:
        if (out / RUN_FILE).exists():
            raise AligntriageError(f"run folder '{out}' already holds a run; use --resume or another --out")
        record = {
            "kind": kind,
            "scenario": scenario,
            "params": dict(params or {}),
            "ppo": config.validate().to_dict(),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "status": "running",
            "update": 0,
            **(extra or {}),
        }
    sc = get_scenario(scenario, **record["params"])
    sc.distribution(config.dist)  # a clear error for an unknown distribution before anything compiles
    trainer = make_trainer(sc.world, sc.reward, sc.distribution(config.dist).sample, config)
    runner = trainer.init(seed_keys(config))
    rows = []
    if resume:
        if (out / CHECKPOINT).exists():
            runner = load_tree(out / CHECKPOINT, runner)
            rows = read_csv(out / METRICS)
    out.mkdir(parents=True, exist_ok=True)
    done = int(np.asarray(runner.update)[0])
    record["status"] = "running"
    write_json(out / RUN_FILE, record)
    if index:
        index_run(out)

    def save(status: str) -> None:
        save_tree(out / CHECKPOINT, runner)
        save_tree(out / PARAMS, runner.train_state.params)
        write_csv(out / METRICS, rows)
        record.update(status=status, update=done, steps=done * config.steps_per_update)
        write_json(out / RUN_FILE, record)
        if index:
            index_run(out)

    chunk = _chunk_size(config)
    last_save = time.monotonic()
    with _interrupt_flag() as interrupted:
        while done < config.num_updates and not interrupted["set"]:
            n = min(chunk, config.num_updates - done)
            start = time.monotonic()
            runner, metrics = trainer.run(runner, n)
            metrics = jax.device_get(metrics)
            elapsed = time.monotonic() - start
            for u in range(n):
                for s in range(config.seeds):
                    rows.append({"update": done + u + 1, "seed": config.seed + s,
                                 "steps": (done + u + 1) * config.steps_per_update,
                                 **{k: float(v[s, u]) for k, v in metrics.items()}})
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
                save("running")
                last_save = time.monotonic()
        save("interrupted" if interrupted["set"] else "complete")
    return record


def load_policy(run_dir: Path, seed_index: int = 0):
    """The trained policy of one seed as a plain ``policy(obs) -> action probabilities``."""
    record = read_run(run_dir)
    config = PPOConfig.from_dict(record["ppo"])
    if not 0 <= seed_index < config.seeds:
        raise AligntriageError(f"seed index {seed_index} out of range; the run has {config.seeds} seed(s)")
    sc = get_scenario(record["scenario"], **record["params"])
    params = load_tree(Path(run_dir) / PARAMS)
    one = jax.tree.map(lambda leaf: np.asarray(leaf)[seed_index], params)
    return policy_from_params(network_for(sc.world, config), one)
