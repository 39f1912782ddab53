# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Matrix states, chunk by chunk
#
# GLA, HGRN2, RetNet and the DeltaNet family keep a $K \times V$ matrix state per head and read
# it with a query, $o_t = S_t^\top q_t$. There are three ways to compute all $o_t$:
#
# 1. **step loop**: $S \leftarrow A_t S + U_t$ token by token. $O(KV)$ memory, but $T$
#    sequential steps of small matrix-vector work.
# 2. **materialised scan**: every $S_t$ through `lrnn.scan` in parallel. $O(\log T)$ depth, but
#    a $K \times V$ state (for the delta rule also a $K \times K$ transition) *per token*.
# 3. **chunkwise**: solve the recurrence in closed form inside chunks of $C$ tokens with
#    matrix multiplications, and scan only the $T / C$ chunk summaries.
#
# This notebook derives the chunkwise form, checks that all three agree, and compares their time
# and compiled memory; then it checks the Pallas kernels against the pure-JAX forms.

# %%
import functools
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

jax.config.update("jax_enable_x64", True)  # equality checks in float64; timings use float32 arrays

import lrnn  # noqa: F401,E402  (registers the Pallas kernels)
import pallas_kernels  # noqa: E402
from lrnn.cells.chunkwise import decay_attention, delta_rule  # noqa: E402
from lrnn.scan import DiagonalMonoid, IdentityMinusRankOneMonoid, MatrixDecayMonoid, scan  # noqa: E402


def random_inputs(seed, B, H, T, K, V, dtype=jnp.float64):
    """q, k (unit rows), v, per-key log decay ≤ 0, β ∈ (0, 2), in the chunkwise layout (B, H, T, ·)."""
    rng = np.random.default_rng(seed)
    q, k, v = rng.normal(size=(B, H, T, K)), rng.normal(size=(B, H, T, K)), rng.normal(size=(B, H, T, V))
    k /= np.linalg.norm(k, axis=-1, keepdims=True)
    log_decay = np.log(rng.uniform(0.8, 1.0, size=(B, H, T, K)))
    beta = 2 / (1 + np.exp(-rng.normal(size=(B, H, T))))
    return tuple(jnp.asarray(x, dtype) for x in (q, k, v, log_decay, beta))

# %% [markdown]
# ## Decay attention in closed form
#
# $$S_t = \mathrm{Diag}(\alpha_t)\, S_{t-1} + k_t v_t^\top, \qquad o_t = S_t^\top q_t, \qquad \alpha_t = e^{\log \alpha_t} \in (0, 1]^K.$$
#
# Inside a chunk, let $S_0$ be the state entering it and $b_i = \sum_{s \le i} \log \alpha_s$ the
# cumulative log decay (per key). Unrolling,
#
# $$S_i = \mathrm{Diag}(e^{b_i}) S_0 + \sum_{j \le i} \mathrm{Diag}(e^{b_i - b_j})\, k_j v_j^\top,$$
#
# so with $P_{ij} = \sum_\kappa q_{i\kappa} k_{j\kappa} e^{b_{i\kappa} - b_{j\kappa}}$ for $j \le i$ (0 otherwise),
#
# $$o_i = \sum_{j \le i} P_{ij} v_j + S_0^\top (q_i \odot e^{b_i}), \qquad
# S_C = \mathrm{Diag}(e^{b_C}) S_0 + \sum_j (k_j \odot e^{b_C - b_j}) v_j^\top.$$
#
# The outputs are a masked $C \times C$ matrix product plus one read of $S_0$; the chunk's
# effect on the state is again an element $(e^{b_C}, \sum_j \dots)$ of the matrix-decay monoid, so
# the engine scans the $T/C$ chunk summaries to get every $S_0$. First the formula itself, on
# one chunk, in NumPy against the loop:

# %%
C, K, V = 16, 4, 3
q, k, v, log_decay, _ = (np.asarray(x[0, 0]) for x in random_inputs(0, 1, 1, C, K, V))
S0 = np.random.default_rng(0).normal(size=(K, V))

S, o_loop = S0.copy(), []
for t in range(C):
    S = np.exp(log_decay[t])[:, None] * S + np.outer(k[t], v[t])
    o_loop.append(S.T @ q[t])

b = np.cumsum(log_decay, axis=0)  # (C, K)
P = np.tril(np.einsum("ik,jk,ijk->ij", q, k, np.exp(b[:, None, :] - b[None, :, :])))
o_closed = P @ v + (q * np.exp(b)) @ S0
S_closed = np.exp(b[-1])[:, None] * S0 + (k * np.exp(b[-1] - b)).T @ v
np.testing.assert_allclose(o_closed, np.stack(o_loop), rtol=1e-12)
np.testing.assert_allclose(S_closed, S, rtol=1e-12)
print("one chunk: closed form == loop")

# %% [markdown]
# (The library builds $P$ without ever forming $e^{-b}$, which overflows for strong decays, by
# halving the chunk recursively; see `lrnn/cells/chunkwise/decay.py`.) Now the three methods on
# whole sequences, with an odd length that leaves a partial last chunk:

# %%
def decay_step_loop(q, k, v, log_decay, initial):
    """o (B, H, T, V), S_T by lax.scan over time of S ← Diag(α_t) S + k_t v_tᵀ."""
    def one_token(S, inputs):
        q_t, k_t, v_t, log_decay_t = inputs
        S = jnp.exp(log_decay_t)[..., None] * S + k_t[..., :, None] * v_t[..., None, :]
        return S, jnp.einsum("bhkv,bhk->bhv", S, q_t)

    final, o = jax.lax.scan(one_token, initial, tuple(jnp.moveaxis(x, 2, 0) for x in (q, k, v, log_decay)))
    return jnp.moveaxis(o, 0, 2), final


def decay_materialised(q, k, v, log_decay, initial):
    """Every token's S_t through one associative scan, then o_t = S_tᵀ q_t."""
    states, final = scan(MatrixDecayMonoid(), (jnp.exp(log_decay), k[..., :, None] * v[..., None, :]),
                         axis=2, initial=initial, method="associative")  # (B, H, T, K, V)
    return jnp.einsum("bhtkv,bhtk->bhtv", states, q), final


def decay_chunked(q, k, v, log_decay, initial, chunk_size=16):
    # `method` is the engine's scan across chunks; an explicit pure-JAX one keeps the Pallas kernel out.
    return decay_attention(q, k, v, log_decay, initial, chunk_size=chunk_size, method="sequential")


B, H, T, K, V = 2, 2, 45, 8, 8
q, k, v, log_decay, beta = random_inputs(1, B, H, T, K, V)
initial = jnp.asarray(np.random.default_rng(2).normal(size=(B, H, K, V)))
decay_forms = {"step loop": decay_step_loop, "materialised": decay_materialised, "chunked": decay_chunked}
decay_results = {name: jax.jit(f)(q, k, v, log_decay, initial) for name, f in decay_forms.items()}
for name, (o, final) in decay_results.items():
    np.testing.assert_allclose(o, decay_results["step loop"][0], rtol=1e-10, atol=1e-10, err_msg=name)
    np.testing.assert_allclose(final, decay_results["step loop"][1], rtol=1e-10, atol=1e-10, err_msg=name)
print("decay attention: step loop == materialised == chunked (float64, T = 45, C = 16, with S_0)")

# %% [markdown]
# ## The delta rule in the WY form
#
# $$S_t = (I - \beta_t k_t k_t^\top) S_{t-1} + \beta_t k_t v_t^\top = S_{t-1} + k_t \delta_t^\top,
# \qquad \delta_t = \beta_t (v_t - S_{t-1}^\top k_t).$$
#
# Each $\delta_t$ depends on all earlier ones through $S_{t-1}$. Inside a chunk,
# $S_{i-1} = S_0 + \sum_{j < i} k_j \delta_j^\top$, so the rows $\Delta$ of the chunk's $\delta$'s satisfy
#
# $$\delta_i + \beta_i \sum_{j < i} (k_i^\top k_j)\, \delta_j = \beta_i (v_i - S_0^\top k_i)
# \quad\Longleftrightarrow\quad (I + A)\, \Delta = \mathrm{diag}(\beta) (V - K S_0), \quad
# A = \mathrm{strict\_tril}(\mathrm{diag}(\beta) K K^\top):$$
#
# one unit-lower-triangular solve per chunk. With $U = (I + A)^{-1} \mathrm{diag}(\beta) V$ and
# $W = (I + A)^{-1} \mathrm{diag}(\beta) K$, $\Delta = U - W S_0$, and
#
# $$O = Q S_0 + (Q K^\top \odot M)\, \Delta, \qquad S_C = (I - K^\top W)\, S_0 + K^\top U.$$
#
# The chunk's transition $(I - K^\top W,\ K^\top U)$ is a dense $K \times K$ matrix and a $K \times V$
# update: the engine scans those (`DenseMonoid`). A decay $\alpha_t$ (gated DeltaNet) adds the
# factors $e^{b_i - b_j}$ as above.

# %%
def delta_step_loop(q, k, v, beta, initial):
    """o, S_T by lax.scan of S ← S + β k (v − Sᵀk)ᵀ: O(K·V) per token, no K×K matrix."""
    def one_token(S, inputs):
        q_t, k_t, v_t, beta_t = inputs
        error = v_t - jnp.einsum("bhkv,bhk->bhv", S, k_t)
        S = S + (beta_t[..., None] * k_t)[..., :, None] * error[..., None, :]
        return S, jnp.einsum("bhkv,bhk->bhv", S, q_t)

    final, o = jax.lax.scan(one_token, initial, tuple(jnp.moveaxis(x, 2, 0) for x in (q, k, v, beta)))
    return jnp.moveaxis(o, 0, 2), final


def delta_materialised(q, k, v, beta, initial):
    """Every S_t through one associative scan of dense (I − βkkᵀ, βkvᵀ) elements."""
    u = beta[..., None] * k
    states, final = scan(IdentityMinusRankOneMonoid(), (u, k, u[..., :, None] * v[..., None, :]),
                         axis=2, initial=initial, method="associative")
    return jnp.einsum("bhtkv,bhtk->bhtv", states, q), final


def delta_chunked(q, k, v, beta, initial, chunk_size=16):
    return delta_rule(q, k, v, beta, initial, chunk_size=chunk_size, method="sequential")


delta_forms = {"step loop": delta_step_loop, "materialised": delta_materialised, "chunked": delta_chunked}
delta_results = {name: jax.jit(f)(q, k, v, beta, initial) for name, f in delta_forms.items()}
for name, (o, final) in delta_results.items():
    np.testing.assert_allclose(o, delta_results["step loop"][0], rtol=1e-9, atol=1e-9, err_msg=name)
    np.testing.assert_allclose(final, delta_results["step loop"][1], rtol=1e-9, atol=1e-9, err_msg=name)
print("delta rule (β ∈ (0, 2)): step loop == materialised == chunked (float64, T = 45, C = 16, with S_0)")

# %% [markdown]
# ## Memory and time
#
# XLA's buffer assignment tells, before anything runs, how much temporary memory a compiled
# program needs: `jax.jit(f).lower(*args).compile().memory_analysis().temp_size_in_bytes`.
# For the forward pass (float32, $B = 1$, $H = 2$, $K = V = 32$, $C = 64$) the materialised scan
# keeps $T K V$ numbers (the delta rule $T K^2$ more for its transitions), the chunkwise form
# $O(T C + (T/C) K V)$, and the step loop one state (plus, like all three, the outputs). (For training, the step loop's gradient
# would keep every state too; the chunkwise backward recomputes them per chunk.)

# %%
def float32_inputs(T, B=1, H=2, K=32, V=32):
    q, k, v, log_decay, beta = random_inputs(T, B, H, T, K, V, jnp.float32)
    return q, k, v, log_decay, beta, jnp.zeros((B, H, K, V), jnp.float32)


def chunked_64(form):
    return lambda *args: form(*args, chunk_size=64)


programs = {
    "decay attention": {"step loop": decay_step_loop, "materialised": decay_materialised,
                        "chunked": chunked_64(decay_chunked)},
    "delta rule": {"step loop": delta_step_loop, "materialised": delta_materialised,
                   "chunked": chunked_64(delta_chunked)},
}


def arguments(op, T):
    q, k, v, log_decay, beta, initial = float32_inputs(T)
    return (q, k, v, log_decay, initial) if op == "decay attention" else (q, k, v, beta, initial)


def temp_mib(f, args):
    analysis = jax.jit(f).lower(*args).compile().memory_analysis()
    return analysis.temp_size_in_bytes / 2**20


LENGTHS = (256, 1024)
memory = {op: {name: [temp_mib(f, arguments(op, T)) for T in LENGTHS] for name, f in forms.items()}
          for op, forms in programs.items()}
for op, table in memory.items():
    print(op)
    for name, sizes in table.items():
        print(f"  {name:>12}: " + "  ".join(f"T={T}: {mib:7.2f} MiB" for T, mib in zip(LENGTHS, sizes)))
for table in memory.values():
    assert all(m >= 5 * c for m, c in zip(table["materialised"], table["chunked"]))
    for name in ("materialised", "chunked"):
        growth = table[name][-1] / table[name][0]
        assert 3.5 <= growth <= 4.5, (name, growth)  # 4× the tokens, 4× the memory: linear in T

# %% [markdown]
# And a rough time per forward call at $T = 1024$ (CPU, median of interleaved runs; the numbers
# depend on the machine, and `experiments/bench_matrix.py` measures properly, at larger sizes).
# At this small size a CPU runs the step loop well: it does the least arithmetic, and a CPU has
# little parallel hardware to spend on the other two. The materialised scan pays for its
# $T K V$ states (and, for the delta rule, $\log T$ levels of $K \times K$ products); the
# chunkwise form turns the work into matrix products, which is what accelerators are for, and
# keeps training memory linear in $T$ with a small constant.

# %%
def median_ms(functions, args, repeats=7):
    compiled = {name: jax.jit(f) for name, f in functions.items()}
    for f in compiled.values():
        jax.block_until_ready(f(*args))
    times = {name: [] for name in compiled}
    for _ in range(repeats):
        for name, f in compiled.items():
            start = time.perf_counter()
            jax.block_until_ready(f(*args))
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * float(np.median(t)) for name, t in times.items()}


timings = {op: median_ms(forms, arguments(op, 1024)) for op, forms in programs.items()}
for op, table in timings.items():
    print(op + ": " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in table.items()))

# %%
figure, axes = plt.subplots(1, 3, figsize=(14, 3.8))
for ax, (op, table) in zip(axes, memory.items()):
    for name, sizes in table.items():
        ax.plot(LENGTHS, sizes, marker="o", label=name)
    ax.set(xscale="log", yscale="log", xlabel="T", ylabel="compiled temp memory (MiB)", title=f"{op}, forward")
    ax.set_xticks(LENGTHS, labels=[str(T) for T in LENGTHS])
    ax.minorticks_off()
    ax.legend(fontsize=8)
width = 0.25
for i, name in enumerate(programs["delta rule"]):
    axes[2].bar(np.arange(2) + (i - 1) * width, [timings[op][name] for op in programs], width, label=name)
axes[2].set_xticks(np.arange(2), labels=list(programs))
axes[2].set(ylabel="ms per forward call", title="time at T = 1024 (CPU)")
axes[2].legend(fontsize=8)
figure.tight_layout()
plt.show()

# %% [markdown]
# ## The Pallas kernels agree with the pure-JAX forms
#
# `pallas_kernels` fuses the three hot paths for GPU and TPU: the diagonal scan (with a fused
# reverse-scan backward), the chunked decay attention and the chunked delta rule. On a CPU they
# run in Pallas *interpret* mode: slowly, but through the same kernel code, which is how they are
# checked here against `lrnn.scan` and `lrnn.cells.chunkwise` (float32, tolerance $10^{-5}$).

# %%
q, k, v, log_decay, beta, zeros = float32_inputs(48, B=1, H=2, K=16, V=16)
a = jnp.exp(log_decay[:, 0])  # (B, T, D) decays for the diagonal scan
x = v[:, 0]

diagonal_kernel = jax.jit(pallas_kernels.diagonal_scan)
decay_kernel = jax.jit(functools.partial(pallas_kernels.decay_attention, chunk_size=16))
delta_kernel = jax.jit(functools.partial(pallas_kernels.delta_rule, chunk_size=16))

states, _ = diagonal_kernel(a, x)
np.testing.assert_allclose(states, scan(DiagonalMonoid(), (a, x), method="sequential")[0], rtol=1e-5, atol=1e-5)
kernel_grad = jax.jit(jax.grad(lambda a: pallas_kernels.diagonal_scan(a, x)[0].sum()))(a)  # the fused VJP kernel
engine_grad = jax.grad(lambda a: scan(DiagonalMonoid(), (a, x), method="sequential")[0].sum())(a)
np.testing.assert_allclose(kernel_grad, engine_grad, rtol=1e-4, atol=1e-4)
print("diagonal_scan: states and ∂/∂a == lrnn.scan")

o_kernel, final_kernel = decay_kernel(q, k, v, log_decay, zeros)
o_jax, final_jax = jax.jit(decay_chunked)(q, k, v, log_decay, zeros)
np.testing.assert_allclose(o_kernel, o_jax, rtol=1e-5, atol=1e-5)
np.testing.assert_allclose(final_kernel, final_jax, rtol=1e-5, atol=1e-5)
print("decay_attention kernel == lrnn.cells.chunkwise.decay_attention")

o_kernel, final_kernel = delta_kernel(q, k, v, beta, zeros)
o_jax, final_jax = jax.jit(delta_chunked)(q, k, v, beta, zeros)
np.testing.assert_allclose(o_kernel, o_jax, rtol=1e-5, atol=1e-5)
np.testing.assert_allclose(final_kernel, final_jax, rtol=1e-5, atol=1e-5)
print("delta_rule kernel (β ∈ (0, 2)) == lrnn.cells.chunkwise.delta_rule")
