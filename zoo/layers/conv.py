"""A transposed convolution whose kernel gradient is fast on the CPU: the decoders' and generators' layer.

Why: on the CPU, at the DCGAN and VAE shapes, XLA's gradient of a transposed convolution with respect to
its KERNEL takes 38-112 ms a layer, against 4-7 ms for the input gradient and 3-5 ms for the forward pass.
`conv_transpose` keeps lax's forward pass and input gradient and computes the kernel gradient itself: a
kernel tap meets each input pixel at one output phase only ("sub-pixel" view: output stride * m + r), so
the gradient of each tap is one matmul, output-phase slice x input slice contracted over batch and pixels,
several times faster (docs/performance.md).

`ConvTranspose` is nnx.ConvTranspose with exactly its parameters (kernel [kh, kw, in, out], bias [out])
and results (tests/test_conv.py checks values and both gradients against lax), so checkpoints do not depend
on which path ran. Off the CPU, for outputs with few channels, and for what this path does not cover (kernel
dilation, masks, circular padding, transpose_kernel) it runs nnx.ConvTranspose's own code.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

NHWC = ("NHWC", "HWIO", "NHWC")


def _taps(size: int, k: int, pad: tuple[int, int], dilation: int
          ) -> tuple[int, list[list[tuple[int, int]]], int, int, int]:
    """One spatial axis of a stride-1 conv with window `k` over an input of `size` dilated by `dilation` and
    padded by `pad`: output o = dilation * m + r reads input m + (r + t - pad[0]) / dilation through kernel
    index t wherever that divides. Returns (outputs, per phase r the taps [(t, offset)], outputs per phase,
    the front and back zero padding the undilated input needs so that every offset is in range)."""
    out = (size - 1) * dilation + 1 + pad[0] + pad[1] - k + 1
    taps = [[(t, (r + t - pad[0]) // dilation) for t in range(k) if (r + t - pad[0]) % dilation == 0]
            for r in range(dilation)]
    per_phase = math.ceil(out / dilation)
    offsets = [d for phase in taps for _, d in phase] or [0]
    return out, taps, per_phase, max(0, -min(offsets)), max(0, per_phase - 1 + max(offsets) - (size - 1))


def use_cpu_kernel_grad(out_features: int) -> bool:
    """On the CPU, for outputs of 8+ channels (with one or a few, lax's kernel gradient is a cheap reduction
    and faster); elsewhere the backend's own gradient (cuDNN, TPU)."""
    return jax.default_backend() == "cpu" and out_features >= 8


def _pair(value: int | Sequence[int] | None) -> tuple[int, int]:
    if value is None:
        return (1, 1)
    return (int(value), int(value)) if isinstance(value, int) else tuple(int(v) for v in value)


def transpose_pads(k: int, s: int, padding: str | tuple[int, int]) -> tuple[int, int]:
    """The padding lax.conv_transpose gives the dilated input (its `_conv_transpose_padding`)."""
    if padding == "SAME":
        pad_len = k + s - 2
        pad_a = k - 1 if s > k - 1 else math.ceil(pad_len / 2)
    elif padding == "VALID":
        pad_len = k + s - 2 + max(k - s, 0)
        pad_a = k - 1
    else:
        pad_a, pad_len = padding[0], padding[0] + padding[1]
    return pad_a, pad_len - pad_a


class ConvTranspose(nnx.ConvTranspose):
    """nnx.ConvTranspose whose kernel gradient is `conv_transpose`'s on the CPU (the forward pass and input
    gradient are lax's; same parameters and results). Padding "SAME", "VALID" or explicit (lo, hi) pairs;
    anything else (int paddings, kernel dilation, masks, circular padding) runs nnx's own code."""

    def __call__(self, inputs: jax.Array) -> jax.Array:
        dilation = _pair(self.kernel_dilation)
        explicit = (isinstance(self.padding, str) and self.padding in ("SAME", "VALID")) or (
            not isinstance(self.padding, str | int) and all(isinstance(p, tuple | list) and len(p) == 2
                                                            for p in self.padding))
        if (not explicit or not use_cpu_kernel_grad(self.out_features) or self.mask is not None
                or self.transpose_kernel or any(d != 1 for d in dilation) or inputs.ndim != 4):
            return super().__call__(inputs)
        strides = _pair(self.strides)
        kernel = self.kernel[...]
        bias = self.bias[...] if self.bias is not None else None
        inputs, kernel, bias = self.promote_dtype((inputs, kernel, bias), dtype=self.dtype)
        padding = self.padding if isinstance(self.padding, str) else [tuple(p) for p in self.padding]
        pads = [transpose_pads(kernel.shape[i], strides[i], padding if isinstance(padding, str) else padding[i])
                for i in range(2)]
        y = conv_transpose(inputs, kernel, tuple(strides), tuple(tuple(p) for p in pads))
        if bias is not None:
            y = y + bias
        return y


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_transpose(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                   pads: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
    """lax.conv_transpose (as conv_general_dilated with input dilation `strides` and explicit `pads`) whose
    kernel gradient is computed as patch matmuls: XLA's own kernel gradient of a transposed convolution is
    the slow part on the CPU (see the module docstring), while the patch form is one matmul per kernel tap
    over the batch and image."""
    return lax.conv_general_dilated(x, kernel, (1, 1), pads, lhs_dilation=strides, dimension_numbers=NHWC)


def _conv_transpose_fwd(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                        pads: tuple[tuple[int, int], tuple[int, int]]) -> tuple[jax.Array, tuple]:
    return conv_transpose(x, kernel, strides, pads), (x, kernel)


def _conv_transpose_bwd(strides: tuple[int, int], pads: tuple[tuple[int, int], tuple[int, int]], residuals: tuple,
                        dy: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, kernel = residuals
    _, input_vjp = jax.vjp(lambda x_: lax.conv_general_dilated(x_, kernel, (1, 1), pads, lhs_dilation=strides,
                                                                dimension_numbers=NHWC), x)
    return input_vjp(dy)[0], _transpose_kernel_grad(x, dy, kernel.shape, strides, pads)


def _transpose_kernel_grad(x: jax.Array, dy: jax.Array, shape: tuple[int, ...], strides: tuple[int, int],
                           pads: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
    """d loss / d kernel of `conv_transpose`: kernel tap (t_h, t_w) meets input pixel m + d only at the
    outputs of one phase (stride * m + r), so its gradient is one matmul, output-phase slice x input slice,
    contracted over batch and pixels. Every tap belongs to exactly one phase."""
    (out_h, taps_h, m_h, front_h, back_h), (out_w, taps_w, m_w, front_w, back_w) = (
        _taps(x.shape[1 + i], shape[i], pads[i], strides[i]) for i in range(2))
    xp = jnp.pad(x, ((0, 0), (front_h, back_h), (front_w, back_w), (0, 0)))
    dyp = jnp.pad(dy, ((0, 0), (0, m_h * strides[0] - out_h), (0, m_w * strides[1] - out_w), (0, 0)))
    per_tap = {}  # (t_h, t_w) -> [O, I]
    for r_h, row_taps in enumerate(taps_h):
        for r_w, col_taps in enumerate(taps_w):
            phase = dyp[:, r_h::strides[0], r_w::strides[1]]  # [B, m_h, m_w, O]
            for t_h, d_h in row_taps:
                for t_w, d_w in col_taps:
                    patch = xp[:, d_h + front_h:d_h + front_h + m_h, d_w + front_w:d_w + front_w + m_w]
                    per_tap[t_h, t_w] = lax.dot_general(phase, patch, (((0, 1, 2), (0, 1, 2)), ((), ())))
    # The phase is each dot's LEFT operand, the one XLA's CPU dot copies into a transposed layout: so the
    # copy is made once per phase and shared by its taps, not once per input patch. The transpose to
    # [kh, kw, I, O] is one, at the end: a transpose per tap makes XLA swap the operands back.
    grad = jnp.stack([jnp.stack([per_tap[t_h, t_w] for t_w in range(shape[1])]) for t_h in range(shape[0])])
    return grad.transpose(0, 1, 3, 2)


conv_transpose.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)
