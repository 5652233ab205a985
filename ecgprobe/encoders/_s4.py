"""The S4 layer of the Strodthoff group's ``clinical_ts`` (``s4_modules/s42.py``), at inference.

That file is the standalone S4 of the state-spaces repository (v2, "NPLR" kernel): a state
matrix ``A = diag(w) - P Q^*`` (normal plus rank 1), input ``B``, output ``C`` (stored already
multiplied by ``I - dA^L``, "C tilde"), step ``dt = exp(log_dt)``. The convolution kernel is
computed in frequency space at the ``L/2 + 1`` nodes ``omega`` of the stored kernel length ``L``:

    z = 2 (1 - omega) / (1 + omega)                     (bilinear transform, a stored buffer)
    r[s, c] = dt * sum_n v[s, c, n] / (z - w_n dt) + conj(v[s, c, n]) / (z - conj(w_n) dt),
              v = [B; P]_s * [C; Q]_c                   (Cauchy kernel, conjugate pairs)
    K(omega) = (r00 - r01 r10 / (1 + r11)) * 2 / (1 + omega)   (Woodbury for rank 1)
    k = irfft(K)[:L_in]

followed by an FFT convolution with the input, the skip term ``D u``, GELU, a 1x1 linear to
``2H`` channels and a GLU. All of ``log_dt, B, P, w, Q, omega, z`` are stored in the checkpoint
(the official code registers them as buffers), so nothing HiPPO-specific is recomputed here.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ecgprobe.exceptions import ConfigError

__all__ = ["S4Block", "S4Kernel", "fft_nodes"]


def fft_nodes(length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The official ``SSKernelNPLR._omega`` buffers (``view_as_real``): ``omega_k = e^{-2 pi i k / L}``,
    ``k = 0..L/2``, and ``z = 2 (1 - omega) / (1 + omega)``, computed as the official code does."""
    omega = torch.tensor(np.exp(-2j * np.pi / length), dtype=torch.cfloat)
    omega = omega ** torch.arange(0, length // 2 + 1)
    z = 2 * (1 - omega) / (1 + omega)
    return torch.view_as_real(omega), torch.view_as_real(z)


class S4Kernel(nn.Module):
    """``SSKernelNPLR.forward`` (rate 1, no state): the kernel ``(channels, H, L)``."""

    def __init__(self, channels: int, h: int, n: int, rank: int, length: int) -> None:
        super().__init__()
        self.C = nn.Parameter(torch.zeros(channels, h, n, 2))
        for name, shape in {
            "log_dt": (h,),
            "B": (1, h, n, 2),
            "P": (rank, h, n, 2),
            "w": (h, n, 2),
            "Q": (rank, h, n, 2),
            "omega": (length // 2 + 1, 2),
            "z": (length // 2 + 1, 2),
        }.items():
            self.register_buffer(name, torch.zeros(shape))

    @property
    def length(self) -> int:
        """The kernel length the stored ``C`` (and nodes) were set up for."""
        return 2 * (self.omega.shape[0] - 1)

    def forward(self, length: int) -> torch.Tensor:
        """The kernel for ``length`` steps; without autograd it is cached until a weight changes
        (it depends on the weights only, and dominates the cost of small batches)."""
        if torch.is_grad_enabled():
            return self._compute(length)
        tensors = [t for t in (self.C, *self.buffers()) if t is not None]
        key = (length, *((t.device, t.dtype, t.data_ptr(), t._version) for t in tensors))
        cached = getattr(self, "_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, self._compute(length))
            self._cache = cached
        return cached[1]

    def _compute(self, length: int) -> torch.Tensor:
        if length > self.length:
            # The official kernel would double its length (rewriting C in place); inputs beyond the
            # length the checkpoint was trained for are outside the model's contract.
            raise ConfigError(
                f"S4 kernel of length {self.length} cannot convolve {length} steps; use shorter windows"
            )
        c = torch.view_as_complex
        dt = torch.exp(self.log_dt)
        w = c(self.w) * dt.unsqueeze(-1)  # (H, N)
        b = torch.cat([c(self.B), c(self.P)], dim=0)  # (1 + r, H, N)
        cc = torch.cat([c(self.C), c(self.Q)], dim=0)  # (channels + r, H, N)
        v = b.unsqueeze(1) * cc.unsqueeze(0)  # (1 + r, channels + r, H, N)
        z = c(self.z)  # (L/2 + 1,)
        den = 1.0 / (z[None, :, None] - w[:, None, :])  # (H, L', N)
        den_conj = 1.0 / (z[None, :, None] - w.conj()[:, None, :])
        r = torch.einsum("schn,hln->schl", v, den) + torch.einsum("schn,hln->schl", v.conj(), den_conj)
        r = r * dt[None, None, :, None]
        if self.P.shape[0] != 1:
            raise ConfigError(f"only rank-1 S4 kernels are supported, got rank {self.P.shape[0]}")
        k_f = r[:-1, :-1] - r[:-1, -1:] * r[-1:, :-1] / (1 + r[-1:, -1:])
        k_f = k_f * 2 / (1 + c(self.omega))
        k = torch.fft.irfft(k_f)[..., :length]
        return k[-1].float()  # (channels, H, length)


class S4Block(nn.Module):
    """``s42.S4.forward`` (transposed, ``postact='glu'``): ``(B, H, L) -> (B, H, L)``."""

    def __init__(self, h: int, n: int, *, channels: int, bidirectional: bool, rank: int, length: int) -> None:
        super().__init__()
        self.bidirectional = bidirectional
        self.D = nn.Parameter(torch.zeros(channels, h))
        self.kernel = S4Kernel(channels * (2 if bidirectional else 1), h, n, rank, length)
        self.output_linear_weight = nn.Parameter(torch.zeros(2 * h, h * channels))
        self.output_linear_bias = nn.Parameter(torch.zeros(2 * h, 1))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        # FFTs have no bfloat16 kernels and the published model ran in float32 (run.sh --precision 32):
        # the layer always computes in float32, also under autocast.
        with torch.autocast(device_type=u.device.type, enabled=False):
            return self._forward(u.float())

    def _forward(self, u: torch.Tensor) -> torch.Tensor:
        length = u.shape[-1]
        k = self.kernel(length)
        if self.bidirectional:
            k0, k1 = k.reshape(2, -1, *k.shape[1:])
            k = F.pad(k0, (0, length)) + F.pad(k1.flip(-1), (length, 0))
        k_f = torch.fft.rfft(k, n=2 * length)  # (C, H, L+1)
        u_f = torch.fft.rfft(u, n=2 * length)  # (B, H, L+1)
        y = torch.fft.irfft(u_f.unsqueeze(1) * k_f.unsqueeze(0), n=2 * length)[..., :length]
        y = y + u.unsqueeze(1) * self.D.unsqueeze(0).unsqueeze(-1)  # skip term D u
        y = F.gelu(y.reshape(y.shape[0], -1, length))
        y = torch.einsum("bul,vu->bvl", y, self.output_linear_weight) + self.output_linear_bias
        return F.glu(y, dim=-2)
