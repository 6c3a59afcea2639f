"""Where independent runs go: in this process, a local pool of processes, or a Dask cluster.

``results(function, items, scheduler, workers)`` yields ``(index, function(item))`` as they finish;
``map_runs`` returns them in order. Schedulers: "serial"; "processes" (spawned processes that die
with this one, even by SIGKILL, and get SIGINT on Ctrl-C so that they can save a checkpoint, then
STOP_SECONDS to end); "local" (a Dask LocalCluster on 127.0.0.1, whose workers are this process's
children); or the address of a Dask scheduler (a SLURM cluster through dask-jobqueue: a task
already running when this process dies runs to its end). Every worker runs Numba with one thread,
set before it starts. Sweeps (``sweep.py``) and the figure scenarios (``MEANFIELD_SCHEDULER``,
set by ``meanfield figures --scheduler``) send their runs here.
"""
from __future__ import annotations

import os
import re
from multiprocessing import get_context

from ..errors import ConfigError, MeanfieldError, WorkerError

SCHEDULERS = ("auto", "serial", "processes", "local")
ADDRESS = re.compile(r"^(?:(?:tcp|tls|ucx|inproc|ws|wss)://)?[\w.\-\[\]:]+:\d{1,5}$")
STOP_SECONDS = 2.0               # SIGINT: how long running tasks get to write their checkpoints
STARTED = "started"              # a worker's message: (index, STARTED, its pid), before it runs the item
VARIABLE = "MEANFIELD_SCHEDULER"      # the scheduler a figure scenario's runs go to (default serial)


def check_scheduler(scheduler, workers):
    """Refuse a scheduler that is neither a known name nor host:port, or a worker count below 1."""
    if not isinstance(scheduler, str) or not (scheduler in SCHEDULERS or ADDRESS.match(scheduler)):
        raise ConfigError.invalid("--scheduler", scheduler, ", ".join(SCHEDULERS) + " or a Dask scheduler "
                                  "address such as tcp://10.0.0.5:8786")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError.invalid("--workers", workers, "an integer >= 1 (default: every core)")


def results(function, items: list, scheduler: str = "serial", workers: int | None = None, what: str = "task"):
    """Yield (index, function(item)) for every item as it finishes. ``function`` and the items must
    pickle for the other schedulers (a module-level function; scenario scripts need their
    ``if __name__ == "__main__":`` guard). ``what`` names an item in messages."""
    check_scheduler(scheduler, workers)
    workers = workers or os.cpu_count() or 1
    if scheduler == "auto":
        scheduler = "serial" if len(items) <= 2 else "processes"
    if scheduler == "serial":
        return ((k, function(item)) for k, item in enumerate(items))
    if scheduler == "processes":
        return _processes(function, items, workers, what)
    return _dask(function, items, scheduler, workers)


def map_runs(function, items: list, scheduler: str | None = None, workers: int | None = None) -> list:
    """[function(item) for item in items], computed where ``scheduler`` says (default: the
    ``MEANFIELD_SCHEDULER`` environment variable, else serial)."""
    scheduler = scheduler or os.environ.get(VARIABLE, "serial")
    out = [None] * len(items)
    for k, value in results(function, list(items), scheduler, workers, what="run"):
        out[k] = value
    return out


def die_with_parent(parent: int):
    """End this worker process when ``parent`` ends, even by SIGKILL: no orphan may go on writing
    where its parent worked."""
    import ctypes
    import signal

    try:
        if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL) != 0:     # PR_SET_PDEATHSIG (Linux)
            raise OSError("prctl failed")
    except (OSError, AttributeError):
        import threading
        import time

        def watch():
            while os.getppid() == parent:
                time.sleep(0.2)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:                        # the parent died before the guard was set
        os._exit(1)


def _worker(function, tasks, results_queue, parent):
    """A process of the pool: runs tasks until told to stop; SIGINT lets a task save its checkpoint."""
    import signal

    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.default_int_handler)     # the pool asks its workers to stop by SIGINT
    try:
        while (task := tasks.get()) is not None:
            k, item = task
            results_queue.put((k, STARTED, os.getpid()))
            try:
                results_queue.put((k, function(item), None))
            except MeanfieldError as exc:
                results_queue.put((k, None, exc))
            except Exception:                                            # a bug: report it whole
                import traceback
                results_queue.put((k, None, RuntimeError(f"{item!r} failed:\n{traceback.format_exc()}")))
    except KeyboardInterrupt:
        pass


def _processes(function, items, workers, what):
    """Yield (index, result) as a pool of ``workers`` spawned processes finishes the items. On
    Ctrl-C (or any error) the workers get SIGINT, so that they write their checkpoints, and
    STOP_SECONDS to end."""
    import queue
    import signal
    import time

    context = get_context("spawn")
    tasks, done = context.Queue(), context.Queue()
    for task in enumerate(items):
        tasks.put(task)
    count = max(1, min(workers, len(items)))
    for _ in range(count):
        tasks.put(None)
    with one_numba_thread():
        pool = [context.Process(target=_worker, args=(function, tasks, done, os.getpid()), daemon=True)
                for _ in range(count)]
        for process in pool:
            process.start()
    holding = {}                                   # worker pid -> the index of the item it runs
    try:
        for _ in items:
            while True:
                try:
                    k, value, error = done.get(timeout=0.5)
                except queue.Empty:
                    dead = [p for p in pool if p.exitcode not in (None, 0)]
                    if dead:
                        raise _died(dead[0], holding, items, what) from None
                    continue
                if isinstance(value, str) and value == STARTED:
                    holding[error] = k
                    continue
                break
            if error is not None:
                raise error
            yield k, value
    except BaseException:
        for process in pool:
            if process.is_alive():
                os.kill(process.pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_SECONDS
        for process in pool:
            process.join(max(0.0, deadline - time.monotonic()))
        raise
    finally:
        for process in pool:
            if process.is_alive():
                process.kill()
            process.join()


def _died(process, holding: dict, items: list, what: str) -> WorkerError:
    """The error for a worker that died: the item it held (a sweep point by its id), the exit code."""
    import signal

    k = holding.get(process.pid)
    item = "" if k is None else f" {getattr(items[k], 'id', k)}"
    code = process.exitcode
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    return WorkerError(f"the worker running {what}{item} died ({how}); the {what} keeps its checkpoint: run the "
                       "command again to resume it", parameter=what, value=item.strip() or None,
                       allowed="a worker that ends normally")


class one_numba_thread:
    """Set NUMBA_NUM_THREADS=1 for the worker processes started inside the block."""

    def __enter__(self):
        self.previous = os.environ.get("NUMBA_NUM_THREADS")
        os.environ["NUMBA_NUM_THREADS"] = "1"

    def __exit__(self, *exc):
        if self.previous is None:
            os.environ.pop("NUMBA_NUM_THREADS", None)
        else:
            os.environ["NUMBA_NUM_THREADS"] = self.previous
        return False


def _dask(function, items, scheduler, workers):
    """Yield (index, result) as a Dask cluster finishes the items. A LocalCluster's workers are
    this process's children and die with it; on a remote cluster a running task finishes."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ConfigError("the Dask scheduler needs the optional extra: pip install 'meanfield[distributed]'",
                          parameter="--scheduler", value=scheduler, allowed="serial, processes") from None
    from contextlib import ExitStack

    with ExitStack() as stack:
        if scheduler == "local":
            stack.enter_context(one_numba_thread())
            target = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                      host="127.0.0.1", dashboard_address=None))
        else:
            target = scheduler
        try:
            client = stack.enter_context(Client(target, timeout="10s"))
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}", parameter="--scheduler",
                              value=scheduler, allowed="the address of a running Dask scheduler") from None
        futures = client.map(_on_worker, items, function=function, local=scheduler == "local", pure=False)
        index = {future.key: k for k, future in enumerate(futures)}
        try:
            for future in as_completed(futures):
                yield index[future.key], future.result()
        except BaseException:
            client.cancel(futures)
            raise


def _on_worker(item, function, local):
    if local:
        die_with_parent(os.getppid())
    return function(item)
