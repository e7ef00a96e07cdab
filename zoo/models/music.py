"""A caption-conditioned multi-layer LSTM over melody events (the `music` model), in Flax NNX.

    tokens [B, T] --embed--> x_t ; cond [B, 384] (a sentence embedding of the tune's caption)
    layer l:  gates_t = x_t W_x + h_{t-1} W_h + b  (+ cond W_c on layer 0)   -> i, f, g, o -> (h_t, c_t)
    logits_t = Linear(dropout(h_t of the last layer))  (float32)

The caption embedding enters twice: it sets every layer's initial (h, c) (through one tanh projection),
and it is added to layer 0's gate pre-activations at every step (the same as concatenating it to each
input), so the model cannot forget the prompt over a long tune.

Each layer is one `jax.lax.scan` over time that reads and writes the batch-major arrays at each step.
The input part of the gates (x W_x + b, and the caption's part) does not depend on the recurrence, so it
is one big matmul over all steps before the scan; inside the scan each step does one fused [H, 4H]
matmul. `step` runs the same cells for a single token, so a sampler can carry the state in a
`lax.while_loop`; `__call__` equals running `step` token by token.

Like zoo/models/lm.py the model holds no RNG state: dropout draws from an `nnx.Rngs` given at call time.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.layers.dropout import Dropout
from zoo.layers.linear import Linear

# {"cells": one (h, c) pair per layer, each [B, hidden_dim]; "cond_gates": [B, 4 * hidden_dim]}, in the
# compute dtype: a plain pytree, so a sampler can carry it through a lax.while_loop.
MelodyState = dict[str, Any]


def _cell(gates: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """LSTM update from fused pre-activations [B, 4H] (order i, f, g, o). The cell runs in float32."""
    h_new, c_new = _cell_f32(gates.astype(jnp.float32), c.astype(jnp.float32))
    return h_new.astype(gates.dtype), c_new.astype(gates.dtype)


@jax.custom_vjp
def _cell_f32(gates: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(h, c) of one LSTM step, with a hand-written backward pass (`step`'s cell, and the unit under test of
    `_cell_fwd` / `_cell_bwd`, which `_recurrence`'s loops call directly). Why the hand-written pass: for
    autodiff a scan keeps 13 [T, B, H] arrays of intermediates per layer; `_cell_fwd` keeps the activated
    gates, c and tanh(c_new) (6 x H per step), which made the music step 3-7% faster (docs/performance.md)."""
    return _cell_fwd(gates, c)[0]


def _gate_scale(width: int) -> tuple[jax.Array, jax.Array]:
    """(scale, is_g) over the fused gate axis [4H] (order i, f, g, o): 1 on g's columns, 0.5 on the others."""
    column = jnp.arange(width)
    is_g = (column >= width // 2) & (column < 3 * width // 4)
    return jnp.where(is_g, 1.0, 0.5), is_g


def _cell_fwd(gates: jax.Array, c: jax.Array) -> tuple[tuple[jax.Array, jax.Array], tuple]:
    # All four activations in one elementwise pass over [B, 4H], as sigmoid(x) = 0.5 tanh(0.5 x) + 0.5:
    # splitting first made XLA's CPU backend run four fusions and a concatenation per step (the music step
    # 5% slower in one process, 1-2% between processes; docs/performance.md). For x < -9 the tanh form's
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


def _forward_loop(xg: jax.Array, state: tuple[jax.Array, jax.Array], kernel: jax.Array, keep_residuals: bool
                  ) -> tuple[tuple[jax.Array, jax.Array], jax.Array, Any]:
    """Run the recurrence over batch-major xg [B, T, 4H] -> (final (h, c), h of every step [B, T, H], and with
    keep_residuals each step's cell residuals, stacked time-major for the backward loop)."""
    batch, steps, _ = xg.shape
    kernel = kernel.astype(xg.dtype)

    def body(carry, t):
        h, c, hs = carry
        gates = jax.lax.dynamic_index_in_dim(xg, t, axis=1, keepdims=False) + h @ kernel
        # `_cell`'s casts, unrolled here because the loop keeps `_cell_fwd`'s residuals for `_recurrence_bwd`
        (h, c), residuals = _cell_fwd(gates.astype(jnp.float32), c.astype(jnp.float32))
        h, c = h.astype(xg.dtype), c.astype(xg.dtype)
        return (h, c, jax.lax.dynamic_update_index_in_dim(hs, h, t, axis=1)), (residuals if keep_residuals else None)

    h, c = (part.astype(xg.dtype) for part in state)
    hs = jnp.zeros((batch, steps, h.shape[-1]), xg.dtype)
    (h, c, hs), residuals = jax.lax.scan(body, (h, c, hs), jnp.arange(steps))
    return (h, c), hs, residuals


@jax.custom_vjp
def _recurrence(xg: jax.Array, state: tuple[jax.Array, jax.Array], kernel: jax.Array
                ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
    """The recurrence over batch-major xg [B, T, 4H] -> (final (h, c), h of every step [B, T, H]), with both
    loops written out. Why:
    - The loops index the batch-major arrays at step t (strided rows) instead of scanning over time-major
      copies: no [B, T, .] <-> [T, B, .] transposes of the gates, of h and of their gradients (about 100 MB
      a layer each way).
    - The recurrent kernel's gradient is ONE matmul after the backward loop. Autodiff of the scan would add
      each step's h_{t-1}^T dgates_t ([H, B] x [B, 4H]) into a [H, 4H] accumulator, reading and writing the
      whole matrix T times.
    Why: docs/performance.md ("The music LSTM"). Values and
    gradients equal autodiff of a textbook scan (tests/test_music_model.py). Needs T >= 1."""
    state, hs, _ = _forward_loop(xg, state, kernel, keep_residuals=False)
    return state, hs


def _recurrence_fwd(xg: jax.Array, state: tuple[jax.Array, jax.Array], kernel: jax.Array) -> tuple:
    state_out, hs, residuals = _forward_loop(xg, state, kernel, keep_residuals=True)
    return (state_out, hs), (residuals, state, hs, kernel)


def _recurrence_bwd(saved: tuple, cotangents: tuple) -> tuple:
    residuals, (h0, c0), hs, kernel = saved
    (dh_last, dc_last), d_hs = cotangents
    dtype = hs.dtype
    kernel_t = kernel.astype(dtype).T

    def body(carry, step):
        dh, dc, d_xg = carry
        t, cell_residuals = step
        dh = dh + jax.lax.dynamic_index_in_dim(d_hs, t, axis=1, keepdims=False)
        d_gates, dc = _cell_bwd(cell_residuals, (dh.astype(jnp.float32), dc.astype(jnp.float32)))
        d_gates = d_gates.astype(dtype)  # the casts mirror the forward's, as autodiff's would
        d_xg = jax.lax.dynamic_update_index_in_dim(d_xg, d_gates, t, axis=1)
        return (d_gates @ kernel_t, dc.astype(dtype), d_xg), None

    d_xg = jnp.zeros((*hs.shape[:2], kernel.shape[-1]), dtype)
    (dh0, dc0, d_xg), _ = jax.lax.scan(body, (dh_last.astype(dtype), dc_last.astype(dtype), d_xg),
                                       (jnp.arange(hs.shape[1]), residuals), reverse=True)
    h_prev = jnp.concatenate([h0[:, None].astype(dtype), hs[:, :-1]], axis=1)  # h_{t-1} for every step
    # [B, T] merged into one row axis, batch first: with the batch split over devices, each device contracts
    # its own rows and the [H, 4H] partial sums are all-reduced (time first, XLA all-gathered the operands).
    rows = h_prev.shape[0] * h_prev.shape[1]
    d_kernel = jax.lax.dot_general(h_prev.reshape(rows, -1), d_xg.reshape(rows, -1), (((0,), (0,)), ((), ())),
                                   preferred_element_type=jnp.float32)
    return d_xg, (dh0.astype(h0.dtype), dc0.astype(c0.dtype)), d_kernel.astype(kernel.dtype)


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
