"""Autoregressive sampling for any model family that exposes a functional KV cache.

The model is passed as `graphdef, params` (from `nnx.split`) and merged inside one `jax.jit`-ed function:
that costs ~0.07 ms of Python per call, where `nnx.jit` costs ~0.5 ms. The merged model must provide

    context_length: int
    init_cache(batch_size, max_length) -> cache            # a pytree of arrays [..., max_length, X]
    decode(tokens int[B, T], cache, index int32) -> (float logits [B, T, V], cache)

where `decode` writes the K/V of positions index..index+T-1 and attends to cache positions <= its own
(see `zoo.models.lm.GPT`). The cache's arrays hold positions on their second-to-last axis, so that the
sampler can grow a cache by padding it. `generate_reference` needs only `__call__(tokens) -> logits`.

Step i of a generation (i = 0 for the first new token) samples with `jax.random.fold_in(key, i)`, so the
cached sampler and the no-cache reference draw the same tokens from the same key.
"""

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

_MIN_BUCKET = 8
_MIN_PHASE = 64  # the smallest cache a generation's first steps attend over


def _check_sampling_args(temperature: float, top_k: int, top_p: float) -> None:
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = off), got {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (1 = off), got {top_p}")


def sample_logits(logits: jax.Array, key: jax.Array, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0) -> jax.Array:
    """Draw one token per row from logits [B, V]; returns int32 [B].

    temperature 0 means greedy argmax. Otherwise the logits are divided by temperature, then top-k
    (0 = off) keeps the k largest, then top-p (1.0 = off) keeps the smallest set of most likely tokens
    whose probability reaches top_p (the most likely token is always kept). The three settings are Python
    values, static under `jax.jit`, so that top-k has the static k `lax.top_k` needs and disabled filters
    cost nothing.
    """
    if temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits.astype(jnp.float32) / temperature
    vocab = logits.shape[-1]
    if 0 < top_k < vocab:
        kth_largest = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth_largest, -jnp.inf, logits)
    if top_p < 1.0:
        sorted_desc = -jnp.sort(-logits, axis=-1)
        probs = jax.nn.softmax(sorted_desc, axis=-1)
        # A token is kept if the tokens ranked above it hold less than top_p of the mass.
        keep = (jnp.cumsum(probs, axis=-1) - probs) < top_p
        threshold = jnp.min(jnp.where(keep, sorted_desc, jnp.inf), axis=-1, keepdims=True)
        logits = jnp.where(logits < threshold, -jnp.inf, logits)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def _bucket(n: int, cap: int) -> int:
    """Smallest power of two >= n (at least _MIN_BUCKET), capped at `cap`."""
    return min(max(_MIN_BUCKET, 1 << (n - 1).bit_length()), cap)


def _phases(prefill: int, max_length: int) -> tuple[int, ...]:
    """The cache lengths a generation steps through: from one that holds the prefill (at least _MIN_PHASE),
    doubling up to max_length. Each decode step reads the whole cache, so a step reads at most twice the
    positions it attends to instead of all max_length of them."""
    sizes = [min(max(prefill, _MIN_PHASE), max_length)]
    while sizes[-1] < max_length:
        sizes.append(min(2 * sizes[-1], max_length))
    return tuple(sizes)


def _grow(cache: Any, length: int) -> Any:
    """`cache` with zeros appended along the positions axis (-2) up to `length`."""
    def pad(x: jax.Array) -> jax.Array:
        widths = [(0, 0)] * x.ndim
        widths[-2] = (0, length - x.shape[-2])
        return jnp.pad(x, widths)
    return jax.tree.map(pad, cache)


_CONTEXT_LENGTH: dict[Any, int] = {}


def _context_length(graphdef: nnx.GraphDef, params: nnx.State) -> int:
    """The model's context_length, merged once per graphdef rather than once per call."""
    if graphdef not in _CONTEXT_LENGTH:
        _CONTEXT_LENGTH[graphdef] = int(nnx.merge(graphdef, params).context_length)
    return _CONTEXT_LENGTH[graphdef]


def _check_lengths(prompt: np.ndarray, max_new_tokens: int, context_length: int) -> None:
    if prompt.ndim != 2 or prompt.shape[1] < 1:
        raise ValueError(f"prompt must be int[B, P] with P >= 1, got shape {prompt.shape}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if prompt.shape[1] + max_new_tokens > context_length:
        raise ValueError(f"prompt length {prompt.shape[1]} + max_new_tokens {max_new_tokens} exceeds "
                         f"the model's context_length {context_length}")


@partial(jax.jit, static_argnames=("graphdef", "max_length", "temperature", "top_k", "top_p"))
def _generate_jit(graphdef: nnx.GraphDef, params: nnx.State, prompt: jax.Array, prompt_len: jax.Array,
                  max_new_tokens: jax.Array, eos_id: jax.Array, key: jax.Array, first_bias: jax.Array,
                  bias: jax.Array, *,
                  max_length: int,
                  temperature: float, top_k: int, top_p: float) -> jax.Array:
    """Prefill + while_loops of single-token decode steps, one per cache length of `_phases`. prompt is
    right-padded to its bucket.

    eos_id is traced (-1 = none, never sampled) so that changing it does not recompile. Returns int32
    [B, max_length]; columns >= the number of steps run hold eos_id (or 0).
    """
    model = nnx.merge(graphdef, params)
    batch = prompt.shape[0]
    phases = _phases(prompt.shape[1], max_length)
    cache = model.init_cache(batch, phases[0])
    logits, cache = model.decode(prompt, cache, jnp.int32(0))
    last = jax.lax.dynamic_index_in_dim(logits, prompt_len - 1, axis=1, keepdims=False)
    out = jnp.full((batch, max_length), jnp.maximum(eos_id, 0), jnp.int32)
    done = jnp.zeros((batch,), bool)

    def emit(i, logits, out, done):
        tok = sample_logits(logits, jax.random.fold_in(key, i), temperature, top_k, top_p)
        tok = jnp.where(done, eos_id, tok)
        done = done | (tok == eos_id)
        return tok, out.at[:, i].set(tok), done

    def running(carry):
        i, _, _, _, done = carry
        return (i < max_new_tokens) & ~jnp.all(done)

    def body(carry):
        i, tok, cache, out, done = carry
        # The token sampled at step i-1 sits at position prompt_len + i - 1; this overwrites whatever
        # K/V the right-padding of the prefill left there before any query can see it.
        logits, cache = model.decode(tok[:, None], cache, prompt_len + i - 1)
        tok, out, done = emit(i, logits[:, 0] + bias, out, done)
        return i + 1, tok, cache, out, done

    tok, out, done = emit(jnp.int32(0), last + bias + first_bias, out, done)
    carry = (jnp.int32(1), tok, cache, out, done)
    for length in phases:
        i, tok, cache, out, done = carry
        carry = (i, tok, _grow(cache, length), out, done)
        # Step i writes position prompt_len + i - 1, which must lie in this phase's cache.
        fits = partial(lambda length, c: running(c) & (prompt_len + c[0] - 1 < length), length)
        carry = jax.lax.while_loop(fits, body, carry)
    return carry[3]


def generate(graphdef: nnx.GraphDef, params: nnx.State, prompt: np.ndarray, *, max_new_tokens: int,
             key: jax.Array, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             eos_id: int | None = None, first_token_bias: np.ndarray | None = None,
             logit_bias: np.ndarray | None = None) -> np.ndarray:
    """Sample max_new_tokens after prompt int32 [B, P] with a KV cache; returns int32 [B, max_new_tokens].

    `first_token_bias` (float32 [V], e.g. 0 or -inf) is added to the logits of the first sampled token
    only: samplers use it to say what may follow the prompt (e.g. no letters glued onto its last word).
    `logit_bias` (float32 [V]) is added at every step (e.g. a large negative value for tokens a model
    must never emit).

    The prompt is prefilled in one `decode` call, then a `lax.while_loop` runs one-token decode steps and
    stops early once every row has emitted `eos_id`; a row's positions after its eos are filled with eos.

    Bucketing, so that other prompt lengths reuse compiled code: learned position embeddings rule out
    left-padding (it would shift every token's position). Instead the prompt is RIGHT-padded to a power of
    two Pb >= P and the output buffer sized to a power of two S >= P + max_new_tokens (both capped at
    context_length); the cache grows to S in the phases of `_phases`. The prefill runs all Pb positions;
    causality makes the logits at P-1 exact, and the padding's K/V at positions >= P are never read: step i
    writes position P+i-1 before it attends to positions <= P+i-1. P and max_new_tokens are traced values,
    so one compiled function serves every (P, max_new_tokens, eos_id) with the same (B, Pb, S) and sampling
    settings.
    """
    _check_sampling_args(temperature, top_k, top_p)
    prompt = np.asarray(prompt, np.int32)
    context_length = _context_length(graphdef, params)
    _check_lengths(prompt, max_new_tokens, context_length)
    batch, plen = prompt.shape
    if max_new_tokens == 0:
        return np.zeros((batch, 0), np.int32)
    padded = np.zeros((batch, _bucket(plen, context_length)), np.int32)
    padded[:, :plen] = prompt
    out = _generate_jit(graphdef, params, padded, np.int32(plen), np.int32(max_new_tokens),
                        np.int32(-1 if eos_id is None else eos_id), key, _bias_vector(first_token_bias),
                        _bias_vector(logit_bias),
                        max_length=_bucket(plen + max_new_tokens, context_length),
                        temperature=float(temperature), top_k=int(top_k), top_p=float(top_p))
    return np.asarray(out[:, :max_new_tokens])


def _bias_vector(bias: np.ndarray | None) -> np.ndarray:
    return np.zeros((1,), np.float32) if bias is None else np.asarray(bias, np.float32)


@partial(jax.jit, static_argnames=("graphdef",))
def _forward_jit(graphdef: nnx.GraphDef, params: nnx.State, tokens: jax.Array) -> jax.Array:
    return nnx.merge(graphdef, params)(tokens)


_sample_jit = jax.jit(sample_logits, static_argnames=("temperature", "top_k", "top_p"))


def generate_reference(graphdef: nnx.GraphDef, params: nnx.State, prompt: np.ndarray, *,
                       max_new_tokens: int, key: jax.Array, temperature: float = 1.0, top_k: int = 0,
                       top_p: float = 1.0, eos_id: int | None = None,
                       first_token_bias: np.ndarray | None = None,
                       logit_bias: np.ndarray | None = None) -> np.ndarray:
    """`generate` without a cache: a Python loop that reruns the full forward for every new token.

    Slow on purpose, as the ground truth for tests. It uses the same per-step keys and eos rules. The
    forward is jitted on the sequence right-padded to a power of two (harmless: the model is causal) so
    it compiles a handful of times rather than once per length.
    """
    _check_sampling_args(temperature, top_k, top_p)
    prompt = np.asarray(prompt, np.int32)
    context_length = _context_length(graphdef, params)
    _check_lengths(prompt, max_new_tokens, context_length)
    batch = prompt.shape[0]
    out = np.full((batch, max_new_tokens), 0 if eos_id is None else eos_id, np.int32)
    done = np.zeros((batch,), bool)
    seq = prompt
    for i in range(max_new_tokens):
        if done.all():
            break
        length = seq.shape[1]
        padded = np.zeros((batch, _bucket(length, context_length)), np.int32)
        padded[:, :length] = seq
        logits = _forward_jit(graphdef, params, padded)[:, length - 1] + _bias_vector(logit_bias)
        if i == 0:
            logits = logits + _bias_vector(first_token_bias)
        tok = np.asarray(_sample_jit(logits, jax.random.fold_in(key, i), temperature=float(temperature),
                                     top_k=int(top_k), top_p=float(top_p)))
        if eos_id is not None:
            tok = np.where(done, eos_id, tok).astype(np.int32)
            done |= tok == eos_id
        out[:, i] = tok
        seq = np.concatenate([seq, tok[:, None]], axis=1)
    return out
