"""Peak memory of passes 3 (block sums) and 4 (start statistics) on a 2-worker LocalCluster: the plain tree
reduction of the whole Ar0 ("old") against the bucketed reduction with the count tables read from A ("new").

Synthetic Parquet data (``y ~ x + (1 | user) + (1 | item)``, users and items uniform), written once.  Each
mode runs in a fresh process (``--mode old`` / ``--mode new``; ``--mode both`` runs the two one after the
other as subprocesses) so that allocator caches of one do not hide the other's peak.  A sampler thread sums
the RSS of the client and of every child process (nannies, workers) every 50 ms.

    python dev/issue13/measure_pass3.py --rows 1e7 --users 1e5 --items 1e3 --mode both | tee -a ...log
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from _ratings import generate  # noqa: E402


class Peak(threading.Thread):
    """Peak RSS of the client, of its children (workers, nannies) and of both together."""

    def __init__(self, every: float = 0.05):
        super().__init__(daemon=True)
        self.me, self.every, self.stopped = psutil.Process(), every, False
        self.reset()
        self.start()

    def reset(self):
        self.client = self.children = self.total = 0

    def sample(self):
        c = self.me.memory_info().rss
        k = 0
        for p in self.me.children(recursive=True):
            try:
                k += p.memory_info().rss
            except psutil.Error:
                pass
        return c, k

    def run(self):
        while not self.stopped:
            c, k = self.sample()
            self.client, self.children, self.total = max(self.client, c), max(self.children, k), max(self.total, c + k)
            time.sleep(self.every)


def run_mode(args) -> dict:
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from mixedfx.cluster.passes import broadcast, map_reduce, partitions
    from mixedfx.core.blocksum import sum_blocks
    from mixedfx.core.start import StartStats
    from mixedfx.models import partitioned as P

    peak = Peak()
    out = {"mode": args.mode, "rows": args.rows, "users": args.users, "items": args.items}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit="6GB") as cluster, Client(cluster):
        ddf = dd.read_parquet(os.path.join(args.dir, "*.parquet"))
        parts = partitions(ddf)
        formula = "y ~ x + (1 | user) + (1 | item)"
        t = time.perf_counter()
        plan = P.survey_plan(formula, None, None)
        survey = map_reduce(parts, P.partition_survey, P.merge_surveys, broadcast(plan))
        spec = P.spec_from_survey(plan, survey)
        m = map_reduce(parts, P.partition_moments, P.merge_moments, broadcast(spec), None)
        scaling = P.scaling_from_moments(spec, m)
        spec_b, scaling_b = broadcast(spec), broadcast(scaling)
        out["passes12_s"] = round(time.perf_counter() - t, 1)
        time.sleep(1.0)
        c, k = peak.sample()
        out["before_MB"] = {"client": c >> 20, "children": k >> 20, "total": (c + k) >> 20}
        peak.reset()
        t = time.perf_counter()
        if args.mode == "old":
            sums = map_reduce(parts, P.partition_block_sums, sum_blocks, spec_b, scaling_b, None)
            t3 = time.perf_counter()
            p3 = {"client": peak.client >> 20, "children": peak.children >> 20, "total": peak.total >> 20}
            peak.reset()
            beta, centre = P.start_beta(sums, m, scaling)
            stats = map_reduce(parts, P.partition_start_stats, StartStats.merge_all, spec_b, scaling_b, beta, centre,
                               None)
        else:
            # pass 3 alone first (the same code as lmer_dask's), then pass 4 with the tables from A
            levels = P.ar0_level_edges(spec, m, args.bucket_bytes)
            out["buckets"] = len(levels) - 1
            from mixedfx.core.blocksum import block_buckets, finish_block_buckets
            from mixedfx.cluster.passes import map_reduce_buckets
            p0 = len(spec.random[0][2].names)
            sums = finish_block_buckets(*map_reduce_buckets(parts, P.partition_block_sums, block_buckets, sum_blocks,
                                                            levels * p0, spec_b, scaling_b, None))
            t3 = time.perf_counter()
            p3 = {"client": peak.client >> 20, "children": peak.children >> 20, "total": peak.total >> 20}
            peak.reset()
            beta, centre = P.start_beta(sums, m, scaling)
            pairs = P.start_table_pairs(spec, m, scaling, False)
            out["tables_from_A"] = [list(p) for p in pairs]
            stats = map_reduce(parts, P.partition_start_stats, StartStats.merge_all, spec_b, scaling_b, beta, centre,
                               None, skip=pairs)
            stats = P.start_with_tables(stats, sums, spec, pairs)
        t4 = time.perf_counter()
        out["pass3_s"], out["pass4_s"] = round(t3 - t, 1), round(t4 - t3, 1)
        out["pass3_peak_MB"] = p3
        out["pass4_peak_MB"] = {"client": peak.client >> 20, "children": peak.children >> 20,
                                "total": peak.total >> 20}
        A = sums.Ar0
        out["Ar0"] = {"format": A.format, "nnz": int(A.nnz), "shape": list(A.shape),
                      "MB": round((A.data.nbytes + A.indices.nbytes + A.indptr.nbytes) / 2**20, 1)}
        t01 = stats.tables[(0, 1)]
        out["table01_nnz"] = int(t01.nnz)
        out["table_equals_Ar0T"] = bool(t01.shape == A.T.shape and (t01 != A.T).nnz == 0)
        if args.save:
            import scipy.sparse as sp
            C = A.tocsr()
            C.sort_indices()
            sp.save_npz(args.save, C, compressed=False)
    peak.stopped = True
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=float, default=1e7)
    ap.add_argument("--users", type=float, default=1e5)
    ap.add_argument("--items", type=float, default=1e3)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--mode", choices=["old", "new", "both"], default="both")
    ap.add_argument("--bucket-bytes", type=float, default=None)
    ap.add_argument("--save", default=None, help="save the summed Ar0 (CSR) here, to compare the modes")
    args = ap.parse_args()
    args.rows, args.users, args.items = int(args.rows), int(args.users), int(args.items)
    if args.dir is None:
        args.dir = f"/tmp/mfx_pass3_{args.rows:.0e}_{args.users:.0e}_{args.items:.0e}".replace("+", "")
    generate(args.dir, args.rows, args.users, args.items)
    if args.mode != "both":
        print(json.dumps(run_mode(args)), flush=True)
        return
    saved = {}
    for mode in ("old", "new"):
        saved[mode] = f"{args.dir}/Ar0_{mode}.npz"
        cmd = [sys.executable, __file__, "--rows", str(args.rows), "--users", str(args.users), "--items",
               str(args.items), "--dir", args.dir, "--mode", mode, "--save", saved[mode]]
        if args.bucket_bytes:
            cmd += ["--bucket-bytes", str(args.bucket_bytes)]
        subprocess.run(cmd, check=True)
    import scipy.sparse as sp
    a, b = sp.load_npz(saved["old"]), sp.load_npz(saved["new"])
    same = np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
    print(json.dumps({"same_pattern": bool(same), "max_rel_value_diff":
                      float(np.max(np.abs(a.data - b.data)) / np.max(np.abs(a.data)))}), flush=True)


if __name__ == "__main__":
    main()
