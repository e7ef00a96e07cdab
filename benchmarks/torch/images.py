"""What the image twins (dcgan, vae) share: Flax's "SAME" convolutions in PyTorch, and the caption table.

Flax pads "SAME" convolutions the way XLA does, which PyTorch's `padding=` cannot always say:
- `nnx.Conv(strides=s, padding="SAME")`: output ceil(n / s), total padding max((out - 1) s + k - n, 0), the
  odd pixel at the END (28 -> 14 with k=4, s=2 pads (1, 1): torch's padding=1; 7 -> 4 would pad (1, 2)).
- `nnx.ConvTranspose(strides=s, padding="SAME")` (`lax.conv_transpose`, `transpose_kernel=False`): output
  n * s, the dilated input padded (pad_a, pad_b) = (ceil((k + s - 2) / 2), floor(...)) and CORRELATED with the
  kernel as stored, where torch's conv_transpose2d correlates with the spatially flipped kernel. For k=4, s=2
  the padding (2, 2) is torch's padding=1; for k=3, s=2 it is (2, 1), which torch reaches only with padding=0
  and a crop. The flip does not matter for training (the initial distributions are symmetric), only for
  copying Flax weights: torch_weight[i, o] = flax_kernel[::-1, ::-1, i, o].
The modules below compute what Flax computes (checked with copied weights against nnx.Conv / ConvTranspose
for kernels 3, 4, 5, strides 1, 2 and sizes 7, 8, 14, 28: relative error <= 2e-7) and use torch's built-in
padding whenever it is symmetric, so the common cases cost no extra pad or crop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoo.layers.conv import transpose_pads


def same_conv_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of XLA's "SAME" for one spatial dimension of `size` pixels."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """nn.Conv2d with Flax/XLA "SAME" padding (computed from the input size, so odd sizes pad at the end)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel, stride, padding=0, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        ph = same_conv_padding(x.shape[-2], kh, sh)
        pw = same_conv_padding(x.shape[-1], kw, sw)
        if ph[0] == ph[1] and pw[0] == pw[1]:
            return F.conv2d(x, self.weight, self.bias, self.stride, (ph[0], pw[0]))
        return F.conv2d(F.pad(x, (*pw, *ph)), self.weight, self.bias, self.stride)


class SameConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d computing Flax's ConvTranspose(padding="SAME") (up to the kernel flip in the
    module docstring): output size exactly n * stride, torch's padding/output_padding where they can express
    the padding, a one-pixel crop at the end where they cannot (odd kernels with stride 2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, bias: bool = True):
        before, after = transpose_pads(kernel, stride, "SAME")
        extra = after - before  # >= 0: output_padding; < 0: crop that many at the end
        super().__init__(in_channels, out_channels, kernel, stride, padding=kernel - 1 - before,
                         output_padding=max(extra, 0), bias=bias)
        self.crop = max(-extra, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return y[..., :y.shape[-2] - self.crop, :y.shape[-1] - self.crop] if self.crop else y


def nhwc(x: torch.Tensor) -> torch.Tensor:
    """NCHW (torch's layout) -> NHWC (the JAX batches' and samples' layout), as a view."""
    return x.permute(0, 2, 3, 1)


def nchw(x: torch.Tensor) -> torch.Tensor:
    """A JAX batch's NHWC images -> NCHW."""
    return x.permute(0, 3, 1, 2).contiguous()


def caption_table(config: Any) -> tuple[np.ndarray, np.ndarray]:
    """(float32 [N, 384] caption embeddings, the first caption id of each class) for `config.data`, exactly
    the table the JAX task embeds (zoo.text.captions caches it on disk, so this is a file read). The DCGAN
    task gathers its `cond` rows from it inside the jitted step (its batches carry only `caption_id`), and
    both twins sample with the first caption of each class in turn."""
    from zoo.data import image_captions
    from zoo.data import images as image_data
    from zoo.text.captions import embed_captions

    dataset = image_data.load_images(config.data)
    captions, classes = image_captions.caption_table(image_captions.class_captions(dataset))
    table = np.asarray(embed_captions(captions), np.float32)
    return table, np.searchsorted(classes, np.arange(dataset.num_classes))


def sample_conditions(table: np.ndarray, first: np.ndarray, count: int) -> torch.Tensor:
    """`count` caption embeddings [count, 384] cycling through the classes (the first caption of each), from
    what `caption_table` returns."""
    return torch.from_numpy(table[first[np.arange(count) % len(first)]])
