"""Peak memory of a process tree, other processes' CPU share, and the machine facts benchmark records carry.

Used by ``bench_dask.py`` (imported after its thread variables are set; psutil is a benchmark-only
dependency).
"""
from __future__ import annotations

import os
import sys
import threading
import time
from importlib import metadata

MB = 2.0**20


class PeakRSS(threading.Thread):
    """Every ``interval`` s: the RSS of this process and all its descendants, summed; peaks in total, by kind
    (client / workers / other children) and by phase (the label in ``phase``)."""

    def __init__(self, interval: float = 0.1):
        super().__init__(daemon=True)
        import psutil
        self.psutil, self.me, self.interval = psutil, psutil.Process(), interval
        self.worker_pids: set[int] = set()
        self.phase = "start"
        self.peak = 0
        self.peak_kind = {"client": 0, "workers": 0, "other": 0}
        self.at_peak: dict = {}
        self.peak_phase: dict[str, int] = {}
        self.samples = 0
        self._halt = threading.Event()

    def set_workers(self, pids) -> None:
        """The workers' pids; the peaks by kind start again (during the start-up the workers were others)."""
        self.worker_pids = set(pids)
        self.peak_kind = {"client": self.peak_kind["client"], "workers": 0, "other": 0}

    def measure(self) -> dict:
        """The RSS now, in bytes, by kind (a worker's own children count as the worker's)."""
        out = {"client": self.me.memory_info().rss, "workers": 0, "other": 0}
        for p in self.me.children(recursive=True):
            try:
                rss = p.memory_info().rss
                kind = "workers" if p.pid in self.worker_pids or any(
                    a.pid in self.worker_pids for a in p.parents()) else "other"
            except self.psutil.Error:       # gone meanwhile
                continue
            out[kind] += rss
        return out

    def sample(self) -> dict:
        m = self.measure()
        total = sum(m.values())
        self.samples += 1
        if total > self.peak:
            self.peak, self.at_peak = total, dict(m, phase=self.phase)
        for k, v in m.items():
            self.peak_kind[k] = max(self.peak_kind[k], v)
        self.peak_phase[self.phase] = max(self.peak_phase.get(self.phase, 0), total)
        return m

    def run(self):
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def finish(self) -> dict:
        self._halt.set()
        self.join()
        self.sample()
        return {"peak_rss_mb": self.peak / MB,
                "peak_rss_by_kind_mb": {k: v / MB for k, v in self.peak_kind.items()},
                "at_peak_mb": {k: (v / MB if k != "phase" else v) for k, v in self.at_peak.items()},
                "peak_rss_by_phase_mb": {k: v / MB for k, v in self.peak_phase.items()},
                "samples": self.samples, "interval_s": self.interval}


class CpuShare:
    """CPU seconds used by other processes over a window: the system's busy time minus this process tree's."""

    def __init__(self):
        import psutil
        self.psutil = psutil
        self.t0, self.busy0, self.ours0 = time.perf_counter(), self._busy(), self._ours()

    def _busy(self) -> float:
        c = self.psutil.cpu_times()._asdict()     # guest time is already in user time
        return sum(c.get(k, 0.0) for k in ("user", "nice", "system", "irq", "softirq", "steal"))

    def _ours(self) -> float:
        me = self.psutil.Process()
        total = 0.0
        for p in [me] + me.children(recursive=True):
            try:
                c = p.cpu_times()
                total += c.user + c.system
            except self.psutil.Error:
                pass
        return total

    def result(self) -> dict:
        wall = time.perf_counter() - self.t0
        ours, busy = self._ours() - self.ours0, self._busy() - self.busy0
        return {"own_cores": ours / wall, "others_cores": max(busy - ours, 0.0) / wall}


def machine() -> dict:
    import platform

    import psutil
    return {"cores": os.cpu_count(), "physical_cores": psutil.cpu_count(logical=False),
            "ram_gb": psutil.virtual_memory().total / 2**30, "available_gb": psutil.virtual_memory().available / 2**30,
            "loadavg_at_end": os.getloadavg(), "platform": platform.platform(), "python": sys.version.split()[0]}


def versions() -> dict:
    out = {}
    for name in ("mixedfx", "dask", "distributed", "numpy", "scipy", "pandas", "pyarrow", "psutil", "numba",
                 "threadpoolctl"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def jsonable(obj):
    import numpy as np
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)
