"""Solvers for the linear probes: many L2-regularised logistic regressions along a C path, and
ridge regression along an alpha path.

Why a solver of our own: a probe fits one binary logistic regression per label (71 on PTB-XL)
for each of several C values. Fitting them one by one (scikit-learn's one-vs-rest L-BFGS) reads
the whole ``(n, D)`` matrix twice per iteration per label with matrix-*vector* products, which are
memory-bound. :func:`fit_logistic_path` instead runs a truncated Newton (Newton-CG) method on all
labels at once: each label keeps its own step sizes, CG scalars, line search and convergence test
(nothing is shared between labels, unlike a joint L-BFGS on the summed loss, whose shared curvature
and line search make every label wait for the hardest one), while every product with the data is
one matrix-*matrix* product over the labels still active. Three further savings:

- the problem is solved in the principal axes of the (standardised) training data, ``X V``; the
  rotation is orthogonal, so the L2 penalty and the predictions are unchanged, but there the
  Hessian is close to diagonal and a Jacobi preconditioner makes CG converge in a few steps;
- the C path is solved from the strongest regularisation to the weakest, each C warm-started from
  the previous solution (which is close, so one to three Newton steps usually suffice);
- labels drop out of the batch as soon as they have converged (out of the CG iterations too);
- with ``keep_going``, a label leaves the C path once a rule says so (the probes stop it when its
  validation choice has settled, :mod:`ecgprobe.analyzers._stats.c_path`): the weakest
  regularisation, the worst-conditioned and costliest end, is then solved only where it can still
  be chosen.

The same code runs on CPU and, when one is present, on a CUDA GPU (PyTorch), in float32 or float64.
The objective is scikit-learn's (``LogisticRegression(C=C)``, intercept not penalised) divided by
``C n``: ``mean_i log-loss_i + ||w||^2 / (2 C n)``; the convergence test bounds the largest absolute
gradient entry of that objective (scikit-learn's L-BFGS uses the same scale with ``tol=1e-4``, the
default here too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ecgprobe.exceptions import ConfigError

__all__ = [
    "KeepGoing",
    "LogisticPath",
    "fit_logistic_path",
    "fit_logistic_path_sklearn",
    "resolve_device",
    "ridge_path",
]


KeepGoing = Callable[[int, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``keep_going(k, labels, coef, intercept) -> mask``: see :func:`fit_logistic_path`."""


@dataclass
class LogisticPath:
    """Solutions of :func:`fit_logistic_path` for each C (in the order given).

    Attributes:
        Cs: the C values, shape ``(K,)``.
        coef: ``(K, L, D)`` weights in the space of the ``X`` given (standardised embeddings).
        intercept: ``(K, L)``.
        n_iter: ``(K, L)`` Newton iterations (or L-BFGS iterations for the scikit-learn path).
        converged: ``(K, L)`` whether the gradient test was met within the iteration limit.
        device: where it ran (``"cpu"``, ``"cuda:0"``, ``"sklearn"``).
        fitted: ``(K, L)`` whether label ``l`` was solved at ``Cs[k]`` (False where ``keep_going``
            took it off the path; its ``coef`` and ``intercept`` are NaN there). None: all were.
    """

    Cs: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    device: str
    fitted: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.fitted is None:
            self.fitted = np.ones(self.intercept.shape, dtype=bool)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Logits ``(K, n, L)`` of ``X`` (standardised like the training data) for every C."""
        return np.einsum("nd,kld->knl", X, self.coef, optimize=True) + self.intercept[:, None, :]


def resolve_device(device: str) -> str:
    """The solver's device as text (``"cpu"``, ``"cuda"``, ``"cuda:1"``), resolved by the one
    resolver :func:`ecgprobe.settings.resolve_device` (``"auto"``: CUDA when usable).

    Raises:
        ConfigError: an unknown device, or ``"cuda"`` without a usable GPU.
    """
    from ecgprobe.settings import resolve_device as resolve

    return str(resolve(device))


def _check_path_inputs(X: np.ndarray, Y: np.ndarray, Cs: Sequence[float]) -> np.ndarray:
    Cs_arr = np.asarray(Cs, dtype=np.float64).ravel()
    if not len(Cs_arr) or not np.all(np.isfinite(Cs_arr)) or np.any(Cs_arr <= 0):
        raise ConfigError(f"C values must be positive finite numbers, got {list(Cs)}")
    if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y):
        raise ConfigError(f"X must be (n, D) and Y (n, L) with the same n; got {X.shape} and {Y.shape}")
    return Cs_arr


def fit_logistic_path(
    X: np.ndarray,
    Y: np.ndarray,
    Cs: Sequence[float],
    *,
    tol: float = 1e-4,
    max_newton: int = 100,
    max_cg: int = 200,
    device: str = "cpu",
    dtype: str = "float32",
    keep_going: KeepGoing | None = None,
) -> LogisticPath:
    """Fit one L2 logistic regression per column of ``Y`` for every C (batched Newton-CG).

    Args:
        X: ``(n, D)`` features; standardise them first (the rotation assumes centred columns only
            for its speed, not for its correctness).
        Y: ``(n, L)`` binary targets; every column should hold both classes.
        Cs: inverse regularisation strengths (scikit-learn's ``C``); solved in increasing order
            with warm starts, returned in the order given.
        tol: bound on the largest absolute gradient entry (mean-loss scale) per label.
        max_newton: Newton iterations per C and label before giving up (``converged`` False).
        max_cg: CG iterations per Newton step.
        device: ``"cpu"`` or ``"cuda[:i]"`` (see :func:`resolve_device`).
        dtype: ``"float32"`` or ``"float64"`` for the products with the data.
        keep_going: called after each C (in increasing order) as ``keep_going(k, labels, coef,
            intercept)`` with the indices of the labels just solved at ``Cs[k]`` and their
            ``(len(labels), D)`` weights and intercepts; returns a boolean mask over ``labels`` of
            those to solve at the next C (the others stay off the path: see
            :class:`ecgprobe.analyzers._stats.c_path.SettledChoice`). None: every label, every C.

    Returns:
        A :class:`LogisticPath`.

    Raises:
        ConfigError: invalid C values or shapes.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(200, 5)); Y = (X[:, :2] > 0).astype(float)
        >>> path = fit_logistic_path(X, Y, [0.1, 1.0])
        >>> path.coef.shape
        (2, 2, 5)
    """
    import torch

    Cs_arr = _check_path_inputs(X, Y, Cs)
    tdtype = {"float32": torch.float32, "float64": torch.float64}.get(dtype)
    if tdtype is None:
        raise ConfigError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    dev = torch.device(device)
    # Small problems are dominated by per-operation overhead, which extra CPU threads only add to
    # (and on a busy machine, spinning threads wait for each other).
    small = dev.type == "cpu" and X.shape[0] * (X.shape[1] + 1) * Y.shape[1] < 2_000_000
    threads = torch.get_num_threads()
    if small:
        torch.set_num_threads(1)
    try:
        return _fit_path(X, Y, Cs_arr, tdtype, dev, tol, max_newton, max_cg, keep_going)
    finally:
        torch.set_num_threads(threads)


def _fit_path(
    X: np.ndarray,
    Y: np.ndarray,
    Cs_arr: np.ndarray,
    tdtype: Any,
    dev: Any,
    tol: float,
    max_newton: int,
    max_cg: int,
    keep_going: KeepGoing | None,
) -> LogisticPath:
    import torch

    n, D = X.shape
    L = Y.shape[1]
    Xt = torch.as_tensor(np.asarray(X), device=dev).to(tdtype)
    # Principal axes of the training data: X V has uncorrelated columns, so the logistic Hessian
    # X' S X is nearly diagonal there and Jacobi preconditioning works (V orthogonal: same penalty).
    # The Gram matrix in the working precision is enough: V only preconditions, and eigh (float64)
    # returns an orthogonal V whatever its input's rounding.
    _, V = torch.linalg.eigh((Xt.T @ Xt).to(torch.float64))
    A = torch.cat([Xt @ V.to(tdtype), torch.ones(n, 1, dtype=tdtype, device=dev)], dim=1)
    A2 = A * A
    del Xt
    Yt = torch.as_tensor(np.asarray(Y), device=dev).to(tdtype)
    pen = torch.ones(D + 1, 1, dtype=tdtype, device=dev)
    pen[D] = 0.0  # the intercept is not penalised (as in scikit-learn)

    prev = Yt.mean(0).clamp(1e-6, 1 - 1e-6)
    theta = torch.zeros(D + 1, L, dtype=tdtype, device=dev)
    theta[D] = torch.log(prev / (1 - prev))

    order = np.argsort(Cs_arr, kind="stable")
    K = len(Cs_arr)
    coef = np.full((K, L, D), np.nan)
    intercept = np.full((K, L), np.nan)
    n_iter = np.zeros((K, L), dtype=np.int64)
    converged = np.zeros((K, L), dtype=bool)
    fitted = np.zeros((K, L), dtype=bool)
    Vn = V.cpu().numpy()
    labels = np.arange(L)
    for k in order:
        if not len(labels):
            break
        lam = 1.0 / (Cs_arr[k] * n)
        cols = torch.as_tensor(labels, device=dev)
        th, its, conv = _newton_cg(A, A2, Yt[:, cols], pen, theta[:, cols], lam, tol, max_newton, max_cg)
        theta[:, cols] = th
        th_np = th.to(torch.float64).cpu().numpy()
        coef[k, labels] = (Vn @ th_np[:D]).T
        intercept[k, labels] = th_np[D]
        n_iter[k, labels] = its
        converged[k, labels] = conv
        fitted[k, labels] = True
        if keep_going is not None:
            labels = labels[
                np.asarray(keep_going(int(k), labels, coef[k, labels], intercept[k, labels]), dtype=bool)
            ]
    return LogisticPath(Cs_arr, coef, intercept, n_iter, converged, str(dev), fitted)


def _objective(Z: Any, Y: Any, theta: Any, pen: Any, lam: float) -> Any:
    """Per-label objective (mean log-loss + penalty), summed in float64 for the line search."""
    import torch
    import torch.nn.functional as F

    loss = (F.softplus(Z) - Y * Z).sum(0, dtype=torch.float64) / Z.shape[0]
    return loss + 0.5 * lam * ((theta * pen) ** 2).sum(0, dtype=torch.float64)


def _newton_cg(
    A: Any, A2: Any, Y: Any, pen: Any, theta: Any, lam: float, tol: float, max_newton: int, max_cg: int
) -> tuple[Any, np.ndarray, np.ndarray]:
    """Newton-CG for every column of ``Y`` at one penalty; returns (theta, iterations, converged)."""
    import torch

    n, L = Y.shape
    dev = A.device
    theta = theta.clone()
    its = np.zeros(L, dtype=np.int64)
    conv = np.zeros(L, dtype=bool)
    active = np.arange(L)
    for it in range(max_newton + 1):
        if not len(active):
            break
        cols = torch.as_tensor(active, device=dev)
        th, Ya = theta[:, cols], Y[:, cols]
        # Z is recomputed rather than carried along: a carried A@theta drifts in float32 and then
        # disagrees with theta at the precision the convergence test asks for.
        Z = A @ th
        P = torch.sigmoid(Z)
        G = A.T @ (P - Ya) / n + lam * pen * th
        done = (G.abs().amax(0) <= tol).cpu().numpy()
        conv[active[done]] = True
        if done.all() or it == max_newton:
            break
        if done.any():
            keep = torch.as_tensor(~done, device=dev)
            active, cols = active[~done], cols[keep]
            th, Ya, Z, P, G = th[:, keep], Ya[:, keep], Z[:, keep], P[:, keep], G[:, keep]
        its[active] += 1
        S = P * (1 - P) / n
        M = A2.T @ S + lam * pen + 1e-12
        d, Ad = _batched_cg(A, S, M, G, pen, lam, max_cg)
        step = _line_search(Z, Ad, Ya, th, d, G, pen, lam)
        theta[:, cols] = th + step.to(A.dtype) * d
        # No decrease within rounding: the label is as close as this precision allows.
        active = active[(step > 0).cpu().numpy()]
    return theta, its, conv


def _line_search(Z: Any, Zd: Any, Y: Any, th: Any, d: Any, G: Any, pen: Any, lam: float) -> Any:
    """Armijo backtracking per label (only labels still searching are evaluated); 0 = no step."""
    import torch

    f0 = _objective(Z, Y, th, pen, lam)
    slope = (G * d).sum(0, dtype=torch.float64)
    step = torch.ones_like(f0)
    # Near the optimum the predicted decrease is below the rounding noise of the objective (which
    # sums float32 terms): take the Newton step, whose quadratic model is accurate there.
    noise = 1e-10 if Z.dtype == torch.float32 else 1e-15
    tiny = slope.abs() < noise * f0.abs().clamp_min(1.0)
    pending = torch.arange(len(f0), device=Z.device)
    for _ in range(40):
        t = step[pending].to(Z.dtype)
        f1 = _objective(
            Z[:, pending] + t * Zd[:, pending], Y[:, pending], th[:, pending] + t * d[:, pending], pen, lam
        )
        ok = (f1 <= f0[pending] + 1e-4 * step[pending] * slope[pending]) | tiny[pending]
        pending = pending[~ok]
        if not len(pending):
            return step
        step[pending] *= 0.5
    step[pending] = 0.0
    return step


def _batched_cg(A: Any, S: Any, M: Any, G: Any, pen: Any, lam: float, max_cg: int) -> tuple[Any, Any]:
    """Solve ``H_l d_l = -g_l`` for every label column by Jacobi-preconditioned CG.

    ``H_l = A' diag(S_l) A + lam diag(pen)``. Each column has its own CG scalars and stops at the
    inexact-Newton forcing tolerance ``min(0.5, sqrt(|g|)) |g|`` (scipy's newton-cg rule) or at
    non-positive curvature; finished columns leave the batch, so the products with ``A`` only
    cover the columns still iterating (the hardest label no longer makes every label pay).
    Returns ``d`` and ``A d`` (accumulated from the products CG computes anyway, for the line search).
    """
    import torch

    d = torch.zeros_like(G)
    Ad = torch.zeros(A.shape[0], G.shape[1], dtype=G.dtype, device=G.device)
    gnorm = G.norm(dim=0)
    eta = torch.clamp(gnorm.sqrt(), max=0.5) * gnorm
    cols = torch.arange(G.shape[1], device=G.device)
    r, S_a, M_a = -G, S, M
    z = r / M_a
    p = z
    rz = (r * z).sum(0)
    for _ in range(max_cg):
        Ap = A @ p
        Hp = A.T @ (S_a * Ap) + lam * pen * p
        pHp = (p * Hp).sum(0)
        curved = pHp > 0
        alpha = torch.where(curved, rz / torch.where(curved, pHp, torch.ones_like(pHp)), torch.zeros_like(rz))
        d[:, cols] += alpha * p
        Ad[:, cols] += alpha * Ap
        r = r - alpha * Hp
        live = curved & (r.norm(dim=0) > eta)
        if not bool(live.any()):
            break
        if not bool(live.all()):
            cols, r, p, rz, eta = cols[live], r[:, live], p[:, live], rz[live], eta[live]
            S_a, M_a = S_a[:, live], M_a[:, live]
        z = r / M_a
        rz_new = (r * z).sum(0)
        beta = rz_new / rz.clamp_min(torch.finfo(rz.dtype).tiny)
        rz = rz_new
        p = z + beta * p
    return d, Ad


def fit_logistic_path_sklearn(
    X: np.ndarray, Y: np.ndarray, Cs: Sequence[float], *, tol: float = 1e-4, max_iter: int = 1000
) -> LogisticPath:
    """The reference path: scikit-learn's L-BFGS per label, warm-started along increasing C.

    Slower than :func:`fit_logistic_path`; kept to check it (and as a fallback without torch).
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    Cs_arr = _check_path_inputs(X, Y, Cs)
    K, L, D = len(Cs_arr), Y.shape[1], X.shape[1]
    coef = np.zeros((K, L, D))
    intercept = np.zeros((K, L))
    n_iter = np.zeros((K, L), dtype=np.int64)
    converged = np.zeros((K, L), dtype=bool)
    for j in range(L):
        clf = LogisticRegression(C=1.0, tol=tol, max_iter=max_iter, warm_start=True)
        for k in np.argsort(Cs_arr, kind="stable"):
            clf.set_params(C=float(Cs_arr[k]))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(X, Y[:, j])
            coef[k, j], intercept[k, j] = clf.coef_[0], clf.intercept_[0]
            n_iter[k, j] = int(clf.n_iter_[0])
            converged[k, j] = n_iter[k, j] < max_iter
    return LogisticPath(Cs_arr, coef, intercept, n_iter, converged, "sklearn")


def ridge_path(X: np.ndarray, Y: np.ndarray, alphas: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression (scikit-learn's ``Ridge(alpha)``: ``|y - Xw - b|^2 + alpha |w|^2``) for all alphas.

    One eigendecomposition of the centred ``X'X`` serves every alpha and every target column.

    Args:
        X: ``(n, D)`` features.
        Y: ``(n, T)`` finite targets.
        alphas: non-negative penalties.

    Returns:
        ``coef (K, T, D)`` and ``intercept (K, T)``.

    Raises:
        ConfigError: negative or non-finite alphas.
    """
    a = np.asarray(alphas, dtype=np.float64).ravel()
    if not len(a) or not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ConfigError(f"ridge alphas must be non-negative finite numbers, got {list(alphas)}")
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    xm, ym = X.mean(0), Y.mean(0)
    Xc = X - xm
    evals, V = np.linalg.eigh(Xc.T @ Xc)
    evals = np.clip(evals, 0.0, None)
    proj = V.T @ (Xc.T @ (Y - ym))  # (D, T)
    coef = np.empty((len(a), Y.shape[1], X.shape[1]))
    for k, alpha in enumerate(a):
        # Directions with no variance get no weight (the minimum-norm solution when alpha = 0).
        inv = np.divide(
            1.0,
            evals + alpha,
            out=np.zeros_like(evals),
            where=(evals + alpha) > 1e-12 * max(evals.max(), 1.0),
        )
        coef[k] = (V @ (inv[:, None] * proj)).T
    intercept = ym[None, :] - np.einsum("ktd,d->kt", coef, xm)
    return coef, intercept
