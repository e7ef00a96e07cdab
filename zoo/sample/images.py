"""Images from a text prompt: prompt -> a condition -> generator (or decoder) -> PNG.

Two readings of a prompt, as the export's images.json says (`prompt_reading`):

- "class" (`dcgan`, `vae`: Fashion-MNIST's ten named classes): the models were trained on sentence
  embeddings of class captions ("an ankle boot", "a pair of trousers", ...). A free prompt is embedded by the
  same encoder and compared with every caption; the class with the best caption wins, and the model is
  conditioned on that caption's embedding, so a prompt cannot push it off the caption manifold. A prompt
  that names no class lands on the class it resembles most: "summer beach" is read as sandals.
- "embedding" (`dcgan-emoji`, `vae-emoji`: 1,940 concepts with words of their own): the prompt's own
  embedding is the condition, followed by a one-hot of the artwork style (`--style`, or each in turn), and
  the sampler reports the training captions nearest to it.

Both families expose `sample(cond, key, temperature) -> images in [0, 1]`; one jitted call draws the whole
batch from `jax.random.PRNGKey(seed)`, so the same seed gives byte-identical PNGs. `--interpolate A B`
(either family) keeps the noise fixed (the latent itself, unless the prior moves with the caption) and moves
the conditioning from caption A's embedding to caption B's along the great circle (slerp), one image per step.

The encoder reads English: a Chinese prompt is first glossed into English word by word
(zoo.text.encoder.english_reading: 短靴 -> "ankle boots"); a prompt in another language lands near whatever
caption shares its few recognisable tokens, i.e. close to chance (the reported cosine, typically < 0.4,
says so).
"""

from __future__ import annotations

import functools
import io
import json
import logging
import math
import pathlib
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from zoo import export
from zoo.errors import UsageError
from zoo.models import vae_mixture
from zoo.models.dcgan import DCGAN
from zoo.models.vae import ConvVAE, pixel_nll

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class ImageReading:
    """How the sampler read a prompt: the class it chose, the caption it conditions on, and class scores;
    or (`direct`) the prompt's own embedding, with the training captions nearest to it."""

    class_index: int  # the chosen class; direct: the class of the nearest caption
    caption: str  # the caption conditioned on; direct: the prompt as the encoder read it
    cond: np.ndarray  # float32 [384]: the caption's embedding, or the prompt's
    scores: tuple[tuple[str, float], ...]  # (class name, best caption cosine), best first; direct: (caption, cosine)
    direct: bool = False

    def describe(self) -> str:
        if self.direct:
            nearest = ", ".join(f'"{caption}" {score:.2f}' for caption, score in self.scores[:3])
            return f'"{self.caption}" as it is; nearest training captions: {nearest}'
        others = ", ".join(f"{name} {score:.2f}" for name, score in self.scores[1:3])
        return f'"{self.caption}" ({self.scores[0][0]}, {self.scores[0][1]:.2f}; next: {others})'


class ImageSampler:
    """Loads an export of an image model and turns prompts into uint8 images; a family's sampler (below)
    names the model class its exports hold."""

    extension = "png"
    options = ("temperature", "interpolate", "style")
    model_class: type
    family: str

    def __init__(self, export_dir: pathlib.Path, encoder: Any = None):
        export_dir = pathlib.Path(export_dir)
        self.config = export.load_config(export_dir)
        export.require(export_dir, self.family)
        try:
            self.info = json.loads((export_dir / export.IMAGES).read_text(encoding="utf-8"))
            self.table = np.load(export_dir / self.info["embeddings"]).astype(np.float32)
        except (OSError, ValueError, KeyError) as e:
            raise UsageError(f"{export_dir} lacks its image assets ({export.IMAGES} and embeddings): {e}") from None
        self.class_names = list(self.info["class_names"])
        # "embedding": a model of thousands of concepts is conditioned on the prompt's own embedding; "class":
        # one of a few named classes is conditioned on the caption of the class the prompt names.
        self.direct = self.info.get("prompt_reading", "class") == "embedding"
        self.styles = list(self.info.get("styles", []))  # artwork styles, a one-hot after the embedding
        self.captions = list(self.info["captions"])
        self.caption_classes = np.asarray(self.info["caption_classes"], np.int32)
        if len(self.captions) != len(self.table) or len(self.caption_classes) != len(self.captions):
            raise UsageError(f"{export_dir}: captions, their classes and embeddings do not match")
        self.graphdef, self.params = export.load_model(export_dir, self.config, self.model_class,
                                                       self.info.get("exported_module"), **self.info["model_dims"])
        # The spread of the latent noise when --temperature is not given: the export's `sample_temperature`.
        self.default_temperature = float(self.info.get("sample_temperature", 1.0))
        self.mixture = None  # a VAE's per-class ex-post latent mixtures (zoo.objectives.vae.fit_latent_mixtures)
        if self.info.get("latent_mixture"):
            try:
                with np.load(export_dir / self.info["latent_mixture"]) as f:
                    self.mixture = {k: np.asarray(f[k], np.float32) for k in ("log_weights", "means", "chol")}
            except (OSError, ValueError, KeyError) as e:
                raise UsageError(f"{export_dir}: cannot read its latent mixture: {e}") from None
            if len(self.mixture["means"]) != len(self.class_names):
                raise UsageError(f"{export_dir}: {len(self.mixture['means'])} latent mixtures for "
                                 f"{len(self.class_names)} classes")
        self._encoder = encoder

    @property
    def encoder(self) -> Any:
        from zoo.text.encoder import shared_encoder  # deferred: loading the weights costs ~1 s

        return self._encoder or shared_encoder()

    def read_prompt(self, prompt: str) -> ImageReading:
        """The class whose captions are nearest to `prompt`, and the nearest caption of that class; or, for a
        model conditioned on free embeddings, the prompt's own embedding and the captions nearest to it."""
        from zoo.text.encoder import english_reading

        english = english_reading(prompt, self.encoder, self.table, by_nearest_caption=self.direct)
        embedding = self.encoder.embed([english])[0]
        similarity = self.table @ embedding
        if self.direct:
            nearest: dict[str, int] = {}  # caption -> row, the first (best) of repeated captions
            for i in np.argsort(-similarity, kind="stable"):
                nearest.setdefault(self.captions[i], int(i))
                if len(nearest) == NEAREST_CAPTIONS:
                    break
            rows = list(nearest.values())
            return ImageReading(int(self.caption_classes[rows[0]]), english, embedding,
                                tuple((self.captions[i], float(similarity[i])) for i in rows), direct=True)
        best = {}
        for i in np.argsort(-similarity, kind="stable"):
            best.setdefault(int(self.caption_classes[i]), int(i))
        ranked = sorted(best, key=lambda c: -similarity[best[c]])
        chosen = best[ranked[0]]
        scores = tuple((self.class_names[c], float(similarity[best[c]])) for c in ranked)
        return ImageReading(ranked[0], self.captions[chosen], self.table[chosen], scores)

    def class_condition(self, class_index: int, style: int = 0) -> np.ndarray:
        """The condition of the first caption of a class (in artwork style `style`, for a model of several):
        what benchmarks condition on for a class."""
        rows = np.flatnonzero(self.caption_classes == class_index)
        if not len(rows):
            raise UsageError(f"class {class_index} has no captions")
        return self.condition(self.table[rows[0]][None], [style])[0]

    def condition(self, embeddings: np.ndarray, styles: np.ndarray | list[int]) -> np.ndarray:
        """The model's conditions for embeddings [N, 384] and style indices [N] (ignored by a model of one style)."""
        from zoo.text.conditions import with_style

        return with_style(embeddings, styles, len(self.styles))

    def style_indices(self, num: int, style: str | None, seed: int = 0) -> np.ndarray:
        """Each of `num` images' artwork style: `style` for all of them, else (several styles) every style in
        turn, from one picked by `seed`. UsageError for a style the model does not draw."""
        if style is None:
            return (seed + np.arange(num)) % max(len(self.styles), 1)
        if not self.styles:
            raise UsageError(f"--style applies to models drawn in several artwork styles (dcgan-emoji, vae-emoji); "
                             f"this {self.family} has one")
        if style not in self.styles:
            raise UsageError(f"unknown --style {style!r}; this model draws {', '.join(self.styles)}")
        return np.full(num, self.styles.index(style))

    def sample(self, prompt: str | None, num: int, seed: int, *, temperature: float | None = None,
               interpolate: tuple[str, str] | None = None, style: str | None = None) -> list[np.ndarray]:
        """`num` uint8 images [H, W, C] for `prompt`, or an interpolation between two prompts (temperature
        None: the export's default, resolved by sample_cond / interpolate); `style`: see `style_indices`."""
        styles = self.style_indices(num, style, seed)
        if interpolate is not None:
            return self.interpolate(*interpolate, num=num, seed=seed, temperature=temperature,
                                    style=int(styles[0]))
        reading = self.read_prompt(prompt)
        log.info("read the prompt %r as %s", prompt, reading.describe())
        if self.styles:
            log.info("styles: %s", ", ".join(self.styles[s] for s in styles))
        return self.sample_cond(self.condition(np.tile(reading.cond[None], (num, 1)), styles), seed, temperature,
                                classes=None if reading.direct else np.full(num, reading.class_index))

    def sample_cond(self, cond: np.ndarray, seed: int, temperature: float | None = None, same_latent: bool = False,
                    classes: np.ndarray | None = None) -> list[np.ndarray]:
        """uint8 images for conditioning rows cond [N, cond_dim]; `same_latent` draws every row with the same
        random numbers (one latent for all, but with latent mixtures one per class: the same noise, through
        each class's own components).
        Given each row's class, a VAE with latent mixtures draws its latents from the class's mixture;
        otherwise from the model's own prior p(z | c). Temperature None: the export's default."""
        temperature = self.default_temperature if temperature is None else float(temperature)
        key = jax.random.PRNGKey(seed)
        cond = np.asarray(cond, np.float32)
        if self.mixture is not None and classes is not None:
            images = _decode_jit(self.graphdef, self.params, cond, self._mixture_latents(classes, key, temperature,
                                                                                        same_latent))
        else:
            images = _sample_jit(self.graphdef, self.params, cond, key, temperature=temperature,
                                 same_latent=same_latent)
        return _to_uint8(images)

    def _mixture_latents(self, classes: np.ndarray, key: jax.Array, temperature: float,
                         same_latent: bool = False) -> jax.Array:
        """Latents [N, D] from the mixtures of `classes` [N]; `same_latent`: one draw (the same key per row)."""
        rows = jnp.asarray(classes, jnp.int32)
        if same_latent:
            return jax.vmap(lambda r: _mixture_sample_jit(self.mixture, r[None], key, temperature)[0])(rows)
        return _mixture_sample_jit(self.mixture, rows, key, temperature)

    def interpolate(self, start: str, end: str, num: int, seed: int,
                    temperature: float | None = None, style: int = 0) -> list[np.ndarray]:
        """`num` (at least 2) images from `start`'s reading to `end`'s, the noise fixed."""
        temperature = self.default_temperature if temperature is None else float(temperature)
        if num < 2:
            raise UsageError("--interpolate needs --num >= 2 (the number of steps, ends included)")
        from zoo.picture import names_a_picture

        if names_a_picture(start) or names_a_picture(end):
            raise UsageError(f"--interpolate between pictures needs a model that encodes them (vae), not {self.family}")
        a, b = self.read_prompt(start), self.read_prompt(end)
        log.info("interpolating from %s to %s in %d steps", a.describe(), b.describe(), num)
        t = np.linspace(0.0, 1.0, num)
        cond = self.condition(slerp(a.cond, b.cond, t), np.full(num, style))
        if self.mixture is None:
            return self.sample_cond(cond, seed, temperature, same_latent=True)
        # One draw (the same noise) from each end's class mixture, the latent moving in a straight line.
        ends = self._mixture_latents(np.array([a.class_index, b.class_index]), jax.random.PRNGKey(seed),
                                     temperature, same_latent=True)
        z = (1.0 - t[:, None]) * np.asarray(ends[0]) + t[:, None] * np.asarray(ends[1])
        return _to_uint8(_decode_jit(self.graphdef, self.params, cond, z.astype(np.float32)))

    @staticmethod
    def to_files(images: list[np.ndarray], one_file: bool) -> list[bytes]:
        """One PNG per image, or (one_file) a single PNG: the grid of them all, or the one image itself."""
        if one_file and len(images) > 1:
            return [png_bytes(grid(images))]
        return [png_bytes(image) for image in images]


class DCGANSampler(ImageSampler):
    model_class, family = DCGAN, "dcgan"


class VAESampler(ImageSampler):
    """A VAE also reads pictures: `--init FILE` draws variations around the picture's latent, and
    `--interpolate A.png B.png` morphs between two pictures' latents."""

    model_class, family = ConvVAE, "vae"
    options = ("temperature", "interpolate", "init", "style")

    def sample(self, prompt: str | None, num: int, seed: int, *, temperature: float | None = None,
               interpolate: tuple[str, str] | None = None, init: str | None = None,
               style: str | None = None) -> list[np.ndarray]:
        from zoo.picture import names_a_picture

        if interpolate is not None and any(names_a_picture(p) for p in interpolate):
            return self.interpolate_images(*interpolate, num=num, style=style)
        if init is not None:
            return self.variations(init, prompt, num, seed, temperature, style=style)
        return super().sample(prompt, num, seed, temperature=temperature, interpolate=interpolate, style=style)

    def encode_image(self, path: str, prompt: str | None = None,
                     style: str | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        """(latent mean [latent_dim], condition [cond_dim], class) of the picture at `path`. The class is the
        prompt's reading if one is given, else the one under which the model explains the picture best (the
        highest evidence bound, estimated at the posterior mean); a model of several artwork styles reads it
        in `style` (default: its first)."""
        from zoo.picture import load_image

        pixels, notes = load_image(path, tuple(self.info["image_shape"]), light_background=bool(self.styles))
        log.info("%s", "; ".join(notes))
        style_index = int(self.style_indices(1, style)[0])
        if prompt is not None:
            reading = self.read_prompt(prompt)
            classes = [reading.class_index]
            conds = self.condition(reading.cond[None], [style_index])
        else:
            classes = list(range(len(self.class_names)))
            conds = np.stack([self.class_condition(c, style_index) for c in classes])
        mu, evidence = _encode_jit(self.graphdef, self.params, np.repeat(pixels[None], len(classes), axis=0), conds)
        best = int(np.argmax(np.asarray(evidence)))
        if prompt is None:
            order = np.argsort(-np.asarray(evidence))
            runner_up = (f"; next: {self.class_names[order[1]]} {float(evidence[order[1]]):.1f}"
                         if len(order) > 1 else "")
            log.info("read %s as %s (evidence bound %.1f nats%s)", path, self.class_names[best],
                     float(evidence[best]), runner_up)
        return np.asarray(mu[best]), conds[best], classes[best]

    def variations(self, path: str, prompt: str | None, num: int, seed: int,
                   temperature: float | None = None, style: str | None = None) -> list[np.ndarray]:
        """`num` images around the picture's latent: z = mean + temperature x (the prior's spread) x noise;
        temperature 0 gives the model's reconstruction, 1 strays as far as a fresh draw from the prior."""
        mu, cond, _ = self.encode_image(path, prompt, style)
        return self.around(mu, cond, num, seed, temperature)

    def around(self, mu: np.ndarray, cond: np.ndarray, num: int, seed: int,
               temperature: float | None = None) -> list[np.ndarray]:
        """`num` images decoded from latents drawn around `mu` (see `variations`)."""
        temperature = INIT_TEMPERATURE if temperature is None else float(temperature)
        images = _variations_jit(self.graphdef, self.params, mu, np.tile(cond[None], (num, 1)),
                                 jax.random.PRNGKey(seed), np.float32(temperature))
        return _to_uint8(images)

    def interpolate_images(self, start: str, end: str, num: int, style: str | None = None) -> list[np.ndarray]:
        """`num` (at least 2) images from one picture's latent and class to the other's, in a straight line."""
        if num < 2:
            raise UsageError("--interpolate needs --num >= 2 (the number of steps, ends included)")
        for path in (start, end):  # one picture and one prompt, or a mistyped path: say so
            if not pathlib.Path(path).is_file():
                raise UsageError(f"--interpolate between pictures needs two picture files; {path} is not one")
        (a, ca, _), (b, cb, _) = self.encode_image(start, style=style), self.encode_image(end, style=style)
        t = np.linspace(0.0, 1.0, num)
        z = ((1.0 - t[:, None]) * a + t[:, None] * b).astype(np.float32)
        d = self.table.shape[1]  # the caption embeddings move on the sphere; a style one-hot stays as it is
        cond = np.concatenate([slerp(ca[:d], cb[:d], t), np.tile(ca[None, d:], (num, 1))], axis=1)
        return _to_uint8(_decode_jit(self.graphdef, self.params, cond, z))


INIT_TEMPERATURE = 0.5  # --init's default: variations that keep the picture's class most of the time
NEAREST_CAPTIONS = 3  # a directly embedded prompt is reported with this many nearest training captions


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """A uint8 image [H, W, C] `factor` times larger, each pixel a factor x factor block (nearest neighbour:
    what the model drew, without the blur of a smooth resize)."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between unit vectors a and b at fractions t: rows [len(t), dim]."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    omega = math.acos(float(np.clip(a @ b, -1.0, 1.0)))
    if omega < 1e-6:
        return np.tile(a[None], (len(t), 1))
    t = np.asarray(t, np.float64)[:, None]
    return ((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / math.sin(omega)).astype(np.float32)


def grid(images: list[np.ndarray], pad: int = 2, cols: int | None = None) -> np.ndarray:
    """Images [H, W, C] tiled row by row, `cols` a row (default: a near-square grid), `pad` white pixels apart."""
    n = len(images)
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    h, w, c = images[0].shape
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i, image in enumerate(images):
        r, q = divmod(i, cols)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = image
    return out


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 [H, W, 1 or 3] image as PNG bytes (Pillow; deterministic for the same pixels)."""
    from PIL import Image

    pixels = image[..., 0] if image.shape[-1] == 1 else image
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _to_uint8(images: jax.Array) -> list[np.ndarray]:
    return list(np.asarray(jnp.round(jnp.clip(images, 0.0, 1.0) * 255.0), np.uint8))


@functools.partial(jax.jit, static_argnames=("temperature",))
def _mixture_sample_jit(mixture: dict, rows: jax.Array, key: jax.Array, temperature: float) -> jax.Array:
    return vae_mixture.sample(mixture, rows, key, temperature)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _encode_jit(graphdef: nnx.GraphDef, params: Any, x: jax.Array, cond: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(posterior means [B, D], evidence bound estimates [B]): the log-likelihood of x at the posterior mean
    (the model's own pixel likelihood; a Bernoulli model scores grey levels as probabilities) plus
    log p(mean | c) plus the posterior's entropy up to a constant."""
    model = nnx.merge(graphdef, params)
    mu, logvar = model.encode(x, cond)
    if model.likelihood == "bernoulli":  # grey levels as probabilities, clipped: what the Fashion figures used
        p = jnp.clip(model.mean(model.decode(mu, cond)), 1e-4, 1 - 1e-4)
        loglik = jnp.sum(x * jnp.log(p) + (1 - x) * jnp.log1p(-p), axis=(1, 2, 3))
    else:
        loglik = -pixel_nll(model.likelihood, model.decode(mu, cond), x)
    return mu, loglik + model.prior_log_prob(mu, cond) + 0.5 * jnp.sum(logvar, axis=-1)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _variations_jit(graphdef: nnx.GraphDef, params: Any, mu: jax.Array, cond: jax.Array, key: jax.Array,
                    temperature: jax.Array) -> jax.Array:
    model = nnx.merge(graphdef, params)
    _, _, prior_logvar = model.prior(cond)
    noise = jax.random.normal(key, (cond.shape[0], mu.shape[-1]), jnp.float32)
    return model.mean(model.decode(mu[None] + temperature * jnp.exp(0.5 * prior_logvar[:, 0]) * noise, cond))


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _decode_jit(graphdef: nnx.GraphDef, params: Any, cond: jax.Array, z: jax.Array) -> jax.Array:
    model = nnx.merge(graphdef, params)
    return model.mean(model.decode(z, cond))


@functools.partial(jax.jit, static_argnames=("graphdef", "temperature", "same_latent"))
def _sample_jit(graphdef: nnx.GraphDef, params: Any, cond: jax.Array, key: jax.Array, *, temperature: float,
                same_latent: bool) -> jax.Array:
    model = nnx.merge(graphdef, params)
    if same_latent:  # every row draws its latent with the same key: one latent, many conditions
        return jax.vmap(lambda c: model.sample(c[None], key, temperature)[0])(cond)
    return model.sample(cond, key, temperature)
