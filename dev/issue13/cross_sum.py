"""Prototype for issue 13: fit an LMM from cross-products summed over row partitions.

Pure numpy/scipy + mixedfx imports; The steps mirror the
distributed plan (see PLAN.md):

1. levels pass: each partition reports its complete-row mask count and the levels of every
   grouping factor; the client takes the union (lme4's order: sorted for strings/numbers,
   category order for categoricals).
2. moments pass: each partition evaluates X, each term's columns, y - offset (with the
   frozen spec) and returns count / mean / M2 / max|.| / "constant" per column (Chan's merge);
   the client builds the same :class:`Standardization` the in-memory fit computes.
3. cross-product pass: each partition standardizes its rows and builds the blocks of
   A = [Z F]' W [Z F] with the GLOBAL codes (CrossProducts); the client sums them
   (dense blocks added, sparse blocks as concatenated COO -> CSR: the union pattern).
4. the fit: a PLSWorkspace built from the summed blocks (no rows), the same optimizer.
"""
from __future__ import annotations

import math
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mixedfx.core.crossprod import CrossProducts
from mixedfx.core.covariance import ThetaLayout
from mixedfx.core.scaled_workspace import ScaledWorkspace
from mixedfx.core.scaling import Standardization
from mixedfx.core.workspace import FAILED_OBJECTIVE, PLSWorkspace
from mixedfx.core.gram import choose_update
from mixedfx.core.sparse_chol import SparseBlockSolver
from mixedfx.design.evaluate import evaluate_atom, factor_codes
from mixedfx.design.random import map_levels
from mixedfx.models.layout import block_structures
from mixedfx.models.optimizers import optimize_theta
from mixedfx.core.start import moment_start


# --------------------------------------------------------------------------- moments (Chan)
class Moments:
    """count, mean, M2 = sum (v - mean)^2, max|v|, constant value (or None) of a set of columns."""

    def __init__(self, V: np.ndarray):
        V = np.asarray(V, float).reshape(len(V), -1)
        self.n = V.shape[0]
        self.k = V.shape[1]
        if self.n:
            # exact-ish per-partition mean: fsum per column, then M2 about it
            self.mean = np.array([math.fsum(c) / self.n for c in V.T.tolist()]) if self.k else np.zeros(0)
            self.M2 = np.sum((V - self.mean) ** 2, axis=0)
            self.maxabs = np.max(np.abs(V), axis=0)
            first = V[0]
            self.const = np.where(np.all(V == first[None, :], axis=0), first, np.nan)
        else:
            self.mean = np.zeros(self.k)
            self.M2 = np.zeros(self.k)
            self.maxabs = np.zeros(self.k)
            self.const = np.full(self.k, np.nan)
            self.empty = True

    def merge(self, other: "Moments") -> "Moments":
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        out = Moments.__new__(Moments)
        n = self.n + other.n
        delta = other.mean - self.mean
        out.n, out.k = n, self.k
        out.mean = self.mean + delta * (other.n / n)
        out.M2 = self.M2 + other.M2 + delta ** 2 * (self.n * other.n / n)
        out.maxabs = np.maximum(self.maxabs, other.maxabs)
        out.const = np.where(self.const == other.const, self.const, np.nan)
        return out


def _rms(mom: Moments, j: int, center: float) -> float:
    """rms(v - center) from the merged moments (center = the mean or 0)."""
    if mom.n == 0:
        return 1.0
    v = mom.M2[j] / mom.n + (mom.mean[j] - center) ** 2
    r = math.sqrt(v)
    return r if r > 0 and math.isfinite(r) else 1.0


def standardization_from_moments(mx: Moments, mterms: list, my: Moments | None, wsum: float, wn: int,
                                 kinds) -> Standardization:
    """The Standardization of mixedfx.core.scaling.standardize, from merged column moments."""
    p = mx.k
    # g: an explicit constant column (the lstsq fallback for '0 + f' would need X'X: see the plan)
    const = np.flatnonzero(~np.isnan(mx.const) & (np.nan_to_num(mx.const) != 0))
    g = None
    if const.size:
        g = np.zeros(p)
        g[const[0]] = 1.0 / mx.const[const[0]]
    m = np.zeros(p)
    if g is not None:
        for j in np.flatnonzero(g == 0):
            m[j] = mx.mean[j]
    d = np.array([_rms(mx, j, m[j]) for j in range(p)])
    A = (np.eye(p) - np.outer(g if g is not None else np.zeros(p), m)) / d[None, :]
    c, s = 0.0, 1.0
    if my is not None:
        c = my.mean[0] if g is not None else 0.0
        s = _rms(my, 0, c)
    k = wsum / wn if wn else 1.0
    Ts, ms, ds = [], [], []
    for mt, kind in zip(mterms, kinds):
        pk = mt.k
        if kind != "center":
            dk = np.array([_rms(mt, j, 0.0) for j in range(pk)])
            if kind == "common":
                dk = np.full(pk, float(np.sqrt(np.mean(dk ** 2))))
            Ts.append(np.diag(1.0 / dk)); ms.append(np.zeros(pk)); ds.append(dk)
            continue
        c0 = mt.const[0] if pk else np.nan
        intercept = pk > 1 and not np.isnan(c0) and c0 != 0
        mk = np.zeros(pk)
        if intercept:
            for j in range(1, pk):
                mk[j] = mt.mean[j] / c0
        # rms(Xk_j - m_j Xk_0): with Xk_0 = c0 that is rms(Xk_j - mean_j)
        dk = np.array([_rms(mt, j, mk[j] * c0 if j else 0.0) if intercept else _rms(mt, j, 0.0)
                       for j in range(pk)])
        T = np.eye(pk)
        T[0, :] -= mk
        Ts.append(T / dk[None, :]); ms.append(mk); ds.append(dk)
    return Standardization(y_center=float(c), y_scale=float(s), w_scale=float(k),
                           g=np.zeros(p) if g is None else g, x_center=m, x_scale=d, A=A,
                           T=tuple(Ts), term_center=tuple(ms), term_scale=tuple(ds))


# --------------------------------------------------------------------------- partition work
def partition_arrays(spec, part: pd.DataFrame, weights_col=None):
    """X, [(codes (global), lhs)], y - offset, weights of one partition's complete rows, with the frozen spec."""
    X = spec.fixed_matrix(part)
    parts = spec.random_parts(part)
    y = evaluate_atom(spec.formula.response, part, spec.state, training=False)
    y = np.asarray(y, float)
    if spec.formula.offsets:
        y = y - spec.offset(part)
    w = None if weights_col is None else part[weights_col].to_numpy(float)
    if any((c < 0).any() for c, _ in parts):
        raise ValueError("a level missing from the global levels")
    return X, parts, y, w


def partition_moments(spec, part, weights_col=None):
    if len(part) == 0:
        return None
    X, parts, y, w = partition_arrays(spec, part, weights_col)
    return (Moments(X), [Moments(Xk) for _, Xk in parts], Moments(y[:, None]),
            0.0 if w is None else float(np.sum(w)), len(y), 0 if w is None else int(np.count_nonzero(w > 0)))


def partition_blocks(spec, part, scaling: Standardization, nlevels, weights_col=None) -> dict | None:
    """The blocks of A for one partition (standardized, global codes), plus n and sum log w."""
    if len(part) == 0:
        return None
    X, parts, y, w = partition_arrays(spec, part, weights_col)
    Xi = scaling.fixed(X)
    blocks = [(codes, scaling.term(k, Xk), nl) for k, ((codes, Xk), nl) in enumerate(zip(parts, nlevels))]
    wi = scaling.weights(w)
    cp = CrossProducts(Xi, blocks)
    A = cp.compute(wi, scaling.response(y))
    out = {k: (v.copy() if isinstance(v, np.ndarray) else v.tocoo()) for k, v in A.items()}
    out["n"] = len(y)
    out["log_weights"] = 0.0 if wi is None else float(np.sum(np.log(wi[wi > 0])))
    out["npos"] = 0 if w is None else int(np.count_nonzero(w > 0))
    return out


def sum_blocks(pieces: list) -> dict:
    """Dense blocks added; sparse blocks concatenated as COO and summed into the union pattern."""
    pieces = [p for p in pieces if p is not None]
    out = {}
    for key in pieces[0]:
        vals = [p[key] for p in pieces]
        if sp.issparse(vals[0]):
            shape = vals[0].shape
            row = np.concatenate([v.row for v in vals]); col = np.concatenate([v.col for v in vals])
            dat = np.concatenate([v.data for v in vals])
            M = sp.coo_matrix((dat, (row, col)), shape=shape).tocsr()      # sums duplicates, keeps zeros
            M.sort_indices()
            out[key] = M
        elif isinstance(vals[0], np.ndarray):
            out[key] = np.sum(vals, axis=0)
        else:
            out[key] = sum(vals)
    return out


# --------------------------------------------------------------------------- workspace from blocks
class _Sums:
    """Stands in for CrossProducts: the summed blocks (compute() returns them)."""

    def __init__(self, A):
        self.A = A
        self.qr = A["Arr"].shape[0] if "Arr" in A else 0

    def compute(self, w, y):
        return self.A


class BlocksWorkspace(PLSWorkspace):
    """PLSWorkspace.__init__ with the row-level CrossProducts replaced by summed blocks."""

    def __init__(self, A: dict, n: int, p: int, sizes, nlevels, log_weights: float, reml=True, rest="auto",
                 structures=None):
        self.n, self.p = n, p
        self.reml = reml
        self.sizes = tuple(sizes)
        self.nlevels = tuple(nlevels)
        self.layout = ThetaLayout(self.sizes, None if structures is None else tuple(structures))
        p0, l0 = self.sizes[0], self.nlevels[0]
        self.q0 = l0 * p0
        self._diag0 = np.arange(p0)
        self.has_rest = len(sizes) > 1
        self.cross = _Sums(A)
        self._log_weights_sum = log_weights
        if p0 == 2:
            self._L00_buf = np.zeros((l0, 2, 2))
            self._D0_buf = np.zeros((l0, 2, 2))
            self._LF0_buf = np.zeros((self.p + 1, l0, 2))
        self._set_values(None, None)
        self.log_weights = log_weights
        if self.has_rest:
            self.qr = self.cross.qr
            self._rest_scalar = all(q == 1 for q in self.sizes[1:])
            self._ar0_rows = np.repeat(np.arange(self.qr), np.diff(self.Ar0.indptr))
            self._ar0_cols = self.Ar0.indices.copy()
            self.schur, self.rest_sparse = choose_update(self.Ar0, p0, self._Arr_sparse, rest, self._rest_scalar,
                                                         self.SPARSE_MIN_Q, self.SPARSE_MAX_DENSITY)
            if self.rest_sparse:
                self._sparse = SparseBlockSolver(self.schur.rows, self.schur.cols, self.qr)
            else:
                self.Arr = None if self._rest_scalar else self._Arr_sparse.toarray()
                self._M = np.zeros((self.qr, self.qr), order="F")
        else:
            self.qr = 0
            self.rest_sparse = False
        self.theta = None
        self.objective_value = None


def scaled_from_blocks(A, scaling, n, p, sizes, nlevels, npos, reml, structures) -> ScaledWorkspace:
    ws = ScaledWorkspace.__new__(ScaledWorkspace)
    ws.scaling = scaling
    ws._npos = npos
    ws.internal = BlocksWorkspace(A, n, p, sizes, nlevels, A["log_weights"], reml=reml, structures=structures)
    ws.reml = reml
    ws.layout = ws.internal.layout
    ws.sizes, ws.nlevels, ws.p, ws.qr = ws.internal.sizes, ws.internal.nlevels, ws.internal.p, ws.internal.qr
    return ws


def fit_from_blocks(ws: ScaledWorkspace, x0, step=None, optimizer="auto"):
    """fit_lmm's optimizer call and freezing, on a workspace built from the summed blocks."""
    iws = ws.internal
    lower = ws.layout.lower_bounds()
    if step is None:
        step = np.where(lower == 0, np.clip(0.25 * np.abs(x0), 0.1, 0.75), 0.25)
    maxeval = max(20_000, 1_000 * ws.layout.n_theta)
    opt = optimize_theta(iws, x0, lower, step, optimizer, maxeval)
    iws.update(opt.x)
    assert iws.objective_value < FAILED_OBJECTIVE
    return dict(objective=float(opt.fun + ws.shift), theta=ws.theta_to_user(opt.x), beta=ws.beta(),
                sigma=float(np.sqrt(ws.sigma2)), vcov=ws.vcov_beta(), b=ws.b_blocks(),
                cond_var=ws.cond_var_blocks(), nfev=opt.nfev, optimizer=opt.optimizer)


# --------------------------------------------------------------------------- moment start from partitions
def start_pass(spec, part, scaling, nlevels, beta_int, weights_col=None):
    """Per-partition statistics for mixedfx.core.start.moment_start, given the OLS beta (internal units):
    per term: n_g, sum e, sum e^2 (intercept terms), per-level Xk'Xk / Xk'e / e'e (vector term 0),
    and the unweighted count tables N_ij between scalar intercept terms (for the backfitting)."""
    if len(part) == 0:
        return None
    X, parts, y, w = partition_arrays(spec, part, weights_col)
    e = scaling.response(y) - scaling.fixed(X) @ beta_int
    out = {"n": len(e), "se": float(np.sum(e)), "see": float(e @ e), "terms": []}
    for k, ((codes, Xk), nl) in enumerate(zip(parts, nlevels)):
        Xs = scaling.term(k, Xk)
        t = {"ng": np.bincount(codes, minlength=nl).astype(float), "sum": np.bincount(codes, e, minlength=nl)}
        pk = Xs.shape[1]
        if pk >= 2:
            t["XtX"] = np.stack([np.stack([np.bincount(codes, Xs[:, a] * Xs[:, b], minlength=nl) for b in range(pk)],
                                          -1) for a in range(pk)], 1)
            t["Xte"] = np.stack([np.bincount(codes, Xs[:, a] * e, minlength=nl) for a in range(pk)], 1)
            t["ete"] = np.bincount(codes, e * e, minlength=nl)
        out["terms"].append(t)
    K = len(parts)
    out["N"] = {}
    for i in range(K):
        for j in range(i + 1, K):
            ci, cj = parts[i][0], parts[j][0]
            out["N"][(i, j)] = sp.coo_matrix((np.ones(len(ci)), (ci, cj)), shape=(nlevels[i], nlevels[j]))
    return out


def merge_start(pieces):
    pieces = [p for p in pieces if p is not None]
    out = {"n": sum(p["n"] for p in pieces), "se": math.fsum(p["se"] for p in pieces),
           "see": math.fsum(p["see"] for p in pieces), "terms": [], "N": {}}
    for k in range(len(pieces[0]["terms"])):
        out["terms"].append({key: np.sum([p["terms"][k][key] for p in pieces], axis=0) for key in pieces[0]["terms"][k]})
    for key in pieces[0]["N"]:
        out["N"][key] = sum(p["N"][key] for p in pieces).tocsr()
    return out


def moment_start_from_stats(st, layout, sizes, intercepts, nlevels):
    """mixedfx.core.start.moment_start computed from the partition sums (same formulas)."""
    theta = layout.initial()
    n = st["n"]
    ebar = st["se"] / n
    estimates = []
    for k, t in enumerate(st["terms"]):
        nlev = nlevels[k]
        if not intercepts[k] or nlev < 2 or nlev >= n:
            estimates.append(None)
            continue
        ng, sums = t["ng"], t["sum"]
        means = np.divide(sums, ng, out=np.zeros(nlev), where=ng > 0)
        msw = (st["see"] - np.sum(ng * means ** 2)) / (n - nlev)
        msb = np.sum(ng * (means - ebar) ** 2) / (nlev - 1)
        n0 = (n - np.sum(ng ** 2) / n) / (nlev - 1)
        estimates.append((max((msb - msw) / n0, 0.0), msw))
    if len(sizes) == 1 and sizes[0] >= 2:
        t = st["terms"][0]
        p = sizes[0]
        ng = t["ng"]
        ok = ng > p
        lam = None
        if ok.sum() >= p + 2:
            try:
                inv = np.linalg.inv(t["XtX"][ok])
                b = (inv @ t["Xte"][ok][..., None])[..., 0]
                rss = t["ete"][ok] - np.einsum("gi,gi->g", b, t["Xte"][ok])
                s2 = float(rss.sum() / (ng[ok] - p).sum())
                if s2 > 0:
                    sigma = np.cov(b, rowvar=False) - s2 * inv.mean(axis=0)
                    lam = np.linalg.cholesky(sigma / s2)
                    if not np.all(np.isfinite(lam)) or np.min(np.diag(lam)) < 0.1 or np.max(np.abs(lam)) > 10:
                        lam = None
            except np.linalg.LinAlgError:
                lam = None
        if lam is not None:
            sl, stc = layout.slices()[0], layout.structures[0]
            theta[sl] = lam[stc.rows, stc.cols]
            return theta
    known = [e for e in estimates if e is not None]
    if not known:
        return theta
    sigma2 = min(msw for _, msw in known)
    scalar = [k for k, e in enumerate(estimates) if e is not None and sizes[k] == 1]
    if len(scalar) >= 2:
        counts = [st["terms"][k]["ng"] for k in scalar]
        ze = [st["terms"][k]["sum"] for k in scalar]

        def N(i, j):   # count table between scalar terms i and j (positions in `scalar`)
            a, b = scalar[i], scalar[j]
            return st["N"][(a, b)] if a < b else st["N"][(b, a)].T
        means = [np.zeros(nlevels[k]) for k in scalar]
        order = sorted(range(len(scalar)), key=lambda i: nlevels[scalar[i]])
        for _ in range(4):
            for i in order:
                s = ze[i] - sum(N(i, j) @ means[j] for j in range(len(scalar)) if j != i)
                means[i] = np.divide(s, counts[i], out=np.zeros(len(s)), where=counts[i] > 0)
        dof = n - sum(nlevels[k] - 1 for k in scalar) - 1
        if dof > 0:
            fitfit = sum(counts[i] @ means[i] ** 2 for i in range(len(scalar)))
            fitfit += 2 * sum(means[i] @ (N(i, j) @ means[j]) for i in range(len(scalar))
                              for j in range(i + 1, len(scalar)))
            s2 = float((st["see"] - 2 * sum(means[i] @ ze[i] for i in range(len(scalar))) + fitfit) / dof)
            if s2 > 0:
                estimates = list(estimates)
                for i, k in enumerate(scalar):
                    ok = counts[i] > 0
                    mm = means[i][ok]
                    spread = float(np.sum((mm - mm.mean()) ** 2) / max(ok.sum() - 1, 1))
                    estimates[k] = (max(spread - s2 * float(np.mean(1.0 / counts[i][ok])), 0.0), s2)
                sigma2 = s2
    for sl, est in zip(layout.slices(), estimates):
        if est is not None and sigma2 > 0:
            theta[sl.start] = float(np.clip(np.sqrt(est[0] / sigma2), 0.1, 5.0))
    return theta


def global_levels(parts, group_cols):
    """Union of each grouping column's levels over partitions, in R's order (sorted strings / numbers,
    category order for categoricals): what the levels pass collects."""
    out = {}
    for g in group_cols:
        seen = []
        for part in parts:
            if len(part):
                seen.append(factor_codes(part[g], g)[1])
        first = next(p[g] for p in parts if len(p))
        if isinstance(first.dtype, pd.CategoricalDtype):
            used = set().union(*seen)
            from mixedfx.design.evaluate import level_labels
            out[g] = tuple(lab for lab in level_labels(first.cat.categories.tolist()) if lab in used)
        else:
            allv = pd.unique(np.concatenate([np.asarray(s, dtype=object) for s in seen]))
            # the labels sort as the values sort: numbers numerically, strings lexically
            vals = pd.concat([p[g] for p in parts if len(p)]).dropna().unique()
            codes, labels = factor_codes(pd.Series(vals), g)
            assert set(labels) == set(allv)
            out[g] = tuple(labels)
    return out
