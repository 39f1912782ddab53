"""Chunked linear attention with a per-key decay (GLA / HGRN2 family) as Pallas kernels,
forward and backward.

Per batch b and head h the state S ∈ ℝ^{K×V} follows

    S_t = Diag(e^{log_decay_t}) S_{t−1} + k_t v_tᵀ,        o_t = S_tᵀ q_t.

Chunkwise, with C = chunk_size, b_i the cumulative log decay inside a chunk (b_i = Σ_{s≤i}
log_decay_s, computed outside the kernels by `jnp.cumsum` on the tiled array) and S_0 the state
entering the chunk:

    o_i  = Σ_{j≤i} (Σ_k q_ik k_jk e^{b_ik − b_jk}) v_j + (q_i ⊙ e^{b_i}) S_0
    S_C  = Diag(e^{b_C}) S_0 + Σ_j (k_j ⊙ e^{b_C − b_j}) v_jᵀ

Exact for strong decays: no exponent is ever positive. A chunk is split into sub-blocks of
c = 16 rows. For a sub-block pair i > j with r the b of the last row of sub-block j,

    P[i, j] = (q_i ⊙ e^{b_i − r}) (k_j ⊙ e^{r − b_j})ᵀ        (b_i ≤ r ≤ b_j: both exponents ≤ 0)

and a diagonal sub-block forms the (c, c, K) tensor e^{b_i − b_j} with the causal mask applied
to the exponent (−inf above the diagonal) before the exponential. log_decay = −20 per token at
C = 64 underflows to the right limit (0) instead of overflowing.

Kernels (all accumulate in float32; bf16 inputs are loaded, cast, computed in float32 and cast
on store; matmuls at HIGHEST precision with float32 results):

- `_chunk_loop`: one program per (batch·head, V block) carries the state over chunks.
  GPU variant: grid (B·H, V/bv), the whole time axis is one block read chunk by chunk in a
  fori_loop. TPU variant: grid (B·H, V/bv, N) with the chunk axis last ("arbitrary"), the
  carry held in the resident final-state output block (its index_map ignores the chunk).
  The state is held TRANSPOSED, Sᵀ (bv, K), so every per-key vector (e^{b_C}) is a row that
  broadcasts over it without a transpose. The same loop, chosen by static flags, serves as
    * the forward: writes o per chunk and the final state once (nothing else per chunk);
    * the backward's state recompute: writes the state entering every chunk (B·H, N, V, K);
    * the backward's reverse loop for the state cotangent,
          G_{n−1} = Diag(e^{b_C}) G_n + Σ_i (q_i ⊙ e^{b_i}) do_iᵀ,
      i.e. the same recurrence with (k, v, e^{b_C − b}) replaced by (q, do, e^{b}), run over
      the chunks in reverse; it writes G after every chunk and, as its final carry, d initial.
- `_chunk_gradients`: grid (B·H, N), every chunk in parallel (no carry, so one kernel for both
  variants), with the whole K and V of a chunk in one block. Given S_0, G (after the chunk)
  and do it computes, with dP = do vᵀ under the causal mask,
      dq_ik = Σ_{j≤i} dP_ij k_jk e^{b_ik − b_jk} + e^{b_ik} (do_i S_0ᵀ)_k
      dk_jk = Σ_{i≥j} dP_ij q_ik e^{b_ik − b_jk} + e^{b_Ck − b_jk} (v_j Gᵀ)_k
      dv_j  = Σ_{i≥j} P_ij do_i + (k_j ⊙ e^{b_C − b_j}) G
      db    = q ⊙ dq − k ⊙ dk,  and on the last row also + Σ_v (G ⊙ S_C)  (S_C the state
              leaving the chunk: the cotangent of e^{b_C} multiplying S_0 and the updates)
  with the same sub-block split as the forward. db is the cotangent of the cumulative b;
  d log_decay (its reverse cumsum within the chunk) comes from JAX differentiating the
  `jnp.cumsum` outside the kernels, as do the cotangents of padding and casts.
  The backward is a `jax.custom_vjp` over (q, k, v, b, initial): memory O(B·H·N·K·V) for the
  recomputed chunk states and cotangents, nothing per token beyond the inputs' shapes.

Padding (copies made outside the kernels, then cropped): T up to a multiple of C with
neutral tokens (q = k = v = 0, log_decay = 0); K and V with zeros up to the blocks:
GPU: K and V to a power of two ≥ 16 (Triton's block shapes), V blocks of min(V, 64);
TPU: K and V to multiples of 128 (lanes), V blocks of 128. No copy of q/k/v is made when T is a
multiple of C and K, V already have those sizes; b (float32, cumulative) and the transposed
initial/final states are always computed outside.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from pallas_kernels.chunk_inputs import block_width, check_attention, heads_flat
from pallas_kernels.matmul import matmul, matmul_nt, matmul_tn
from pallas_kernels.platform import TPU_LANES, compiler_params, interpret_mode, kernel_variant, pad_axis

LARGEST_CHUNK = 128  # the sub-block pairs are unrolled: C = 128 is 36 of them
SUB_BLOCK = 16


# ----------------------------------------------------------------------------- configuration

@dataclasses.dataclass(frozen=True)
class _Config:
    """Static sizes of one call (hashable: it is a nondiff argument of the custom VJP)."""

    variant: str
    interpret: bool
    chunk: int          # C
    n_chunks: int       # N
    key_pad: int        # K padded
    value_pad: int      # V padded
    value_block: int    # bv, V columns per program of the chunk loop

    @property
    def n_sub(self) -> int:
        return self.chunk // SUB_BLOCK


def _config(variant, interpret, chunk, length, key_dim, value_dim) -> _Config:
    key_pad, value_pad = block_width(key_dim, variant), block_width(value_dim, variant)
    value_block = TPU_LANES if variant == "tpu" else min(value_pad, 64)
    return _Config(variant, interpret, chunk, -(-length // chunk), key_pad, value_pad, value_block)


def _compiler_params(cfg: _Config, semantics):
    return compiler_params(cfg.variant, cfg.interpret, semantics)


# ----------------------------------------------------------------------------- in-kernel math

def _load(ref, rows, size):
    """Rows [rows, rows + size) of a 2-D ref, in float32."""
    return ref[pl.ds(rows, size), :].astype(jnp.float32)


def _diagonal_decays(b):
    """(c, c, K): e^{b_ik − b_jk} for j ≤ i, 0 above the diagonal (masked before exp)."""
    exponent = b[:, None, :] - b[None, :, :]
    return jnp.exp(jnp.where(_causal(b.shape[0])[:, :, None], exponent, -jnp.inf))


def _causal(c):
    """(c, c) bool: j ≤ i."""
    return lax.broadcasted_iota(jnp.int32, (c, c), 0) >= lax.broadcasted_iota(jnp.int32, (c, c), 1)


class _Chunk:
    """Sub-block loads of one chunk whose first row is `row0` in the refs (static sub-block
    indices, possibly traced row0)."""

    def __init__(self, row0, cfg: _Config):
        self.row0, self.c, self.n_sub, self.chunk = row0, SUB_BLOCK, cfg.n_sub, cfg.chunk

    def rows(self, ref, i):
        return _load(ref, self.row0 + i * self.c, self.c)

    def row(self, ref, index):
        return _load(ref, self.row0 + index, 1)

    def reference(self, b_ref, j):
        """(1, K): b at the last row of sub-block j."""
        return self.row(b_ref, (j + 1) * self.c - 1)


def _scores_below(chunk, q_ref, k_ref, b_ref, i, j):
    """Off-diagonal sub-block pair i > j: the decayed q_i, k_j against r (last row of j)."""
    r = chunk.reference(b_ref, j)
    q_i = chunk.rows(q_ref, i) * jnp.exp(chunk.rows(b_ref, i) - r)
    k_j = chunk.rows(k_ref, j) * jnp.exp(r - chunk.rows(b_ref, j))
    return q_i, k_j, r


# ----------------------------------------------------------------------------- chunk loop kernel

def _chunk_outputs(chunk, q_ref, k_ref, v_ref, b_ref, o_ref, state_t):
    """Writes o for every row of the chunk; state_t is Sᵀ (bv, K) entering it."""
    for i in range(chunk.n_sub):
        q_i, b_i = chunk.rows(q_ref, i), chunk.rows(b_ref, i)
        out = matmul_nt(q_i * jnp.exp(b_i), state_t)
        for j in range(i):
            q_ij, k_j, _ = _scores_below(chunk, q_ref, k_ref, b_ref, i, j)
            out += matmul(matmul_nt(q_ij, k_j), chunk.rows(v_ref, j))
        k_i = chunk.rows(k_ref, i)
        diagonal = jnp.sum(q_i[:, None, :] * k_i[None, :, :] * _diagonal_decays(b_i), axis=-1)
        out += matmul(diagonal, chunk.rows(v_ref, i))
        o_ref[pl.ds(chunk.row0 + i * chunk.c, chunk.c), :] = out.astype(o_ref.dtype)


def _chunk_update(chunk, x_ref, y_ref, b_ref, state_t, weight):
    """Sᵀ after the chunk: Sᵀ ⊙ e^{b_C} + Σ_j y_jᵀ (x_j ⊙ w_j), w = e^{b_C − b} ("leaving",
    the forward) or e^{b} ("entering", the backward's cotangent)."""
    b_last = chunk.row(b_ref, chunk.chunk - 1)
    state_t = state_t * jnp.exp(b_last)
    for j in range(chunk.n_sub):
        b_j = chunk.rows(b_ref, j)
        w_j = jnp.exp(b_last - b_j) if weight == "leaving" else jnp.exp(b_j)
        state_t += matmul_tn(chunk.rows(y_ref, j), chunk.rows(x_ref, j) * w_j)
    return state_t


def _loop_kernel(cfg: _Config, emit: str, weight: str, reverse: bool):
    """The chunk loop. Refs: x (rows into the state: k, or q backward), y (v or do), b, the
    initial Sᵀ, [q if emit == "outputs"]; outputs: o or the per-chunk states, then the final Sᵀ."""

    def step(state_t, refs, row0, out_index):
        """One chunk starting at row0 of the refs; out_index: the chunk's entry of a GPU
        states block (None on TPU, where the block is the chunk's own)."""
        x_ref, y_ref, b_ref, _, q_ref, out_ref, _ = refs
        chunk = _Chunk(row0, cfg)
        if emit == "outputs":
            _chunk_outputs(chunk, q_ref, x_ref, y_ref, b_ref, out_ref, state_t)
        elif out_index is None:
            out_ref[...] = state_t
        else:
            out_ref[out_index] = state_t
        return _chunk_update(chunk, x_ref, y_ref, b_ref, state_t, weight)

    def kernel(*refs):
        if emit != "outputs":  # no q: keep the positions of the refs alike
            refs = refs[:4] + (None,) + refs[4:]
        h0_ref, final_ref = refs[3], refs[6]
        if cfg.variant == "tpu":
            @pl.when(pl.program_id(2) == 0)
            def _():
                final_ref[...] = h0_ref[...]
            final_ref[...] = step(final_ref[...], refs, 0, None)
        else:
            def body(n, state_t):
                index = cfg.n_chunks - 1 - n if reverse else n
                return step(state_t, refs, index * cfg.chunk, index)
            final_ref[...] = lax.fori_loop(0, cfg.n_chunks, body, h0_ref[...])

    return kernel


def _chunk_loop(cfg: _Config, x, y, b, h0_t, q=None, *, emit, weight, reverse=False):
    """Runs the chunk loop. x, b (BH, Tp, Kp); y (BH, Tp, Vp); h0_t (BH, Vp, Kp) float32;
    q like x when emit == "outputs". Returns (o (BH, Tp, Vp) in q's dtype, or the states
    (BH, N, Vp, Kp) float32; the final Sᵀ (BH, Vp, Kp) float32)."""
    bh, tp, kp = x.shape
    n, c, vp, bv = cfg.n_chunks, cfg.chunk, cfg.value_pad, cfg.value_block
    final_shape = jax.ShapeDtypeStruct((bh, vp, kp), jnp.float32)
    if emit == "outputs":
        out_shape = jax.ShapeDtypeStruct((bh, tp, vp), q.dtype)
    else:
        out_shape = jax.ShapeDtypeStruct((bh, n, vp, kp), jnp.float32)

    if cfg.variant == "tpu":
        grid = (bh, vp // bv, n)

        def chunk_of(t):
            return n - 1 - t if reverse else t
        key_spec = pl.BlockSpec((None, c, kp), lambda i, v, t: (i, chunk_of(t), 0))
        value_spec = pl.BlockSpec((None, c, bv), lambda i, v, t: (i, chunk_of(t), v))
        state_spec = pl.BlockSpec((None, bv, kp), lambda i, v, t: (i, v, 0))
        if emit == "outputs":
            out_spec = value_spec
        else:
            out_spec = pl.BlockSpec((None, None, bv, kp), lambda i, v, t: (i, chunk_of(t), v, 0))
        semantics = ("parallel", "parallel", "arbitrary")
    else:
        grid = (bh, vp // bv)
        key_spec = pl.BlockSpec((None, tp, kp), lambda i, v: (i, 0, 0))
        value_spec = pl.BlockSpec((None, tp, bv), lambda i, v: (i, 0, v))
        state_spec = pl.BlockSpec((None, bv, kp), lambda i, v: (i, v, 0))
        if emit == "outputs":
            out_spec = value_spec
        else:
            out_spec = pl.BlockSpec((None, n, bv, kp), lambda i, v: (i, 0, v, 0))
        semantics = ("parallel", "parallel")

    in_specs = [key_spec, value_spec, key_spec, state_spec]
    operands = [x, y, b, h0_t]
    if emit == "outputs":
        in_specs.append(key_spec)
        operands.append(q)
    return pl.pallas_call(
        _loop_kernel(cfg, emit, weight, reverse),
        out_shape=(out_shape, final_shape),
        grid=grid,
        in_specs=in_specs,
        out_specs=(out_spec, state_spec),
        interpret=cfg.interpret,
        name=f"decay_attention_{emit}_{weight}",
        **_compiler_params(cfg, semantics),
    )(*operands)


# ----------------------------------------------------------------------------- gradient kernel

def _gradient_kernel(cfg: _Config):
    def kernel(q_ref, k_ref, v_ref, b_ref, do_ref, s0_ref, g_ref, dq_ref, dk_ref, dv_ref, db_ref):
        chunk = _Chunk(0, cfg)
        m = chunk.n_sub
        s0_t, g_t = s0_ref[...], g_ref[...]               # (Vp, Kp): S_0ᵀ, Gᵀ
        b_last = chunk.row(b_ref, cfg.chunk - 1)
        dk = [None] * m
        dv = [None] * m
        leaving_sum = jnp.zeros_like(b_last)              # Σ_j k_j ⊙ dk_j (inter-chunk part)
        for j in range(m):                                # inter-chunk parts of dk, dv
            k_j, v_j = chunk.rows(k_ref, j), chunk.rows(v_ref, j)
            w_j = jnp.exp(b_last - chunk.rows(b_ref, j))
            dk_inter = w_j * matmul(v_j, g_t)
            leaving_sum += jnp.sum(k_j * dk_inter, axis=0, keepdims=True)
            dk[j] = dk_inter
            dv[j] = matmul_nt(k_j * w_j, g_t)
        for i in range(m):
            q_i, k_i, b_i = chunk.rows(q_ref, i), chunk.rows(k_ref, i), chunk.rows(b_ref, i)
            do_i = chunk.rows(do_ref, i)
            dq_i = jnp.exp(b_i) * matmul(do_i, s0_t)
            for j in range(i):
                q_ij, k_j, r = _scores_below(chunk, q_ref, k_ref, b_ref, i, j)
                dp = matmul_nt(do_i, chunk.rows(v_ref, j))
                dq_i += jnp.exp(b_i - r) * matmul(dp, k_j)
                dk[j] += jnp.exp(r - chunk.rows(b_ref, j)) * matmul_tn(dp, q_ij)
                dv[j] += matmul_tn(matmul_nt(q_ij, k_j), do_i)
            decays = _diagonal_decays(b_i)
            dp = jnp.where(_causal(chunk.c), matmul_nt(do_i, chunk.rows(v_ref, i)), 0.0)
            scores = jnp.sum(q_i[:, None, :] * k_i[None, :, :] * decays, axis=-1)
            dq_i += jnp.sum(dp[:, :, None] * k_i[None, :, :] * decays, axis=1)
            dk[i] += jnp.sum(dp[:, :, None] * q_i[:, None, :] * decays, axis=0)
            dv[i] += matmul_tn(scores, do_i)
            rows = pl.ds(i * chunk.c, chunk.c)
            dq_ref[rows, :] = dq_i.astype(dq_ref.dtype)
            db_ref[rows, :] = q_i * dq_i
        end = leaving_sum + jnp.exp(b_last) * jnp.sum(g_t * s0_t, axis=0, keepdims=True)
        last_row = lax.broadcasted_iota(jnp.int32, (chunk.c, 1), 0) == chunk.c - 1
        for j in range(m):
            rows = pl.ds(j * chunk.c, chunk.c)
            db_j = db_ref[rows, :] - chunk.rows(k_ref, j) * dk[j]
            if j == m - 1:
                db_j = db_j + jnp.where(last_row, end, 0.0)
            db_ref[rows, :] = db_j
            dk_ref[rows, :] = dk[j].astype(dk_ref.dtype)
            dv_ref[rows, :] = dv[j].astype(dv_ref.dtype)

    return kernel


def _chunk_gradients(cfg: _Config, q, k, v, b, do, states_t, cotangents_t):
    """dq, dk (BH, Tp, Kp) in q/k's dtype, dv (BH, Tp, Vp) in v's, db (BH, Tp, Kp) float32,
    all chunks in parallel given the states entering (S_0ᵀ) and the cotangents after (Gᵀ)
    every chunk, (BH, N, Vp, Kp)."""
    bh, tp, kp = q.shape
    c, vp = cfg.chunk, cfg.value_pad
    key_spec = pl.BlockSpec((None, c, kp), lambda i, t: (i, t, 0))
    value_spec = pl.BlockSpec((None, c, vp), lambda i, t: (i, t, 0))
    state_spec = pl.BlockSpec((None, None, vp, kp), lambda i, t: (i, t, 0, 0))
    return pl.pallas_call(
        _gradient_kernel(cfg),
        out_shape=(jax.ShapeDtypeStruct(q.shape, q.dtype), jax.ShapeDtypeStruct(k.shape, k.dtype),
                   jax.ShapeDtypeStruct(v.shape, v.dtype), jax.ShapeDtypeStruct(b.shape, jnp.float32)),
        grid=(bh, cfg.n_chunks),
        in_specs=[key_spec, key_spec, value_spec, key_spec, value_spec, state_spec, state_spec],
        out_specs=(key_spec, key_spec, value_spec, key_spec),
        interpret=cfg.interpret,
        name="decay_attention_gradients",
        **_compiler_params(cfg, ("parallel", "parallel")),
    )(q, k, v, b, do, states_t, cotangents_t)


# ----------------------------------------------------------------------------- custom VJP

@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _attention(cfg: _Config, q, k, v, b, h0_t):
    """o (BH, Tp, Vp), final Sᵀ (BH, Vp, Kp) from padded, flattened inputs (b cumulative)."""
    return _chunk_loop(cfg, k, v, b, h0_t, q, emit="outputs", weight="leaving")


def _attention_fwd(cfg, q, k, v, b, h0_t):
    return _attention(cfg, q, k, v, b, h0_t), (q, k, v, b, h0_t)


def _attention_bwd(cfg, residuals, cotangents):
    q, k, v, b, h0_t = residuals
    do, dfinal_t = cotangents
    states_t, _ = _chunk_loop(cfg, k, v, b, h0_t, emit="states", weight="leaving")
    after_t, dh0_t = _chunk_loop(cfg, q, do, b, dfinal_t.astype(jnp.float32),
                                 emit="states", weight="entering", reverse=True)
    dq, dk, dv, db = _chunk_gradients(cfg, q, k, v, b, do, states_t, after_t)
    return dq, dk, dv, db, dh0_t


_attention.defvjp(_attention_fwd, _attention_bwd)


# ----------------------------------------------------------------------------- public function

def decay_attention(q, k, v, log_decay, initial=None, *, chunk_size: int = 64, variant: str | None = None,
                    interpret: bool | None = None):
    """o_t = S_tᵀ q_t with S_t = Diag(e^{log_decay_t}) S_{t−1} + k_t v_tᵀ, as Pallas kernels.

    Args:
      q: (B, H, T, K) float32 or bfloat16, the queries.
      k: (B, H, T, K), q's dtype, the keys.
      v: (B, H, T, V), q's dtype, the values.
      log_decay: (B, H, T, K) float32 or bfloat16, real and ≤ 0 (not checked: a traced value);
        used in float32. Complex decays (RetNet/GateLoop rotations) are rejected: use the
        pure-JAX `lrnn.cells.chunkwise.decay_attention` for those.
      initial: (B, H, K, V) real floating, or None (zeros): the state before the first token,
        used in float32.
      chunk_size: tokens per chunk C, a power of two from 16 to 128. Any T (padded to whole chunks).
      variant: "gpu" | "tpu" | None (the backend's): which grid layout the kernels use.
      interpret: True | False | None (interpret on CPU only), as Pallas `interpret`.

    Returns:
      o: (B, H, T, V) in q's dtype.
      final: (B, H, K, V) float32, the state after the last token.

    Differentiable (custom VJP) in q, k, v, log_decay and initial; see the module docstring.
    No resets: the caller handles packed sequences.
    """
    if log_decay is None:
        raise TypeError("log_decay must be an array (B, H, T, K), got None")
    check_attention("decay_attention", q, k, v, initial, chunk_size, LARGEST_CHUNK,
                    log_decay=(log_decay, "(B, H, T, K)"))
    batch, heads, length, key_dim = q.shape
    value_dim = v.shape[-1]
    cfg = _config(kernel_variant(variant), interpret_mode(interpret), chunk_size, length, key_dim, value_dim)
    length_pad = cfg.n_chunks * cfg.chunk
    if initial is None:
        initial = jnp.zeros((batch, heads, key_dim, value_dim), jnp.float32)

    decays = heads_flat(log_decay.astype(jnp.float32), length_pad, cfg.key_pad)
    tiled = decays.reshape(decays.shape[0], cfg.n_chunks, cfg.chunk, cfg.key_pad)
    b = jnp.cumsum(tiled, axis=2).reshape(decays.shape)
    h0_t = jnp.swapaxes(initial.astype(jnp.float32), -1, -2).reshape(batch * heads, value_dim, key_dim)
    h0_t = pad_axis(pad_axis(h0_t, 1, cfg.value_pad), 2, cfg.key_pad)

    o, final_t = _attention(cfg, heads_flat(q, length_pad, cfg.key_pad), heads_flat(k, length_pad, cfg.key_pad),
                            heads_flat(v, length_pad, cfg.value_pad), b, h0_t)
    o = o[:, :length, :value_dim].reshape(batch, heads, length, value_dim)
    final = jnp.swapaxes(final_t[:, :value_dim, :key_dim], -1, -2).reshape(batch, heads, key_dim, value_dim)
    return o, final
