"""Melodies from a text prompt: prompt -> caption space -> grammar-masked LSTM sampling -> MIDI.

The `music` model was trained on sentence embeddings of captions such as "The Humours of Ennis. A jig in
D major, 6/8." (zoo.objectives.music). A free prompt is embedded by the same encoder (all-MiniLM-L6-v2),
and the sampler conditions on one of:

* `"prompt"`: the prompt's own embedding. Every tune was seen under 12 transpositions, so the caption space
  the model learnt is smooth in key and mode: "in F# minor" is as familiar as "in D major", and a prompt
  that names a key gets it in the header almost always. But a prompt is not a caption (no title, no meter),
  and genre words alone steer the meter weakly ("a jig" gives 6/8 only ~35% of the time, 9/8 and 12/8 the rest).
* `"neighbours"`: the mean of the `k` training captions nearest to the prompt: in distribution, so genre and
  meter follow the neighbours closely, but a key no neighbour has is lost ("a jig in D minor" retrieves
  jigs in D major, since few jigs are notated in D minor).
* `"blend"` (default): the normalised sum of the two, which keeps the prompt's key and the neighbours'
  genre and meter. At temperature 0.9 it is the only setting that met every key and meter target of
  benchmarks/music_eval.py (zoo/pretrained/music/README.md has the table for all three).

The encoder reads English: a Chinese prompt is first glossed into English word by word
(zoo.text.encoder.english_reading: 夏天的海边 -> "summer coast"); a prompt in another language is read
close to chance (its nearest captions' low cosines, typically < 0.5, say so). Whatever the conditioning,
the sampler reports how it read the prompt: the nearest training captions, and the meter and key each
melody committed to in its header tokens.

Sampling is one jitted function: the primer (BOS, or the user's tune from `--primer FILE.mid`) is fed
through the LSTM with `lax.scan`, then a `lax.while_loop` draws one event at a time, masking the logits
with the encoding's grammar (zoo.melody.grammar, the rules the corpus is checked with, on jnp arrays) so
that every note stays inside its bar, and ending each melody exactly after `bars` bars. Same seed, same
options => the same tokens, hence byte-identical MIDI files.
"""

from __future__ import annotations

import functools
import json
import logging
import pathlib
from dataclasses import dataclass, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from zoo import export
from zoo.errors import UsageError
from zoo.melody import encoding
from zoo.melody.grammar import Grammar, state_after
from zoo.melody.midi import melody_from_midi, write_midi
from zoo.models.music import MelodyRNN
from zoo.sample.decoding import sample_logits

log = logging.getLogger(__name__)

DEFAULTS = {"temperature": 0.9, "top_k": 0, "top_p": 1.0, "bars": 16, "conditioning": "blend", "neighbours": 8}
MAX_BARS = 256
TOKENS_PER_BAR = 72  # output buffer per bar: the longest bar (4/2, 12/8) in 16th notes is 65 tokens
CONDITIONINGS = ("prompt", "neighbours", "blend")


@dataclass(frozen=True)
class PromptReading:
    """How the sampler read a prompt: the conditioning vector and the training captions nearest to it."""

    cond: np.ndarray  # float32 [cond_dim], unit norm
    nearest: tuple[tuple[str, float], ...]  # (caption, cosine similarity), best first

    def describe(self, shown: int = 3) -> str:
        return "; ".join(f'"{c}" ({s:.2f})' for c, s in self.nearest[:shown])


class MelodySampler:
    """Loads an export of the `music` model and turns prompts into melodies (`zoo.melody.encoding.Melody`)."""

    extension = "mid"
    options = ("temperature", "top_k", "top_p", "bars", "primer")

    def __init__(self, export_dir: pathlib.Path, encoder: Any = None):
        export_dir = pathlib.Path(export_dir)
        self.config = export.load_config(export_dir)
        export.require(export_dir, "music")
        try:
            self.captions = json.loads((export_dir / export.MUSIC_CAPTIONS).read_text(encoding="utf-8"))
            self.table = np.load(export_dir / export.CAPTION_EMBEDDINGS).astype(np.float32)
        except (OSError, ValueError) as e:
            raise UsageError(f"{export_dir} lacks its caption table ({export.MUSIC_CAPTIONS}, "
                             f"{export.CAPTION_EMBEDDINGS}): {e}") from None
        if self.table.ndim != 2 or len(self.captions) != self.table.shape[0] or not self.captions:
            raise UsageError(f"{export_dir}: {export.MUSIC_CAPTIONS} and {export.CAPTION_EMBEDDINGS} do not match")
        self.graphdef, self.params = export.load_model(export_dir, self.config, MelodyRNN, vocab_size=encoding.VOCAB,
                                                       cond_dim=int(self.table.shape[1]))
        self.defaults = {**DEFAULTS, **self.config.get("sample", {})}
        self._encoder = encoder

    @property
    def encoder(self) -> Any:
        from zoo.text.encoder import shared_encoder  # deferred: loading the weights costs ~1 s

        return self._encoder or shared_encoder()

    def read_prompt(self, prompt: str, conditioning: str | None = None, neighbours: int | None = None
                    ) -> PromptReading:
        """The conditioning vector for `prompt` and the captions nearest to it (see the module docstring)."""
        conditioning = conditioning or self.defaults["conditioning"]
        if conditioning not in CONDITIONINGS:
            raise UsageError(f"conditioning must be one of {CONDITIONINGS}, got {conditioning!r}")
        k = min(neighbours or self.defaults["neighbours"], len(self.captions))
        from zoo.text.encoder import english_reading

        embedding = self.encoder.embed([english_reading(prompt, self.encoder, self.table)])[0]
        similarity = self.table @ embedding
        order = np.argsort(-similarity, kind="stable")[:max(k, 5)]
        nearest = tuple((self.captions[i], float(similarity[i])) for i in order)
        mean = self.table[order[:k]].mean(axis=0)
        mean = mean / max(float(np.linalg.norm(mean)), 1e-6)
        cond = {"prompt": embedding, "neighbours": mean, "blend": embedding + mean}[conditioning]
        cond = cond / max(float(np.linalg.norm(cond)), 1e-6)
        return PromptReading(np.asarray(cond, np.float32), nearest)

    def sample(self, prompt: str, num: int, seed: int, *, temperature: float | None = None,
               top_k: int | None = None, top_p: float | None = None, bars: int | None = None,
               primer: str | pathlib.Path | encoding.Melody | None = None, conditioning: str | None = None
               ) -> list[encoding.Melody]:
        """`num` melodies of `bars` bars (after the primer's, if one is given) for `prompt`."""
        options = {k: self.defaults[k] if v is None else v
                   for k, v in dict(temperature=temperature, top_k=top_k, top_p=top_p, bars=bars).items()}
        if not 1 <= options["bars"] <= MAX_BARS:
            raise UsageError(f"--bars must be between 1 and {MAX_BARS}, got {options['bars']}")
        prefix = _primer_tokens(primer) if primer is not None else np.asarray([encoding.BOS], np.int32)
        reading = self.read_prompt(prompt, conditioning)
        log.info("read the prompt %r as the captions nearest to it: %s", prompt, reading.describe())
        grammar = state_after(prefix)
        target = int(grammar["bars"]) + options["bars"]
        length = _bucket(options["bars"] * TOKENS_PER_BAR + 16)
        padded = np.zeros(_bucket(len(prefix)), np.int32)
        padded[:len(prefix)] = prefix
        cond = np.tile(reading.cond[None], (num, 1))
        out = _sample_jit(self.graphdef, self.params, cond, padded, np.int32(len(prefix)),
                          {k: np.int32(v) for k, v in grammar.items()}, np.int32(target),
                          jax.random.PRNGKey(seed), length=length, temperature=float(options["temperature"]),
                          top_k=int(options["top_k"]), top_p=float(options["top_p"]))
        out = np.asarray(out)
        if not (out == encoding.EOS).any(axis=1).all():
            log.warning("some melodies filled the %d-event buffer before their last bar; they end early", length)
        melodies = [replace(encoding.decode(np.concatenate([prefix, row])), title=prompt) for row in out]
        for i, melody in enumerate(melodies):
            log.info("melody %d: %s, %s, %d bars", i, melody.meter, melody.key_name,
                     round(melody.quarter_length * encoding.TICKS_PER_QUARTER / encoding.bar_ticks(melody.meter)))
        return melodies

    @staticmethod
    def to_files(melodies: list[encoding.Melody], one_file: bool) -> list[bytes]:
        """One standard MIDI file per melody, or (one_file) the first melody's."""
        if one_file and len(melodies) > 1:
            log.info("--out names one file: writing the first of %d melodies (--out DIR/ writes all)", len(melodies))
        return [write_midi(m) for m in melodies[:1 if one_file else None]]

    @staticmethod
    def render(melody: encoding.Melody, extension: str) -> bytes:
        """The melody as audio ("wav") or a piano roll ("png")."""
        from zoo.melody import render

        if extension == "wav":
            return render.wav_bytes(melody)
        if extension == "png":
            return render.piano_roll_png(melody)
        raise UsageError(f"melodies render as wav or png, not {extension}")


def _primer_tokens(path: str | pathlib.Path | encoding.Melody) -> np.ndarray:
    """The user's tune (a MIDI file, or a melody already read, e.g. transcribed from audio) as the start of a
    melody: its encoding without EOS (UsageError if unusable)."""
    melody = path if isinstance(path, encoding.Melody) else melody_from_midi(path)
    path = "the transcribed tune" if isinstance(path, encoding.Melody) else path
    try:
        tokens = encoding.encode(melody)
    except ValueError as e:
        raise UsageError(f"cannot use {path} as a primer: {e}") from None
    if len(tokens) > MAX_BARS * TOKENS_PER_BAR:
        raise UsageError(f"{path} is too long for a primer ({len(tokens)} events)")
    return tokens[:-1]


def _bucket(n: int) -> int:
    return max(64, 1 << (int(n) - 1).bit_length())


@functools.partial(jax.jit, static_argnames=("graphdef", "length", "temperature", "top_k", "top_p"))
def _sample_jit(graphdef: nnx.GraphDef, params: Any, cond: jax.Array, primer: jax.Array, primer_len: jax.Array,
                grammar: dict, target_bars: jax.Array, key: jax.Array, *, length: int, temperature: float,
                top_k: int, top_p: float) -> jax.Array:
    """int32 [B, length]: the events after the primer, EOS-filled after each melody's end."""
    model = nnx.merge(graphdef, params)
    rules = Grammar(jnp)  # its tables become constants of the compiled loop
    batch = cond.shape[0]
    state = model.init_state(cond)

    def feed(carry, xs):
        state, logits = carry
        tok, valid = xs
        new_logits, new_state = model.step(jnp.full((batch,), tok), state)
        keep = lambda new, old: jnp.where(valid, new, old)  # noqa: E731
        return (jax.tree.map(keep, new_state, state), keep(new_logits, logits)), None

    logits = jnp.zeros((batch, encoding.VOCAB), jnp.float32)
    (state, logits), _ = jax.lax.scan(feed, (state, logits), (primer, jnp.arange(primer.shape[0]) < primer_len))
    grammar = {k: jnp.full((batch,), v, jnp.int32) for k, v in grammar.items()}
    out = jnp.full((batch, length), encoding.EOS, jnp.int32)

    def body(carry):
        i, state, logits, grammar, out, done = carry
        masked = jnp.where(rules.allowed(grammar, target_bars), logits, -jnp.inf)
        tok = sample_logits(masked, jax.random.fold_in(key, i), temperature, top_k, top_p)
        tok = jnp.where(done, encoding.EOS, tok)
        grammar = rules.advance(grammar, tok)
        logits, state = model.step(tok, state)
        return i + 1, state, logits, grammar, out.at[:, i].set(tok), done | (tok == encoding.EOS)

    def cond_fn(carry):
        return (carry[0] < length) & ~jnp.all(carry[-1])

    carry = (jnp.int32(0), state, logits, grammar, out, jnp.zeros((batch,), bool))
    return jax.lax.while_loop(cond_fn, body, carry)[4]
