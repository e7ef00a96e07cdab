"""benchmarks.matmul_ceiling: it finds every matmul of a step, scan bodies once per iteration, and counts FLOPs."""

import jax
import jax.numpy as jnp

from benchmarks.matmul_ceiling import collect_dots, dot_flops, time_dot


def test_collects_forward_backward_and_scan_matmuls_with_their_flops():
    m, k, n, steps = 8, 16, 32, 7

    def loss(w1, w2, x):
        h = jnp.tanh(x @ w1)  # [m, k] @ [k, n]

        def body(c, _):
            return jnp.tanh(c @ w2), None  # [m, n] @ [n, n], 7 times

        c, _ = jax.lax.scan(body, h, None, length=steps)
        return jnp.sum(c)

    w1, w2, x = jnp.ones((k, n)), jnp.ones((n, n)), jnp.ones((m, k))
    fwd, _ = collect_dots(jax.make_jaxpr(loss)(w1, w2, x).jaxpr)
    assert sum(fwd.values()) == 1 + steps
    assert sum(dot_flops(key) * c for key, c in fwd.items()) == 2 * m * k * n + steps * 2 * m * n * n

    grads, _ = collect_dots(jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(w1, w2, x).jaxpr)
    # Forward as above; backward: in the scan, dc @ w2^T and c^T @ dc per step; outside, x^T @ dh for w1 (x
    # needs no gradient).
    assert sum(grads.values()) == (1 + steps) + 2 * steps + 1
    flops = sum(dot_flops(key) * c for key, c in grads.items())
    assert flops == 2 * (2 * m * k * n) + 3 * steps * 2 * m * n * n


def test_batched_dot_flops_and_timing():
    key = ((4, 8, 16), (4, 16, 32), "float32", "float32", (((2,), (1,)), ((0,), (0,))), None)
    assert dot_flops(key) == 2 * 4 * 8 * 16 * 32
    assert 0 < time_dot(key, repeats=2, trials=1) < 1


def test_cond_counts_its_costliest_branch_and_nested_calls_are_seen():
    x = jnp.ones((8, 8))

    def f(p, x):
        y = jax.lax.cond(p, lambda x: x @ x, lambda x: (x @ x) @ x, x)
        return jax.checkpoint(lambda y: jax.jit(lambda y: y @ y)(y))(y)

    counts, notes = collect_dots(jax.make_jaxpr(f)(True, x).jaxpr)
    assert sum(counts.values()) == 3  # two in the costlier branch, one inside remat(pjit(...))
    assert any("cond" in n for n in notes)
