"""The attentive-probe head: one learned query attending over a frozen encoder's tokens.

Architecture (the frozen-evaluation attentive pooler of V-JEPA: Bardes et al. 2024, "Revisiting
Feature Prediction for Learning Visual Representations from Video", ``AttentivePooler`` with its
defaults ``num_queries=1, depth=1, complete_block=True`` and ``AttentiveClassifier`` in
facebookresearch/jepa ``src/models/attentive_pooler.py``; the same single cross-attention block
is the baseline of the efficient-probing study of Psomas et al. 2025, "Attention, Please!
Revisiting Attentive Probing for Masked Image Modeling", arXiv 2506.10178)::

    q  = query                                   (1, D), truncated-normal init, std 0.02
    q  = q + MultiHeadAttention(q, LN(x), LN(x)) one cross-attention over the T tokens
    q  = q + MLP(LN(q))                          D -> mlp_ratio * D -> D, GELU
    logits = Linear(q)                           one logit per label (multi-label)

One query shared by every label, as V-JEPA's evaluation does, rather than one per label: the
pooled vector then plays the role of the linear probe's embedding (one read-out per label on a
shared representation, so the paired comparison isolates the pooling), and a per-label query
would give rare labels (a few dozen positives in PTB-XL's train split) a set of attention
parameters of their own to overfit.

Training: BCE-with-logits on the train split, AdamW, mini-batches reshuffled every epoch from a
seeded generator; after each epoch the validation macro AUROC (labels with both classes in
val) is measured, the best epoch's weights are kept, and training stops after ``patience``
epochs without a strict improvement (or at ``max_epochs``). Test records are never seen here.

Determinism: ``torch.manual_seed(seed)`` before the weights are drawn, a private generator for
the batch order, and ``torch.use_deterministic_algorithms(True)`` while fitting (restored
afterwards). CPU results also depend on the number of threads (reductions are split
differently), and other libraries change torch's thread count as they run (umap/numba was seen
to raise it from 1 to 2 within one process), so small problems (fewer than 5 million train
token values, where extra threads only add overhead) are fitted on exactly 1 thread and larger
ones on torch's current count; the count used is recorded (``AttentiveFit.threads``). On CUDA, ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` is set when absent (it only takes
effect if cuBLAS was not yet initialised) and the deterministic mode is ``warn_only`` so that an
operation without a deterministic kernel warns instead of failing; the same seed on the same
device and thread count gives the same numbers.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ecgprobe.analyzers._stats.metrics import rank_metrics
from ecgprobe.exceptions import AnalysisError

__all__ = ["SMALL_PROBLEM", "AttentiveFit", "fit_attentive_head"]

#: Train token values (N x T x D) below which the head is fitted on exactly one CPU thread.
SMALL_PROBLEM = 5_000_000


@dataclass
class AttentiveFit:
    """A fitted head and its training history.

    Attributes:
        model: the torch module at its best epoch (eval mode).
        best_epoch: 1-based epoch whose weights were kept.
        epochs_run: epochs trained before stopping.
        best_val_macro_auroc: validation macro AUROC of the kept weights.
        val_macro_auroc: per epoch.
        train_loss: mean train BCE per epoch.
        n_parameters: trainable parameters of the head.
        device: where it was fitted.
        stopped_early: whether patience ran out before ``max_epochs``.
        threads: CPU threads torch used while fitting.
    """

    model: Any
    best_epoch: int
    epochs_run: int
    best_val_macro_auroc: float
    val_macro_auroc: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    n_parameters: int = 0
    device: str = "cpu"
    stopped_early: bool = False
    threads: int = 1

    def predict(self, tokens: np.ndarray, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities ``(N, C)`` and attention weights ``(N, T)`` (mean over heads)."""
        import torch

        probs, attn = [], []
        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)  # as fitted: the numbers depend on the thread count
        try:
            with torch.inference_mode():
                for lo in range(0, len(tokens), batch_size):
                    x = torch.as_tensor(tokens[lo : lo + batch_size], device=self.device)
                    logits, weights = self.model(x, with_attention=True)
                    probs.append(torch.sigmoid(logits.double()).cpu().numpy())
                    attn.append(weights.float().cpu().numpy())
        finally:
            torch.set_num_threads(threads)
        return np.concatenate(probs), np.concatenate(attn)


def _build(dim: int, n_labels: int, n_heads: int, mlp_ratio: float) -> Any:
    """The pooler + classifier module (torch imported here: the package starts without it)."""
    import torch
    from torch import nn

    class AttentiveClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query = nn.Parameter(torch.zeros(1, 1, dim))
            nn.init.trunc_normal_(self.query, std=0.02)
            self.norm1 = nn.LayerNorm(dim)
            self.attn = nn.MultiheadAttention(dim, n_heads, batch_first=True)
            self.norm2 = nn.LayerNorm(dim)
            hidden = max(1, int(round(dim * mlp_ratio)))
            self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
            self.classifier = nn.Linear(dim, n_labels)

        def forward(self, x: torch.Tensor, with_attention: bool = False) -> Any:
            kv = self.norm1(x)
            q = self.query.expand(x.shape[0], -1, -1)
            y, weights = self.attn(q, kv, kv, need_weights=with_attention, average_attn_weights=True)
            q = q + y
            q = q + self.mlp(self.norm2(q))
            logits = self.classifier(q[:, 0])
            return (logits, weights[:, 0]) if with_attention else logits

    return AttentiveClassifier()


def _macro_val_auroc(y_val: np.ndarray, p_val: np.ndarray) -> tuple[float, np.ndarray]:
    auc = rank_metrics(y_val, p_val, ap=False)[0][0]
    ok = np.isfinite(auc)
    return (float(auc[ok].mean()) if ok.any() else float("nan")), auc


def fit_attentive_head(
    X_train: np.ndarray,
    Y_train: np.ndarray,
    X_val: np.ndarray,
    Y_val: np.ndarray,
    *,
    n_heads: int = 4,
    mlp_ratio: float = 4.0,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    batch_size: int = 64,
    max_epochs: int = 50,
    patience: int = 5,
    seed: int = 0,
    device: str = "cpu",
) -> AttentiveFit:
    """Fit the head on standardised tokens ``(N, T, D)`` with early stopping on validation.

    Args:
        X_train: train tokens ``(N, T, D)`` float32.
        Y_train: train labels ``(N, C)`` in {0, 1} (every column with both classes).
        X_val: validation tokens ``(M, T, D)``.
        Y_val: validation labels ``(M, C)``.
        n_heads: attention heads (must divide ``D``).
        mlp_ratio: hidden width of the block's MLP, as a multiple of ``D``.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        batch_size: records per step.
        max_epochs: epochs at most.
        patience: epochs without a strict validation improvement before stopping.
        seed: seed of the weights and of the batch order.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (already resolved).

    Returns:
        The fitted head at its best validation epoch.

    Raises:
        AnalysisError: ``D`` not divisible by ``n_heads``, or no label with both classes in val.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X, Y = rng.standard_normal((40, 3, 4)).astype(np.float32), rng.integers(0, 2, (40, 2))
        >>> fit = fit_attentive_head(X, Y, X, Y, n_heads=2, max_epochs=2)
        >>> fit.epochs_run
        2
    """
    import torch

    dim = int(X_train.shape[-1])
    if dim % int(n_heads):
        raise AnalysisError(
            f"the tokens have {dim} dimensions, not divisible by n_heads={n_heads}; choose n_heads dividing {dim}"
        )
    n_pos = Y_val.astype(bool).sum(0)
    if not ((n_pos > 0) & (n_pos < len(Y_val))).any():
        raise AnalysisError(
            "no label has both classes in the validation split, so the epoch cannot be chosen on it; "
            "use a larger validation split"
        )
    dev = torch.device(device)
    if dev.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    used = 1 if dev.type == "cpu" and X_train.size < SMALL_PROBLEM else threads
    torch.use_deterministic_algorithms(True, warn_only=dev.type == "cuda")
    torch.set_num_threads(used)
    try:
        fit = _train(
            X_train, Y_train, X_val, Y_val, dim, int(n_heads), float(mlp_ratio), float(lr),
            float(weight_decay), int(batch_size), int(max_epochs), int(patience), int(seed), dev,
        )  # fmt: skip
        fit.threads = used
        return fit
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)


def _train(
    X_train: np.ndarray,
    Y_train: np.ndarray,
    X_val: np.ndarray,
    Y_val: np.ndarray,
    dim: int,
    n_heads: int,
    mlp_ratio: float,
    lr: float,
    weight_decay: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    seed: int,
    dev: Any,
) -> AttentiveFit:
    import torch

    torch.manual_seed(seed)
    model = _build(dim, Y_train.shape[1], n_heads, mlp_ratio).to(dev)
    order = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    xt = torch.as_tensor(np.ascontiguousarray(X_train, dtype=np.float32), device=dev)
    yt = torch.as_tensor(np.asarray(Y_train, dtype=np.float32), device=dev)
    xv = torch.as_tensor(np.ascontiguousarray(X_val, dtype=np.float32), device=dev)
    fit = AttentiveFit(model=None, best_epoch=0, epochs_run=0, best_val_macro_auroc=-np.inf, device=str(dev))
    fit.n_parameters = int(sum(p.numel() for p in model.parameters()))
    best_state, wait, n = None, 0, len(xt)
    for epoch in range(1, max_epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=order).to(dev)
        total = 0.0
        for lo in range(0, n, batch_size):
            idx = perm[lo : lo + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.inference_mode():
            p_val = torch.sigmoid(model(xv).double()).cpu().numpy()
        macro, _ = _macro_val_auroc(Y_val, p_val)
        fit.train_loss.append(total / n)
        fit.val_macro_auroc.append(macro)
        fit.epochs_run = epoch
        if macro > fit.best_val_macro_auroc:
            fit.best_val_macro_auroc, fit.best_epoch, wait = macro, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            wait += 1
            if wait >= patience:
                fit.stopped_early = epoch < max_epochs
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    fit.model = model.eval()
    return fit
