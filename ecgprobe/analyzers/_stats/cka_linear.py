"""Linear CKA in feature space for many layers at once, and its group replicates (private engine
of :mod:`ecgprobe.analyzers.cka`).

Notation: ``X̃`` is a layer's embedding matrix with its column means removed (in float64),
``a_i = ||x̃_i||²`` its squared row norms. For linear kernels ``K = X̃X̃ᵀ``, ``L = ỸỸᵀ``:

- biased HSIC ∝ ``tr(KHLH) = ||X̃ᵀỸ||²_F`` (Gretton et al. 2005);
- unbiased HSIC (Song et al. 2012, the estimator of debiased CKA, Nguyen et al. 2021) ∝
  ``||X̃ᵀỸ||²_F − n/(n−2) Σ a_i b_i + (Σa)(Σb)/((n−1)(n−2))``, the common factor
  ``1/(n(n−3))`` cancelling in CKA. Derivation: with ``K̃`` = K with a zero diagonal,
  ``tr(K̃L̃) = ||X̃ᵀỸ||² − Σ a_i b_i``, ``1ᵀK̃1 = −Σa`` and ``1ᵀK̃L̃1 = Σ a_i b_i`` for centred rows.

Only ``d×d`` cross products are formed, never an ``n×n`` Gram matrix. The layers of one side are
centred into one matrix ``Z = [X̃_1 … X̃_p]`` so that each layer of side A meets all layers of side
B in one large product per row chunk.

Group replicates. Records are put into ``m`` groups (whole patients per group, see
:mod:`ecgprobe.analyzers._stats.jackknife`), stored contiguously; a replicate gives each group a
weight ``w_b`` and CKA is recomputed *exactly* on the weighted records, re-centred with the
replicate's own means. The delete-a-group jackknife uses ``w = 1 − e_g`` (every group but
``g``): weights are 0 or 1, so every replicate is the estimator on distinct records. (Weights
above 1 would be a bootstrap, whose copies of one record the unbiased HSIC counts as distinct
records: its removed self-similarity terms come back in and the replicates are biased.)
Everything a replicate needs is a low-order polynomial in ``w`` of per-block statistics: with
``S_b = X̃_bᵀỸ_b``, block sums ``u_b, v_b``, ``N = Σ w_b n_b``, ``Mx = Uw/N``:

- ``||C_w||² = wᵀMw − 2 T[w,w,w]/N + (wᵀG_u w)(wᵀG_v w)/N²``, ``M_bc = <S_b, S_c>``,
  ``T_abc = u_aᵀ S_b v_c = Σ_{i∈b} (u_a·x̃_i)(ỹ_i·v_c)``, ``G_u = UᵀU``;
- the debiased terms ``Σ w a_i b_i`` and ``Σ w a_i`` of the re-centred rows expand likewise
  (see :func:`_replicate_hsic`).

So each replicate costs ``O(m³)`` after one pass costing about as much as the point estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_CHUNK_BYTES = 16 * 2**20
_BLOCK_STATS_BYTES = 512 * 2**20
_GROUP_BYTES = 256 * 2**20


def hsic_numerator(
    S: np.ndarray | float,
    ab: np.ndarray | float,
    A: np.ndarray | float,
    B: np.ndarray | float,
    n,
    debiased: bool,
):
    """HSIC up to the positive factor shared by all pairs at sample size ``n`` (see module doc)."""
    if not debiased:
        return S
    return S - n / (n - 2) * ab + A * B / ((n - 1) * (n - 2))


def ratio(hxy: np.ndarray, hxx: np.ndarray, hyy: np.ndarray) -> np.ndarray:
    """``hxy / sqrt(hxx hyy)``, NaN where the denominator is not positive."""
    den = np.asarray(hxx, dtype=np.float64) * np.asarray(hyy, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, hxy / np.sqrt(np.where(den > 0, den, 1.0)), np.nan)


_PRODUCT_ROWS = 32768


def row_chunks(n: int, width: int, itemsize: int = 8) -> list[slice]:
    """Row slices whose ``(rows, width)`` copy stays within ~16 MiB."""
    rows = max(256, _CHUNK_BYTES // max(1, width * itemsize))
    return [slice(s, min(s + rows, n)) for s in range(0, n, rows)]


def product_chunks(n: int) -> list[slice]:
    """Row slices for products of views (no copy): large, so that the float64 accumulation of
    each ``d×D`` partial product costs little memory traffic, yet bounded so that float32
    partial sums stay short."""
    return [slice(s, min(s + _PRODUCT_ROWS, n)) for s in range(0, n, _PRODUCT_ROWS)]


@dataclass
class Side:
    """One side's layers, centred and concatenated column-wise.

    Attributes:
        names: layer names.
        Z: ``(n, Σd)`` centred embeddings in the compute dtype (rows in ``order`` when given).
        bounds: column offsets of the layers (``p + 1``).
        alpha: ``(n, p)`` float64 squared norms of the centred rows, per layer.
    """

    names: list[str]
    Z: np.ndarray
    bounds: np.ndarray
    alpha: np.ndarray

    @property
    def p(self) -> int:
        return len(self.names)

    def cols(self, i: int) -> slice:
        return slice(int(self.bounds[i]), int(self.bounds[i + 1]))


def make_side(names: list[str], mats: list[np.ndarray], dtype: type, order: np.ndarray | None = None) -> Side:
    """Centre each layer in float64 and store it in ``dtype`` (rows permuted by ``order``)."""
    n = len(mats[0])
    widths = [m.shape[1] for m in mats]
    bounds = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
    Z = np.empty((n, int(bounds[-1])), dtype=dtype)
    alpha = np.empty((n, len(mats)), dtype=np.float64)
    for i, M in enumerate(mats):
        mu = M.mean(axis=0, dtype=np.float64)
        for r in row_chunks(n, widths[i]):
            rows = M[r] if order is None else M[order[r]]
            C = rows.astype(np.float64)
            C -= mu
            Z[r, bounds[i] : bounds[i + 1]] = C
            alpha[r, i] = np.einsum("ij,ij->i", C, C)
    return Side(list(names), Z, bounds, alpha)


def _sumsq(G: np.ndarray) -> float:
    return float(np.einsum("ij,ij->", G, G, dtype=np.float64))


def cross_moments(A: Side, B: Side, same: bool) -> np.ndarray:
    """``S[i, j] = ||X̃_iᵀ Ỹ_j||²_F`` for all layer pairs (float64; symmetric when ``same``).

    Each layer of A meets the concatenated layers of B in one product per row chunk,
    accumulated in float64 across chunks (float32 products when Z is float32).
    """
    n = len(A.Z)
    S = np.empty((A.p, B.p))
    for i in range(A.p):
        ci = A.cols(i)
        j0 = i if same else 0
        c0 = int(B.bounds[j0])
        G = np.zeros((ci.stop - ci.start, int(B.bounds[-1]) - c0))
        for r in product_chunks(n):
            G += A.Z[r, ci].T @ B.Z[r, c0:]
        for j in range(j0, B.p):
            S[i, j] = _sumsq(G[:, int(B.bounds[j]) - c0 : int(B.bounds[j + 1]) - c0])
            if same:
                S[j, i] = S[i, j]
    return S


def self_moments(A: Side) -> np.ndarray:
    """``||X̃_iᵀ X̃_i||²_F`` per layer."""
    out = np.empty(A.p)
    for i in range(A.p):
        ci = A.cols(i)
        G = np.zeros((ci.stop - ci.start,) * 2)
        for r in product_chunks(len(A.Z)):
            Zi = A.Z[r, ci]
            G += Zi.T @ Zi
        out[i] = _sumsq(G)
    return out


def point_cka(A: Side, B: Side, same: bool, debiased: bool) -> np.ndarray:
    """The ``(p, q)`` linear CKA matrix."""
    n = len(A.Z)
    S = cross_moments(A, B, same)
    Sxx = np.diag(S).copy() if same else self_moments(A)
    Syy = Sxx if same else self_moments(B)
    a_sum, b_sum = A.alpha.sum(axis=0), B.alpha.sum(axis=0)
    hxy = hsic_numerator(S, A.alpha.T @ B.alpha, a_sum[:, None], b_sum[None, :], n, debiased)
    hxx = hsic_numerator(Sxx, (A.alpha**2).sum(axis=0), a_sum, a_sum, n, debiased)
    hyy = hsic_numerator(Syy, (B.alpha**2).sum(axis=0), b_sum, b_sum, n, debiased)
    return ratio(hxy, hxx[:, None], hyy[None, :])


# ----------------------------------------------------------------------------- group replicates
@dataclass
class _LayerBlocks:
    P: np.ndarray  # (n, m): x̃_i · u_b
    Gu: np.ndarray  # (m, m): u_a · u_b
    a: np.ndarray  # (m,): Σ_{i∈b} a_i
    alpha: np.ndarray  # (n,)


@dataclass
class _PairBlocks:
    S: float  # ||Σ_b S_b||² (the point estimate's cross moment)
    M: np.ndarray  # (m, m)
    T: np.ndarray  # (m, m, m)
    Q1: np.ndarray  # (m, m): v_c · Σ_{i∈b} a_i ỹ_i
    Q2: np.ndarray  # (m, m): u_c · Σ_{i∈b} b_i x̃_i
    e: np.ndarray  # (m,): Σ_{i∈b} a_i b_i


def _layer_blocks(side: Side, i: int, rb: list[slice]) -> _LayerBlocks:
    Zi = side.Z[:, side.cols(i)]
    ind = np.zeros((len(rb), len(Zi)), dtype=Zi.dtype)  # block indicator: block sums as one product
    for b, r in enumerate(rb):
        ind[b, r] = 1.0
    U = (ind @ Zi).astype(np.float64)
    P = (Zi @ U.T.astype(Zi.dtype)).astype(np.float64)
    alpha = side.alpha[:, i]
    starts = np.array([r.start for r in rb])
    return _LayerBlocks(P=P, Gu=U @ U.T, a=np.add.reduceat(alpha, starts), alpha=alpha)


def _block_products(A: Side, i: int, B: Side, c0: int, c1: int, rb: list[slice]) -> np.ndarray:
    """``(m, c1 − c0, d_i)``: per block, columns ``c0:c1`` of B (several layers: one wide product
    per block runs at close to the speed of one large product) against layer ``i`` of A. Stored
    B-major so that each B layer's slice of a block is contiguous (no copies downstream); the
    statistics need only Frobenius products, which transposition leaves unchanged."""
    ci = A.cols(i)
    out = np.empty((len(rb), c1 - c0, ci.stop - ci.start), dtype=A.Z.dtype)
    for b, r in enumerate(rb):
        np.matmul(B.Z[r, c0:c1].T, A.Z[r, ci], out=out[b])
    return out


def _pair_blocks(
    Sb: np.ndarray, S: float, rb: list[slice], la: _LayerBlocks, lb: _LayerBlocks
) -> _PairBlocks:
    """Per-block statistics of one layer pair from its block products ``Sb`` ``(m, ·, ·)`` (a view
    whose blocks are contiguous) and the squared norm ``S`` of their sum."""
    m = len(rb)
    Sf = Sb.reshape(m, -1)
    M = (Sf @ Sf.T).astype(np.float64)
    T = np.empty((m, m, m))
    Q1 = np.empty((m, m))
    Q2 = np.empty((m, m))
    e = np.empty(m)
    for b, r in enumerate(rb):
        T[:, b, :] = la.P[r].T @ lb.P[r]
        Q1[:, b] = lb.P[r].T @ la.alpha[r]
        Q2[:, b] = la.P[r].T @ lb.alpha[r]
        e[b] = la.alpha[r] @ lb.alpha[r]
    return _PairBlocks(S=S, M=M, T=T, Q1=Q1, Q2=Q2, e=e)


def _groups(js: list[int], side: Side, max_width: int) -> list[list[int]]:
    """Consecutive layers of ``side`` whose total width stays within ``max_width`` (≥ 1 layer)."""
    out: list[list[int]] = []
    for j in js:
        width = int(side.bounds[j + 1] - side.bounds[j])
        if out and int(side.bounds[out[-1][-1] + 1] - side.bounds[out[-1][0]]) + width <= max_width:
            out[-1].append(j)
        else:
            out.append([j])
    return out


def _quad(W: np.ndarray, Q: np.ndarray) -> np.ndarray:
    return np.einsum("rb,bc,rc->r", W, Q, W)


def _replicate_hsic(
    W: np.ndarray, N: np.ndarray, pb: _PairBlocks, la: _LayerBlocks, lb: _LayerBlocks, debiased: bool
) -> np.ndarray:
    """HSIC numerators of every replicate (rows of ``W``), exactly as on the resampled records."""
    Sw2 = _quad(W, pb.M)
    Tw = np.einsum("rab,ra,rb->r", np.einsum("abc,rc->rab", pb.T, W), W, W)
    mxN2, myN2 = _quad(W, la.Gu), _quad(W, lb.Gu)  # N² ||μx||², N² ||μy||²
    C2 = Sw2 - 2.0 * Tw / N + mxN2 * myN2 / N**2
    if not debiased:
        return C2
    mx, my = mxN2 / N**2, myN2 / N**2
    wa, wb = W @ la.a, W @ lb.a
    # Σ_i w_i ||x̃_i − μx||² ||ỹ_i − μy||², expanded in per-block statistics
    sab = (
        W @ pb.e
        - 2.0 * _quad(W, pb.Q1) / N
        + my * wa
        - 2.0 * _quad(W, pb.Q2) / N
        + 4.0 * Tw / N**2
        - 3.0 * N * mx * my
        + mx * wb
    )
    return hsic_numerator(C2, sab, wa - N * mx, wb - N * my, N, True)


def max_blocks(dims_a: list[int], dims_b: list[int], itemsize: int) -> int:
    """How many blocks the per-pair block products may use within the memory budget."""
    biggest = max(da * db for da in dims_a for db in dims_b)
    return int(_BLOCK_STATS_BYTES // max(1, biggest * itemsize))


def replicate_cka(
    A: Side, B: Side, same: bool, debiased: bool, rb: list[slice], W: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Point estimate ``(p, q)`` and replicates ``(r, p, q)`` of the CKA matrix.

    ``A`` and ``B`` must hold their rows in block order (``make_side(..., order=plan.order)``);
    ``W`` is ``(r, m)`` block weights (0/1 for the jackknife: see the module doc).
    """
    n = len(A.Z)
    N = W @ np.array([r.stop - r.start for r in rb], dtype=np.float64)
    lay_a = [_layer_blocks(A, i, rb) for i in range(A.p)]
    lay_b = lay_a if same else [_layer_blocks(B, j, rb) for j in range(B.p)]

    def both(pb: _PairBlocks, la: _LayerBlocks, lb: _LayerBlocks) -> tuple[float, np.ndarray]:
        # the point estimate from the float64-accumulated cross product (rows centred globally)
        point = hsic_numerator(pb.S, float(pb.e.sum()), float(la.a.sum()), float(lb.a.sum()), n, debiased)
        return point, _replicate_hsic(W, N, pb, la, lb, debiased)

    itemsize = A.Z.itemsize
    h: dict[tuple[int, int], tuple[float, np.ndarray]] = {}
    for i in range(A.p):
        ci = A.cols(i)
        max_width = max(1, _GROUP_BYTES // (len(rb) * (ci.stop - ci.start) * itemsize))
        for group in _groups(list(range(i, B.p)) if same else list(range(B.p)), B, max_width):
            c0, c1 = int(B.bounds[group[0]]), int(B.bounds[group[-1] + 1])
            Sg = _block_products(A, i, B, c0, c1, rb)
            G = Sg.sum(axis=0, dtype=np.float64)
            for j in group:
                rel = slice(int(B.bounds[j]) - c0, int(B.bounds[j + 1]) - c0)
                pb = _pair_blocks(Sg[:, rel, :], _sumsq(G[rel]), rb, lay_a[i], lay_b[j])
                h[i, j] = both(pb, lay_a[i], lay_b[j])
            del Sg, G
    if same:
        self_a = self_b = {i: h[i, i] for i in range(A.p)}
    else:
        self_a = {i: both(_self_pair(A, i, rb, lay_a[i]), lay_a[i], lay_a[i]) for i in range(A.p)}
        self_b = {j: both(_self_pair(B, j, rb, lay_b[j]), lay_b[j], lay_b[j]) for j in range(B.p)}
    point = np.empty((A.p, B.p))
    boot = np.empty((len(W), A.p, B.p))
    for (i, j), hxy in h.items():
        for ii, jj in ((i, j), (j, i)) if same else ((i, j),):
            point[ii, jj] = ratio(hxy[0], self_a[ii][0], self_b[jj][0])
            boot[:, ii, jj] = ratio(hxy[1], self_a[ii][1], self_b[jj][1])
    return point, boot


def _self_pair(side: Side, i: int, rb: list[slice], lay: _LayerBlocks) -> _PairBlocks:
    """Block statistics of a layer with itself (symmetric block products: syrk)."""
    ci = side.cols(i)
    Sb = np.empty((len(rb), ci.stop - ci.start, ci.stop - ci.start), dtype=side.Z.dtype)
    for b, r in enumerate(rb):
        Zb = side.Z[r, ci]
        np.matmul(Zb.T, Zb, out=Sb[b])
    return _pair_blocks(Sb, _sumsq(Sb.sum(axis=0, dtype=np.float64)), rb, lay, lay)
