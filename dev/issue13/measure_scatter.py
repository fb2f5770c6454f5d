"""Memory and time of a from_blocks workspace on the ScatterGram path at the issue-13 benchmark's
shape (users x items, ~9.5% of the items per user), from synthetic summed blocks (no rows).

python dev/issue13/measure_scatter.py --users 100000 --items 10000 --per-user 950 [--threads 2]
"""
import argparse
import os
import resource
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from mixedfx.core.blocksum import BlockSums  # noqa: E402
from mixedfx.core.workspace import PLSWorkspace  # noqa: E402


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024


def synthetic_sums(U, I, k, seed=0):
    rng = np.random.default_rng(seed)
    indptr = np.zeros(U + 1, np.int64)
    counts = rng.poisson(k, U).clip(1, I)
    indptr[1:] = np.cumsum(counts)
    indices = np.empty(int(indptr[-1]), np.int32)
    for u0 in range(0, U, 1000):
        for u in range(u0, min(U, u0 + 1000)):
            indices[indptr[u]:indptr[u + 1]] = np.sort(rng.choice(I, counts[u], replace=False))
    data = np.ones(len(indices))
    Ar0 = sp.csc_matrix((data, indices, indptr), shape=(I, U))
    item_n = np.bincount(indices, minlength=I).astype(float)
    user_n = counts.astype(float)
    n = float(user_n.sum())
    bu, bi = 0.8 * rng.normal(size=U), 0.5 * rng.normal(size=I)
    # F = [1, y]; y's sums from the effects plus noise (consistent enough for a positive definite A)
    ysum_u = user_n * (1 + bu) + np.sqrt(user_n) * rng.normal(size=U)
    ysum_i = item_n * (1 + bi) + np.sqrt(item_n) * rng.normal(size=I)
    AF0 = np.vstack([user_n, ysum_u])
    AFr = np.vstack([item_n, ysum_i])
    sy = float(ysum_u.sum())
    AFF = np.array([[n, sy], [sy, n * (1 + 0.64 + 0.25 + 1) + sy ** 2 / n]])
    Arr = sp.diags(item_n).tocsr()
    return BlockSums(A00=user_n.reshape(-1, 1, 1), AF0=AF0, AFF=AFF, AFr=AFr, Ar0=Ar0, Arr=Arr, n=int(n),
                     log_weights=0.0, npos=0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--items", type=int, default=10000)
    ap.add_argument("--per-user", type=int, default=950)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--evals", type=int, default=2)
    a = ap.parse_args()
    t = time.perf_counter()
    sums = synthetic_sums(a.users, a.items, a.per_user)
    print(f"sums: nnz {sums.Ar0.nnz:.3e}, {time.perf_counter() - t:.1f} s, RSS {rss_mb():.0f} MB", flush=True)
    base = rss_mb()
    t = time.perf_counter()
    ws = PLSWorkspace.from_blocks(sums, sums.n, 1, [1, 1], [a.users, a.items])
    print(f"workspace {type(ws.schur).__name__}: {time.perf_counter() - t:.1f} s, RSS +{rss_mb() - base:.0f} MB, "
          f"shares Ar0: {ws.schur.A is sums.Ar0}", flush=True)
    with threadpool_limits(a.threads):
        for theta in ([0.8, 0.5], [0.7, 0.55])[:a.evals]:
            t = time.perf_counter()
            ws.update(np.array(theta))
            print(f"update {theta}: {time.perf_counter() - t:.1f} s, objective {ws.objective_value:.6f}, "
                  f"RSS +{rss_mb() - base:.0f} MB", flush=True)
        t = time.perf_counter()
        cv = ws.cond_var_blocks(last_use=True)
        print(f"cond_var: {time.perf_counter() - t:.1f} s, RSS +{rss_mb() - base:.0f} MB "
              f"(max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB), {cv[0][:2, 0, 0]}",
              flush=True)


if __name__ == "__main__":
    main()
