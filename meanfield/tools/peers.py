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


def deep_peers(net, params, X, y) -> dict:
    """The deep benchmark's peers: one full-batch gradient step w_l <- w_l - DT dR/dw_l of the
    ``deep.DeepNet`` ``net`` (ReLU, squared loss), as experts write deep networks: PyTorch autograd
    with in-place updates under ``no_grad``, and JAX with the whole JAX_STEPS-step loop jitted
    (``jax.grad``, donated buffers). ``state()`` -> the layers as NumPy arrays. {} without either."""
    out = {}
    mult = [s[0] for s in net.scales()]
    b = net.res_scale if net.resnet else None
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        Xt, yt = torch.tensor(X), torch.tensor(y)
        ws = [torch.tensor(w.copy(), requires_grad=True) for w in params]

        def forward(ws):
            u = torch.relu(mult[0] * (Xt @ ws[0].T))
            for l in range(1, net.depth):
                branch = torch.relu(mult[l] * (u @ ws[l].T))
                u = branch if b is None else u + b * branch
            return mult[-1] * (u @ ws[-1])

        def torch_step():
            grads = torch.autograd.grad(0.5 * torch.mean((forward(ws) - yt) ** 2), ws)
            with torch.no_grad():
                for w, g in zip(ws, grads):
                    w.sub_(DT * g)
        out["torch autograd"] = _with_state(torch_step, lambda: [w.detach().numpy() for w in ws])
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return out
    jax.config.update("jax_enable_x64", True)
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def loss(ws):
        u = jnp.maximum(mult[0] * (Xj @ ws[0].T), 0.0)
        for l in range(1, net.depth):
            branch = jnp.maximum(mult[l] * (u @ ws[l].T), 0.0)
            u = branch if b is None else u + b * branch
        return 0.5 * jnp.mean((mult[-1] * (u @ ws[-1]) - yj) ** 2)

    update = lambda ws: [w - DT * g for w, g in zip(ws, jax.grad(loss)(ws))]
    loop = jax.jit(lambda ws: jax.lax.fori_loop(0, JAX_STEPS, lambda _, s: update(s), ws), donate_argnums=0)
    state = [[jnp.asarray(w) for w in params]]

    def jax_step():
        state[0] = loop(state[0])
        state[0][0].block_until_ready()
    out["JAX loop (grad)"] = _with_state(jax_step, lambda: [np.asarray(w) for w in state[0]], JAX_STEPS)
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
