"""RWKV-6 "Finch" time mixing (Peng et al. 2024, "Eagle and Finch: RWKV with Matrix-Valued
States and Dynamic Recurrence").

Every projection reads a data-dependent mix of the token x_t and the one before it, x_{t−1}
("ddlerp", a token shift whose mixing weights come from a low-rank map of the tokens):

    lora_□(z)      = λ_□ + tanh(z A_□) B_□
    ddlerp_□(a, b) = a + (b − a) ⊙ lora_□(a + (b − a) ⊙ μ_x)          □ ∈ {w, k, v, r, g}
    r_t, k_t, v_t, g_t = ddlerp_□(x_t, x_{t−1}) W_□
    d_t = λ_d + tanh(ddlerp_w(x_t, x_{t−1}) A_d) B_d,     w_t = exp(−exp(d_t)) ∈ (0, 1)

and per head, with a K×V state S, a per-key decay w_t and a per-key bonus u for the current token:

    S_t = Diag(w_t) S_{t−1} + k_t v_tᵀ
    o_t = (S_{t−1} + Diag(u) k_t v_tᵀ)ᵀ r_t  =  S_{t−1}ᵀ r_t + (Σ_k r_tk u_k k_tk) v_t
    y_t = W_o (GroupNorm_h(o_t) ⊙ SiLU(g_t))                           one group per head, affine

The output reads the state *before* the token (plus the bonus), not after it as GLA's does.
The cell's state is the pair (S (B, H, K, V), x_prev (B, d_in)): x_prev is x_{t−1} for the
next token (zeros at the start and after a reset, as the paper's zero-padded time shift).

Training path (`forward`): the strictly causal attention o_t = S_{t−1}ᵀ r_t is the inclusive
decay attention of `lrnn.cells.chunkwise.decay_attention` run on keys, values and decays shifted
one token later, k'_t = k_{t−1}, v'_t = v_{t−1}, log w'_t = log w_{t−1} (k'_1 = v'_1 = 0,
log w'_1 = 0): then S'_t = Diag(w'_t) S'_{t−1} + k'_t v'_tᵀ = S_{t−1}, and o_t = S'_tᵀ r_t. A
reset at t also sets k'_t = 0 and log w'_t = 0 (S_{t−1} is the fresh zero state there, and
x_{t−1}'s decay then does not even enter the chunk's cumulative sums). Its final state is S_{T−1};
one more update with the last token gives S_T. So the same chunk kernels serve: inside chunks
matmuls with exact strong decays, across chunks `lrnn.scan`, and `method="pallas"` runs the
Pallas decay kernel (float32, no resets, no sequence_axis: it refuses those, naming them).
`forward_materialised` (the per-token `MatrixDecayMonoid` scan of (w_t, k_t v_tᵀ), then
S_{t−1} read off the states shifted by one) is the readable definition; `step` one token of it.

Sizes: d_key = H·K (r, k, w, u) and d_value = H·V (v, g, the norm), default d_in each (the
paper's dim_att = d_model); n_heads defaults to d_key/64 when 64 divides it (the paper's head
size 64), else 1; LoRA ranks `mix_rank` 32 (the five mixing maps) and `decay_rank` 64 (d_t),
the paper code's D_MIX_LORA and D_DECAY_LORA.

Init, from the paper's code (BlinkDL/RWKV-LM, RWKV_Tmix_x060 and its generate_init_weight),
whose layer-dependent parts read the layer's depth ρ = l/(L−1) ∈ [0, 1] (field `layer_ratio`,
default 0.5; a model builds every layer from one config, so one ρ serves all its layers), with
ddd_i = i/d_in over the inputs and n = 0 … d_key−1 over the keys:
    μ_x, λ_w, λ_k = 1 − ddd^(1−ρ);  λ_v = 1 − (ddd^(1−ρ) + 0.3ρ);  λ_r, λ_g = 1 − ddd^((1−ρ)/2)
    A_□ = 0 (d_in, 32) each, B_□ ~ U[−0.01, 0.01] (32, d_in) each: the mix starts at λ_□
    λ_d,n = −6 + 5 (n/(d_key−1))^(0.7 + 1.3ρ): decays exp(−exp(λ_d)) from 0.9975 to 0.69
    A_d = 0 (d_in, 64), B_d ~ U[−0.01, 0.01] (64, d_key)
    u_n = ρ (1 − n/(d_key−1)) + 0.1·((n+1) mod 3 − 1)
    W_r, W_v orthogonal (gain 1), W_k, W_g orthogonal (gain 0.1)
The code writes the second depth ratio as 1 − l/L; here it is 1 − ρ (their difference is
l/(L(L−1)) ≤ 1/L). Two of that code's inits are left to the model around the cell, which has
its own residual and out-projection: its zero output projection (each residual block starts as
the identity) — W_o here is PyTorch nn.Linear's default U[±1/√d_value] — and its GroupNorm scale
((1+l)/L)^0.7 — here 1, bias 0. The GroupNorm ε is the code's 1e−5·8² = 6.4e−4.

Params: mu_x (d_in,), lambda_mix (5, d_in) and A_mix (5, d_in, mix_rank), B_mix (5, mix_rank,
d_in) in the order (w, k, v, r, g); W_r, W_k (d_in, d_key), W_v, W_g (d_in, d_value);
lambda_decay (d_key,), A_decay (d_in, decay_rank), B_decay (decay_rank, d_key); u (d_key,);
norm_scale, norm_bias (d_value,); W_o (d_value, d_in). In the paper's code: time_maa_x, time_maa_□,
time_maa_w1/w2, receptance/key/value/gate, time_decay, time_decay_w1/w2, time_faaaa, ln_x, output.
Recurrent params (they set the decay): lambda_decay, A_decay, B_decay (that code also keeps the
mixing params and u out of weight decay, and trains time_decay at a raised learning rate).

Shapes: x (B, T, d_in); state (S (B, H, K, V), x_prev (B, d_in)); y (B, T, d_in).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lrnn.cells import checks, params_check, shards, token_shift
from lrnn.cells.chunkwise import decay_attention
from lrnn.cells.heads import head_norm
from lrnn.cells.linear import init_weight
from lrnn.cells.matrix import MatrixCell
from lrnn.scan import MatrixDecayMonoid, scan

HEAD_SIZE = 64
MIXES = ("w", "k", "v", "r", "g")  # the order of lambda_mix, A_mix, B_mix
LORA_INIT = 0.01  # B_□, B_d ~ U[−0.01, 0.01]
NORM_EPS = 64e-5
KEY_GAIN = 0.1  # orthogonal gains of W_k and W_g (W_r, W_v: 1)


def _orthogonal(key, rows: int, cols: int, gain: float) -> jax.Array:
    """W (rows, cols) with orthonormal rows or columns times `gain`: every singular value is
    `gain` (PyTorch's orthogonal_, which the paper's code uses)."""
    return jax.nn.initializers.orthogonal(gain)(key, (rows, cols), jnp.float32)


def _swap(a):
    """(B, T, H, d) <-> (B, H, T, d)."""
    return jnp.swapaxes(a, 1, 2)


@dataclasses.dataclass(frozen=True)
class RWKV6(MatrixCell):
    d_in: int
    n_heads: int | None = None
    d_key: int | None = None
    d_value: int | None = None
    mix_rank: int = 32
    decay_rank: int = 64
    layer_ratio: float = 0.5

    monoid = MatrixDecayMonoid()
    recurrent_params = frozenset({"lambda_decay", "A_decay", "B_decay"})

    def __post_init__(self):
        checks.positive_int("d_in", self.d_in)
        if self.n_heads is None:
            width = self.d_in if self.d_key is None else self.d_key
            heads = width // HEAD_SIZE if isinstance(width, int) and width % HEAD_SIZE == 0 else 1
            object.__setattr__(self, "n_heads", max(heads, 1))
        checks.head_sizes(self, self.d_in, self.d_in)
        checks.positive_int("mix_rank", self.mix_rank)
        checks.positive_int("decay_rank", self.decay_rank)
        checks.in_range("layer_ratio", self.layer_ratio, 0.0, 1.0)

    @property
    def state_shape(self) -> tuple:
        return ((self.n_heads, self.key_dim, self.value_dim), (self.d_in,))

    def initial_state(self, batch_shape: tuple, dtype=jnp.float32):
        """(S, x_prev) = (0, 0): no memory and no previous token."""
        batch = tuple(batch_shape)
        return (jnp.zeros(batch + (self.n_heads, self.key_dim, self.value_dim), dtype),
                jnp.zeros(batch + (self.d_in,), dtype))

    def init(self, key: jax.Array) -> dict:
        d, dk, dv = self.d_in, self.d_key, self.d_value
        rho, shallow = self.layer_ratio, 1.0 - self.layer_ratio
        k_mix, k_decay, k_r, k_k, k_v, k_g, k_o = jax.random.split(key, 7)
        ddd = jnp.arange(d, dtype=jnp.float32) / d
        n = jnp.arange(dk, dtype=jnp.float32) / max(dk - 1, 1)
        mix = {"w": 1 - ddd**shallow, "k": 1 - ddd**shallow, "v": 1 - (ddd**shallow + 0.3 * rho),
               "r": 1 - ddd ** (0.5 * shallow), "g": 1 - ddd ** (0.5 * shallow)}
        zigzag = 0.1 * ((jnp.arange(dk) + 1) % 3 - 1)
        return {
            "mu_x": 1 - ddd**shallow,
            "lambda_mix": jnp.stack([mix[name] for name in MIXES]),
            "A_mix": jnp.zeros((len(MIXES), d, self.mix_rank)),
            "B_mix": jax.random.uniform(k_mix, (len(MIXES), self.mix_rank, d), jnp.float32, -LORA_INIT, LORA_INIT),
            "W_r": _orthogonal(k_r, d, dk, 1.0),
            "W_k": _orthogonal(k_k, d, dk, KEY_GAIN),
            "W_v": _orthogonal(k_v, d, dv, 1.0),
            "W_g": _orthogonal(k_g, d, dv, KEY_GAIN),
            "lambda_decay": -6 + 5 * n ** (0.7 + 1.3 * rho),
            "A_decay": jnp.zeros((d, self.decay_rank)),
            "B_decay": jax.random.uniform(k_decay, (self.decay_rank, dk), jnp.float32, -LORA_INIT, LORA_INIT),
            "u": rho * (1 - n) + zigzag,
            "norm_scale": jnp.ones((dv,)),
            "norm_bias": jnp.zeros((dv,)),
            "W_o": init_weight(k_o, dv, d),
        }

    # ---- the pieces every path shares -------------------------------------------------------
    def _heads(self, z):
        """(B, T, H·d) -> (B, T, H, d)."""
        return z.reshape(z.shape[:-1] + (self.n_heads, -1))

    def ddlerp(self, params: dict, x, previous) -> jax.Array:
        """(5, B, T, d_in): ddlerp_□(x_t, x_{t−1}) for □ = w, k, v, r, g, from x and the previous
        tokens (B, T, d_in)."""
        delta = previous - x
        hidden = jnp.tanh(jnp.einsum("btd,cdr->cbtr", x + delta * params["mu_x"], params["A_mix"]))
        mixes = params["lambda_mix"][:, None, None] + jnp.einsum("cbtr,crd->cbtd", hidden, params["B_mix"])
        return x + delta * mixes

    def projections(self, params: dict, x, previous) -> tuple:
        """r, k, log w (B, T, H, K), v (B, T, H, V) and the gate SiLU(g) (B, T, H·V)."""
        xw, xk, xv, xr, xg = self.ddlerp(params, x, previous)
        d = params["lambda_decay"] + jnp.tanh(xw @ params["A_decay"]) @ params["B_decay"]
        return (self._heads(xr @ params["W_r"]), self._heads(xk @ params["W_k"]), self._heads(xv @ params["W_v"]),
                self._heads(-jnp.exp(d)), jax.nn.silu(xg @ params["W_g"]))

    def bonus(self, params: dict, r, k, v) -> jax.Array:
        """(B, T, H, V): the current token's term (Σ_k r_k u_k k_k) v."""
        return jnp.sum(r * self._heads(params["u"]) * k, axis=-1, keepdims=True) * v

    def output(self, params: dict, o, gate) -> jax.Array:
        """y (B, T, d_in) from o (B, T, H, V): W_o(GroupNorm_h(o) ⊙ gate)."""
        normed = head_norm(o, NORM_EPS).reshape(o.shape[:2] + (self.d_value,))
        return (normed * params["norm_scale"] + params["norm_bias"]) * gate @ params["W_o"]

    # ---- training path -------------------------------------------------------------------
    def chunked(self, params, x, state, *, chunk_size, method, resets, sequence_axis=None):
        s0, x_prev = state
        r, k, v, log_w, gate = self.projections(params, x, token_shift.previous_tokens(x, x_prev, resets,
                                                                                       sequence_axis))
        # One token later: S'_t = Diag(w_{t−1}) S'_{t−1} + k_{t−1} v_{t−1}ᵀ = S_{t−1}.
        k_late, v_late, log_w_late = (token_shift.shifted(a, jnp.zeros_like(a[:, 0]), sequence_axis)
                                      for a in (k, v, log_w))
        if resets is not None:  # S'_t = S_{t−1} = 0 at a reset: token t of the shifted sequence is neutral
            k_late, log_w_late = (jnp.where(resets[:, :, None, None], jnp.zeros_like(a), a)
                                  for a in (k_late, log_w_late))
        o, before_last = decay_attention(_swap(r), _swap(k_late), _swap(v_late), _swap(log_w_late), s0,
                                         chunk_size=chunk_size, method=method, resets=resets,
                                         sequence_axis=sequence_axis)
        k_t, v_t, log_w_t = (token_shift.last(a, sequence_axis) for a in (k, v, log_w))
        final = self.monoid.apply((jnp.exp(log_w_t), k_t[..., :, None] * v_t[..., None, :]), before_last)
        y = self.output(params, _swap(o) + self.bonus(params, r, k, v), gate)
        return y, (final, token_shift.last(x, sequence_axis))

    # ---- the per-token definition ----------------------------------------------------------
    def elements(self, params: dict, x):
        """The monoid's leaves (w_t, k_t v_tᵀ) for every token of x (B, T, d_in) at the start of a
        sequence (x_{−1} = 0): the per-token transitions Diag(w_t) and updates."""
        previous = token_shift.previous_tokens(x, jnp.zeros_like(x[:, 0]), None, None)
        _, k, v, log_w, _ = self.projections(params, x, previous)
        return jnp.exp(log_w), k[..., :, None] * v[..., None, :]

    def forward_materialised(self, params: dict, x, state=None, *, method: str = "auto", resets=None,
                             chunk_size: int | None = None, sequence_axis: str | None = None):
        """The per-token reference: S_t for every token through one `lrnn.scan` of
        (w_t, k_t v_tᵀ) (memory O(T·K·V) per head; `method` and `chunk_size` are the engine's),
        then o_t from S_{t−1}. Arguments and returns as `forward`."""
        params_check.check(self, params)
        x = checks.sequence(x, self.d_in)
        resets = checks.resets(resets, x.shape[:2])
        shards.check_name(sequence_axis)
        if sequence_axis is not None and not shards.is_bound(sequence_axis):
            return shards.split_forward(self.forward_materialised, params, x, state, resets, {},
                                        sequence_axis=sequence_axis, method=method, chunk_size=chunk_size)
        xc = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        if state is None:
            state = self.initial_state((x.shape[0],), xc.dtype)
        s0, x_prev = self._check_state("state", state, x.shape[0])
        r, k, v, log_w, gate = self.projections(params, xc, token_shift.previous_tokens(xc, x_prev, resets,
                                                                                        sequence_axis))
        states, final = scan(self.monoid, (jnp.exp(log_w), k[..., :, None] * v[..., None, :]), axis=1, initial=s0,
                             method=method, resets=resets, chunk_size=chunk_size, sequence_axis=sequence_axis)
        before = token_shift.shifted(states, s0, sequence_axis)  # S_{t−1}
        if resets is not None:
            before = jnp.where(resets[:, :, None, None, None], jnp.zeros_like(before), before)
        o = jnp.einsum("bthk,bthkv->bthv", r, before) + self.bonus(params, r, k, v)
        y = self.output(params, o, gate)
        return y.astype(x.dtype), (final, token_shift.last(xc, sequence_axis))

    def step(self, params: dict, state, x_t):
        """One token: y_t = W_o(GroupNorm(S_{t−1}ᵀ r_t + bonus) ⊙ SiLU(g_t)), then S_t and x_prev = x_t."""
        params_check.check(self, params)
        x_t = checks.token(x_t, self.d_in)
        s, x_prev = self._check_state("state", state, x_t.shape[0])
        xc = x_t.astype(jnp.promote_types(x_t.dtype, jnp.float32))[:, None]
        r, k, v, log_w, gate = self.projections(params, xc, x_prev[:, None])
        o = jnp.einsum("bthk,bhkv->bthv", r, s) + self.bonus(params, r, k, v)
        s = self.monoid.apply((jnp.exp(log_w[:, 0]), k[:, 0, ..., :, None] * v[:, 0, ..., None, :]), s)
        return self.output(params, o, gate)[:, 0].astype(x_t.dtype), (s, xc[:, 0])

