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
# # One engine for every linear recurrence
#
# Every cell in `lrnn` is a recurrence that is *linear in its state*,
#
# $$h_t = A_t\, h_{t-1} + b_t, \qquad t = 1, \dots, T,$$
#
# where $A_t$ and $b_t$ may depend on the input $x_t$ but never on $h$. This notebook derives the
# one idea the library is built on, shows it at work on three recurrences of different shapes,
# and checks every claim against a plain per-step loop.
#
# ## The monoid
#
# Call $e_t = (A_t, b_t)$ the *element* of step $t$: the affine map $h \mapsto A_t h + b_t$.
# Applying $e_i$ and then $e_j$ is again an affine map,
#
# $$e_j \circ e_i = (A_j, b_j) \circ (A_i, b_i) = (A_j A_i,\; A_j b_i + b_j),$$
#
# and composition of maps is associative, with the identity $(I, 0)$. So the elements form a
# **monoid**, and every state is a prefix product:
#
# $$h_t = \mathrm{state}\big(e_t \circ e_{t-1} \circ \cdots \circ e_1 \circ \mathrm{lift}(h_0)\big),
# \qquad \mathrm{lift}(h_0) = (0, h_0),\quad \mathrm{state}(A, b) = b.$$
#
# Associativity is all a parallel prefix scan needs: `jax.lax.associative_scan` computes all $T$
# prefixes in $O(\log T)$ depth. The same products can also be taken one at a time (a sequential
# loop), or chunk by chunk. `lrnn.scan.scan` is that one entry point; a monoid only says how its
# elements combine.

# %%
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

jax.config.update("jax_enable_x64", True)  # the checks below compare float64 to float64

import lrnn  # noqa: F401,E402  (registers the Pallas kernels as method "pallas")
from lrnn.scan import (  # noqa: E402
    DiagonalMonoid,
    IdentityMinusRankOneMonoid,
    LogDiagonalMonoid,
    MatrixDecayMonoid,
    SoftmaxMonoid,
    registered_methods,
    scan,
)

# `scan` is a pure function of arrays; the monoid and the options are static. Jitted, each
# scan below compiles into one program instead of dispatching its ops one by one.
scan = jax.jit(scan, static_argnums=0, static_argnames=("method", "chunk_size", "reverse", "axis"))

rng = np.random.default_rng(0)  # test data from NumPy: nothing to compile
B, T = 2, 37  # batch, time: an odd length on purpose


def normal(*shape, dtype=jnp.float64):
    return jnp.asarray(rng.normal(size=shape), dtype)


def uniform(low, high, *shape, dtype=jnp.float64):
    return jnp.asarray(rng.uniform(low, high, size=shape), dtype)


print("scan methods:", registered_methods())

# %% [markdown]
# First, associativity itself, on random diagonal elements $(a, b)$ with
# $(a_j, b_j) \circ (a_i, b_i) = (a_j a_i,\; a_j b_i + b_j)$. `combine(earlier, later)` is
# $\text{later} \circ \text{earlier}$.

# %%
def random_diagonal(shape):
    return uniform(-1, 1, *shape), normal(*shape)


m = DiagonalMonoid()
e1, e2, e3 = (random_diagonal((5,)) for _ in range(3))
left = m.combine(m.combine(e1, e2), e3)
right = m.combine(e1, m.combine(e2, e3))
np.testing.assert_allclose(left, right, rtol=1e-12)
identity = m.identity(e1)
np.testing.assert_allclose(m.combine(identity, e1), e1)
np.testing.assert_allclose(m.combine(e1, identity), e1)
print("(e1 ∘ e2) ∘ e3 == e1 ∘ (e2 ∘ e3), and (1, 0) is the identity")

# %% [markdown]
# ## Three recurrences, one call
#
# ### 1. Diagonal: $h_t = a_t \odot h_{t-1} + b_t$
#
# $A_t = \mathrm{Diag}(a_t)$: LRU, S4D/S5, HGRN, minGRU, Mamba, RG-LRU (real or complex $a$).
# Elements are batch-first, time on axis 1: $a, b \in \mathbb{R}^{B \times T \times D}$.

# %%
def diagonal_loop(a, b, h0):
    """The recurrence as written, one step at a time, in NumPy."""
    h, states = np.array(h0), []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        states.append(h)
    return np.stack(states, axis=1)


D = 4
a, b = random_diagonal((B, T, D))
h0 = normal(B, D)

states, final = scan(DiagonalMonoid(), (a, b), initial=h0)
expected = diagonal_loop(np.asarray(a), np.asarray(b), np.asarray(h0))
np.testing.assert_allclose(states, expected, rtol=1e-12, atol=1e-12)
np.testing.assert_allclose(final, expected[:, -1], rtol=1e-12, atol=1e-12)
print(states.shape, final.shape)

# %% [markdown]
# ### 2. Matrix state with a per-key decay: $S_t = \mathrm{Diag}(\alpha_t)\, S_{t-1} + k_t v_t^\top$
#
# The state is a $K \times V$ matrix and $A_t = \mathrm{Diag}(\alpha_t)$ acts on its rows (GLA,
# HGRN2, mLSTM; a scalar $\alpha_t$ gives RetNet). The monoid is the same algebra with
# $U_t = k_t v_t^\top$:
#
# $$(\alpha_j, U_j) \circ (\alpha_i, U_i) = (\alpha_j \odot \alpha_i,\; \mathrm{Diag}(\alpha_j) U_i + U_j).$$

# %%
K, V = 3, 5
k, v = normal(B, T, K), normal(B, T, V)
alpha = uniform(0, 1, B, T, K)
update = k[..., :, None] * v[..., None, :]  # k_t v_tᵀ, (B, T, K, V)

S, S_final = scan(MatrixDecayMonoid(), (alpha, update))

S_loop, S_t = [], np.zeros((B, K, V))
for t in range(T):
    S_t = alpha[:, t, :, None] * S_t + np.einsum("bk,bv->bkv", k[:, t], v[:, t])
    S_loop.append(S_t)
np.testing.assert_allclose(S, np.stack(S_loop, axis=1), rtol=1e-12, atol=1e-12)
print(S.shape, S_final.shape)

# %% [markdown]
# ### 3. The delta rule: $S_t = (I - \beta_t k_t k_t^\top)\, S_{t-1} + \beta_t k_t v_t^\top$
#
# DeltaNet writes $v_t$ into the memory under key $k_t$ by correcting what the memory returns for
# $k_t$: $S_t = S_{t-1} + \beta_t k_t (v_t - S_{t-1}^\top k_t)^\top$. Its transition
# $I - u_t w_t^\top$ (with $u = \beta k$, $w = k$) is *identity minus rank one*. One step costs
# $O(KV)$, but a product of two such transitions is a dense $K \times K$ matrix, so the elements
# that `combine` composes are dense $(A, U)$ pairs, $(A_j, U_j) \circ (A_i, U_i) = (A_j A_i, A_j U_i + U_j)$.
# The leaves passed in are still the cheap vectors $(u, w, U)$.

# %%
k_unit = k / jnp.linalg.norm(k, axis=-1, keepdims=True)
beta = uniform(0, 2, B, T)  # β ∈ (0, 2): eigenvalues 1 − β ∈ (−1, 1)
u = beta[..., None] * k_unit
delta_leaves = (u, k_unit, u[..., :, None] * v[..., None, :])

S_delta, _ = scan(IdentityMinusRankOneMonoid(), delta_leaves)

S_loop, S_t = [], np.zeros((B, K, V))
for t in range(T):
    k_t, v_t, b_t = np.asarray(k_unit[:, t]), np.asarray(v[:, t]), np.asarray(beta[:, t])
    error = v_t - np.einsum("bkv,bk->bv", S_t, k_t)
    S_t = S_t + b_t[:, None, None] * np.einsum("bk,bv->bkv", k_t, error)
    S_loop.append(S_t)
np.testing.assert_allclose(S_delta, np.stack(S_loop, axis=1), rtol=1e-10, atol=1e-10)
print(S_delta.shape)

# %% [markdown]
# ### Two more monoids
#
# *Log space* (minGRU/minLSTM): for positive $a, b$ carry $\log h$; the combine is
# $(\alpha_j, \beta_j) \circ (\alpha_i, \beta_i) = (\alpha_j + \alpha_i,\ \mathrm{logaddexp}(\alpha_j + \beta_i, \beta_j))$,
# which cannot overflow however long the product of gates runs.
#
# *Softmax* (Aaren): not affine, still associative. With scores $s_i$ the triples
# $(m, u, w) = (s_i, 1, v_i)$ combine by rescaling to the larger maximum $m$, and $w/u$ is
# causal softmax attention, $o_t = \sum_{i \le t} e^{s_i} v_i \,/\, \sum_{i \le t} e^{s_i}$.

# %%
positive_a, positive_b = jnp.abs(a) + 0.1, jnp.exp(b)
log_states, _ = scan(LogDiagonalMonoid(), (jnp.log(positive_a), jnp.log(positive_b)))
np.testing.assert_allclose(jnp.exp(log_states), diagonal_loop(np.asarray(positive_a), np.asarray(positive_b), np.zeros((B, D))),
                           rtol=1e-10)

scores = 3 * normal(B, T)
softmax_state, _ = scan(SoftmaxMonoid(), (scores, jnp.ones_like(scores), v))
weights = np.where(np.tril(np.ones((T, T), bool)), np.exp(np.asarray(scores))[:, None, :], 0)  # (B, t, i)
attention = np.einsum("bti,biv->btv", weights / weights.sum(-1, keepdims=True), v)
np.testing.assert_allclose(SoftmaxMonoid.normalised(softmax_state), attention, rtol=1e-10, atol=1e-12)
print("log-space scan == loop, softmax scan == causal softmax attention")

# %% [markdown]
# ## The methods compute the same states
#
# * `sequential`: $h \leftarrow \mathrm{apply}(e_t, h)$ for $t = 1 \dots T$; depth $O(T)$, no extra memory.
# * `associative`: `lax.associative_scan` over the expanded elements; depth $O(\log T)$, work $O(T \log T)$.
# * `chunked`: split time into chunks of $C$; fold each chunk into one summary element, scan the
#   $T/C$ summaries associatively, then re-run each chunk from the state entering it.
# * `pallas`: a Pallas kernel for the diagonal scan (float32; interpret mode on CPU).
# * `auto`: what the benchmark measured fastest for this backend and size.
#
# They reassociate the same products, so in float64 they agree to rounding, including with an
# initial state and in reverse (right-to-left, for bidirectional layers).

# %%
def all_methods(monoid, leaves, **options):
    """{method: (states, final)} for every pure-JAX method."""
    return {method: scan(monoid, leaves, method=method, chunk_size=8 if method == "chunked" else None, **options)
            for method in ("sequential", "associative", "chunked", "auto")}


for name, monoid, leaves, options in [
    ("diagonal, h0, reverse", DiagonalMonoid(), (a, b), dict(initial=h0, reverse=True)),
    ("matrix decay", MatrixDecayMonoid(), (alpha, update), {}),
    ("delta rule", IdentityMinusRankOneMonoid(), delta_leaves, {}),
]:
    results = all_methods(monoid, leaves, **options)
    reference = results.pop("sequential")
    for method, result in results.items():
        np.testing.assert_allclose(result[0], reference[0], rtol=1e-10, atol=1e-10, err_msg=f"{name}: {method}")
        np.testing.assert_allclose(result[1], reference[1], rtol=1e-10, atol=1e-10, err_msg=f"{name}: {method}")
    print(f"{name}: sequential == {' == '.join(results)}")

# The Pallas kernel computes in float32: compare it with a float32 scan.
a32, b32 = a.astype(jnp.float32), b.astype(jnp.float32)
kernel_states, _ = scan(DiagonalMonoid(), (a32, b32), method="pallas")
np.testing.assert_allclose(kernel_states, scan(DiagonalMonoid(), (a32, b32), method="sequential")[0], rtol=1e-5, atol=1e-5)
print("pallas == sequential (float32)")

# %% [markdown]
# ### How fast is each?
#
# A rough CPU timing (float32, jitted, median of interleaved calls) of a diagonal scan at
# $B = 8$, $T = 2048$, $D = 64$. On a CPU the sequential loop is hard to beat: there is little
# parallel hardware for the $O(\log T)$ tree to use, and it does $\log T$ times the work. On a
# GPU the ranking changes, which is why `auto` reads measurements instead of guessing. (The
# Pallas kernel is left out: on CPU it runs in interpret mode, which checks it, not its speed.)

# %%
def median_ms(functions, args, repeats=15):
    """Median wall time per call (ms), the functions called in turn so that drift hits all alike."""
    for f in functions.values():
        jax.block_until_ready(f(*args))  # compile
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, f in functions.items():
            start = time.perf_counter()
            jax.block_until_ready(f(*args))
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * float(np.median(t)) for name, t in times.items()}


shape = (8, 2048, 64)
a_big = uniform(0.5, 1.0, *shape, dtype=jnp.float32)
b_big = normal(*shape, dtype=jnp.float32)
timed = {method: lambda a, b, method=method: scan(DiagonalMonoid(), (a, b), method=method)[0]
         for method in ("sequential", "associative", "chunked", "auto")}
milliseconds = median_ms(timed, (a_big, b_big))
for method, ms in milliseconds.items():
    print(f"{method:>12}: {ms:7.2f} ms")
outputs = [np.asarray(f(a_big, b_big)) for f in timed.values()]
for out in outputs[1:]:
    np.testing.assert_allclose(out, outputs[0], rtol=1e-4, atol=1e-4)

# %% [markdown]
# ## Resets: packed sequences as a segmented scan
#
# Training on packed batches needs a state that starts afresh at every sequence boundary. With a
# flag $r_t$ ("a new sequence starts at $t$") the pairs $(r, e)$ form a monoid again:
#
# $$(r_j, e_j) \circ (r_i, e_i) = \big(r_i \lor r_j,\; r_j\ ?\ e_j : e_j \circ e_i\big).$$
#
# The engine uses this *segmented* monoid for any monoid, or, for affine ones, the cheaper
# equivalent of zeroing the transition at a reset ($A_t \leftarrow 0$). Either way a packed row
# scans exactly as its separate sequences would.

# %%
boundary = 15
resets = jnp.zeros((B, T), bool).at[:, boundary].set(True)

packed, _ = scan(DiagonalMonoid(), (a, b), resets=resets, method="associative")
first, _ = scan(DiagonalMonoid(), (a[:, :boundary], b[:, :boundary]))
second, _ = scan(DiagonalMonoid(), (a[:, boundary:], b[:, boundary:]))
np.testing.assert_allclose(packed, jnp.concatenate([first, second], axis=1), rtol=1e-12, atol=1e-12)

# The delta rule has no cheap "forget", so the engine wraps it in the segmented monoid.
packed_delta, _ = scan(IdentityMinusRankOneMonoid(), delta_leaves, resets=resets, method="chunked", chunk_size=8)
tail = tuple(x[:, boundary:] for x in delta_leaves)
np.testing.assert_allclose(packed_delta[:, boundary:], scan(IdentityMinusRankOneMonoid(), tail)[0], rtol=1e-10, atol=1e-10)
print("packed == separate, for the diagonal and the delta-rule monoid")

# %% [markdown]
# ## A picture
#
# Left: a slowly decaying channel ($a_t \approx 0.97$) of a packed row with a reset at $t = 15$:
# there the packed run drops its past and starts the second sequence from $h = 0$, while the
# unsegmented scan carries the first sequence's state on. Right: the timings above.

# %%
slow_a = uniform(0.97, 0.99, 1, T, 1)
drift_b = 0.3 + 0.2 * normal(1, T, 1)
carried, _ = scan(DiagonalMonoid(), (slow_a, drift_b))
restarted, _ = scan(DiagonalMonoid(), (slow_a, drift_b), resets=resets[:1])
np.testing.assert_allclose(restarted[:, boundary:], scan(DiagonalMonoid(), (slow_a[:, boundary:], drift_b[:, boundary:]))[0])

figure, (states_axes, time_axes) = plt.subplots(1, 2, figsize=(11, 3.6))
states_axes.plot(np.asarray(carried[0, :, 0]), marker=".", label="no reset")
states_axes.plot(np.asarray(restarted[0, :, 0]), marker=".", label=f"reset at t = {boundary}")
states_axes.axvline(boundary, color="grey", linestyle="--", linewidth=1)
states_axes.set(xlabel="t", ylabel="$h_t$", title="segmented scan")
states_axes.legend()
time_axes.bar(list(milliseconds), list(milliseconds.values()), color="tab:blue")
time_axes.set(ylabel="ms per call", title=f"diagonal scan {shape}, CPU, float32")
figure.tight_layout()
plt.show()
