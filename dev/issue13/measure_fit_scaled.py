"""The client's fit from A at 1/5 of the benchmark's q (2e4 users x 2e3 items, 200 ratings per user: the
benchmark's 10% crossing density), to extrapolate the per-evaluation cost (x125) to 1e5 x 1e4."""
import os, sys, time, resource
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np
import scipy.sparse as sp
import cross_sum as cs
from mixedfx.core.crossprod import CrossProducts
from mixedfx.core.scaling import standardize
from mixedfx.models.layout import block_structures

rng = np.random.default_rng(0)
nu, ni, per = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
n = nu * per
user = np.repeat(np.arange(nu), per)
item = rng.integers(0, ni, n)
x = rng.normal(size=n)
y = 0.5 * x + rng.normal(0, 0.5, nu)[user] + rng.normal(0, 0.3, ni)[item] + rng.normal(size=n)
X = np.column_stack([np.ones(n), x])
s = standardize(X, y, [np.ones((n, 1))] * 2)
K = 10
pieces = []
t = time.perf_counter()
for c in np.array_split(np.arange(n), K):
    cp = CrossProducts(s.fixed(X[c]), [(user[c], np.ones((len(c), 1)), nu), (item[c], np.ones((len(c), 1)), ni)])
    A = cp.compute(None, s.response(y[c]))
    pieces.append({k: (v.copy() if isinstance(v, np.ndarray) else v.tocoo()) for k, v in A.items()} | {"n": len(c), "log_weights": 0.0})
    del cp
A = cs.sum_blocks(pieces)
del pieces
t_blocks = time.perf_counter() - t
A.pop("n")
rss_a = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
from mixedfx.core.workspace import PLSWorkspace
ws = cs.BlocksWorkspace(A, n, 2, (1, 1), (nu, ni), 0.0, reml=True)
t_ws = time.perf_counter() - t
g = ws.schur
print(f"{nu} users x {ni} items, {n:,} rows: Ar0 nnz {A['Ar0'].nnz:,}; blocks {t_blocks:.1f}s, workspace {t_ws:.1f}s "
      f"({type(g).__name__}: dense levels {len(getattr(g, 'dense_levels', []))}, plan entries {getattr(g, 'plan_entries', 0):,})", flush=True)
times = []
for th in ([0.5, 0.3], [0.55, 0.3], [0.5, 0.35]):
    t = time.perf_counter(); ws.update(np.array(th)); times.append(time.perf_counter() - t)
print("evaluation times (s):", [round(v, 2) for v in times], "objective", ws.objective_value)
# the Cholesky alone
M = np.asfortranarray(np.eye(ni) * 3 + 0.0)
from scipy.linalg.lapack import dpotrf
t = time.perf_counter(); dpotrf(ws._M.copy(order="F"), lower=1); t_chol = time.perf_counter() - t
print(f"dense Cholesky of the {ni} block: {t_chol:.2f}s; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
      f"(after blocks {rss_a:.0f} MB)")
# a plain scatter Gram (p0 = 1): G = sum_g d_g^2 a_g a_g', level by level on the CSC, for comparison
Ac = A["Ar0"].tocsc(); Ac.sort_indices()
d2 = np.full(nu, 0.01)
t = time.perf_counter()
G = np.zeros((ni, ni))
ip, ix, dv = Ac.indptr, Ac.indices, Ac.data
for gi in range(0, nu, max(1, nu // 2000)):           # a sample of levels, timed and scaled
    r = ix[ip[gi]:ip[gi + 1]]; v = dv[ip[gi]:ip[gi + 1]]
    G[np.ix_(r, r)] += d2[gi] * np.outer(v, v)
t_sc = (time.perf_counter() - t) * (nu / len(range(0, nu, max(1, nu // 2000))))
print(f"numpy per-level scatter Gram (estimated for all levels): {t_sc:.1f}s")
