"""The Dask cluster a sweep runs on (layer 5; imported by :mod:`qeprop.sweeps` only when a sweep
runs, so that ``import qeprop`` never loads Dask)."""

from __future__ import annotations

import importlib.util
import logging
import signal
import threading
import warnings
from typing import Any

import dask
from distributed import Client, KilledWorker, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from .errors import QEPError

__all__ = ["LOCAL_CONFIG", "IgnoreInterrupts", "connect", "describe", "killed_worker_type"]


class IgnoreInterrupts(WorkerPlugin):
    """Worker processes of a local cluster ignore ``SIGINT``.

    Ctrl-C in a terminal reaches the whole process group, the workers included; the sweep
    process handles it (and closes the cluster), so the workers must not die of it on their
    own, with a traceback each. Registered with the scheduler, the plugin also reaches workers
    that the nanny restarts after one died. Only the worker's main thread may set a handler.
    """

    name = "qeprop-ignore-sigint"

    def setup(self, worker: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)


#: Dask settings of the local clusters (the nanny hands them to its worker processes):
#:
#: * one task per worker at a time (the default saturation, 1.1, would queue a second run on a
#:   busy worker while another one is idle);
#: * no statistical profiler, and the system and memory monitors and the event-loop tick at
#:   a slower pace: a worker's event loop otherwise spends about 0.4 s of CPU per second of its
#:   task's CPU (measured with two single-thread workers on two cores: 22.3 s for 16 s of task
#:   work; 17.0 s with these settings), time the runs beside it lose. The profiler feeds only
#:   the dashboard's profile page; runs are long and regular, so coarse monitors suffice.
LOCAL_CONFIG: dict[str, Any] = {
    "distributed.scheduler.worker-saturation": 1.0,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.tick.interval": "500ms",
}


def connect(scheduler: str | None, n_workers: int) -> tuple[Any, Any]:
    """``(client, cluster)``: a client of the scheduler at ``scheduler`` (``cluster`` is
    ``None``), or of a new local cluster of ``n_workers`` processes with one thread each."""
    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError, ValueError) as e:
            raise QEPError(
                f"cannot connect to a Dask scheduler at {scheduler!r}: {' '.join(str(e).split())}",
                where="--scheduler",
            ) from None
        return client, None
    with (
        dask.config.set(LOCAL_CONFIG),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")  # "port 8787 is already in use": another port is taken
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:8787",
            memory_limit=0,  # runs are independent processes, as with `qeprop run`
            silence_logs=logging.ERROR,
        )
    try:
        client = Client(cluster)
        client.register_plugin(IgnoreInterrupts())
    except BaseException:
        cluster.close()
        raise
    return client, cluster


def describe(client: Any, cluster: Any) -> str:
    """One line: where the runs go, and the dashboard's address."""
    threads = client.nthreads()
    n, t = len(threads), sum(threads.values())
    link = client.dashboard_link
    if cluster is not None:
        where = f"local cluster, {n} worker processes x 1 thread"
        if importlib.util.find_spec("bokeh") is None:
            link = f"{link} (its plots need bokeh: pip install 'bokeh>=3.1')"
    else:
        where = f"scheduler {client.scheduler.address}, {n} workers, {t} threads"
    return f"cluster: {where}; dashboard: {link}"


def killed_worker_type() -> type[BaseException]:
    """The error of a task whose workers died too often (Dask's ``allowed-failures``)."""
    return KilledWorker
