"""Ways to form G = Ar0 diag(d^2) Ar0' (p0 = 1) at 1/5 of the benchmark's q: scipy SpGEMM vs dense SYRK chunks."""
import os, time, sys
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np, scipy.sparse as sp
from scipy.linalg.blas import dsyrk
rng = np.random.default_rng(0)
nu, ni, per = 20000, 2000, 200
n = nu * per
user = np.repeat(np.arange(nu), per); item = rng.integers(0, ni, n)
Ar0 = sp.coo_matrix((np.ones(n), (item, user)), shape=(ni, nu)).tocsr(); Ar0.sum_duplicates()
d2 = rng.uniform(0.001, 0.01, nu)
pairs = np.diff(Ar0.tocsc().indptr).astype(float)
print(f"nnz {Ar0.nnz:,}; sum_g k_g^2/2 = {np.sum(pairs**2)/2:.3g}")
t = time.perf_counter(); G = (Ar0 @ sp.diags(d2) @ Ar0.T); t1 = time.perf_counter() - t
print(f"scipy SpGEMM: {t1:.2f}s ({t1 / np.sum(pairs**2) * 1e9:.2f} ns per product, full square)")
Ac = Ar0.tocsc()
t = time.perf_counter()
M = np.zeros((ni, ni), order="F")
B = np.zeros((ni, 256), order="F")
for s in range(0, nu, 256):
    e = min(s + 256, nu)
    B[:] = 0
    sub = Ac[:, s:e]
    B[:, :e - s] = (sub @ sp.diags(np.sqrt(d2[s:e]))).toarray()
    M = dsyrk(1.0, B, beta=1.0, c=M, lower=1, overwrite_c=1)
t2 = time.perf_counter() - t
print(f"dense SYRK in 256-column chunks: {t2:.2f}s ({t2 / (ni * ni * nu / 2) * 1e12:.0f} ps per multiply-add)")
print("agree:", np.max(np.abs(np.tril(M) - np.tril(G.toarray()))) / np.max(np.abs(M)))
