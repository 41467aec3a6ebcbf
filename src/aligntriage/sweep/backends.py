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


def _ignore_sigint() -> None:
    """Pool workers ignore Ctrl-C while idle or diagnosing; training installs its own handler and saves."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_workers(points: int) -> int:
    return max(1, min(points, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()))


def run_local(specs: list[dict], on_result: Callable[[dict], None], workers: int | None = None) -> bool:
    """Run points in a pool of spawned processes; returns False if Ctrl-C stopped the sweep early."""
    workers = workers or default_workers(len(specs))
    context = multiprocessing.get_context("spawn")
    interrupted = False
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_ignore_sigint) as pool:
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


def run_ray(specs: list[dict], on_result: Callable[[dict], None], address: str | None = None,
            retries: int = 2) -> bool:
    """Run each point as a Ray task (retried on failure); the run folders must be on storage the workers share."""
    try:
        import ray
    except ImportError:
        raise AligntriageError("the ray backend needs Ray: pip install 'aligntriage[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
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
