"""Local multi-query attention: Griffin's attention layer (De et al. 2024, "Griffin: Mixing Gated
Linear Recurrences with Local Attention for Efficient Language Models"; MQA: Shazeer 2019).

For x (B, T, D), H query heads of width K = D / H and one key/value head shared by all of them:

    q_t^h = RoPE(x_t W_q^h, t)          W_q: D → H·K
    k_t   = RoPE(x_t W_k, t)            W_k: D → K
    v_t   = x_t W_v                     W_v: D → K
    o_t^h = Σ_{s = t−W+1..t, s ≥ 0} softmax_s(q_t^h · k_s / √K) v_s
    out_t = Dropout([o_t^1, …, o_t^H] W_o)     W_o: H·K → D

a causal sliding window of W = `window` tokens: token t sees itself and the W − 1 before it.
No biases; the projections' init is `nnx.Linear`'s (variance 1 / fan-in).

RoPE (Su et al. 2021) rotates the first R = 2⌊rope_fraction · K / 2⌋ dims of every query and key
head, pairing dim i with dim i + R/2 (i < R/2) and turning the pair by the angle t · base^(−2i/R)
at position t; the other K − R dims pass unchanged. The paper says only that it uses RoPE; its
released code (recurrentgemma) rotates the first half of each head, which is the default here
(rope_fraction 0.5, base 10⁴); rope_fraction 1 is the usual full RoPE.

Paths, as `lrnn.nn.Mixer`'s: `__call__` (parallel), `prefill` (parallel, and the cache),
`init_cache`, `step` (one token). The parallel path splits time into blocks of W queries; each
block attends to its own keys and the previous block's (scores (B, H, T/W, W, 2W), masked to
the band 0 ≤ t − s < W), so time and memory grow as T · W, not T²; a sequence of at most W
tokens is one block. The cache holds the last W keys and values as a ring buffer (entry of
position p in slot p mod W; B × W × K each) and the position counter: O(W) memory however long
the sequence. Keys are cached after RoPE, so a step reads them as they are.

Sequence parallelism (`sequence_axis`, as the Mixer's): the projections and RoPE act per token
on the global arrays; the windowed attention runs under `jax.shard_map`, time split over that
mesh axis, each device receiving the W − 1 keys and values before its shard from the previous
device (`lrnn.cells.shards.from_previous`; device 0 reads the cache). That needs W − 1 ≤ the
shard length T / P, else a ValueError says so.

Differences from recurrentgemma's code: its projections q, k, v have no bias and its output one
has; here none has (as every projection of lrnn's mixers). Its parallel mask lets token t see
positions t − W … t (W + 1 tokens) while its cache keeps W; here both are exactly W tokens.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx

from lrnn.cells import checks, shards
from lrnn.nn.mixer import check_dropout, check_mask, shard_over_time

ROPE_BASE = 10_000.0
CACHE_KEYS = ("keys", "values", "position")


def rotated_width(head_dim: int, rope_fraction: float) -> int:
    """R = 2⌊rope_fraction · K / 2⌋: how many dims of a head RoPE turns."""
    return 2 * math.floor(rope_fraction * head_dim / 2)


def rope(x: jax.Array, positions: jax.Array, rotated: int, base: float = ROPE_BASE) -> jax.Array:
    """x (B, T, …, K) with its first `rotated` dims turned for positions (T,) (see the module docstring)."""
    if rotated == 0:
        return x
    half = rotated // 2
    frequencies = base ** (-2.0 * jnp.arange(half, dtype=x.dtype) / rotated)
    angles = positions.astype(x.dtype)[:, None] * frequencies  # T R/2
    angles = angles.reshape(angles.shape[:1] + (1,) * (x.ndim - 3) + (half,))
    cos, sin = jnp.cos(angles), jnp.sin(angles)
    first, second, rest = x[..., :half], x[..., half:rotated], x[..., rotated:]
    return jnp.concatenate([first * cos - second * sin, second * cos + first * sin, rest], axis=-1)


def _attend(q, k, v, q_positions, k_positions, k_valid, window: int):
    """Blocks of queries q (B, N, C, H, K) over their keys k, v (B, N, L, K): key s is seen by query
    t when it is valid and 0 ≤ t − s < window (positions (N, C) and (N, L), validity (N, L))."""
    scores = jnp.einsum("bnchk,bnlk->bnhcl", q, k) / math.sqrt(q.shape[-1])
    lag = q_positions[:, :, None] - k_positions[:, None, :]  # N C L
    seen = k_valid[:, None, :] & (lag >= 0) & (lag < window)
    scores = jnp.where(seen[None, :, None], scores, -jnp.inf)  # every query sees itself: no empty row
    return jnp.einsum("bnhcl,bnlk->bnchk", jax.nn.softmax(scores, axis=-1), v)


def nothing_before(k, window: int) -> tuple:
    """`band_attention`'s `before` at the start of a sequence: zero keys and values, none valid."""
    zeros = jnp.zeros((k.shape[0], window) + k.shape[2:], k.dtype)
    return zeros, zeros, jnp.zeros(window, bool)


def band_attention(q, k, v, window: int, before=None) -> jax.Array:
    """o (B, T, H, K) of queries q (B, T, H, K) over keys and values k, v (B, T, K) in the causal
    band of `window` tokens; `before` = (keys (B, W, K), values (B, W, K), valid (W,) bool) at
    positions −W … −1 before the first query (None: nothing before)."""
    batch, length = q.shape[:2]
    positions = jnp.arange(length)
    if before is None and length <= window:  # one block, nothing before it
        return _attend(q[:, None], k[:, None], v[:, None], positions[None], positions[None],
                       jnp.ones((1, length), bool), window)[:, 0]
    before = nothing_before(k, window) if before is None else before
    keys, vals = (jnp.concatenate([old.astype(new.dtype), new], axis=1) for old, new in zip(before, (k, v)))
    valid = jnp.concatenate([before[2], jnp.ones(length, bool)])  # keys at positions −W … T − 1
    if length <= window:  # one block of queries: every key it may see, the W before it included
        return _attend(q[:, None], keys[:, None], vals[:, None], positions[None], jnp.arange(-window, length)[None],
                       valid[None], window)[:, 0]
    blocks = -(-length // window)
    pad = blocks * window - length  # padded queries and keys come after every real one: never seen by them
    q = jnp.pad(q, ((0, 0), (0, pad), (0, 0), (0, 0))).reshape(batch, blocks, window, *q.shape[2:])

    def pairs(x, axis=1):  # time ((blocks + 1) · W at `axis`) -> (blocks, 2W): blocks i and i + 1
        x = x.reshape(x.shape[:axis] + (blocks + 1, window) + x.shape[axis + 1:])
        return jnp.concatenate([jax.lax.slice_in_dim(x, 0, blocks, axis=axis),
                                jax.lax.slice_in_dim(x, 1, blocks + 1, axis=axis)], axis=axis + 1)

    keys, vals = (pairs(jnp.pad(x, ((0, 0), (0, pad), (0, 0)))) for x in (keys, vals))
    out = _attend(q, keys, vals, jnp.arange(blocks * window).reshape(blocks, window),
                  pairs(jnp.arange(-window, blocks * window), 0), pairs(jnp.pad(valid, (0, pad)), 0), window)
    return out.reshape(batch, blocks * window, *out.shape[3:])[:, :length]


class LocalAttention(nnx.Module):
    """Multi-query attention over a causal sliding window, with RoPE."""

    def __init__(self, d_model: int, n_heads: int, window: int, *, rope_fraction: float = 0.5,
                 rope_base: float = ROPE_BASE, dropout: float = 0.0, sequence_axis: str | None = None,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        """
        Args:
          d_model: D, the width of the inputs and outputs.
          n_heads: H, query heads of width K = D / H (H must divide D); one key/value head.
          window: W, the tokens a query sees (itself and the W − 1 before it).
          rope_fraction: the fraction of each head's dims RoPE turns, in [0, 1].
          rope_base: RoPE's base (its longest wavelength), > 1.
          dropout: rate on the output, in [0, 1).
          sequence_axis: a mesh axis to split time over, as the Mixer's; None for none.
          param_dtype: dtype of every param.
          rngs: nnx.Rngs.
        """
        checks.positive_int("d_model", d_model)
        checks.positive_int("n_heads", n_heads)
        checks.positive_int("window", window)
        if d_model % n_heads:
            raise ValueError(f"n_heads must divide d_model (heads of width d_model / n_heads), "
                             f"got n_heads={n_heads} for d_model={d_model}")
        checks.in_range("rope_fraction", rope_fraction, 0.0, 1.0)
        checks.in_range("rope_base", rope_base, 1.0, math.inf, closed_low=False, closed_high=False)
        check_dropout(dropout)
        shards.check_name(sequence_axis)
        self.d_model, self.n_heads, self.window = d_model, n_heads, window
        self.head_dim = d_model // n_heads
        self.rotated, self.rope_base = rotated_width(self.head_dim, rope_fraction), float(rope_base)
        self.sequence_axis = sequence_axis
        self.param_dtype = param_dtype
        linear = dict(use_bias=False, param_dtype=param_dtype, rngs=rngs)
        self.q_proj = nnx.Linear(d_model, d_model, **linear)
        self.k_proj = nnx.Linear(d_model, self.head_dim, **linear)
        self.v_proj = nnx.Linear(d_model, self.head_dim, **linear)
        self.out_proj = nnx.Linear(d_model, d_model, **linear)
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout else None

    @property
    def causal(self) -> bool:
        return True

    # ---- parallel paths ------------------------------------------------------------------
    def __call__(self, x: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
        """out (B, T, D) for x (B, T, D); mask (B, T) bool (padding at the end) is checked and
        needs nothing more: causal attention never reads a later position."""
        x = checks.sequence(x, self.d_model)
        if mask is not None:
            check_mask(mask, x.shape[:2])
        q, k, v = self._project(x, jnp.arange(x.shape[1], dtype=jnp.int32))
        out = self._readout(self._band(q, k, v, None))
        return out if self.dropout is None else self.dropout(out)

    def prefill(self, x: jax.Array, cache: dict | None = None) -> tuple[jax.Array, dict]:
        """(out (B, T, D), the cache after the last token) in one parallel pass, continuing from
        `cache` (None: the start of the sequence). No dropout."""
        x = checks.sequence(x, self.d_model)
        cache = self.init_cache(x.shape[0]) if cache is None else self.check_cache(cache, x.shape[0])
        start, length = cache["position"], x.shape[1]
        q, k, v = self._project(x, start + jnp.arange(length, dtype=jnp.int32))
        ring = (start + jnp.arange(self.window)) % self.window  # slot of position start − W + j
        before = (cache["keys"][:, ring], cache["values"][:, ring], start - self.window + jnp.arange(self.window) >= 0)
        out = self._readout(self._band(q, k, v, before))
        end = start + length
        return out, {"keys": self._ring(before[0], k, end), "values": self._ring(before[1], v, end), "position": end}

    # ---- step-wise path ------------------------------------------------------------------
    def init_cache(self, batch: int) -> dict:
        """{"keys", "values": zeros (B, W, K), "position": 0 (int32)}: the cache before any token."""
        checks.positive_int("batch", batch)
        zeros = jnp.zeros((batch, self.window, self.head_dim), jnp.promote_types(self.param_dtype, jnp.float32))
        return {"keys": zeros, "values": zeros, "position": jnp.zeros((), jnp.int32)}

    def step(self, x_t: jax.Array, cache: dict) -> tuple[jax.Array, dict]:
        """One token x_t (B, D): (out_t (B, D), the new cache)."""
        x_t = checks.token(x_t, self.d_model)
        cache = self.check_cache(cache, x_t.shape[0])
        position = cache["position"]
        q, k, v = (a[:, 0] for a in self._project(x_t[:, None], position[None]))  # (B, H, K), (B, K), (B, K)
        slot = position % self.window
        keys = jax.lax.dynamic_update_slice_in_dim(cache["keys"], k[:, None].astype(cache["keys"].dtype), slot, 1)
        vals = jax.lax.dynamic_update_slice_in_dim(cache["values"], v[:, None].astype(cache["values"].dtype), slot, 1)
        slot_positions = position - (position - jnp.arange(self.window)) % self.window
        scores = jnp.einsum("bhk,bwk->bhw", q, keys.astype(q.dtype)) / math.sqrt(self.head_dim)
        scores = jnp.where(slot_positions >= 0, scores, -jnp.inf)
        o = jnp.einsum("bhw,bwk->bhk", jax.nn.softmax(scores, axis=-1), vals.astype(q.dtype))
        return self._readout(o), {"keys": keys, "values": vals, "position": position + 1}

    # ---- parts ---------------------------------------------------------------------------
    def _project(self, x, positions):
        """q (B, T, H, K), k and v (B, T, K) for x (B, T, D) at positions (T,), RoPE applied."""
        q = self.q_proj(x).reshape(x.shape[:2] + (self.n_heads, self.head_dim))
        turn = functools.partial(rope, positions=positions, rotated=self.rotated, base=self.rope_base)
        return turn(q), turn(self.k_proj(x)), self.v_proj(x)

    def _ring(self, before, new, end):
        """The ring buffer of the last W of `before` (B, W, K) followed by `new` (B, T, K), which
        ends at position `end`: entry j of those W (position end − W + j) in slot (end + j) mod W."""
        last = jnp.concatenate([before, new.astype(before.dtype)], axis=1)[:, new.shape[1]:]
        return last[:, (jnp.arange(self.window) - end) % self.window]

    def _readout(self, o):
        """The out-projection of the heads o (…, H, K)."""
        return self.out_proj(o.reshape(o.shape[:-2] + (self.d_model,)))

    def _band(self, q, k, v, before):
        """`band_attention`, under shard_map when time is split over `sequence_axis`."""
        if self.sequence_axis is None:
            return band_attention(q, k, v, self.window, before)
        before = nothing_before(k, self.window) if before is None else before
        run = functools.partial(self._band_shard, sequence_axis=self.sequence_axis)
        if shards.is_bound(self.sequence_axis):
            return run(before[2], {"q": q, "k": k, "v": v}, before[:2])[0]
        return shard_over_time(run, self.sequence_axis, before[2], {"q": q, "k": k, "v": v}, before[:2],
                               argument="the local attention's input x")[0]

    def _band_shard(self, valid, sharded, before, *, sequence_axis):
        """This device's shard of `band_attention`: the W − 1 keys and values before it come from the
        previous device (device 0: `before`, the cache's, valid where `valid`). Returns (o, `before`
        unchanged), the (output, cache) pair `shard_over_time` maps."""
        k_before, v_before = before
        first = jax.lax.axis_index(sequence_axis) == 0
        if self.window > 1:
            what = f"local attention with window {self.window}"
            k_before, v_before = (jnp.concatenate([b[:, :1], shards.from_previous(
                sharded[name], self.window - 1, sequence_axis, first=b[:, 1:], what=what)], axis=1)
                for name, b in (("k", k_before), ("v", v_before)))
        valid = jnp.where(first, valid, True)  # entry 0 (position −W) is outside every query's window
        return band_attention(sharded["q"], sharded["k"], sharded["v"], self.window, (k_before, v_before, valid)), \
            before

    def check_cache(self, cache, batch: int) -> dict:
        """`cache` checked: the dict init_cache returns, keys and values real floating (B, W, K),
        position an integer scalar."""
        if not isinstance(cache, dict) or set(cache) != set(CACHE_KEYS):
            got = sorted(cache) if isinstance(cache, dict) else type(cache).__name__
            raise ValueError(f"cache must be the dict init_cache or prefill returns, with keys {sorted(CACHE_KEYS)}, "
                             f"got {got}")
        want = (batch, self.window, self.head_dim)
        for name in ("keys", "values"):
            array = jnp.asarray(cache[name])
            if array.shape != want or not jnp.issubdtype(array.dtype, jnp.floating):
                raise ValueError(f"cache[{name!r}] must be a real floating array of shape {want} (B, window, "
                                 f"head_dim), got {array.dtype} {array.shape}")
        position = jnp.asarray(cache["position"])
        if position.shape != () or not jnp.issubdtype(position.dtype, jnp.integer):
            raise ValueError(f"cache['position'] must be an integer scalar (the tokens seen so far), "
                             f"got {position.dtype} {position.shape}")
        return {"keys": jnp.asarray(cache["keys"]), "values": jnp.asarray(cache["values"]),
                "position": position.astype(jnp.int32)}
