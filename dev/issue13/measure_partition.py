"""Cost of one 10^6-row partition of the benchmark (10^5 users x 10^4 items): blocks, nnz, time, memory."""
import os, time, resource
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np
import scipy.sparse as sp
from mixedfx.core.crossprod import CrossProducts

rng = np.random.default_rng(0)
n, nu, ni = 1_000_000, 100_000, 10_000
user = rng.integers(0, nu, n); item = rng.integers(0, ni, n)
x = rng.normal(size=n)
y = 0.5 * x + rng.normal(0, 0.5, nu)[user] + rng.normal(0, 0.3, ni)[item] + rng.normal(size=n)
X = np.column_stack([np.ones(n), x])
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
cp = CrossProducts(X, [(user, np.ones((n, 1)), nu), (item, np.ones((n, 1)), ni)])
t_build = time.perf_counter() - t
t = time.perf_counter()
A = cp.compute(None, y)
t_comp = time.perf_counter() - t
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"partition 1e6 rows: CrossProducts build {t_build:.2f}s compute {t_comp:.2f}s, Ar0 nnz {A['Ar0'].nnz:,}, "
      f"peak RSS growth {(rss1 - rss0) / 1024:.0f} MB")
# a direct per-partition build without the per-row plan (what a worker needs: one compute, no reuse)
t = time.perf_counter()
key = item.astype(np.int64) * nu + user
uniq, cnt = np.unique(key, return_counts=True)
t_direct = time.perf_counter() - t
print(f"direct Ar0 COO by np.unique of (item,user) keys: {t_direct:.2f}s, {len(uniq):,} pairs, "
      f"max count {cnt.max()}, bytes as (int64 key + uint8 count) {len(uniq) * 9 / 2**20:.0f} MB")
# distinct pairs after 100 partitions (the whole 1e8 rows): expected
print("expected distinct (user,item) pairs in 1e8 rows: %.3g" % (1e9 * (1 - np.exp(-0.1))))
