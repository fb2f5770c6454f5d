"""The BLAS thread policy: decisions driven by a simulated machine (fake clocks, no timing)."""
from __future__ import annotations

import numpy as np
import pytest

from mixedfx.models import threads
from mixedfx.models.threads import MIN_DENSE_BLOCK, CpuIdle, ThreadPolicy, adaptive, blas_policy


class Machine:
    """A simulated machine: ``cores`` CPUs, other processes wanting ``other`` cores.

    An objective evaluation costs ``one`` seconds on 1 thread; on more threads ``many``
    seconds when the cores are free, ``contended`` seconds when another process needs one
    of them (the helper thread waits for time slices).  The clocks, the CPU time of "our"
    process and the cumulative idle time advance consistently.
    """

    def __init__(self, cores=2, other=0.0, one=0.020, many=0.015, contended=0.8):
        self.cores, self.other = cores, other
        self.one, self.many, self.contended = one, many, contended
        self.t = self.cpu = self.idle_s = 0.0
        self.threads = None
        self.idle_reads = 0

    def clock(self):
        return self.t

    def cpu_clock(self):
        return self.cpu

    def idle(self):
        self.idle_reads += 1
        return self.idle_s

    def set_threads(self, n):
        self.threads = n

    def advance(self, seconds, want):
        """``want`` cores of ours and ``other`` cores of others share the CPUs for ``seconds``."""
        total = want + self.other
        share = 1.0 if total <= self.cores else self.cores / total
        self.cpu += want * share * seconds
        self.idle_s += max(0.0, self.cores - total) * seconds
        self.t += seconds

    def evaluate(self):
        if self.threads == 1:
            dt = self.one * (1.0 if 1 + self.other <= self.cores else (1 + self.other) / self.cores)
        else:
            dt = self.many if self.threads + self.other <= self.cores + 1e-9 else self.contended
        self.advance(dt, self.threads)
        return dt

    def policy(self, max_threads=None, idle=True):
        return ThreadPolicy(max_threads or self.cores, self.set_threads, clock=self.clock,
                            cpu_clock=self.cpu_clock, idle=self.idle if idle else None)


def fit(machine, policy, n, events=None):
    """``n`` evaluations; ``events[i]`` sets ``machine.other`` before evaluation i.  Returns the
    thread count of each evaluation and the total time."""
    used, total = [], 0.0
    for i in range(n):
        if events and i in events:
            machine.other = events[i]
        used.append(machine.threads)
        dt = machine.evaluate()
        total += dt
        policy.observe(dt)
    return used, total


def test_quiet_machine_moves_to_all_cores_after_a_short_one_thread_window():
    m = Machine()
    p = m.policy()
    used, total = fit(m, p, 60)
    assert used[0] == 1
    first_many = used.index(2)
    # at least MIN_ONE_THREAD evaluations and FIRST_WINDOW seconds on one thread, not more than needed
    assert ThreadPolicy.MIN_ONE_THREAD <= first_many <= int(ThreadPolicy.FIRST_WINDOW / m.one) + 2
    assert first_many * m.one >= 0.1     # not while threads used just before the fit may still spin
    assert all(u == 2 for u in used[first_many:])
    assert p.switches == [(first_many, 2, "idle cores")]
    assert total <= 1.10 * 60 * m.many


def test_busy_core_never_tried_with_more_threads():
    for other in (1.0, 2.0, 0.5):      # a busy loop, a numpy job with its own 2 threads, half a core
        m = Machine(other=other)
        p = m.policy()
        used, total = fit(m, p, 200)
        assert set(used) == {1}, other
        assert p.switches == []
        assert m.idle_reads >= 2        # it did look at the load (at least once after the start)


def test_small_spare_margin():
    p = Machine().policy(max_threads=4)
    assert p.allowed(None) == 1
    assert p.allowed(0.4) == 1
    assert p.allowed(1.74) == 1 and p.allowed(1.76) == 2
    assert p.allowed(2.8) == 3
    assert p.allowed(7.0) == 4          # capped at max_threads


def test_not_faster_goes_back_and_retries_with_growing_backoff():
    m = Machine(one=0.020, many=0.021)  # free cores, but more threads do not pay for this model
    p = m.policy()
    used, total = fit(m, p, 600)
    ups = [s for s in p.switches if s[1] == 2]
    downs = [s for s in p.switches if s[1] == 1]
    assert downs and all(reason == "not faster" for _, _, reason in downs)
    judged = ThreadPolicy.WARMUP + ThreadPolicy.VERIFY
    assert all(later[0] - earlier[0] == judged for earlier, later in zip(ups, downs))
    gaps = [ups[i + 1][0] - downs[i][0] for i in range(len(ups) - 1)]
    assert gaps == sorted(gaps) and gaps[-1] > gaps[0]               # backoff grows
    assert used.count(2) <= judged * len(ups)
    assert total <= 1.02 * 600 * m.one


@pytest.mark.parametrize("contended, reason", [(0.8, "slow evaluation"), (0.05, "competing load")])
def test_competitor_starting_mid_fit_costs_one_evaluation_and_the_policy_comes_back(contended, reason):
    m = Machine(contended=contended)
    p = m.policy()
    used, total = fit(m, p, 400, events={100: 1.0, 250: 0.0})
    slow = [i for i, u in enumerate(used) if u == 2 and 100 <= i < 250]
    assert slow == [100]                                    # one contended evaluation, then 1 thread
    assert (101, 1, reason) in p.switches
    assert used[-1] == 2                                    # back on 2 threads once the core is free
    comeback = next(s[0] for s in p.switches if s[1] == 2 and s[0] > 250)
    assert comeback - 250 < 2 * ThreadPolicy.RECHECK / m.one + ThreadPolicy.VERIFY


def test_competitor_seen_in_the_load_before_any_slow_evaluation():
    m = Machine(contended=0.016)        # a competitor that does not (yet) slow our evaluations
    p = m.policy()
    fit(m, p, 30)
    assert m.threads == 2
    m.other = 1.0
    fit(m, p, 20)
    assert m.threads == 1 and p.switches[-1][2] == "competing load"


def test_slow_first_evaluations_without_competing_load_do_not_end_the_try():
    """Threads waking up (or another library's threads still spinning) slow the first
    evaluations on more threads; the CPU they burn is this process's, so the try goes on."""
    m = Machine()
    p = m.policy()
    used = []
    warm = [0.060, 0.030]            # 4x and 2x one thread's 15-20 ms
    for _ in range(40):
        used.append(m.threads)
        if m.threads == 2 and warm:
            dt = warm.pop(0)
            m.advance(dt, 2)
        else:
            dt = m.evaluate()
        p.observe(dt)
    assert used[-1] == 2 and [s[1] for s in p.switches] == [2]


@pytest.mark.parametrize("factor, reason", [(2.0, "not faster"), (12.0, "slow evaluation")])
def test_slow_more_threads_with_idle_cores_go_back(factor, reason):
    """E.g. a CPU quota: the cores look idle but more threads do not run; the median check
    (or, for a hopeless evaluation, the evaluation itself) sends the fit back to one thread."""
    m = Machine(many=0.020 * factor)
    p = m.policy()
    used, _ = fit(m, p, 60)
    up = p.switches[0][0]
    assert p.switches[1][2] == reason
    n_many = p.switches[1][0] - up
    assert n_many == (ThreadPolicy.WARMUP + ThreadPolicy.VERIFY if reason == "not faster" else 1)


def test_unknown_load_stays_on_one_thread():
    m = Machine()
    p = m.policy(idle=False)
    used, _ = fit(m, p, 100)
    assert set(used) == {1} and p.switches == []


def test_wrap_times_each_call_and_switches_between_calls():
    m = Machine()
    p = m.policy()
    calls = []

    def objective(x):
        calls.append(m.threads)
        m.evaluate()
        return float(np.sum(x))

    f = p.wrap(objective)
    assert [f(np.ones(2)) for _ in range(10)] == [2.0] * 10
    assert p.evaluations == 10 and calls[0] == 1 and calls[-1] == 2


def test_cpu_idle_reads_the_cpus_of_this_process(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  10 0 10 900 5 0 0 0 0 0\n"
                    "cpu0 5 0 5 300 1 0 0 0 0 0\n"
                    "cpu1 5 0 5 600 4 0 0 0 0 0\n"
                    "intr 1 2 3\n")
    tick = 1.0 / __import__("os").sysconf("SC_CLK_TCK")
    assert CpuIdle(str(stat), cpus=[0, 1])() == pytest.approx(905 * tick)
    assert CpuIdle(str(stat), cpus=[1])() == pytest.approx(604 * tick)
    assert CpuIdle(str(stat), cpus=[7])() is None
    assert CpuIdle(str(tmp_path / "missing"))() is None


@pytest.mark.parametrize("bad", [0, -1, 2.5, "two", True])
def test_bad_blas_threads_named_in_the_error(bad):
    with pytest.raises(ValueError, match="blas_threads"):
        with blas_policy(1000, bad):
            pass


def _blas_threads():
    from threadpoolctl import threadpool_info
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_small_blocks_and_explicit_caps_add_no_wrapper():
    def f(x):
        return x

    before = _blas_threads()
    with blas_policy(MIN_DENSE_BLOCK - 1) as pol:
        assert adaptive(f) is f and pol.threads == 1
        assert set(_blas_threads()) <= {1}
    with blas_policy(10_000, 1) as pol:
        assert adaptive(f) is f and pol.threads == 1
    with blas_policy(10_000, None):
        assert adaptive(f) is f
    with blas_policy(10_000, idle=lambda: None):          # load unknown: one thread, no wrapper
        assert adaptive(f) is f and set(_blas_threads()) <= {1}
    assert adaptive(f) is f                                   # outside any policy
    assert _blas_threads() == before


def test_large_block_gets_the_adaptive_policy_and_restores_threads(monkeypatch):
    if not threads._blas_libraries():
        pytest.skip("no BLAS library visible to threadpoolctl")
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    before = _blas_threads()
    with blas_policy(MIN_DENSE_BLOCK, idle=lambda: 0.0) as pol:
        assert isinstance(pol, ThreadPolicy) and pol.max_threads == 2
        assert set(_blas_threads()) == {1}                      # starts on one thread
        f = adaptive(lambda x: x + 1)
        assert f(1) == 2 and pol.evaluations == 1
        with blas_policy(0):                                    # a nested small fit
            assert set(_blas_threads()) == {1}
        assert adaptive(abs) is not abs                        # the outer policy is active again
    assert _blas_threads() == before


def test_only_scipys_own_blas_gets_more_threads(tmp_path):
    """pip wheels: numpy.libs/ and scipy.libs/ each hold an OpenBLAS; only scipy's (the
    factorizations) is switched.  One shared library (conda): that one."""
    class Lib:
        def __init__(self, path):
            self.filepath = str(path)

    site = tmp_path / "site-packages"
    numpy_lib = Lib(site / "numpy.libs" / "libscipy_openblas64_.so")
    scipy_lib = Lib(site / "scipy.libs" / "libscipy_openblas.so")
    mac_lib = Lib(site / "scipy" / ".dylibs" / "libscipy_openblas.dylib")
    other = Lib(site / "scipy_openblas64" / "lib" / "libscipy_openblas64_.so")
    shared = Lib(tmp_path / "lib" / "libopenblas.so")
    scipy_dir = str(site / "scipy")
    assert threads._scipy_own((numpy_lib, scipy_lib), scipy_dir) == (scipy_lib,)
    assert threads._scipy_own((numpy_lib, mac_lib, other), scipy_dir) == (mac_lib,)
    assert threads._scipy_own((shared,), scipy_dir) == (shared,)
    assert threads._scipy_own((), scipy_dir) == ()
def test_fits_with_a_large_dense_block_time_every_evaluation(monkeypatch):
    """lmer and glmer pass their objectives through the policy (the lines ``adaptive(...)``)."""
    import pandas as pd

    import mixedfx as mfx

    made = []

    class Recording(ThreadPolicy):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(threads, "ThreadPolicy", Recording)
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "CpuIdle", lambda: (lambda: 0.0))   # a machine that never idles
    rng = np.random.default_rng(1)
    n = 4000
    a, b = rng.integers(0, 600, n), rng.integers(0, 420, n)
    eta = rng.normal(size=600)[a] + 0.5 * rng.normal(size=420)[b]
    df = pd.DataFrame({"a": a, "b": b, "y": eta + rng.normal(size=n),
                       "z": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)})
    m = mfx.lmer("y ~ 1 + (1 | a) + (1 | b)", df)
    assert sum(blk.q for blk in m.fit.design.blocks[1:]) >= MIN_DENSE_BLOCK     # the dense block
    # every BOBYQA evaluation is timed (nfev also counts the Newton polish, run on the policy's threads)
    assert len(made) == 1 and 10 <= made[0].evaluations <= m.fit.opt.nfev
    made.clear()
    g = mfx.glmer("z ~ 1 + (1 | a) + (1 | b)", df, family="binomial")
    assert len(made) == 1 and made[0].evaluations >= g.fit.opt.nfev
    assert m.objective == pytest.approx(mfx.lmer("y ~ 1 + (1 | a) + (1 | b)", df, blas_threads=1).objective,
                                        rel=1e-9)
