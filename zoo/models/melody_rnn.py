"""A caption-conditioned multi-layer LSTM over melody events (the `music` model), in Flax NNX.

    tokens [B, T] --embed--> x_t ; cond [B, 384] (a sentence embedding of the tune's caption)
    layer l:  gates_t = x_t W_x + h_{t-1} W_h + b  (+ cond W_c on layer 0)   -> i, f, g, o -> (h_t, c_t)
    logits_t = Linear(dropout(h_t of the last layer))  (float32)

The caption embedding enters twice: it sets every layer's initial (h, c) (through one tanh projection),
and it is added to layer 0's gate pre-activations at every step (the same as concatenating it to each
input), so the model cannot forget the prompt over a long tune.

Each layer is one `jax.lax.scan` over time. The input part of the gates (x W_x + b, and the caption's
part) does not depend on the recurrence, so it is one big matmul over all steps before the scan; inside
the scan each step does one fused [H, 4H] matmul. `step` runs the same cells for a single token, so a
sampler can carry the state in a `lax.while_loop`; `__call__` equals running `step` token by token.

Like zoo/models/gpt.py the model holds no RNG state: dropout draws from an `nnx.Rngs` given at call time.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.models.dropout import Dropout
from zoo.models.linear import Linear

# {"cells": one (h, c) pair per layer, each [B, hidden_dim]; "cond_gates": [B, 4 * hidden_dim]}, in the
# compute dtype: a plain pytree, so a sampler can carry it through a lax.while_loop.
MelodyState = dict[str, Any]


def _cell(gates: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """LSTM update from fused pre-activations [B, 4H] (order i, f, g, o). The cell runs in float32."""
    h_new, c_new = _cell_f32(gates.astype(jnp.float32), c.astype(jnp.float32))
    return h_new.astype(gates.dtype), c_new.astype(gates.dtype)


@jax.custom_vjp
def _cell_f32(gates: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(h, c) of one LSTM step, with a hand-written backward pass. Why: for autodiff's backward `lax.scan`
    keeps 13 [T, B, H] arrays of intermediates per layer; this keeps the activated gates, c and tanh(c_new)
    (6 x H per step), which made the music step 3-7% faster (docs/benchmarks.md)."""
    return _cell_fwd(gates, c)[0]


def _gate_scale(width: int) -> tuple[jax.Array, jax.Array]:
    """(scale, is_g) over the fused gate axis [4H] (order i, f, g, o): 1 on g's columns, 0.5 on the others."""
    column = jnp.arange(width)
    is_g = (column >= width // 2) & (column < 3 * width // 4)
    return jnp.where(is_g, 1.0, 0.5), is_g


def _cell_fwd(gates: jax.Array, c: jax.Array) -> tuple[tuple[jax.Array, jax.Array], tuple]:
    # All four activations in one elementwise pass over [B, 4H], as sigmoid(x) = 0.5 tanh(0.5 x) + 0.5:
    # splitting first made XLA's CPU backend run four fusions and a concatenation per step (the music step
    # 5% slower in one process, 1-2% between processes; docs/benchmarks.md). For x < -9 the tanh form's
    # relative error grows (absolute error stays under 1e-7), which an LSTM's gates do not notice.
    scale, is_g = _gate_scale(gates.shape[-1])
    acts = scale * jnp.tanh(scale * gates) + jnp.where(is_g, 0.0, 0.5)
    i, f, g, o = jnp.split(acts, 4, axis=-1)
    c_new = f * c + i * g
    tanh_c = jnp.tanh(c_new)
    return (o * tanh_c, c_new), (acts, c, tanh_c)


def _cell_bwd(residuals: tuple, cotangents: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
    acts, c, tanh_c = residuals
    dh, dc_new = cotangents
    i, f, g, o = jnp.split(acts, 4, axis=-1)
    dc = dc_new + dh * o * (1 - tanh_c * tanh_c)
    d_acts = jnp.concatenate([dc * g, dc * c, dc * i, dh * tanh_c], axis=-1)
    _, is_g = _gate_scale(acts.shape[-1])
    # sigmoid' = a - a^2 and tanh' = 1 - a^2, from the activations a
    return d_acts * (jnp.where(is_g, 1.0, acts) - acts * acts), dc * f


_cell_f32.defvjp(_cell_fwd, _cell_bwd)


def _scan_steps(xg: jax.Array, state: tuple[jax.Array, jax.Array], kernel: jax.Array
                ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
    kernel = kernel.astype(xg.dtype)

    def body(carry, xg_t):
        h, c = carry
        h, c = _cell(xg_t + h @ kernel, c)
        return (h, c), h

    return jax.lax.scan(body, state, xg)


def _batch_major_steps(xg: jax.Array, state: tuple[jax.Array, jax.Array], kernel: jax.Array
                       ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
    state, hs = _scan_steps(jnp.swapaxes(xg, 0, 1), state, kernel)
    return state, jnp.swapaxes(hs, 0, 1)


@jax.custom_vjp
def _recurrence(xg: jax.Array, state: tuple[jax.Array, jax.Array], kernel: jax.Array
                ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
    """The recurrence over batch-major xg [B, T, 4H] -> (final (h, c), h of every step [B, T, H]), with the
    recurrent kernel's gradient taken out of the backward loop. Why: autodiff of the scan adds each step's
    h_{t-1}^T dgates_t ([H, B] x [B, 4H]) into a [H, 4H] accumulator, reading and writing the whole matrix
    T times (a thin matmul plus an add per step). The gates' gradient is xg's, which the backward pass
    returns for all steps anyway, so the kernel's is ONE matmul after the loop: the music step 0.613 ->
    0.586 s in one process, 595-616 -> 573-579 ms in separate ones (docs/benchmarks.md)."""
    return _batch_major_steps(xg, state, kernel)


def _recurrence_fwd(xg: jax.Array, state: tuple[jax.Array, jax.Array], kernel: jax.Array) -> tuple:
    out, steps_vjp = jax.vjp(lambda xg_, state_: _batch_major_steps(xg_, state_, kernel), xg, state)
    return out, (steps_vjp, state[0], out[1], kernel)


def _recurrence_bwd(residuals: tuple, cotangents: tuple) -> tuple:
    steps_vjp, h0, hs, kernel = residuals
    d_xg, d_state = steps_vjp(cotangents)  # d_xg is every step's gates' gradient, batch-major like xg
    h_prev = jnp.concatenate([h0[:, None].astype(hs.dtype), hs[:, :-1]], axis=1)  # h_{t-1} for every step
    # Both operands batch-major, with [B, T] merged into one row axis, batch first. Why: time-major, the
    # [T, B] rows would need a transposed copy of h_prev before XLA's dot (11 ms a layer), and merged with
    # the batch-sharded axis minor they made a data-parallel step all-gather (measured on 2 devices).
    # Batch-major, each device contracts its own rows and the [H, 4H] partial sums are all-reduced.
    rows = h_prev.shape[0] * h_prev.shape[1]
    d_kernel = jax.lax.dot_general(h_prev.reshape(rows, -1), d_xg.reshape(rows, -1), (((0,), (0,)), ((), ())),
                                   preferred_element_type=jnp.float32)
    return d_xg, d_state, d_kernel.astype(kernel.dtype)  # the parameter's dtype: f32 even in a bf16 step


_recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


def _forget_bias_one(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    """Fused-gate bias (i, f, g, o) with the forget gate at 1: remember by default early in training."""
    del key
    hidden = shape[-1] // 4
    return jnp.zeros(shape, dtype).at[..., hidden:2 * hidden].set(1.0)


class LSTMLayer(nnx.Module):
    """One LSTM layer: input projection (with bias) and recurrent projection, both to 4H fused gates."""

    def __init__(self, in_dim: int, hidden_dim: int, dtype: Any, *, rngs: nnx.Rngs):
        self.hidden_dim = hidden_dim
        self.w_x = Linear(in_dim, 4 * hidden_dim, dtype=dtype, rngs=rngs,
                          kernel_init=nnx.initializers.glorot_uniform(), bias_init=_forget_bias_one)
        self.w_h = Linear(hidden_dim, 4 * hidden_dim, use_bias=False, dtype=dtype, rngs=rngs,
                          kernel_init=nnx.initializers.orthogonal())

    def scan(self, xg: jax.Array, state: tuple[jax.Array, jax.Array]
             ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """xg: input gate pre-activations [B, T, 4H] -> (h for every step [B, T, H], final (h, c))."""
        state, hs = _recurrence(xg, state, self.w_h.kernel[...])
        return hs, state

    def step(self, xg: jax.Array, state: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        h, c = state
        return _cell(xg + self.w_h(h), c)


class MelodyRNN(nnx.Module):
    """Multi-layer LSTM language model over melody events, conditioned on a caption embedding."""

    def __init__(self, *, vocab_size: int, embed_dim: int, hidden_dim: int, num_layers: int,
                 cond_dim: int = 384, dropout: float = 0.0, dtype: Any = jnp.float32, rngs: nnx.Rngs):
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.vocab_size, self.embed_dim, self.hidden_dim = vocab_size, embed_dim, hidden_dim
        self.num_layers, self.cond_dim, self.dropout, self.dtype = num_layers, cond_dim, dropout, dtype
        self.embed = nnx.Embed(vocab_size, embed_dim, dtype=dtype, rngs=rngs,
                               embedding_init=nnx.initializers.normal(stddev=0.1))
        self.cond_init = Linear(cond_dim, 2 * num_layers * hidden_dim, dtype=dtype, rngs=rngs)
        self.cond_gates = Linear(cond_dim, 4 * hidden_dim, use_bias=False, dtype=dtype, rngs=rngs)
        self.layers = nnx.List([LSTMLayer(embed_dim if i == 0 else hidden_dim, hidden_dim, dtype, rngs=rngs)
                                for i in range(num_layers)])
        self.drop = Dropout(dropout)
        self.head = Linear(hidden_dim, vocab_size, dtype=dtype, rngs=rngs)

    def init_state(self, cond: jax.Array) -> MelodyState:
        """The state before the first token, a function of the caption embedding cond [B, cond_dim]:
        {"cells": ((h, c) per layer, each [B, hidden_dim]), "cond_gates": [B, 4 * hidden_dim]}."""
        cond = cond.astype(self.dtype)
        z = jnp.tanh(self.cond_init(cond)).reshape(cond.shape[0], self.num_layers, 2, self.hidden_dim)
        cells = tuple((z[:, i, 0], z[:, i, 1]) for i in range(self.num_layers))
        return {"cells": cells, "cond_gates": self.cond_gates(cond)}

    def _drop(self, x: jax.Array, deterministic: bool, rngs: nnx.Rngs | None) -> jax.Array:
        return self.drop(x, deterministic=deterministic, rngs=rngs)

    def __call__(self, tokens: jax.Array, cond: jax.Array, *, deterministic: bool = True,
                 rngs: nnx.Rngs | None = None) -> jax.Array:
        """tokens int[B, T], cond [B, cond_dim] -> float32 logits [B, T, vocab_size]."""
        state = self.init_state(cond)
        x = self._drop(self.embed(tokens), deterministic, rngs)
        for i, layer in enumerate(self.layers):
            xg = layer.w_x(x)
            if i == 0:
                xg = xg + state["cond_gates"][:, None, :]
            x, _ = layer.scan(xg, state["cells"][i])
            x = self._drop(x, deterministic, rngs)
        return self.head(x).astype(jnp.float32)

    def step(self, token: jax.Array, state: MelodyState) -> tuple[jax.Array, MelodyState]:
        """One token int[B] -> (float32 logits [B, vocab_size], next state); no dropout. Feeding a tune
        token by token from `init_state(cond)` gives `__call__(tokens, cond)`'s logits."""
        x = self.embed(token)
        cells = []
        for i, layer in enumerate(self.layers):
            xg = layer.w_x(x)
            if i == 0:
                xg = xg + state["cond_gates"]
            h, c = layer.step(xg, state["cells"][i])
            cells.append((h, c))
            x = h
        return self.head(x).astype(jnp.float32), {"cells": tuple(cells), "cond_gates": state["cond_gates"]}
