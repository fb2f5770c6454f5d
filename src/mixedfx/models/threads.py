"""BLAS threads while fitting: one thread unless a core is measurably idle and more threads pay.

Why a policy at all.  OpenBLAS splits each call over its threads and waits for all of
them at every step of a blocked factorization.  When another process holds a core, the
helper thread waits for a scheduler time slice at each of these steps: on a 2-core machine
a 413 x 413 ``dpotrf`` took 1 s with 2 threads against 1 ms with 1 while other processes
kept both cores busy, and an evaluation of the InstEval deviance 0.6-1.5 s against 20 ms
beside a numpy job.  On an idle machine 2 threads make the same evaluations ~15% faster
(20.3 -> 17.0 ms; 14.4 -> 11.9 ms for a 413-column block).  Small blocks never gain
(verbagg: 6.1 s with 2 threads vs 3.1 s with 1 on a quiet machine).

The policy (``blas_threads="auto"``), see :class:`ThreadPolicy`:

* dense block under :data:`MIN_DENSE_BLOCK` columns, one core, or no way to read the
  machine's load (not Linux): 1 thread, nothing measured, no wrapper around the objective;
* otherwise the fit starts on 1 thread and times its objective evaluations.  After at least
  two evaluations and 0.15 s it reads the idle time of its CPUs (``/proc/stat``) and its own
  CPU time: the cores not used by other processes are ``(idle + own CPU) / wall time``.
  Only when that leaves a whole core for each extra thread (0.25 core margin) does it switch
  to more threads, and only for the library behind ``scipy.linalg`` (see
  :func:`_lapack_libraries`); every other BLAS library stays on 1 thread during the fit;
* on more threads it keeps them only while they pay.  Back to 1 thread when: the load
  (read every 0.1 s, and after any evaluation 1.5x slower than on 1 thread) shows another
  process taking CPU; an evaluation is 10x slower than on 1 thread; or evaluations 2-4 are
  not faster than 0.97x the one-thread median.  The next try waits twice as long as the
  last (0.5 s, 1 s, ... up to 8 s of fitting).

The first look waits 0.15 s because BLAS threads used just before the fit (the design is
built with the library defaults) keep spinning for ~0.1 s; a try inside that time found 2
threads slower.  A try is never started on a busy machine, because one evaluation under
contention can cost 40-80 one-thread evaluations.  Reading the load costs ~25 us, at most
every 0.1 s; the wrapper costs ~1 us an evaluation (evaluations with such blocks take >5 ms).
``blas_threads=`` (an int, or None for no cap) overrides the policy.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import numbers
import os
import time
from collections import deque
from functools import lru_cache

__all__ = ["MIN_DENSE_BLOCK", "ThreadPolicy", "CpuIdle", "blas_policy", "adaptive", "blas_limit",
           "auto_threads", "available_cores"]

#: Dense blocks with fewer columns always run on one thread (measured: no gain below ~400).
MIN_DENSE_BLOCK = 400
#: Never use more threads than this on the policy's own initiative.
MAX_AUTO_THREADS = 8


@lru_cache(maxsize=1)
def _controller():
    try:
        from threadpoolctl import ThreadpoolController
        return ThreadpoolController()
    except Exception:  # pragma: no cover - threadpoolctl missing or unsupported BLAS
        return None


@lru_cache(maxsize=1)
def _blas_libraries() -> tuple:
    ctl = _controller()
    return () if ctl is None else tuple(ctl.select(user_api="blas").lib_controllers)


@lru_cache(maxsize=1)
def _lapack_libraries() -> tuple:
    """The BLAS libraries behind ``scipy.linalg`` (the dense factorizations and solves).

    pip wheels of numpy and scipy each bundle an OpenBLAS with its own thread pool.  After a
    call, a pool's threads spin for a while; when both pools run 2 threads on 2 cores, one
    pool's spinning thread takes the core the other pool's thread waits for (a 413-column
    ``dpotrf`` followed by a matrix product: 16 ms on 2 + 2 threads, 10.5 ms on 1 + 1).  The
    objective's gain from threads comes from scipy's LAPACK (crossed model: 14.4 ms an
    evaluation on 1 + 1 threads, 11.9 ms with 2 for scipy only, 13.8 ms with 2 for numpy
    only), so only that library gets more threads.  With one shared library (conda, MKL)
    this is simply that library.
    """
    import scipy
    return _scipy_own(_blas_libraries(), os.path.dirname(scipy.__file__))


def _scipy_own(libs, scipy_dir: str) -> tuple:
    """Those of ``libs`` shipped inside scipy's package (``scipy/``, ``scipy.libs/``), else all."""
    site = os.path.dirname(os.path.realpath(scipy_dir))
    names = {os.path.basename(os.path.realpath(scipy_dir)), "scipy.libs"}
    own = []
    for lib in libs:
        rel = os.path.relpath(os.path.realpath(lib.filepath), site)
        if rel.split(os.sep)[0] in names:
            own.append(lib)
    return tuple(own) or tuple(libs)


def _affinity() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return list(range(os.cpu_count() or 1))


@lru_cache(maxsize=1)
def _cgroup_cpus() -> float | None:
    """CPU quota of this process's cgroup in cores (None: no quota or not readable)."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:              # cgroup v2
            quota, period = f.read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:                                                       # cgroup v1
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period = int(f.read())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup CPU quota."""
    n = len(_affinity())
    quota = _cgroup_cpus()
    if quota is not None:
        n = min(n, max(1, int(quota)))
    return max(1, n)


class CpuIdle:
    """Cumulative idle seconds (idle + iowait) of the CPUs this process may run on.

    Reads the per-CPU lines of ``/proc/stat`` (Linux; ~30 us a call).  Calling the
    instance returns None when the file or the CPUs' lines are missing.

    Parameters
    ----------
    path : the ``/proc/stat``-format file.
    cpus : CPU numbers to count (default: this process's affinity).
    """

    def __init__(self, path: str = "/proc/stat", cpus=None):
        self.path = path
        self._names = frozenset(b"cpu%d" % i for i in (_affinity() if cpus is None else cpus))
        try:
            self._tick = 1.0 / os.sysconf("SC_CLK_TCK")
        except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
            self._tick = 0.01

    def __call__(self) -> float | None:
        try:
            with open(self.path, "rb") as f:
                lines = f.read().split(b"\n")
        except OSError:
            return None
        ticks, found = 0, 0
        for line in lines[1:]:                    # the first line is the all-CPU total
            if not line.startswith(b"cpu"):
                break
            fields = line.split()
            if fields[0] in self._names and len(fields) > 5:
                ticks += int(fields[4]) + int(fields[5])
                found += 1
        return ticks * self._tick if found else None


class ThreadPolicy:
    """Chooses between 1 and ``max_threads`` BLAS threads from timed objective evaluations.

    Everything it measures comes through the injected callables, so the decisions can be
    tested with fake clocks.  Call :meth:`observe` after each evaluation (or use
    :meth:`wrap`); the thread count changes only between evaluations.

    Parameters
    ----------
    max_threads : threads to use when the cores are free (>= 2).
    set_threads : ``set_threads(n)`` applies a thread count (called with 1 at once).
    clock : wall clock in seconds.  cpu_clock : this process's CPU seconds (all threads).
    idle : cumulative idle CPU seconds of this process's CPUs, or None when unknown
        (then the policy never leaves 1 thread).

    Attributes
    ----------
    threads : the current thread count.  evaluations : evaluations observed.
    switches : list of ``(evaluation, threads, reason)``, one per change of thread count.
    """

    FIRST_WINDOW = 0.15     # s of one-thread fitting before the first look at the load (BLAS
                            # threads used just before the fit spin ~0.1 s and would disturb a try)
    MIN_ONE_THREAD = 2      # ... and at least this many one-thread evaluations (the reference)
    RECHECK = 0.25          # s between looks at the load on one thread; a failed try waits
    MAX_BACKOFF = 32        # RECHECK * 2, 4, ... 32 (8 s) before the next
    CHECK_BUSY = 0.1        # s between looks at the load on more threads
    MARGIN = 0.25           # a thread needs (1 - MARGIN) of a core nobody else uses
    SLOW = 1.5              # an evaluation this much slower than on one thread: look at the load
    HOPELESS = 10.0         # ... this much slower: back to one thread whatever the load says
    WARMUP = 1              # evaluations on more threads not judged for speed
    VERIFY = 3              # the next VERIFY evaluations (median) must beat one thread ...
    FASTER = 0.97           # ... by this factor

    def __init__(self, max_threads: int, set_threads, clock=time.perf_counter, cpu_clock=time.process_time,
                 idle=None):
        self.max_threads = int(max_threads)
        self._set = set_threads
        self._clock, self._cpu, self._idle = clock, cpu_clock, idle
        self.threads = 1
        self.evaluations = 0
        self.switches: list[tuple[int, int, str]] = []
        self._one = deque(maxlen=5)            # recent one-thread evaluation times
        self._many: list[float] = []           # evaluation times since the last switch up
        self._backoff = 1
        self._window = self.FIRST_WINDOW       # s between looks at the load on one thread
        self._next_try = -math.inf             # no switch up before this clock time
        self._mark = self._snapshot()
        set_threads(1)

    # -------------------------------------------------------------- measurements
    def _snapshot(self):
        idle = None if self._idle is None else self._idle()
        return None if idle is None else (self._clock(), idle, self._cpu())

    def spare_cores(self) -> float | None:
        """Cores not used by other processes since the last reading (starts a new window)."""
        old, new = self._mark, self._snapshot()
        self._mark = new
        if old is None or new is None or new[0] <= old[0]:
            return None
        return ((new[1] - old[1]) + (new[2] - old[2])) / (new[0] - old[0])

    def allowed(self, spare: float | None) -> int:
        """Threads that ``spare`` free cores can carry without waiting for a time slice."""
        if spare is None:
            return 1
        return max(1, min(self.max_threads, int(math.floor(spare + self.MARGIN))))

    # -------------------------------------------------------------- decisions
    def _switch(self, n: int, reason: str) -> None:
        self.threads = n
        self._set(n)
        self.switches.append((self.evaluations, n, reason))

    def _back_to_one(self, reason: str) -> None:
        self._backoff = min(2 * self._backoff, self.MAX_BACKOFF)
        self._switch(1, reason)
        self._mark = self._snapshot()
        self._window = self.RECHECK
        self._next_try = self._mark[0] + self.RECHECK * self._backoff

    def _reference(self) -> float:
        s = sorted(self._one)
        return s[len(s) // 2]

    def observe(self, seconds: float) -> None:
        """Record one evaluation that took ``seconds`` on the current threads; maybe switch."""
        self.evaluations += 1
        if self._mark is None:                     # load unknown: stay on one thread
            return
        if self.threads == 1:
            self._one.append(seconds)
            if len(self._one) < self.MIN_ONE_THREAD or self._clock() - self._mark[0] < self._window:
                return
            n = self.allowed(self.spare_cores())
            self._window = self.RECHECK
            if n > 1 and self._mark[0] >= self._next_try:
                self._many = []
                self._switch(n, "idle cores")
            return
        self._many.append(seconds)
        ref = self._reference()
        if seconds > self.HOPELESS * ref:
            self._back_to_one("slow evaluation")
            return
        # a slow evaluation is a competing process only if the load shows one (the first
        # evaluations on more threads can be slow for other reasons, e.g. threads waking up)
        if seconds > self.SLOW * ref or self._clock() - self._mark[0] >= self.CHECK_BUSY:
            if self.allowed(self.spare_cores()) < self.threads:
                self._back_to_one("competing load")
                return
        if len(self._many) == self.WARMUP + self.VERIFY:
            s = sorted(self._many[self.WARMUP:])
            if s[len(s) // 2] > self.FASTER * ref:
                self._back_to_one("not faster")
                return
            self._backoff = 1

    def wrap(self, fun):
        """``fun`` timed by this policy (the thread count may change after each call)."""
        clock = self._clock

        def timed(x):
            t0 = clock()
            value = fun(x)
            self.observe(clock() - t0)
            return value
        return timed


class _Fixed:
    """A fixed thread count: nothing to observe."""

    def __init__(self, threads):
        self.threads = threads
        self.switches: list = []

    @staticmethod
    def wrap(fun):
        return fun


_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("mixedfx_blas_policy", default=None)


def _check_requested(requested) -> None:
    if requested is None or (isinstance(requested, str) and requested == "auto"):
        return
    if isinstance(requested, bool) or not isinstance(requested, numbers.Integral) or requested < 1:
        raise ValueError(f"blas_threads must be 'auto', None (no cap) or a positive whole number of threads; "
                         f"got {requested!r}")


def auto_threads(dense_block: int, requested="auto"):
    """The fixed thread cap used when no adaptive policy runs (``"auto"``: 1).

    Kept for callers that want a static cap; :func:`blas_policy` is what fits use.
    """
    _check_requested(requested)
    return 1 if isinstance(requested, str) else requested


def blas_limit(limit):
    """Context manager capping BLAS threads (None: no cap)."""
    ctl = _controller()
    if limit is None or ctl is None:
        return contextlib.nullcontext()
    return ctl.limit(limits=int(limit), user_api="blas")


@contextlib.contextmanager
def blas_policy(dense_block: int, requested="auto", *, idle=None):
    """BLAS threads for one fit; yields the policy (``.wrap(objective)``, ``.threads``).

    Parameters
    ----------
    dense_block : columns of the fit's largest dense block factorized at each evaluation
        (0 for fits without one, or on the sparse path).
    requested : ``"auto"`` (the adaptive policy, see the module docstring), a positive int
        (that cap) or None (no cap: the BLAS library's own default).
    idle : idle-time reader for the policy (default :class:`CpuIdle`; for tests).

    Notes
    -----
    Inside the block, :func:`adaptive` wraps an objective with the innermost active policy.
    The BLAS libraries' thread counts are restored on exit.
    """
    _check_requested(requested)
    libs = _blas_libraries()
    reader, cores = None, 1
    if requested == "auto" and dense_block >= MIN_DENSE_BLOCK and libs:
        cores = available_cores()
        if cores >= 2:
            reader = CpuIdle() if idle is None else idle
            if reader() is None:          # load unknown (not Linux): one thread is the safe choice
                reader = None
    original = [lib.num_threads for lib in libs]
    if reader is None:
        policy = _Fixed(auto_threads(dense_block, requested))
        if policy.threads is not None:
            for lib in libs:
                lib.set_num_threads(policy.threads)
    else:
        for lib in libs:
            lib.set_num_threads(1)
        lapack = _lapack_libraries()

        def set_threads(n: int) -> None:
            for lib in lapack:
                lib.set_num_threads(n)

        policy = ThreadPolicy(min(cores, MAX_AUTO_THREADS), set_threads, idle=reader)
    token = _ACTIVE.set(policy)
    try:
        yield policy
    finally:
        _ACTIVE.reset(token)
        for lib, n in zip(libs, original):
            lib.set_num_threads(n)


def adaptive(fun):
    """``fun`` timed by the active :func:`blas_policy` (unchanged outside one, or when fixed)."""
    policy = _ACTIVE.get()
    return fun if policy is None else policy.wrap(fun)
