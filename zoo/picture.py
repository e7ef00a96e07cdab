"""A person's own picture as an image model's input: any file Pillow opens, at any size, in any colour.

The Fashion-MNIST models were trained on 28x28 grey pictures, a light object on a black background, centred
and filling the frame; the emoji models on 64x64 colour pictures on white (`light_background`). A photo or
a drawing is brought there in steps, each reported:

1. converted to the model's grey or RGB (transparency over white, palette, 16-bit: Pillow's conversions);
2. inverted when its border is the opposite of the model's background (light for Fashion-MNIST, as photos
   usually are; dark for the emoji models);
3. cropped to its content (pixels clearly off the background) and padded to a square, so the object fills
   the frame as the training images do (an image already at the model's size is left as it is);
4. resized with Lanczos filtering to the model's size.
"""

from __future__ import annotations

import pathlib

import numpy as np

from zoo.errors import UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")
CONTENT_LEVEL = 0.15  # a pixel this far from the background is part of the object
MAX_PIXELS = 50_000_000


def names_a_picture(text: str) -> bool:
    """Whether an --interpolate end is meant as a picture file (by its suffix) rather than a prompt."""
    return pathlib.Path(text).suffix.lower() in IMAGE_SUFFIXES


def load_image(path: str | pathlib.Path, shape: tuple[int, int, int],
               light_background: bool = False) -> tuple[np.ndarray, list[str]]:
    """(float32 [H, W, C] in [0, 1] as the model sees images, what was done to it) for the file at `path`.
    The model's pictures are drawn on black (Fashion-MNIST), or on white with `light_background` (emoji)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    height, width, channels = shape
    try:
        with Image.open(path) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise UsageError(f"{path} is {opened.width}x{opened.height}: too large for a model input")
            original = f"{opened.width}x{opened.height} {opened.mode}"
            opened.load()
            image = ImageOps.exif_transpose(opened)  # a phone photo's rotation
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise UsageError(f"cannot read {path} as an image ({type(e).__name__}): give a PNG or JPEG file") from None
    notes = []
    if image.mode.startswith(("I", "F")):  # 16- or 32-bit grey: Pillow's conversion to 8 bits clips, so scale
        values = np.asarray(image, np.float32)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        image = Image.fromarray(np.round(np.clip(values / top, 0, 1) * 255).astype(np.uint8))
        notes.append(f"scaled from {original.split()[-1]} to 8 bits")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
        notes.append("transparency over white")
    target_mode = "L" if channels == 1 else "RGB"
    if image.mode != target_mode:
        image = image.convert(target_mode)
        notes.append(f"converted to {'grey' if channels == 1 else 'RGB'}")
    pixels = np.asarray(image, np.float32) / 255.0
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    if light_background:  # worked on as its negative, on black, and turned back at the end
        pixels = 1.0 - pixels
    grey = pixels.mean(axis=-1)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if border.mean() > 0.5:
        pixels = 1.0 - pixels
        grey = 1.0 - grey
        notes.append(f"inverted (a {'dark' if light_background else 'light'} background)")
    if pixels.shape[:2] != (height, width):
        content = np.argwhere(np.abs(grey - np.median(np.concatenate(
            [grey[0], grey[-1], grey[:, 0], grey[:, -1]]))) > CONTENT_LEVEL)
        if len(content) == 0:
            raise UsageError(f"{path} is blank: no object stands out from its background")
        (top, left), (bottom, right) = content.min(axis=0), content.max(axis=0) + 1
        side = max(bottom - top, right - left)
        square = np.zeros((side, side, pixels.shape[-1]), np.float32)
        y0, x0 = (side - (bottom - top)) // 2, (side - (right - left)) // 2
        square[y0:y0 + bottom - top, x0:x0 + right - left] = pixels[top:bottom, left:right]
        square = np.round(square * 255.0).astype(np.uint8)
        resized = Image.fromarray(square[..., 0] if channels == 1 else square).resize((width, height),
                                                                                     Image.Resampling.LANCZOS)
        pixels = np.asarray(resized, np.float32) / 255.0
        pixels = pixels[..., None] if pixels.ndim == 2 else pixels
        notes.append(f"cropped to its content and resized to {width}x{height}")
    if light_background:
        pixels = 1.0 - pixels
    return pixels.astype(np.float32), [f"read {path} ({original})"] + notes
