"""Benchmark: a crossed LMM on Parquet partitions fitted through a Dask LocalCluster (issue 13, item 3).

The model is ``y ~ x + (1 | user) + (1 | item)``; the issue's case is 10^8 rows, 10^5 users x 10^4
items, 100 Parquet files, fitted on a 2-core machine with peak memory (client and workers together)
under 4 GB, and compared with the same problem subsampled in memory.  Three modes, each run in its
own process (the memory figures are those of one mode)::

    # 1. the data (under /tmp, never in the repository): --files files of --rows/--files rows
    python benchmarks/bench_dask.py --generate /tmp/mfx_1e8 --rows 1e8 --users 1e5 --items 1e4 --files 100
    # 2. the fit on a LocalCluster: 2 single-threaded worker processes, the fit's optimization on the client
    python benchmarks/bench_dask.py --fit /tmp/mfx_1e8 [--blas-threads 2] [--memory-limit 2GB]
    # 3. the same problem subsampled in memory (a random fraction of the rows, pandas + mfx.lmer)
    python benchmarks/bench_dask.py --memory /tmp/mfx_1e8 --fraction 0.1

Smoke run: ``--generate /tmp/mfx_smoke --rows 2e6 --users 2e4 --items 1e3 --files 4``, then ``--fit``
and ``--memory --fraction 0.5`` on that directory.

Data (``--generate``): ``user`` int32 uniform on ``--users``, ``item`` int32 uniform on ``--items``
(integer columns are factors in the grouping position), ``x ~ N(0, 1)``,
``y = 1 + 0.5 x + b_user + b_item + e`` with ``b_user ~ N(0, 0.8^2)``, ``b_item ~ N(0, 0.5^2)``,
``e ~ N(0, 1)``.  ``numpy.random.SeedSequence(--seed)`` is spawned into 1 + K streams: stream 0
draws the effects (users, then items: shared by all files), stream k + 1 the rows of file k (user,
item, x, e per chunk of at most ``--chunk`` rows), so memory stays bounded and a file does not depend
on the others.  Files are zstd Parquet; ``DIR/generation.json`` keeps the parameters and the truth.

Memory: a sampler thread sums the RSS of this process and of all its descendants (the workers the
nannies spawn, multiprocessing's helpers) every 0.1 s; the peak of that sum is the figure to hold under
4 GB.  It also keeps the peaks by kind (client = this process, which runs the nannies and the
scheduler; workers; other children) and by phase.  RSS counts shared library pages once per process,
so the sum over-states the physical memory a little (~100 MB for 3 processes), never under-states it.

Phases (``--fit``): this script wraps, in its own process only, the pass drivers of
:mod:`mixedfx.cluster.lmm` (``map_reduce``, ``map_reduce_buckets``: one phase per pass, named after its
partition function: survey, moments, block_sums, start_stats...), ``partitioned.fit_partitioned`` (the
client's fit) and ``ScaledWorkspace.from_blocks`` (the workspace's construction; what it builds lazily
counts in ``optimize`` = the client's fit without it).  ``other`` is the rest of ``mfx.lmer`` (the
Parquet metadata, specs, the result).  Drivers mixedfx renames drop out of the phases, not the totals.

Threads: BLAS/OpenMP variables are 1 before numpy loads (this process and the workers, whose
environment is also given to the nannies with ``NUMBA_NUM_THREADS=1``).  ``--blas-threads`` is the
client's ``blas_threads=`` (default 1; 2 is sound for ``--fit`` because the workers are idle once the
passes are done) and its numba thread count.  ``others_cores`` is the CPU that other processes used
during the fit (this machine is shared), from the system's CPU times minus this process tree's.

Workers: ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=--memory-limit)``
with spilling to ``--spill-dir`` from the usual 60%/70% of the limit, no pausing and no restarting
(``distributed.worker.memory.pause/terminate = False``): a worker over its limit spills what it can and
goes on instead of being killed (a paused worker holding unmanaged memory would stall the pass).

Results: one entry per run appended to ``benchmarks/results/dask.json`` (``{"runs": [...]}``) with the
machine (cores, RAM, load), the versions (mixedfx, dask, distributed, numpy, scipy, pandas, pyarrow,
numba) and ``smoke`` (false only for the issue's 10^8-row, 10^5 x 10^4 case).  ``--memory`` puts its
estimates beside those of the last ``--fit`` entry on the same data: a subsample's estimates differ
from the full data's by sampling error, so they are reported side by side with the difference in units
of its standard error (for nested samples, ``Var(b_sub - b_full) = Var(b_sub) - Var(b_full)``).
"""
from __future__ import annotations

import os

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "RAYON_NUM_THREADS")
for _var in THREAD_VARS:            # before numpy loads, here and in the spawned workers
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _memory import CpuShare, PeakRSS, jsonable, machine, versions  # noqa: E402
from _timing import ROOT, provenance  # noqa: E402

FORMULA = "y ~ x + (1 | user) + (1 | item)"
TRUTH = {"(Intercept)": 1.0, "x": 0.5, "sd_user": 0.8, "sd_item": 0.5, "sigma": 1.0}
ISSUE_CASE = {"rows": 10**8, "users": 10**5, "items": 10**4}
RESULTS = os.path.join(HERE, "results", "dask.json")
META = "generation.json"
MB = 2.0**20


def count(text: str) -> int:
    """An integer from ``1e8``, ``100000000`` or ``100_000_000``."""
    value = float(text.replace("_", ""))
    if value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(value)


# ---------------------------------------------------------------------------------------------- records

def record(entry: dict, path: str, load_at_start) -> None:
    """Append ``entry`` to ``path``'s ``runs`` (the file is rewritten whole, atomically)."""
    import mixedfx as mfx
    entry = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), **entry,
             "machine": machine() | {"loadavg_at_start": load_at_start},
             "versions": versions(), "provenance": provenance(mfx), "argv": sys.argv[1:]}
    stored = {"runs": []}
    if os.path.exists(path):
        with open(path) as f:
            stored = json.load(f)
    stored.setdefault("runs", []).append(entry)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(stored, f, indent=1, default=jsonable)
    os.replace(tmp, path)
    print(f"recorded in {os.path.relpath(path)} (entry {len(stored['runs'])})")


def read_meta(data_dir: str) -> dict:
    path = os.path.join(data_dir, META)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def data_facts(data_dir: str) -> dict:
    """The data's generation parameters, its files and whether it is the issue's case (``smoke`` otherwise)."""
    meta = read_meta(data_dir)
    files = parquet_files(data_dir)
    case = all(meta.get(k) == v for k, v in ISSUE_CASE.items())
    return {"data": {"dir": os.path.realpath(data_dir), "files": len(files),
                     "bytes_on_disk": sum(os.path.getsize(f) for f in files),
                     **{k: meta.get(k) for k in ("rows", "users", "items", "seed")}},
            "smoke": not case}


def parquet_files(data_dir: str) -> list[str]:
    import glob
    files = sorted(glob.glob(os.path.join(data_dir, "*.parquet")))
    if not files:
        raise SystemExit(f"no *.parquet files in {data_dir}: generate them first (--generate {data_dir})")
    return files


def estimates(m) -> dict:
    """The estimates of a fitted LMM (in memory or on Dask) in plain numbers."""
    import numpy as np
    f = m.fit
    groups = ["/".join(b.term.group) for b in f.design.blocks]
    theta = np.asarray(f.theta, float)
    se = np.sqrt(np.diag(np.asarray(f.vcov, float)))
    return {"reml": bool(f.reml), "criterion": float(f.objective),
            "criterion_name": "REML criterion" if f.reml else "-2 log L", "theta": theta.tolist(),
            "theta_names": [f"{g}.(Intercept)" for g in groups],
            "beta": dict(zip(f.design.xnames, np.asarray(f.beta, float).tolist())),
            "beta_se": dict(zip(f.design.xnames, se.tolist())), "sigma": float(f.sigma),
            "sd": {f"sd_{g}": float(t * f.sigma) for g, t in zip(groups, theta)},
            "nfev": int(f.opt.nfev), "optimizer": getattr(f.opt, "optimizer", None),
            "opt_status": getattr(f.opt, "status", None), "fit_seconds": float(f.seconds),
            "is_singular": bool(f.is_singular), "n": int(f.design.n),
            "levels": {g: len(b.levels) for g, b in zip(groups, f.design.blocks)}}


# ---------------------------------------------------------------------------------------------- generate

def generate(args) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    out = os.path.realpath(args.generate)
    if out == ROOT or out.startswith(ROOT + os.sep):
        raise SystemExit(f"{out} is inside the repository: write the data under /tmp")
    os.makedirs(out, exist_ok=True)
    for old in os.listdir(out):     # this script's own files only
        if (old.startswith("part-") and old.endswith(".parquet")) or old == META:
            os.remove(os.path.join(out, old))
    N, U, I, K = args.rows, args.users, args.items, args.files
    if K > N:
        raise SystemExit(f"--files {K} is more than --rows {N}")
    mon = PeakRSS()
    mon.start()
    t0 = time.perf_counter()
    streams = np.random.SeedSequence(args.seed).spawn(K + 1)
    eff = np.random.default_rng(streams[0])
    b_user, b_item = eff.normal(0.0, 0.8, U), eff.normal(0.0, 0.5, I)
    schema = pa.schema([("user", pa.int32()), ("item", pa.int32()), ("x", pa.float64()), ("y", pa.float64())])
    for k in range(K):
        rng = np.random.default_rng(streams[k + 1])
        rows = N // K + (k < N % K)
        with pq.ParquetWriter(os.path.join(out, f"part-{k:05d}.parquet"), schema, compression="zstd") as w:
            for s in range(0, rows, args.chunk):
                n = min(args.chunk, rows - s)
                user = rng.integers(0, U, n, dtype=np.int32)
                item = rng.integers(0, I, n, dtype=np.int32)
                x = rng.normal(size=n)
                y = 1.0 + 0.5 * x + b_user[user] + b_item[item] + rng.normal(size=n)
                w.write_table(pa.table({"user": user, "item": item, "x": x, "y": y}, schema=schema))
    seconds = time.perf_counter() - t0
    mem = mon.finish()
    meta = {"rows": N, "users": U, "items": I, "files": K, "seed": args.seed, "chunk": args.chunk,
            "formula": FORMULA, "truth": TRUTH, "theta_truth": [TRUTH["sd_user"], TRUTH["sd_item"]],
            "seconds": seconds}
    with open(os.path.join(out, META), "w") as f:
        json.dump(meta, f, indent=1)
    facts = data_facts(out)
    print(f"generated {N:,} rows ({U:,} users x {I:,} items) in {K} files: {seconds:.1f} s, "
          f"{facts['data']['bytes_on_disk'] / MB:.0f} MB on disk, peak RSS {mem['peak_rss_mb']:.0f} MB -> {out}")
    return {"mode": "generate", "status": "ok", **facts, "seconds": seconds, "chunk": args.chunk,
            "peak_rss_mb": mem["peak_rss_mb"]}


# ---------------------------------------------------------------------------------------------- dask fit

class Phases:
    """Wall time (and the sampler's phase label) of the passes and the client's fit, by wrapping mixedfx's
    driver functions in this process for the duration of one fit."""

    def __init__(self, mon: PeakRSS):
        self.mon, self.seconds, self.undo, self.stack = mon, {}, [], []

    def _timed(self, name_of, fn):
        def timed(*a, **k):
            name = name_of(a)
            self.stack.append(self.mon.phase)
            self.mon.phase = name
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t
                self.mon.phase = self.stack.pop()
        return timed

    def __enter__(self):
        try:
            from mixedfx.cluster import lmm as L
            from mixedfx.core.scaled_workspace import ScaledWorkspace
            from mixedfx.models import partitioned as P
            fp, fb = P.fit_partitioned, ScaledWorkspace.__dict__["from_blocks"]
        except (ImportError, AttributeError, KeyError) as exc:
            print(f"(phases not timed: {exc})")
            return self
        for driver in ("map_reduce", "map_reduce_buckets"):     # the pass drivers lmer_dask calls: (parts, fn, ...)
            if hasattr(L, driver):
                fn = getattr(L, driver)
                self.undo.append((L, driver, fn))
                setattr(L, driver, self._timed(self._pass_name, fn))
        P.fit_partitioned = self._timed(lambda a: "client_fit", fp)
        ScaledWorkspace.from_blocks = classmethod(self._timed(lambda a: "workspace", fb.__func__))
        self.undo += [(P, "fit_partitioned", fp), (ScaledWorkspace, "from_blocks", fb)]
        return self

    @staticmethod
    def _pass_name(a) -> str:
        return "pass_" + getattr(a[1], "__name__", "?").removeprefix("partition_")

    def __exit__(self, *exc):
        for obj, name, value in self.undo:
            setattr(obj, name, value)

    def result(self, wall: float) -> dict:
        out = dict(self.seconds)
        if "client_fit" in out:
            out["optimize"] = out["client_fit"] - out.get("workspace", 0.0)
        top = sum(v for k, v in out.items() if k.startswith("pass_") or k == "client_fit")
        out["other"] = wall - top       # reading the Parquet metadata, specs, the result
        return out


def _spill_stats(dask_worker) -> dict:
    """Run on each worker: what is spilled now and the cumulative disk traffic digests."""
    data = dask_worker.data
    out = {"pid": os.getpid()}
    total = getattr(data, "spilled_total", None)
    if total is not None:
        out["spilled_now_bytes"] = {"memory": getattr(total, "memory", None), "disk": getattr(total, "disk", None)}
    digests = getattr(dask_worker, "digests_total", {}) or {}
    out["disk_digests"] = {"/".join(map(str, k)) if isinstance(k, tuple) else str(k): v
                           for k, v in digests.items() if "disk" in str(k)}
    return out


def fit_dask(args) -> dict:
    import dask
    from dask.distributed import Client, LocalCluster

    import mixedfx as mfx
    data_dir = os.path.realpath(args.fit)
    facts = data_facts(data_dir)
    threads = _client_threads(args.blas_threads)
    mon = PeakRSS()
    mon.start()
    env = {v: "1" for v in THREAD_VARS} | {"NUMBA_NUM_THREADS": "1"}
    memcfg = {"distributed.worker.memory.target": 0.6, "distributed.worker.memory.spill": 0.7,
              "distributed.worker.memory.pause": False, "distributed.worker.memory.terminate": False}
    os.makedirs(args.spill_dir, exist_ok=True)
    with dask.config.set(memcfg):
        t = time.perf_counter()
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               memory_limit=args.memory_limit, local_directory=args.spill_dir, env=env)
        client = Client(cluster)
        startup = time.perf_counter() - t
        pids = client.run(os.getpid)
        mon.set_workers(pids.values())
        time.sleep(2.0)                 # let the processes settle
        mon.phase = "idle"
        base = mon.sample()
        baseline = {"total_mb": sum(base.values()) / MB, **{f"{k}_mb": v / MB for k, v in base.items()}}
        npart = _npartitions(data_dir)
        print(f"LocalCluster up in {startup:.1f} s: {args.workers} workers (pids {sorted(pids.values())}), "
              f"idle RSS {baseline['total_mb']:.0f} MB; {facts['data']['files']} files, {npart} partitions",
              flush=True)
        cpu = CpuShare()
        status, error, est = "ok", None, None
        with Phases(mon) as ph:
            mon.phase = "other"             # outside the timed passes and the client's fit
            t0 = time.perf_counter()
            try:
                m = mfx.lmer(FORMULA, os.path.join(data_dir, "*.parquet"), reml=not args.ml,
                             blas_threads=args.blas_threads)
            except Exception as exc:      # a failure inside mixedfx is a result to report, not to hide
                status, error = "error", _error(exc)
                import traceback
                traceback.print_exc()
            wall = time.perf_counter() - t0
        cpu = cpu.result()
        mon.phase = "after"
        if status == "ok":
            est = estimates(m)
        spill = client.run(_spill_stats)
        restarted = set(client.run(os.getpid).values()) != mon.worker_pids
        client.close()
        cluster.close()
    mem = mon.finish()
    entry = {"mode": "dask", "status": status, "error": error, **facts, "formula": FORMULA, "wall_s": wall,
             "phases_s": ph.result(wall), "cluster": {"workers": args.workers, "threads_per_worker": 1,
                                                      "memory_limit": args.memory_limit, "memory_config": memcfg,
                                                      "startup_s": startup, "partitions": npart,
                                                      "workers_restarted": restarted, "spill": list(spill.values())},
             "client_threads": threads, "baseline_idle": baseline, **mem, **cpu, "estimates": est}
    print(f"{status}: {wall:.1f} s " + ", ".join(f"{k} {v:.1f}" for k, v in entry["phases_s"].items())
          + f"; peak RSS {mem['peak_rss_mb']:.0f} MB (client {mem['peak_rss_by_kind_mb']['client']:.0f}, "
          f"workers {mem['peak_rss_by_kind_mb']['workers']:.0f}, other {mem['peak_rss_by_kind_mb']['other']:.0f}; "
          f"at the peak: {_fmt_at(mem['at_peak_mb'])}); idle {baseline['total_mb']:.0f} MB; "
          f"others used {cpu['others_cores']:.2f} cores; spilled {_spilled_mb(spill):.0f} MB"
          + ("; WORKERS RESTARTED" if restarted else ""))
    if est is not None:
        print(_fmt_est(est))
    else:
        print(f"the fit failed: {error}")
    return entry


def _spilled_mb(spill: dict) -> float:
    return sum(v for w in spill.values() for k, v in w.get("disk_digests", {}).items()
               if k.endswith("disk-write/bytes")) / MB


def _error(exc: BaseException) -> str:
    """The exception in one line, without terminal colours, at most 2,000 characters."""
    import re
    text = re.sub(r"\x1b\[[0-9;]*m", "", f"{type(exc).__name__}: {exc}")
    return text if len(text) <= 2000 else text[:2000] + " [...]"


def _npartitions(data_dir: str) -> int | None:
    try:
        import dask.dataframe as dd
        return int(dd.read_parquet(os.path.join(data_dir, "*.parquet")).npartitions)
    except Exception:
        return None


def _client_threads(blas_threads) -> dict:
    """numba's threads on the client follow ``--blas-threads`` (an int; the cores for None/"auto")."""
    n = blas_threads if isinstance(blas_threads, int) else os.cpu_count()
    try:
        import numba
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        nb = numba.get_num_threads()
    except ImportError:
        nb = None
    return {"blas_threads": blas_threads, "numba_threads": nb}


def _fmt_at(at: dict) -> str:
    return ", ".join(f"{k} {v:.0f}" if k != "phase" else f"in {v}" for k, v in at.items())


def _fmt_est(e: dict) -> str:
    beta = ", ".join(f"{k} {v:.6f} ({e['beta_se'][k]:.2e})" for k, v in e["beta"].items())
    sd = ", ".join(f"{k} {v:.5f}" for k, v in e["sd"].items())
    return (f"n {e['n']:,}, levels {e['levels']}; {e['criterion_name']} {e['criterion']:.6f}; nfev {e['nfev']} "
            f"({e['optimizer']}); beta {beta}; {sd}; sigma {e['sigma']:.6f}; theta {e['theta']}")


# ---------------------------------------------------------------------------------------------- in memory

def fit_memory(args) -> dict:
    import gc

    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    import mixedfx as mfx
    data_dir = os.path.realpath(args.memory)
    facts = data_facts(data_dir)
    if not 0.0 < args.fraction <= 1.0:
        raise SystemExit(f"--fraction must be in (0, 1], not {args.fraction}")
    threads = _client_threads(args.blas_threads)
    mon = PeakRSS()
    mon.start()
    mon.phase = "read"
    rng = np.random.default_rng(args.sample_seed)
    t = time.perf_counter()
    pieces = []
    for path in parquet_files(data_dir):          # one file at a time: only the kept rows stay
        table = pq.read_table(path, columns=["user", "item", "x", "y"])
        n = table.num_rows
        keep = np.sort(rng.choice(n, size=int(round(args.fraction * n)), replace=False))
        pieces.append(table.take(keep).to_pandas())
        del table
    df = pd.concat(pieces, ignore_index=True)
    del pieces
    gc.collect()
    read_s = time.perf_counter() - t
    mon.phase = "fit"
    cpu = CpuShare()
    t = time.perf_counter()
    status, error, est = "ok", None, None
    try:
        m = mfx.lmer(FORMULA, df, reml=not args.ml, blas_threads=args.blas_threads)
    except Exception as exc:
        status, error = "error", _error(exc)
        import traceback
        traceback.print_exc()
    wall = time.perf_counter() - t
    cpu = cpu.result()
    if status == "ok":
        est = estimates(m)
    mem = mon.finish()
    entry = {"mode": "memory", "status": status, "error": error, **facts, "formula": FORMULA,
             "fraction": args.fraction, "sample_seed": args.sample_seed, "rows_kept": len(df), "read_s": read_s,
             "wall_s": wall, "client_threads": threads, **mem, **cpu, "estimates": est}
    print(f"{status}: {len(df):,} rows ({args.fraction:g} of the data) read in {read_s:.1f} s, fitted in {wall:.1f} s;"
          f" peak RSS {mem['peak_rss_mb']:.0f} MB (read {mem['peak_rss_by_phase_mb'].get('read', 0):.0f}, "
          f"fit {mem['peak_rss_by_phase_mb'].get('fit', 0):.0f}); others used {cpu['others_cores']:.2f} cores")
    if est is None:
        print(f"the fit failed: {error}")
        return entry
    print(_fmt_est(est))
    full = _last_dask(args.json, facts["data"], est["reml"])
    if full is not None:
        entry["compared_with"] = {"date": full["date"], "wall_s": full["wall_s"], "peak_rss_mb": full["peak_rss_mb"]}
        entry["side_by_side"] = side_by_side(full["estimates"], est, read_meta(data_dir).get("truth", TRUTH))
        print(_fmt_side(entry["side_by_side"], full, entry))
    else:
        print("(no --fit result on these data in the results file: nothing to put side by side)")
    return entry


def _last_dask(path: str, data: dict, reml: bool) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        runs = json.load(f).get("runs", [])
    same = [r for r in runs if r.get("mode") == "dask" and r.get("status") == "ok" and r.get("estimates")
            and r["estimates"].get("reml") == reml
            and all(r.get("data", {}).get(k) == data.get(k) for k in ("dir", "rows", "users", "items", "seed"))]
    return same[-1] if same else None


def side_by_side(full: dict, sub: dict, truth: dict) -> dict:
    """Per parameter: truth, the full data's (Dask) and the subsample's estimates, their difference; for the
    fixed effects also the difference over its standard error, sqrt(se_sub^2 - se_full^2) (nested samples;
    None when the subsample is all the data)."""
    import math
    out = {}
    for k in full["beta"]:
        d = sub["beta"][k] - full["beta"][k]
        s2 = sub["beta_se"][k] ** 2 - full["beta_se"][k] ** 2
        out[k] = {"truth": truth.get(k), "full": full["beta"][k], "subsample": sub["beta"][k], "diff": d,
                  "se_full": full["beta_se"][k], "se_subsample": sub["beta_se"][k],
                  "diff_over_se": d / math.sqrt(s2) if s2 > 1e-6 * sub["beta_se"][k] ** 2 else None}
    for k in full["sd"]:
        out[k] = {"truth": truth.get(k), "full": full["sd"][k], "subsample": sub["sd"][k],
                  "diff": sub["sd"][k] - full["sd"][k]}
    out["sigma"] = {"truth": truth.get("sigma"), "full": full["sigma"], "subsample": sub["sigma"],
                    "diff": sub["sigma"] - full["sigma"]}
    return out


def _fmt_side(side: dict, full: dict, entry: dict) -> str:
    lines = [f"side by side (full data on Dask, {full['date']}: {full['wall_s']:.1f} s, "
             f"{full['peak_rss_mb']:.0f} MB; subsample: {entry['wall_s']:.1f} s, {entry['peak_rss_mb']:.0f} MB):",
             f"  {'':14s}{'truth':>10s}{'full':>14s}{'subsample':>14s}{'diff':>12s}{'diff/se':>10s}"]
    for k, v in side.items():
        z = v.get("diff_over_se")
        lines.append(f"  {k:14s}{v['truth'] if v['truth'] is not None else float('nan'):10.4f}{v['full']:14.6f}"
                     f"{v['subsample']:14.6f}{v['diff']:+12.2e}" + (f"{z:+10.2f}" if z is not None else ""))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main

def blas_arg(text: str):
    if text in ("auto", "none", "None"):
        return None if text.lower() == "none" else "auto"
    return count(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--generate", metavar="DIR", help="write the Parquet files into DIR (under /tmp)")
    mode.add_argument("--fit", metavar="DIR", help="fit DIR/*.parquet on a LocalCluster")
    mode.add_argument("--memory", metavar="DIR", help="fit a random fraction of DIR's rows in memory")
    ap.add_argument("--rows", type=count, default=ISSUE_CASE["rows"], help="rows in all (--generate; default 1e8)")
    ap.add_argument("--users", type=count, default=ISSUE_CASE["users"], help="users (--generate; default 1e5)")
    ap.add_argument("--items", type=count, default=ISSUE_CASE["items"], help="items (--generate; default 1e4)")
    ap.add_argument("--files", type=count, default=100, help="Parquet files (--generate)")
    ap.add_argument("--seed", type=int, default=13, help="data seed (--generate)")
    ap.add_argument("--chunk", type=count, default=1_000_000, help="rows drawn and written at a time (--generate)")
    ap.add_argument("--workers", type=count, default=2, help="worker processes, one thread each (--fit)")
    ap.add_argument("--memory-limit", default="2GB", help="per worker; spilling starts at 60%% of it (--fit)")
    ap.add_argument("--spill-dir", default="/tmp/mfx_bench_dask_spill", help="the workers' local directory")
    ap.add_argument("--blas-threads", type=blas_arg, default=1,
                    help="the client's blas_threads= for the fit: an int, auto or none (default 1)")
    ap.add_argument("--fraction", type=float, default=0.1, help="share of the rows kept (--memory)")
    ap.add_argument("--sample-seed", type=int, default=1, help="seed of the subsample (--memory)")
    ap.add_argument("--ml", action="store_true", help="maximum likelihood (default REML, as lmer)")
    ap.add_argument("--json", default=RESULTS, help="results file (default benchmarks/results/dask.json)")
    ap.add_argument("--no-record", action="store_true", help="print only")
    args = ap.parse_args(argv)
    load = os.getloadavg()
    if args.generate:
        entry = generate(args)
    elif args.fit:
        entry = fit_dask(args)
    else:
        entry = fit_memory(args)
    if not args.no_record:
        record(entry, args.json, load)
    return 0 if entry.get("status", "ok") == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
