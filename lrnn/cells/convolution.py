"""S4's convolution mode for the time-invariant cells (Gu, Johnson et al. 2021, "Combining
Recurrent, Convolutional, and Continuous-time Models with Linear State-Space Layers" (LSSL);
Gu, Goel & Ré 2022, "Efficiently Modeling Long Sequences with Structured State Spaces" (S4)):
`forward(..., method="convolution")`, no recurrence over tokens.

A diagonal SSM whose transition does not depend on the input,

    h_t = Ā ⊙ h_{t−1} + B̄ x_t,      y_t = Re(C h_t) + D x_t,

unrolls to a causal convolution plus the initial state's response:

    h_t = Σ_{s≤t} Ā^{t−s} ⊙ B̄ x_s + Ā^{t+1} ⊙ h_0
    y_t = Σ_{s≤t} K_{t−s} x_s + D x_t + Re(C Ā^{t+1} h_0),      K_k = Re(C Ā^k B̄), k = 0 … T−1
    h_T = Ā^T ⊙ h_0 + Σ_s Ā^{T−1−s} ⊙ B̄ x_s                     (the final state, h_{T−1} above)

The convolution runs by FFT of length 2T (the linear convolution of two length-T sequences has
2T − 1 terms, so nothing wraps around): O(T log T), no sequential dependency. The powers Ā^k
(a Vandermonde matrix) come from log Ā (e.g. ΔA under zero-order hold) in blocks k = iL + j with
L ≈ √T: Ā^k = exp(iL·log Ā) · exp(j·log Ā), n + L complex exponentials instead of T (at B = 1
the T exponentials per state cost several times the whole scan), with a phase error
|k·log Ā|·ε no worse than that of k repeated products.

A cell declares the mode by inheriting `TimeInvariant` and returns one of two kernel forms from
`convolution_kernel(params)`, by what the FFT runs over:

  ChannelKernel  one single-input single-output SSM per channel c with M modes (S4D): log Ā, B̄,
                 C (d, M); the kernel K (T, d) = Re Σ_m C_cm Ā_cm^k B̄_cm is the paper's
                 Vandermonde product, y = K * x + D x is an FFT over the d channels of x, and no
                 state per token is formed. The final state and the initial state's response
                 are Vandermonde contractions over time.
  StateKernel    one multi-input multi-output SSM (LRU, S5): log Ā (N,). Each state channel's
                 input u_t = B̄ x_t (the cell's `elements`) is convolved with its own Ā^k and the
                 cell's `readout` reads the result. The alternative, the full kernel
                 (T, d_out, d_in), costs T·d_out·d_in·N to build and d_out·d_in FFTs against the
                 N FFTs here; for LRU at B = 8 on CPU it measured 3.6–7× slower at d = N = 64
                 (T = 1024, 4096) and 15–21× at d = N = 256 (T = 1024), forward and
                 forward+backward (BENCHMARKS.md, "Convolution mode"; the cost ratio is about
                 d/B). A bidirectional cell (S5) adds the backward scan's states
                 g_t = Σ_{s≥t} Ā^{s−t} u_s: the same convolution on the time-reversed inputs.

A matrix cell (RetNet) declares the mode and defines no kernel: its time-invariant kernel is the
decay mask D_ts = γ^{t−s} of its parallel form (QKᵀ ⊙ D)V, which is exactly its chunkwise form
with one chunk of T tokens, so `MatrixCell.forward` runs that (O(T²) memory).

Where it pays (CPU, B = 1, BENCHMARKS.md): S4D, whose kernel sums the M modes of a channel, so the
FFT runs over d channels where a scan runs d·M states: 4–7× faster forward+backward than the
fastest scan at T = 1K … 64K. LRU and S5 convolve as many channels as the scan has states, and
there the FFT's O(T log T) loses to the scan's O(T) (2–8× slower); RetNet's parallel form costs
O(T²) (10–50× slower than its chunkwise form at T = 1K, 4K; over 4 GiB beyond).

Not supported with this method: `resets` (a convolution over the whole sequence cannot restart
the state inside it), `sequence_axis` and `chunk_size`; each raises a ValueError.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lrnn.cells.registry import registered_cells

METHOD = "convolution"


class TimeInvariant:
    """Mixin of the cells whose transition does not depend on the input: their
    `forward(..., method="convolution")` runs S4's convolution mode."""

    def convolution_kernel(self, params: dict):
        """A `ChannelKernel` or `StateKernel` of this cell's SSM from its params."""
        raise NotImplementedError(f"{type(self).__name__} defines no convolution_kernel: "
                                  f"its forward(method={METHOD!r}) computes its own parallel form")


@dataclasses.dataclass(frozen=True)
class ChannelKernel:
    """Per channel c and mode m: h_t = Ā ⊙ h_{t−1} + B̄ ⊙ x_t[c], y_t = Re Σ_m C h_t + D x_t."""

    log_decay: jax.Array  # log Ā (d, M) complex
    b: jax.Array  # B̄ (d, M)
    c: jax.Array  # C (d, M), any readout factor folded in
    d: jax.Array  # D (d,)


@dataclasses.dataclass(frozen=True)
class StateKernel:
    """h_t = Ā ⊙ h_{t−1} + u_t with u_t the cell's `elements` input, read out by its `readout`."""

    log_decay: jax.Array  # log Ā (N,) complex


def cells_with_it() -> list[str]:
    """The registered cells that run method="convolution"."""
    return sorted(name for name, cls in registered_cells().items() if issubclass(cls, TimeInvariant))


def check(cell, *, resets, sequence_axis, chunk_size) -> None:
    """A ValueError unless `cell.forward(..., method="convolution")` can run with these options."""
    if not isinstance(cell, TimeInvariant):
        raise ValueError(f"method={METHOD!r} needs a time-invariant cell (a transition that does not depend "
                         f"on the input); {type(cell).__name__}'s is not. The cells with it: "
                         f"{', '.join(cells_with_it())}; use a scan method (e.g. 'auto') here")
    if resets is not None:
        raise ValueError(f"resets cannot be used with method={METHOD!r}: one convolution over the whole "
                         f"sequence cannot restart the state inside it; use a scan method (e.g. 'auto') for "
                         f"packed sequences")
    if sequence_axis is not None:
        raise ValueError(f"sequence_axis cannot be used with method={METHOD!r} (its FFT spans the whole "
                         f"sequence on one device), got sequence_axis={sequence_axis!r}; use a scan method")
    if chunk_size is not None:
        raise ValueError(f"chunk_size does not apply to method={METHOD!r} (one FFT over the whole sequence), "
                         f"got {chunk_size!r}")


def blocked_powers(log_decay: jax.Array, length: int) -> tuple[jax.Array, jax.Array]:
    """(coarse (n, …) = Ā^{iL}, fine (L, …) = Ā^j) with L ≈ √T a power of two and nL ≥ T, so that
    Ā^{iL+j} = coarse_i ⊙ fine_j: n + L exponentials instead of T (an exponential of a complex
    number costs many products; the phase error is still |k·log Ā|·ε)."""
    fine = 1 << ((length - 1).bit_length() + 1) // 2
    coarse = -(-length // fine)
    k = jnp.arange(max(fine, coarse), dtype=jnp.real(log_decay).dtype)
    k = k.reshape(k.shape + (1,) * log_decay.ndim)
    return jnp.exp(fine * k[:coarse] * log_decay), jnp.exp(k[:fine] * log_decay)


def powers(log_decay: jax.Array, length: int) -> jax.Array:
    """Ā^k for k = 0 … length − 1, shape (length, *log_decay.shape)."""
    coarse, fine = blocked_powers(log_decay, length)
    table = coarse[:, None] * fine[None, :]
    return table.reshape((-1,) + table.shape[2:])[:length]


def causal(kernel: jax.Array, signal: jax.Array) -> jax.Array:
    """Σ_{s≤t} kernel_{t−s} ⊙ signal_s for kernel (T, *C) and signal (B, T, *C), by FFT of length 2T
    (real FFTs when both are real)."""
    length = signal.shape[1]
    n = 2 * length
    real = not (jnp.iscomplexobj(kernel) or jnp.iscomplexobj(signal))
    fft, inverse = (jnp.fft.rfft, jnp.fft.irfft) if real else (jnp.fft.fft, jnp.fft.ifft)
    product = fft(kernel, n=n, axis=0) * fft(signal, n=n, axis=1)
    return jax.lax.slice_in_dim(inverse(product, n=n, axis=1), 0, length, axis=1)


def anticausal(kernel: jax.Array, signal: jax.Array) -> jax.Array:
    """Σ_{s≥t} kernel_{s−t} ⊙ signal_s: `causal` on the time-reversed signal."""
    return jnp.flip(causal(kernel, jnp.flip(signal, axis=1)), axis=1)


def forward(cell, params: dict, xc: jax.Array, initial, **inputs):
    """(y (B, T, d_out) in the compute dtype, final state) of a time-invariant scan-defined cell
    for checked inputs xc (B, T, d_in) in a float32 or wider dtype and a checked state or None
    (`inputs`: the cell's per-call inputs, if its kernel takes any)."""
    kernel = cell.convolution_kernel(params, **inputs)
    if isinstance(kernel, ChannelKernel):
        return _by_channel(kernel, xc, initial)
    return _by_state(cell, params, kernel, xc, initial)


def _by_channel(kernel: ChannelKernel, xc, initial):
    """The Vandermonde products over time in blocks k = iL + j (`blocked_powers`): each is a
    product over the modes of a coarse and a fine table, no (T, d, M) table of powers."""
    batch, length, _ = xc.shape
    coarse, fine = blocked_powers(kernel.log_decay, length)  # (n, d, M), (L, d, M)
    padded = coarse.shape[0] * fine.shape[0]

    def over_time(blocks):  # (…, n, L, d) → (…, T, d)
        return blocks.reshape(blocks.shape[:-3] + (padded, blocks.shape[-1]))[..., :length, :]

    response = over_time(jnp.einsum("icm,jcm->ijc", coarse * (kernel.c * kernel.b), fine).real)  # K (T, d)
    y = causal(response.astype(jnp.promote_types(response.dtype, xc.dtype)), xc) + kernel.d * xc
    # B̄ Σ_s Ā^{T−1−s} x_s: the time-reversed x in blocks, zeros after its first token
    backwards = jnp.pad(jnp.flip(xc, 1), ((0, 0), (0, padded - length), (0, 0)))
    backwards = backwards.reshape(batch, len(coarse), len(fine), -1)
    final = kernel.b * jnp.einsum("bicm,icm->bcm", _real_by_complex("bijc,jcm->bicm", backwards, fine), coarse)
    if initial is not None:
        start = kernel.c * jnp.exp(kernel.log_decay) * initial  # Re Σ_m C Ā^{t+1} h_0 below
        y = y + over_time(jnp.einsum("bicm,jcm->bijc", start[:, None] * coarse, fine).real)
        final = final + jnp.exp(length * kernel.log_decay) * initial
    return y, final


def _real_by_complex(subscripts: str, real: jax.Array, z: jax.Array) -> jax.Array:
    """einsum of a real and a complex array as two real ones (not one complex product with zeros)."""
    return jax.lax.complex(jnp.einsum(subscripts, real, z.real), jnp.einsum(subscripts, real, z.imag))


def _by_state(cell, params, kernel: StateKernel, xc, initial):
    _, inputs = cell.elements(params, xc)  # u_t = B̄ x_t (B, T, N)
    decay = powers(kernel.log_decay, xc.shape[1])  # Ā^k (T, N)
    h = causal(decay, inputs)
    if initial is not None:
        h = h + decay * (jnp.exp(kernel.log_decay) * initial)[:, None].astype(h.dtype)  # Ā^{t+1} h_0
    states = jnp.concatenate([h, anticausal(decay, inputs)], axis=-1) if cell.bidirectional else h
    return cell.readout(params, states, xc), h[:, -1]


__all__ = ["METHOD", "ChannelKernel", "StateKernel", "TimeInvariant", "blocked_powers", "causal", "cells_with_it",
           "check", "forward", "powers"]
