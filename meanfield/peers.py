"""The benchmark's peers: one full-batch gradient step of the mean-field two-layer ReLU network
(squared loss, both layers, float64), theta <- theta - dt m grad R, written in other libraries.

Two kinds per library: "naive", as most code is written (fresh n x m temporaries, autograd graph
every step, one jit dispatch per step), and "expert", as someone who knows the library would write
it (preallocated ``out=`` buffers with the a-scaling applied on the m x d side; ``no_grad`` with a
hand-written gradient and in-place updates; the whole step compiled; the whole k-step loop in one
``jit`` with donated buffers). Every factory takes (X (n, d), y (n,), theta (m, d + 1)) and returns
a ``step()`` advancing ``step.steps`` steps, with ``step.state()`` -> (W (m, d), a (m,)) as NumPy
arrays; ``tests/test_cli.py`` checks that every peer computes the engine's step to 1e-12.
PyTorch and JAX come with the optional extra ``bench``; their peers are skipped when not installed.
"""
from __future__ import annotations

import numpy as np

DT = 1e-3
JAX_STEPS = 10           # steps per call of the jitted k-step loop


def numpy_naive(X, y, theta):
    n, d = X.shape
    m = theta.shape[0]
    W, a = theta[:, :d].copy(), theta[:, d].copy()

    def step():
        Z = X @ W.T
        S = np.maximum(Z, 0.0)
        r = (S @ a / m - y) / n
        grad_a = S.T @ r / m
        grad_W = ((Z > 0) * r[:, None] * a[None, :]).T @ X / m
        W[...] -= DT * m * grad_W
        a[...] -= DT * m * grad_a
    return _with_state(step, lambda: (W, a))


def numpy_expert(X, y, theta):
    """One n x m buffer reused for Z, relu(Z) and the masked residuals; a-scaling on the m x d side."""
    n, d = X.shape
    m = theta.shape[0]
    W, a = theta[:, :d].copy(), theta[:, d].copy()
    Z, f, grad_a, grad_W = np.empty((n, m)), np.empty(n), np.empty(m), np.empty((m, d))

    def step():
        np.matmul(X, W.T, out=Z)
        np.maximum(Z, 0.0, out=Z)                       # Z = relu(w . x)
        np.matmul(Z, a, out=f)
        np.subtract(f, m * y, out=f)
        np.multiply(f, DT / (m * n), out=f)                               # f = dt r, r = (f(x) - y) / n the residuals
        np.matmul(f, Z, out=grad_a)                     # dt m grad_a
        np.heaviside(Z, 0.0, out=Z)
        np.multiply(Z, f[:, None], out=Z)
        np.matmul(Z.T, X, out=grad_W)
        np.multiply(grad_W, a[:, None], out=grad_W)                            # a-scaling on the (m, d) side
        np.subtract(W, grad_W, out=W)
        np.subtract(a, grad_a, out=a)
    return _with_state(step, lambda: (W, a))


def torch_peers(X, y, theta) -> dict:
    """{"torch autograd": naive, "torch (expert)": no_grad hand-written, "torch.compile": the
    whole step compiled}, or {} without PyTorch."""
    try:
        import torch
    except ImportError:
        return {}
    n, d = X.shape
    m = theta.shape[0]
    Xt, yt = torch.tensor(X), torch.tensor(y)

    W = torch.tensor(theta[:, :d].copy(), requires_grad=True)
    a = torch.tensor(theta[:, d].copy(), requires_grad=True)

    def autograd_step():
        value = 0.5 * torch.mean((torch.relu(Xt @ W.T) @ a / m - yt) ** 2)
        gW, ga = torch.autograd.grad(value, (W, a))
        with torch.no_grad():
            W.sub_(DT * m * gW)
            a.sub_(DT * m * ga)

    We, ae = torch.tensor(theta[:, :d].copy()), torch.tensor(theta[:, d].copy())
    Z, f, grad_a, grad_W = torch.empty((n, m), dtype=torch.float64), torch.empty(n, dtype=torch.float64), \
        torch.empty(m, dtype=torch.float64), torch.empty((m, d), dtype=torch.float64)
    my = m * yt

    @torch.no_grad()
    def expert_step():
        torch.matmul(Xt, We.T, out=Z)
        Z.clamp_(min=0.0)
        torch.mv(Z, ae, out=f)
        f.sub_(my).mul_(DT / (m * n))
        torch.mv(Z.T, f, out=grad_a)
        Z.sign_().mul_(f[:, None])                      # relu(z) >= 0: sign is the mask
        torch.matmul(Z.T, Xt, out=grad_W)
        grad_W.mul_(ae[:, None])
        We.sub_(grad_W)
        ae.sub_(grad_a)

    Wc, ac = torch.tensor(theta[:, :d].copy()), torch.tensor(theta[:, d].copy())

    @torch.compile(fullgraph=True)
    def compiled_update(W, a):
        Z = torch.relu(Xt @ W.T)
        r = (Z @ a - m * yt) * (DT / (m * n))
        return W - ((Z > 0) * r[:, None]).T @ Xt * a[:, None], a - r @ Z

    def compiled_step():
        new_W, new_a = compiled_update(Wc, ac)
        Wc.copy_(new_W)
        ac.copy_(new_a)

    return {"torch autograd": _with_state(autograd_step, lambda: (W.detach().numpy(), a.detach().numpy())),
            "torch (expert)": _with_state(expert_step, lambda: (We.numpy(), ae.numpy())),
            "torch.compile": _with_state(compiled_step, lambda: (Wc.numpy(), ac.numpy()))}


def jax_peers(X, y, theta) -> dict:
    """{"JAX": one jit call per step, "JAX loop (grad)" and "JAX loop (expert)": JAX_STEPS steps
    per call in a jitted lax.fori_loop with donated buffers, by jax.grad or by hand}, or {}."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return {}
    jax.config.update("jax_enable_x64", True)
    n, d = X.shape
    m = theta.shape[0]
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def loss(W, a):
        return 0.5 * jnp.mean((jnp.maximum(Xj @ W.T, 0.0) @ a / m - yj) ** 2)

    def grad_update(W, a):
        gW, ga = jax.grad(loss, argnums=(0, 1))(W, a)
        return W - DT * m * gW, a - DT * m * ga

    def manual_update(W, a):
        Z = jnp.maximum(Xj @ W.T, 0.0)
        r = (Z @ a - m * yj) * (DT / (m * n))
        return W - (jnp.where(Z > 0, r[:, None], 0.0).T @ Xj) * a[:, None], a - r @ Z

    def loop(update):
        return jax.jit(lambda W, a: jax.lax.fori_loop(0, JAX_STEPS, lambda _, s: update(*s), (W, a)),
                       donate_argnums=(0, 1))

    out = {}
    for name, update, steps in (("JAX", jax.jit(grad_update), 1), ("JAX loop (grad)", loop(grad_update), JAX_STEPS),
                                ("JAX loop (expert)", loop(manual_update), JAX_STEPS)):
        state = [jnp.asarray(theta[:, :d]), jnp.asarray(theta[:, d])]

        def step(update=update, state=state):
            state[0], state[1] = update(*state)
            state[0].block_until_ready()
        out[name] = _with_state(step, lambda state=state: (np.asarray(state[0]), np.asarray(state[1])), steps)
    return out


def _with_state(step, state, steps: int = 1):
    step.state, step.steps = state, steps
    return step


def peers(X, y, theta, quick: bool = False) -> dict:
    """Every available peer by name; quick: the NumPy ones only."""
    out = {"numpy": numpy_naive(X, y, theta), "numpy (expert)": numpy_expert(X, y, theta)}
    if not quick:
        out.update(torch_peers(X, y, theta))
        out.update(jax_peers(X, y, theta))
    return out
