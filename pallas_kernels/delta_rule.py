"""The (gated) delta rule as fused Pallas kernels: chunkwise WY/UT form, forward and backward.

Per batch b and head h, with state S ∈ ℝ^{K×V} and α_t = e^{log_decay_t} (α = 1 without
log_decay, i.e. DeltaNet; with it, gated DeltaNet):

    S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ,        o_t = S_tᵀ q_t

Chunkwise form (the same math as `lrnn.cells.chunkwise.delta`). Per chunk of C tokens with
S_0 the state entering it, b the within-chunk cumulative log decay, Γ_ij = e^{b_i − b_j}
(j ≤ i), M the causal mask (j ≤ i):

    A   = strict_tril(diag(β) (K Kᵀ ⊙ Γ))
    U   = (I + A)⁻¹ diag(β) V,      W = (I + A)⁻¹ diag(β e^b) K,      Δ = U − W S_0
    O   = diag(e^b) Q S_0 + (Q Kᵀ ⊙ Γ ⊙ M) Δ
    S_C = e^{b_C} S_0 + K̃ᵀ Δ,      K̃ = diag(e^{b_C − b}) K

Every exponent is ≤ 0 (masked entries are zeroed before exp, so nothing overflows).

Design
- Layout: batch and heads are flattened into one axis G = B·H; T is padded to N·C with
  neutral tokens (q = k = v = 0, β = 0, log_decay = 0: they change no state) and cropped.
  K and V are padded with zeros where the blocks need it (GPU: a power of two ≥ 16; TPU: a
  multiple of 128 lanes). Zero key dimensions are neutral: they add nothing to K Kᵀ or Q Kᵀ,
  the state's padded rows start at zero and stay zero, and padded value columns stay zero.
- Outside the kernels (plain JAX, elementwise, O(T) work): b = cumsum of log_decay inside
  each chunk, e^{b_C} per chunk and K̃ᵀ per chunk (passed as (K, C) so the forward kernel
  needs no transposed-lhs matmul). β and b are passed as (C, 1) columns and b also as a
  (1, C) row, so the forward kernel needs no transposes.
- Forward kernel, fused, one chunk step per iteration: loads the chunk's q, k, v, β, b
  (cast to float32), builds Γ, A and (I + A)⁻¹ by forward substitution over the C columns
  (a fori_loop of masked reductions and rank-one updates: no dynamic slicing of values, no
  triangular_solve, no cumsum), then U, W, Δ, O and S_C with float32 matmuls at HIGHEST
  precision. The K×V state is the only carry; only o (in q's dtype) and the final state
  (float32) reach HBM.
  * GPU variant: grid (G,), each program holds one (batch·head) sequence and loops over its
    chunks in a fori_loop, reading chunk n's rows with pl.ds.
  * TPU variant: grid (G, N), chunks last ("arbitrary"), the state carried in the resident
    final-state output block (its index_map ignores the chunk index).
- Backward (jax.custom_vjp; the forward saves only its inputs as residuals):
  (1) the forward kernel again, with a flag to emit the state entering every chunk
      (G, N, K, V) and no output;
  (2) a reverse-loop kernel for the state's cotangent: G after the last chunk is the final
      state's cotangent, and G_{n−1} = e^{b_C} G_n − Wᵀ (K̃ G_n) + Pᵀ dO_n with
      P = ∂O/∂S_0 = diag(e^b) Q − (Q Kᵀ ⊙ Γ ⊙ M) W. Wᵀ, Pᵀ (K×C) and K̃ are prepared for all
      chunks in parallel outside the kernel; the kernel's last G is d initial. Same GPU/TPU
      split as the forward (TPU: the chunk grid axis walked backwards through index_maps).
  (3) a kernel for the intra-chunk gradients, one program per chunk (grid (G, N), all
      parallel, on both variants): given the recomputed S_0, G_n and dO_n it differentiates
      the chunk body with jax.vjp while the kernel is traced (no hand-written adjoint: the
      kernel body is the transposed linearisation of the same chunk math), giving dq, dk,
      dv, dβ and the cotangents of b (as column and as row) and of b_C. Outside, these are
      summed into d b and d log_decay = reverse cumsum of d b within each chunk. The
      (I + A)⁻¹ inside has a custom JVP (d(I + A)⁻¹ = −(I + A)⁻¹ dA (I + A)⁻¹), so the
      substitution loop runs forward only and is never differentiated. This kernel's
      traced adjoint contains transposes and transposed-operand matmuls (aᵀ b, a bᵀ).
  Memory: the backward stores the entering states (G, N, K, V) and G_n (G, N, K, V) in
  float32 for one backward pass, never per-token states.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from pallas_kernels.chunk_inputs import block_width, check_attention, heads_flat
from pallas_kernels.matmul import matmul, matmul_nt
from pallas_kernels.platform import compiler_params, interpret_mode, kernel_variant, pad_axis, round_up

F32 = jnp.float32


# --------------------------------------------------------------------------- chunk math
# Traced inside the kernels on loaded float32 tiles; _adjoint_terms also runs outside (vmapped).

def _grid_ids(size):
    rows = lax.broadcasted_iota(jnp.int32, (size, size), 0)
    cols = lax.broadcasted_iota(jnp.int32, (size, size), 1)
    return rows, cols


def _substitution_inverse(a: jax.Array) -> jax.Array:
    """(I + A)⁻¹ for A (C, C) strictly lower triangular, by forward substitution.

    Column j of A, once row j of X is final, is subtracted from the rows below it:
    X ← X − A[:, j] X[j, :]. Both vectors are taken out with masked reductions, so the
    loop has no dynamic slicing and lowers in a kernel (the pure-JAX form's block doubling,
    `lrnn.cells.chunkwise.delta.unit_lower_inverse`, reshapes into blocks, which does not)."""
    rows, cols = _grid_ids(a.shape[-1])

    def eliminate(j, x):
        a_col = jnp.sum(jnp.where(cols == j, a, 0.0), axis=1, keepdims=True)  # (C, 1)
        x_row = jnp.sum(jnp.where(rows == j, x, 0.0), axis=0, keepdims=True)  # (1, C)
        return x - a_col * x_row

    # int32 bounds: under jax_enable_x64 Python-int bounds make an int64 index, which Mosaic
    # (TPU) fails to lower
    size = jnp.int32(a.shape[-1])
    return lax.fori_loop(jnp.int32(0), size, eliminate, (rows == cols).astype(F32))


@jax.custom_jvp
def _inverse_differentiable(a):
    return _substitution_inverse(a)


@_inverse_differentiable.defjvp
def _inverse_jvp(primals, tangents):
    (a,), (da,) = primals, tangents
    x = _substitution_inverse(a)
    return x, -matmul(matmul(x, da), x)


def _chunk_parts(q, k, v, beta, b, b_row, inverse):
    """For one chunk: the entry decays e^b (C, 1), the scores Q Kᵀ ⊙ Γ ⊙ M (C, C), U (C, V)
    and W (C, K). q, k (C, K); v (C, V); beta, b (C, 1); b_row (1, C); all float32."""
    rows, cols = _grid_ids(q.shape[0])
    causal = cols <= rows
    gamma = jnp.where(causal, jnp.exp(jnp.where(causal, b - b_row, 0.0)), 0.0)
    strict = jnp.where(cols < rows, gamma, 0.0)
    solve = inverse(beta * matmul_nt(k, k) * strict)
    entry = jnp.exp(b)
    u = matmul(solve, beta * v)
    w = matmul(solve, (beta * entry) * k)
    return entry, matmul_nt(q, k) * gamma, u, w


def _chunk_step(q, k, v, beta, b, b_row, k_leave_t, carry, state, inverse=_substitution_inverse):
    """One chunk: (o (C, V), state leaving (K, V)) from the state entering (K, V).
    k_leave_t is K̃ᵀ (K, C), carry e^{b_C} (1, 1); other shapes as in _chunk_parts."""
    entry, scores, u, w = _chunk_parts(q, k, v, beta, b, b_row, inverse)
    delta = u - matmul(w, state)
    o = entry * matmul(q, state) + matmul(scores, delta)
    return o, carry * state + matmul(k_leave_t, delta)


def _chunk_local(q, k, v, beta, b, b_row, b_last, state):
    """_chunk_step with K̃ and e^{b_C} formed from b and b_last = b_C (1, 1): the function the
    backward differentiates (in the local-gradient kernel). b enters twice, as the column b
    and the row b_row; the caller sums their cotangents."""
    return _chunk_step(q, k, v, beta, b, b_row, (jnp.exp(b_last - b) * k).T, jnp.exp(b_last), state,
                       inverse=_inverse_differentiable)


def _adjoint_terms(q, k, v, beta, b):
    """Wᵀ and Pᵀ = (∂O/∂S_0)ᵀ (K, C) of one chunk; beta, b (C,)."""
    entry, scores, _, w = _chunk_parts(q, k, v, beta[:, None], b[:, None], b[None, :], _substitution_inverse)
    return w.T, (entry * q - matmul(scores, w)).T


# --------------------------------------------------------------------------- kernels

class _Config(NamedTuple):
    size: int        # chunk length C
    variant: str     # "gpu" | "tpu"
    interpret: bool


def _chunk_at(config, n):
    """(rows of chunk n in a time-blocked ref, index of chunk n in a chunk-blocked ref):
    the GPU variant holds the whole sequence, the TPU variant one chunk per grid step."""
    if config.variant == "gpu":
        return pl.ds(pl.multiple_of(n * config.size, config.size), config.size), n
    return slice(None), 0


def _forward_kernel(q_ref, k_ref, v_ref, beta_ref, b_ref, b_row_ref, k_leave_t_ref, carry_ref, initial_ref,
                    *out_refs, config, chunks, emit_output, emit_states):
    out_refs = list(out_refs)
    o_ref = out_refs.pop(0) if emit_output else None
    final_ref = out_refs.pop(0)
    states_ref = out_refs.pop(0) if emit_states else None

    def step(n, state):
        rows, at = _chunk_at(config, n)
        o, leaving = _chunk_step(
            q_ref[0, rows, :].astype(F32), k_ref[0, rows, :].astype(F32), v_ref[0, rows, :].astype(F32),
            beta_ref[0, rows, :], b_ref[0, rows, :], b_row_ref[0, at, :, :], k_leave_t_ref[0, at, :, :],
            carry_ref[0, at, :, :], state)
        if emit_output:
            o_ref[0, rows, :] = o.astype(o_ref.dtype)
        if emit_states:
            states_ref[0, at, :, :] = state
        return leaving

    if config.variant == "gpu":
        final_ref[0, :, :] = lax.fori_loop(0, chunks, step, initial_ref[0, :, :])
    else:
        n = pl.program_id(1)

        @pl.when(n == 0)
        def _():
            final_ref[0, :, :] = initial_ref[0, :, :]

        final_ref[0, :, :] = step(n, final_ref[0, :, :])


def _cotangent_kernel(w_t_ref, p_t_ref, k_leave_ref, d_o_ref, carry_ref, d_final_ref,
                      g_ref, d_initial_ref, *, config, chunks):
    """G_{n−1} = e^{b_C} G_n − Wᵀ (K̃ G_n) + Pᵀ dO_n, chunks in reverse; g_ref[n] = G_n."""
    def step(n, g):
        rows, at = _chunk_at(config, n)
        g_ref[0, at, :, :] = g
        pulled = matmul(w_t_ref[0, at, :, :], matmul(k_leave_ref[0, rows, :], g))
        return carry_ref[0, at, :, :] * g - pulled + matmul(p_t_ref[0, at, :, :], d_o_ref[0, rows, :])

    if config.variant == "gpu":
        d_initial_ref[0, :, :] = lax.fori_loop(
            0, chunks, lambda i, g: step(chunks - 1 - i, g), d_final_ref[0, :, :])
    else:
        @pl.when(pl.program_id(1) == 0)
        def _():
            d_initial_ref[0, :, :] = d_final_ref[0, :, :]

        d_initial_ref[0, :, :] = step(0, d_initial_ref[0, :, :])


def _local_grads_kernel(q_ref, k_ref, v_ref, beta_ref, b_ref, b_row_ref, b_last_ref, state_ref, d_o_ref, g_ref,
                        d_q_ref, d_k_ref, d_v_ref, d_beta_ref, d_b_ref, d_b_row_ref, d_b_last_ref):
    """The gradients of one chunk's (o, S_C) w.r.t. its q, k, v, β, b (column and row) and
    b_C, given the entering state S_0, dO and G (the cotangent of S_C). One program per
    chunk; the chunk body is differentiated by jax.vjp while the kernel is traced."""
    primals = (q_ref[0].astype(F32), k_ref[0].astype(F32), v_ref[0].astype(F32), beta_ref[0],
               b_ref[0], b_row_ref[0, 0], b_last_ref[0, 0])
    state = state_ref[0, 0]
    _, pullback = jax.vjp(lambda *xs: _chunk_local(*xs, state), *primals)
    grads = pullback((d_o_ref[0], g_ref[0, 0]))
    for ref, grad in zip((d_q_ref, d_k_ref, d_v_ref, d_beta_ref, d_b_ref), grads[:5]):
        ref[0] = grad.astype(ref.dtype)
    d_b_row_ref[0, 0] = grads[5]
    d_b_last_ref[0, 0] = grads[6]


def _specs(config, chunks, kinds, reverse=False):
    """BlockSpecs by kind: "time" (G, N·C, X) arrays, "chunk" (G, N, X, Y) arrays, "whole"
    (G, X, Y) per-sequence arrays. `kinds` is a list of (kind, trailing block shape)."""
    size = config.size
    specs = []
    for kind, tail in kinds:
        if config.variant == "gpu":
            shape = {"time": (1, chunks * size), "chunk": (1, chunks), "whole": (1,)}[kind] + tail
            specs.append(pl.BlockSpec(shape, lambda g, nd=len(shape): (g,) + (0,) * (nd - 1)))
            continue
        shape = {"time": (1, size), "chunk": (1, 1), "whole": (1,)}[kind] + tail
        if kind == "whole":
            index = (lambda g, n, nd=len(shape): (g,) + (0,) * (nd - 1))
        elif reverse:
            index = (lambda g, n, nd=len(shape): (g, chunks - 1 - n) + (0,) * (nd - 2))
        else:
            index = (lambda g, n, nd=len(shape): (g, n) + (0,) * (nd - 2))
        specs.append(pl.BlockSpec(shape, index))
    return specs


def _call(kernel, config, groups, chunks, in_kinds, out_kinds, out_shape, reverse=False):
    grid = (groups,) if config.variant == "gpu" else (groups, chunks)
    params = compiler_params(config.variant, config.interpret, ("parallel", "arbitrary"))
    return pl.pallas_call(
        kernel, grid=grid, out_shape=out_shape,
        in_specs=_specs(config, chunks, in_kinds, reverse),
        out_specs=_specs(config, chunks, out_kinds, reverse),
        interpret=config.interpret, **params)


def _gates(log_decay, k, size):
    """From log_decay (G, T) and k (G, T, K): b (G, N, C), e^{b_C} (G, N, 1, 1) and
    K̃ = diag(e^{b_C − b}) K (G, N, C, K), all float32."""
    groups, length, width = k.shape
    b = jnp.cumsum(log_decay.reshape(groups, -1, size), axis=-1)
    k_leave = jnp.exp(b[..., -1:] - b)[..., None] * k.reshape(groups, -1, size, width).astype(F32)
    return b, jnp.exp(b[..., -1])[..., None, None], k_leave


def _forward(config, q, k, v, beta, log_decay, initial, *, emit_output=True, emit_states=False):
    """Runs the forward kernel on padded, flattened inputs; returns the outputs it emits."""
    groups, length, width = q.shape
    values, size = v.shape[-1], config.size
    chunks = length // size
    b, carry, k_leave = _gates(log_decay, k, size)
    k_leave_t = jnp.swapaxes(k_leave, -1, -2)
    b_row = b[:, :, None, :]
    b = b.reshape(groups, length, 1)

    in_kinds = [("time", (width,)), ("time", (width,)), ("time", (values,)), ("time", (1,)), ("time", (1,)),
                ("chunk", (1, size)), ("chunk", (width, size)), ("chunk", (1, 1)), ("whole", (width, values))]
    out_kinds, out_shape = [], []
    if emit_output:
        out_kinds.append(("time", (values,)))
        out_shape.append(jax.ShapeDtypeStruct((groups, length, values), q.dtype))
    out_kinds.append(("whole", (width, values)))
    out_shape.append(jax.ShapeDtypeStruct((groups, width, values), F32))
    if emit_states:
        out_kinds.append(("chunk", (width, values)))
        out_shape.append(jax.ShapeDtypeStruct((groups, chunks, width, values), F32))

    kernel = functools.partial(_forward_kernel, config=config, chunks=chunks,
                               emit_output=emit_output, emit_states=emit_states)
    return _call(kernel, config, groups, chunks, in_kinds, out_kinds, out_shape)(
        q, k, v, beta.reshape(groups, length, 1), b, b_row, k_leave_t, carry, initial)


def _state_cotangents(config, q, k, v, beta, log_decay, d_o, d_final):
    """(G_n for every chunk (G, N, K, V), d initial (G, K, V)) by the reverse-loop kernel."""
    groups, length, width = q.shape
    values, size = v.shape[-1], config.size
    chunks = length // size
    b, carry, k_leave = _gates(log_decay, k, size)

    def by_chunk(x):
        return x.reshape((groups * chunks, size) + x.shape[2:]).astype(F32)

    w_t, p_t = jax.vmap(_adjoint_terms)(by_chunk(q), by_chunk(k), by_chunk(v), by_chunk(beta),
                                        b.reshape(groups * chunks, size))
    w_t, p_t = (x.reshape(groups, chunks, width, size) for x in (w_t, p_t))

    in_kinds = [("chunk", (width, size)), ("chunk", (width, size)), ("time", (width,)), ("time", (values,)),
                ("chunk", (1, 1)), ("whole", (width, values))]
    out_kinds = [("chunk", (width, values)), ("whole", (width, values))]
    out_shape = [jax.ShapeDtypeStruct((groups, chunks, width, values), F32),
                 jax.ShapeDtypeStruct((groups, width, values), F32)]
    kernel = functools.partial(_cotangent_kernel, config=config, chunks=chunks)
    return _call(kernel, config, groups, chunks, in_kinds, out_kinds, out_shape, reverse=True)(
        w_t, p_t, k_leave.reshape(groups, length, width), d_o.astype(F32), carry, d_final)


def _local_grads(config, q, k, v, beta, log_decay, entering, d_o, leaving_cotangents):
    """Per-chunk gradients, all chunks in parallel: d q, d k (G, T, K) and d v (G, T, V) in
    the inputs' dtype; d β, d b (G, T, 1), d b_row (G, N, 1, C), d b_C (G, N, 1, 1) float32."""
    groups, length, width = q.shape
    values, size = v.shape[-1], config.size
    chunks = length // size
    b = jnp.cumsum(log_decay.reshape(groups, chunks, size), axis=-1)
    per_chunk = _Config(size, "tpu", config.interpret)  # one chunk per program on either variant
    in_kinds = [("time", (width,)), ("time", (width,)), ("time", (values,)), ("time", (1,)), ("time", (1,)),
                ("chunk", (1, size)), ("chunk", (1, 1)), ("chunk", (width, values)), ("time", (values,)),
                ("chunk", (width, values))]
    out_kinds = in_kinds[:7]
    out_shape = [jax.ShapeDtypeStruct((groups, length, width), q.dtype),
                 jax.ShapeDtypeStruct((groups, length, width), k.dtype),
                 jax.ShapeDtypeStruct((groups, length, values), v.dtype),
                 jax.ShapeDtypeStruct((groups, length, 1), F32), jax.ShapeDtypeStruct((groups, length, 1), F32),
                 jax.ShapeDtypeStruct((groups, chunks, 1, size), F32),
                 jax.ShapeDtypeStruct((groups, chunks, 1, 1), F32)]
    parallel = compiler_params(config.variant, config.interpret, ("parallel", "parallel"))
    return pl.pallas_call(
        _local_grads_kernel, grid=(groups, chunks), out_shape=out_shape,
        in_specs=_specs(per_chunk, chunks, in_kinds), out_specs=_specs(per_chunk, chunks, out_kinds),
        interpret=config.interpret, **parallel)(
        q, k, v, beta.reshape(groups, length, 1), b.reshape(groups, length, 1), b[:, :, None, :],
        b[..., -1:, None], entering, d_o, leaving_cotangents)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _delta_core(config, q, k, v, beta, log_decay, initial):
    """(o (G, T, V) in q's dtype, final (G, K, V) float32) on padded, flattened inputs:
    q, k (G, T, K), v (G, T, V) float32/bfloat16; beta, log_decay (G, T) and initial
    (G, K, V) float32; T a multiple of config.size."""
    o, final = _forward(config, q, k, v, beta, log_decay, initial)
    return o, final


def _delta_core_fwd(config, q, k, v, beta, log_decay, initial):
    return _delta_core(config, q, k, v, beta, log_decay, initial), (q, k, v, beta, log_decay, initial)


def _delta_core_bwd(config, residuals, cotangents):
    q, k, v, beta, log_decay, initial = residuals
    d_o, d_final = cotangents
    groups, length, width = q.shape
    size = config.size
    chunks = length // size
    _, entering = _forward(config, q, k, v, beta, log_decay, initial, emit_output=False, emit_states=True)
    leaving_cotangents, d_initial = _state_cotangents(config, q, k, v, beta, log_decay, d_o, d_final)

    d_q, d_k, d_v, d_beta, d_b, d_b_row, d_b_last = _local_grads(
        config, q, k, v, beta, log_decay, entering, d_o.astype(F32), leaving_cotangents)
    d_b = (d_b.reshape(groups, chunks, size) + d_b_row.reshape(groups, chunks, size)).at[..., -1].add(
        d_b_last.reshape(groups, chunks))
    # b = cumsum(log_decay) inside each chunk, so d log_decay is the reverse cumsum of d b.
    d_log_decay = jnp.flip(jnp.cumsum(jnp.flip(d_b, -1), -1), -1).reshape(groups, length)
    return d_q, d_k, d_v, d_beta.reshape(groups, length), d_log_decay, d_initial.astype(initial.dtype)


_delta_core.defvjp(_delta_core_fwd, _delta_core_bwd)


# --------------------------------------------------------------------------- public API

def delta_rule(q, k, v, beta, initial=None, *, log_decay=None, chunk_size: int = 64, variant=None,
               interpret=None):
    """Chunkwise (gated) delta rule: o_t = S_tᵀ q_t, S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ.

    Differentiable (custom VJP with recomputed chunk states, see the module docstring).

    Args:
      q: (B, H, T, K) float32 or bfloat16, queries.
      k: (B, H, T, K) q's dtype, keys (the recurrence is contractive for unit-norm keys).
      v: (B, H, T, V) q's dtype, values.
      beta: (B, H, T) float32 or bfloat16, write strengths, expected in (0, 2) (β ∈ (0, 1):
        eigenvalues of I − β k kᵀ in (0, 1] for unit k; β ∈ (0, 2): in (−1, 1]). Not
        checked (values are traced).
      initial: (B, H, K, V) real floating state before the first token (used in float32), or
        None for zeros.
      log_decay: (B, H, T) float32 or bfloat16, log α_t ≤ 0 (gated DeltaNet), or None for
        α = 1 (DeltaNet). Not checked for sign (values are traced).
      chunk_size: C, a power of two ≥ 16. T needs not be a multiple of C.
      variant: "gpu" | "tpu" | None (the default backend's): which kernel layout to use.
      interpret: run the kernels in Pallas interpret mode; None means on CPU only.

    Returns:
      o: (B, H, T, V) in q's dtype; final: (B, H, K, V) float32, the state after token T.

    Accumulation is float32 throughout; bfloat16 inputs are cast to float32 on load.
    """
    check_attention("delta_rule", q, k, v, initial, chunk_size, beta=(beta, "(B, H, T)"),
                    log_decay=(log_decay, "(B, H, T)"))
    config = _Config(chunk_size, kernel_variant(variant), interpret_mode(interpret))
    batch, heads, length, width = q.shape
    values = v.shape[-1]
    groups = batch * heads
    padded_length = round_up(length, chunk_size)
    padded_width, padded_values = (block_width(n, config.variant) for n in (width, values))
    if initial is None:
        initial = jnp.zeros((batch, heads, width, values), F32)
    if log_decay is None:
        log_decay = jnp.zeros(beta.shape, F32)

    o, final = _delta_core(
        config,
        heads_flat(q, padded_length, padded_width), heads_flat(k, padded_length, padded_width),
        heads_flat(v, padded_length, padded_values), heads_flat(beta.astype(F32), padded_length),
        heads_flat(log_decay.astype(F32), padded_length),
        pad_axis(pad_axis(initial.astype(F32).reshape(groups, width, values), 1, padded_width), 2, padded_values))
    o = o[:, :length, :values].reshape(batch, heads, length, values)
    return o, final[:, :width, :values].reshape(batch, heads, width, values)
