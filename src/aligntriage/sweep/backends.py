"""Where grid points run: a local process pool (the default) or a Ray cluster.

Both take the same JSON-able point specs and call ``on_result`` with each point's summary as it finishes, in
completion order. Points are independent processes because each compiles its own trainer; within a point the
seeds share one vmapped, jitted call.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from aligntriage.errors import AligntriageError
from aligntriage.sweep.point import run_point

BACKENDS = ("local", "ray")
PINNED_FLAGS = ("--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1")
"""XLA flags of a pool worker pinned to one core, added where absent: the compilation cache keys programs by the
flags, so a process that already runs with them reads the same cached programs."""


def _start_worker(counter, cores: list[int] | None) -> None:
    """Pool workers ignore Ctrl-C while idle or diagnosing (training installs its own handler and saves). With one
    worker per core, each worker gets its own core and a single-threaded XLA: two points side by side then train
    about 15% faster on two cores than with every worker's threads fighting over both."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if cores:
        with counter.get_lock():
            slot = counter.value
            counter.value += 1
        os.sched_setaffinity(0, {cores[slot % len(cores)]})
        flags = os.environ.get("XLA_FLAGS", "").split()
        os.environ["XLA_FLAGS"] = " ".join(flags + [f for f in PINNED_FLAGS if f not in flags])


def _cores() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def default_workers(points: int) -> int:
    return max(1, min(points, len(_cores())))


def run_local(specs: list[dict], on_result: Callable[[dict], None], workers: int | None = None) -> bool:
    """Run points in a pool of spawned processes; returns False if Ctrl-C stopped the sweep early."""
    workers = workers or default_workers(len(specs))
    context = multiprocessing.get_context("spawn")
    cores = _cores()
    pinned = cores if workers > 1 and workers == len(cores) and hasattr(os, "sched_setaffinity") else None
    interrupted = False
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker,
                             initargs=(context.Value("i", 0), pinned)) as pool:
        pending = {pool.submit(run_point, spec) for spec in specs}
        while pending:
            try:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                interrupted = True
                for future in pending:
                    future.cancel()
                continue
            for future in done:
                if not future.cancelled():
                    on_result(future.result())
    return not interrupted


def _match_ray_start_authentication() -> None:
    """Apply `ray start`'s rule to this driver: token authentication on when a token exists and RAY_AUTH_MODE is
    unset. Ray (>= 2.60) applies it to `ray start` but never to a driver given an explicit address, which then
    cannot connect to a cluster on the same machine; a cluster without authentication accepts a token too."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def run_ray(specs: list[dict], on_result: Callable[[dict], None], address: str | None = None,
            retries: int = 2) -> bool:
    """Run each point as a Ray task (retried on failure); the run folders must be on storage the workers share."""
    try:
        import ray
    except ImportError:
        raise AligntriageError("the ray backend needs Ray: pip install 'aligntriage[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            _match_ray_start_authentication()
        try:
            ray.init(address=address, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
        except ConnectionError as exc:
            raise AligntriageError(f"cannot connect to the Ray cluster at '{address}' ({exc}); start one with "
                                   "'ray start --head' or check --address (RAY_AUTH_MODE must match the "
                                   "cluster's authentication)") from None
    try:
        task = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=True)(run_point)
        pending = [task.remote(spec) for spec in specs]
        while pending:
            try:
                done, pending = ray.wait(pending, num_returns=1)
            except KeyboardInterrupt:
                for ref in pending:
                    ray.cancel(ref)
                return False
            for ref in done:
                on_result(ray.get(ref))
    finally:
        if started_here:
            ray.shutdown()
    return True
