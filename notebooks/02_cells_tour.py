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
# # A tour of the cells
#
# A cell in `lrnn.cells` says two things: what the *elements* of its recurrence are for every
# token, and how a state is *read out*,
#
# $$e_t = \mathrm{elements}(\theta, x_t), \qquad h_t = e_t(h_{t-1}), \qquad y_t = \mathrm{readout}(\theta, h_t, x_t).$$
#
# Everything else follows: `forward` builds all $T$ elements and runs them through one
# `lrnn.scan` (in parallel), `step` builds one token's element and applies it once (for
# inference). Because both share `elements` and `readout`, they compute the same function.
#
# This notebook builds every registered cell from the registry, looks at its transitions $A_t$ at
# initialisation (their eigenvalues decide what the cell can remember: $|\lambda| \to 1$ keeps
# information, $|\lambda| \to 0$ forgets it, $\lambda < 0$ lets a state flip sign), and checks
# $\mathrm{forward} = \mathrm{step}^{\circ T}$ for every one of them.

# %%
import functools

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

jax.config.update("jax_enable_x64", True)  # forward and step are compared in float64
# This notebook compiles a few dozen small programs and runs each once or twice: XLA's
# optimisation passes would cost more time than they save. (Results are the same.)
jax.config.update("jax_disable_most_optimizations", True)

from lrnn.cells import BlockDiagonalLRNN, get_cell, registered_cells  # noqa: E402
from lrnn.scan import (  # noqa: E402
    DenseMonoid,
    DiagonalMonoid,
    IdentityMinusRankOneMonoid,
    LogDiagonalMonoid,
    MatrixDecayMonoid,
    SoftmaxMonoid,
    StabilisedDecayMonoid,
)

print(len(registered_cells()), "registered cells:", ", ".join(registered_cells()))

# %% [markdown]
# ## Every cell, from the registry
#
# Small sizes throughout ($d_{\text{in}} = 8$); the options are each cell's own hyperparameters.
# The assertion makes this notebook fail when a cell is registered that the tour has no options for.

# %%
D_IN = 8
OPTIONS = {
    "lru": dict(d_state=64, r_min=0.5, r_max=0.99),
    "s4d": dict(d_state=8),
    "s5": dict(d_state=32),
    "hgrn": {},
    "mingru": dict(d_hidden=8),
    "minlstm": dict(d_hidden=8),
    "mamba": dict(d_state=16),
    "rglru": {},
    "retnet": dict(n_heads=2),
    "gla": dict(n_heads=2, gate_rank=4),
    "hgrn2": dict(expand_ratio=4),
    "gateloop": dict(n_heads=2),
    "mlstm": dict(n_heads=2),
    "mamba2": dict(n_heads=2, d_state=8),
    "deltanet": dict(n_heads=2),
    "gated_deltanet": dict(n_heads=2),
    "deltaproduct": dict(n_heads=2, n_h=2),
    "aaren": dict(n_heads=2),
    "gru": {},
    "lstm": {},
    "slstm": dict(n_heads=2),
    "rwkv6": dict(n_heads=2),
    "block_diagonal": dict(block_size=4),
}
missing = set(registered_cells()) - set(OPTIONS)
assert not missing, f"registered cells the tour has no options for: {missing}"

cells = {name: get_cell(name)(d_in=D_IN, **OPTIONS[name]) for name in registered_cells()}
params = {name: cell.init(jax.random.PRNGKey(i)) for i, (name, cell) in enumerate(cells.items())}
x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 12, D_IN)))  # B T D

for name, cell in cells.items():
    state_shapes = jax.tree.map(lambda s: s.shape[1:], cell.initial_state((1,)))  # without the batch axis
    print(f"{name:>15}  {type(cell.monoid).__name__:<27} state {state_shapes}")

# %% [markdown]
# ## Transitions at initialisation
#
# What $A_t$ is depends on the monoid, and so does how to read its eigenvalues off the leaves:
#
# | monoid | transition $A_t$ | eigenvalues |
# |---|---|---|
# | diagonal $(a, b)$ | $\mathrm{Diag}(a_t)$ | the entries of $a_t$ (complex for LRU, S4D, S5) |
# | matrix decay $(\alpha, U)$ | $\mathrm{Diag}(\alpha_t)$ on the rows of $S$ | the entries of $\alpha_t$ (complex: RetNet, GateLoop rotate) |
# | stabilised $(g, w, U)$ | $e^{g_t}$ (mLSTM's forget gate) | $e^{g_t}$ |
# | identity − rank one $(u, w, U)$ | $I - u_t w_t^\top$ | $1 - w_t^\top u_t$ (and $1$, $K-1$ times) |
# | dense $(A, U)$ | $A_t$ | `eigvals` of $A_t$ |
# | softmax | none: Aaren's state is not a linear map of the past | — |
# | none (GRU, LSTM, sLSTM) | none: $h_t = f(h_{t-1}, x_t)$ is nonlinear; the Newton solve linearises it | — |
#
# Many cells are *selective*: $A_t$ depends on $x_t$, so the spectrum below is over the 24 tokens
# of a random input, not a fixed set.

# %%
def transition_eigenvalues(cell, params, x):
    """The eigenvalues of every token's transition A_t for inputs x, flattened, complex; None
    for a monoid without a linear transition (softmax)."""
    monoid = cell.monoid
    if monoid is None:  # a nonlinear cell: no per-token element
        return None
    leaves = jax.jit(cell.elements)(params, x)
    if isinstance(monoid, (DiagonalMonoid, MatrixDecayMonoid)):
        values = leaves[0]
    elif isinstance(monoid, (LogDiagonalMonoid, StabilisedDecayMonoid)):
        values = jnp.exp(leaves[0])
    elif isinstance(monoid, IdentityMinusRankOneMonoid):
        u, w = leaves[:2]
        values = 1 - jnp.sum(u * w, axis=-1)  # the eigenvalue along u; the others are 1
    elif isinstance(monoid, DenseMonoid):
        values = np.linalg.eigvals(np.asarray(leaves[0]))
    elif isinstance(monoid, SoftmaxMonoid):
        return None
    else:
        raise TypeError(f"no eigenvalue rule for {type(monoid).__name__}")
    return np.asarray(values, complex).ravel()


def spectral_bound(cell) -> float:
    """The bound on |λ| the cell's parametrisation guarantees: 1, except for the block-diagonal
    LRNN, whose b×b blocks have columns of p-norm ≤ 1, so |λ| ≤ ‖A‖₁ ≤ b^(1 − 1/p) (Hölder)."""
    if isinstance(cell, BlockDiagonalLRNN):
        return cell.block_size ** (1 - 1 / cell.p)
    return 1.0


spectra = {name: transition_eigenvalues(cell, params[name], x) for name, cell in cells.items()}
for name, values in spectra.items():
    if values is not None:
        bound = spectral_bound(cells[name])
        assert np.all(np.abs(values) <= bound + 1e-9), f"{name}: |λ| above {bound} at init"
print("every transition at init has |λ| ≤ 1 (Aaren and the nonlinear cells have none), except the "
      f"block-diagonal LRNN: max |λ| = {np.abs(spectra['block_diagonal']).max():.3f} ≤ its bound "
      f"{spectral_bound(cells['block_diagonal']):.3f} (p = 1.2 bounds the columns, not the spectrum)")

# %%
with_transitions = [name for name, values in spectra.items() if values is not None]
columns = 4
rows = -(-len(with_transitions) // columns)
figure, grid = plt.subplots(rows, columns, figsize=(12, 2.6 * rows))
circle = np.exp(1j * np.linspace(0, 2 * np.pi, 200))
for axes, name in zip(grid.flat, with_transitions):
    values = spectra[name]
    axes.plot(circle.real, circle.imag, color="lightgrey", linewidth=1)
    axes.scatter(values.real, values.imag, s=6, alpha=0.5)
    axes.axvline(0, color="lightgrey", linewidth=0.5)
    axes.set(xlim=(-1.1, 1.1), ylim=(-1.1, 1.1), aspect="equal", title=name)
    axes.tick_params(labelsize=7)
for axes in grid.flat[len(with_transitions):]:
    axes.axis("off")
figure.suptitle("eigenvalues of the per-token transitions at init, in the unit disc", y=0.995)
figure.tight_layout()
plt.show()

# %% [markdown]
# ## Four initialisations up close
#
# **LRU** puts its eigenvalues $\lambda = e^{-\nu + i\theta}$ uniformly on a ring
# $r_{\min} \le |\lambda| \le r_{\max}$, phases in $[0, \theta_{\max}]$.
#
# **S5** starts from HiPPO-N: the normal part of HiPPO-LegS, diagonalised, whose continuous-time
# eigenvalues all lie on the line $\mathrm{Re}\,\Lambda = -\tfrac12$. The zero-order hold
# $\bar\Lambda = e^{\Lambda \Delta}$ with steps $\Delta \in [10^{-3}, 10^{-1}]$ maps them into the disc
# (the S5 panel above), close to 1: long memory at init.
#
# **Mamba** has $\bar A_t = e^{\Delta_t A}$ with $A < 0$: eigenvalues in $(0, 1)$. Grazzi et al.
# take $\bar A_t = 2 e^{\Delta_t A} - 1$ instead, which reaches $(-1, 1)$.
#
# **DeltaNet**'s transition $I - \beta_t k_t k_t^\top$ (unit $k_t$) has eigenvalue $1 - \beta_t$
# along $k_t$: $\beta = \sigma(\cdot) \in (0, 1)$ keeps it in $(0, 1)$, $\beta = 2\sigma(\cdot)$ gives $(-1, 1)$.

# %%
lru, s5 = cells["lru"], cells["s5"]
lru_eigenvalues = np.asarray(lru.eigenvalues(params["lru"]))
radii = np.abs(lru_eigenvalues)
assert np.all((radii >= lru.r_min - 1e-9) & (radii <= lru.r_max + 1e-9))

s5_continuous = np.asarray(s5.eigenvalues(params["s5"]))
np.testing.assert_allclose(s5_continuous.real, -0.5, atol=1e-6)  # HiPPO-N: Re Λ = −1/2
assert np.all(np.abs(spectra["s5"]) < 1)  # Λ̄ = exp(ΛΔ), in the grid above

ranges = {(0, 1): "(0, 1)", (-1, 1): "(−1, 1)"}
mamba_spectra, delta_spectra = {}, {}
for (low, high), label in ranges.items():
    mamba = get_cell("mamba")(d_in=D_IN, d_state=16, eigenvalue_range=(low, high))
    mamba_spectra[label] = transition_eigenvalues(mamba, mamba.init(jax.random.PRNGKey(1)), x).real
    delta = get_cell("deltanet")(d_in=D_IN, n_heads=2, eigenvalue_range=(low, high))
    delta_spectra[label] = transition_eigenvalues(delta, delta.init(jax.random.PRNGKey(2)), x).real
for spectrum in (mamba_spectra, delta_spectra):
    assert spectrum["(0, 1)"].min() > 0 and spectrum["(0, 1)"].max() < 1
    assert spectrum["(−1, 1)"].min() < 0 < spectrum["(−1, 1)"].max() and spectrum["(−1, 1)"].min() > -1
print("LRU ring, S5 on Re Λ = −1/2, and both eigenvalue ranges as promised")

# %%
figure, ((ring, hippo), (mamba_axes, delta_axes)) = plt.subplots(2, 2, figsize=(11, 8))
ring.plot(circle.real, circle.imag, color="lightgrey", linewidth=1)
for r in (lru.r_min, lru.r_max):
    ring.plot(r * circle.real, r * circle.imag, color="grey", linestyle="--", linewidth=1)
ring.scatter(lru_eigenvalues.real, lru_eigenvalues.imag, s=14)
ring.set(aspect="equal", title=f"LRU: ring {lru.r_min} ≤ |λ| ≤ {lru.r_max}")

hippo.scatter(s5_continuous.real, s5_continuous.imag, s=14)
hippo.axvline(-0.5, color="grey", linestyle="--", linewidth=1)
hippo.axvline(0, color="lightgrey", linewidth=1)
hippo.set(xlim=(-1, 0.25), title="S5: HiPPO-N eigenvalues Λ (continuous time)", xlabel="Re Λ", ylabel="Im Λ")
hippo.set_yscale("symlog")

bins = np.linspace(-1, 1, 41)
for label, values in mamba_spectra.items():
    mamba_axes.hist(values, bins=bins, alpha=0.6, label=f"eigenvalue_range {label}")
mamba_axes.set(title="Mamba: Ā_t over tokens, channels, states", xlabel="eigenvalue")
mamba_axes.legend(fontsize=8)
for label, values in delta_spectra.items():
    delta_axes.hist(values, bins=bins, alpha=0.6, label=f"eigenvalue_range {label}")
delta_axes.set(title="DeltaNet: 1 − β_t over tokens and heads", xlabel="eigenvalue")
delta_axes.legend(fontsize=8)
figure.tight_layout()
plt.show()

# %% [markdown]
# ## forward = step, for every cell
#
# `forward` is the parallel path (one scan; for the matrix-state cells the chunkwise closed form
# of notebook 04); `step` is one token of inference. Running `step` over the sequence token by
# token, from the cell's `initial_state`, must give the same outputs and the same final state:
#
# $$y_{1:T},\, h_T = \mathrm{forward}(\theta, x_{1:T}) \quad\text{and}\quad
# (y_t, h_t) = \mathrm{step}(\theta, h_{t-1}, x_t),\ t = 1 \dots T.$$
#
# The token loop is a `lax.scan` of `step`, so that each comparison compiles once. A nonlinear
# cell's parallel path is the Newton solve (`method="associative"`: DEER or quasi-DEER iterations,
# each one scan); its default "auto" is the step loop itself.

# %%
def step_by_step(cell, params, x):
    """(y (B, T, d_out), final state): `step` applied token by token from the initial state."""
    def one_token(state, x_t):
        y_t, state = cell.step(params, state, x_t)
        return state, y_t

    final, ys = jax.lax.scan(one_token, cell.initial_state((x.shape[0],), x.dtype), jnp.swapaxes(x, 0, 1))
    return jnp.swapaxes(ys, 0, 1), final


largest_difference = {}
for name, cell in cells.items():
    method = "associative" if cell.monoid is None else "auto"
    y, final = jax.jit(functools.partial(cell.forward, method=method))(params[name], x)
    y_steps, final_steps = jax.jit(step_by_step, static_argnums=0)(cell, params[name], x)
    np.testing.assert_allclose(y_steps, y, rtol=1e-9, atol=1e-9, err_msg=name)
    for part, part_steps in zip(jax.tree.leaves(final), jax.tree.leaves(final_steps)):
        np.testing.assert_allclose(part_steps, part, rtol=1e-9, atol=1e-9, err_msg=f"{name} final state")
    largest_difference[name] = float(jnp.max(jnp.abs(y_steps - y)))
    print(f"{name:>15}: forward == step ∘ … ∘ step, max |Δy| = {largest_difference[name]:.1e}")
