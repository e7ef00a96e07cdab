"""GPT decoder, its KV cache, and the generic samplers in zoo.sample.decoding (tiny model, CPU).

Compiles dominate the run time here, so model calls go through one jitted helper and the generate
tests share shape buckets (prompt bucket 8, total bucket 32) and sampling settings.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from zoo.models.lm import GPT, num_params
from zoo.sample import decoding
from zoo.sample.decoding import generate, generate_reference, sample_logits

VOCAB, CTX, T = 50, 64, 12
TOPK_TOPP = {"temperature": 1.0, "top_k": 10, "top_p": 0.9}


def make_model(**kw) -> GPT:
    cfg = {"vocab_size": VOCAB, "context_length": CTX, "num_layers": 2, "num_heads": 4, "embed_dim": 32,
           "rngs": nnx.Rngs(0)}
    return GPT(**(cfg | kw))


@partial(jax.jit, static_argnames=("graphdef",))
def _apply(graphdef, params, x, key):
    rngs = None if key is None else nnx.Rngs(dropout=key)
    return nnx.merge(graphdef, params)(x, deterministic=key is None, rngs=rngs)


def forward(model: GPT, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """model(x), jitted; with a key, in training mode with dropout drawn from it."""
    return _apply(*nnx.split(model), x, key)


@pytest.fixture(scope="module")
def model() -> GPT:
    return make_model()


def tokens(b: int, t: int, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, VOCAB, (b, t)).astype(np.int32)


def param_variables(model: GPT) -> list:
    _, state = nnx.split(model)
    return jax.tree.leaves(state, is_leaf=lambda v: isinstance(v, nnx.Variable))


def test_shapes_and_params(model):
    logits = forward(model, tokens(2, T))
    assert logits.shape == (2, T, VOCAB) and logits.dtype == jnp.float32
    assert all(type(v) is nnx.Param for v in param_variables(model))
    # wte + wpe + per layer (ln, qkv, proj, ln, fc, proj) + ln_f; no separate output head (tied).
    d = 32
    per_layer = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * 4 * d + 4 * d) + (4 * d * d + d)
    assert num_params(model) == VOCAB * d + CTX * d + 2 * per_layer + 2 * d


def test_causal(model):
    x = tokens(2, T)
    y = x.copy()
    y[:, 7] = (y[:, 7] + 1) % VOCAB
    a, b = forward(model, x), forward(model, y)
    np.testing.assert_allclose(a[:, :7], b[:, :7], atol=1e-6)
    assert not np.allclose(a[:, 7:], b[:, 7:])


def test_bf16_close_to_fp32(model):
    bf16 = make_model(dtype=jnp.bfloat16)
    x = tokens(2, T)
    lo, hi = forward(bf16, x), forward(model, x)
    assert lo.dtype == jnp.float32
    assert all(v.dtype == jnp.float32 for v in param_variables(bf16))
    np.testing.assert_allclose(lo, hi, atol=5e-2)


def test_dropout():
    m = make_model(dropout=0.2)
    x = tokens(2, T)
    np.testing.assert_array_equal(forward(m, x), forward(m, x))
    t1 = forward(m, x, jax.random.key(1))
    np.testing.assert_array_equal(t1, forward(m, x, jax.random.key(1)))
    assert not np.allclose(t1, forward(m, x, jax.random.key(2)))
    assert not np.allclose(t1, forward(m, x))
    with pytest.raises(ValueError, match="rngs"):
        m(jnp.asarray(x), deterministic=False)
    assert all(type(v) is nnx.Param for v in param_variables(m))


def test_decode_matches_forward(model):
    graphdef, params = nnx.split(model)
    decode = jax.jit(lambda p, x, c, i: nnx.merge(graphdef, p).decode(x, c, i))
    x = tokens(2, T)
    full = forward(model, x)
    logits, _ = decode(params, x, model.init_cache(2, 16), 0)
    np.testing.assert_allclose(logits, full, atol=1e-5)
    # Prefill 5 tokens then one token at a time.
    logits, cache = decode(params, x[:, :5], model.init_cache(2, 16), 0)
    steps = [logits]
    for t in range(5, T):
        logits, cache = decode(params, x[:, t:t + 1], cache, jnp.int32(t))
        steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=1e-5)


@pytest.mark.parametrize("plen", [3, 11])
@pytest.mark.parametrize("kw", [TOPK_TOPP, {"temperature": 0.0}], ids=["topk_topp", "greedy"])
def test_generate_matches_reference(model, plen, kw):
    g, p = nnx.split(model)
    prompt = tokens(3, plen, seed=plen)
    key = jax.random.key(7)
    fast = generate(g, p, prompt, max_new_tokens=15, key=key, **kw)
    slow = generate_reference(g, p, prompt, max_new_tokens=15, key=key, **kw)
    assert fast.shape == (3, 15) and fast.dtype == np.int32
    np.testing.assert_array_equal(fast, slow)


def test_generation_crossing_cache_phases_matches_reference():
    """The sampler's cache grows 64 -> 128 -> 256 positions during this generation; every token is still
    the one the no-cache reference draws, and the phases are the doubling the sampler promises."""
    assert decoding._phases(64, 256) == (64, 128, 256)
    assert decoding._phases(8, 100) == (64, 100)
    assert decoding._phases(128, 128) == (128,)
    g, p = nnx.split(make_model(context_length=256))
    prompt = tokens(2, 40, seed=5)
    key = jax.random.key(11)
    fast = generate(g, p, prompt, max_new_tokens=120, key=key, **TOPK_TOPP)
    np.testing.assert_array_equal(fast, generate_reference(g, p, prompt, max_new_tokens=120, key=key, **TOPK_TOPP))
    # Stopping at eos works across phases too (row 0 stops by step 60, in the second phase or before it).
    eos = int(fast[0, 60])
    out = generate(g, p, prompt, max_new_tokens=120, key=key, eos_id=eos, **TOPK_TOPP)
    assert_eos_filled(out, fast, eos)


def assert_eos_filled(out: np.ndarray, free: np.ndarray, eos: int) -> None:
    """out == free up to each row's first eos, eos after it."""
    for row_free, row in zip(free, out, strict=True):
        hits = np.flatnonzero(row_free == eos)
        first = hits[0] if hits.size else len(row)
        np.testing.assert_array_equal(row[:first], row_free[:first])
        assert (row[first:] == eos).all()


def test_generate_eos_and_bucket_reuse(model):
    g, p = nnx.split(model)
    key = jax.random.key(3)
    prompt = tokens(3, 5, seed=1)
    free = generate(g, p, prompt, max_new_tokens=20, key=key, **TOPK_TOPP)
    eos = int(free[0, 4])
    out = generate(g, p, prompt, max_new_tokens=20, key=key, eos_id=eos, **TOPK_TOPP)
    np.testing.assert_array_equal(
        out, generate_reference(g, p, prompt, max_new_tokens=20, key=key, eos_id=eos, **TOPK_TOPP))
    assert_eos_filled(out, free, eos)
    # Greedy on identical rows: every row emits eos at the same step, so the while_loop stops early.
    same = np.repeat(prompt[:1], 3, axis=0)
    greedy = generate(g, p, same, max_new_tokens=20, key=key, temperature=0.0)
    eos = int(greedy[0, 3])
    out = generate(g, p, same, max_new_tokens=20, key=key, temperature=0.0, eos_id=eos)
    assert_eos_filled(out, greedy, eos)
    # Other prompt/output lengths in the same buckets reuse the compiled sampler.
    before = decoding._generate_jit._cache_size()
    generate(g, p, tokens(3, 7, seed=2), max_new_tokens=17, key=key, **TOPK_TOPP)
    assert decoding._generate_jit._cache_size() == before
    with pytest.raises(ValueError, match="context_length"):
        generate(g, p, prompt, max_new_tokens=CTX, key=key)


@jax.jit
def _sample_checks(logits: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
    keys = jax.random.split(key, 500)
    many = partial(jax.vmap, in_axes=(None, 0))
    return {
        "greedy": sample_logits(logits, key, 0.0),
        "top1": sample_logits(logits, key, 1.0, top_k=1),
        "tiny_p": sample_logits(logits, key, 1.0, top_p=1e-6),
        "top5": many(partial(sample_logits, temperature=1.0, top_k=5))(logits, keys),
        "plain": many(partial(sample_logits, temperature=1.0))(logits, keys),
        "p08": many(partial(sample_logits, temperature=1.0, top_p=0.8))(logits, keys),
    }


def test_sample_logits():
    logits = np.random.RandomState(0).randn(4, VOCAB).astype(np.float32) * 3
    r = {k: np.asarray(v) for k, v in _sample_checks(logits, jax.random.key(1)).items()}
    argmax = logits.argmax(-1)
    for name in ("greedy", "top1", "tiny_p"):
        np.testing.assert_array_equal(r[name], argmax)
    top5 = np.argsort(-logits, axis=-1)[:, :5]
    assert (r["top5"][:, :, None] == top5[None]).any(-1).all()
    assert not (r["plain"][:, :, None] == top5[None]).any(-1).all()  # the filter did something
    # top-p keeps the smallest set of most likely tokens holding >= top_p of the mass.
    for row in range(4):
        probs = np.exp(logits[row] - logits[row].max())
        probs /= probs.sum()
        order = np.argsort(-probs)
        n_keep = int(np.searchsorted(np.cumsum(probs[order]), 0.8)) + 1
        assert set(r["p08"][:, row].tolist()) <= set(order[:n_keep].tolist())
        assert len(set(r["p08"][:, row].tolist())) > 1 or n_keep == 1


def test_first_token_bias_constrains_only_the_first_token(model):
    g, p = nnx.split(model)
    prompt = tokens(3, 4, seed=5)
    key = jax.random.key(11)
    vocab = model.vocab_size
    bias = np.full((vocab,), -np.inf, np.float32)
    bias[[3, 7]] = 0.0  # only tokens 3 and 7 may come first
    out = generate(g, p, prompt, max_new_tokens=12, key=key, first_token_bias=bias, **TOPK_TOPP)
    assert set(out[:, 0].tolist()) <= {3, 7}
    assert not set(out[:, 1:].ravel().tolist()) <= {3, 7}  # later tokens are free
    np.testing.assert_array_equal(
        out, generate_reference(g, p, prompt, max_new_tokens=12, key=key, first_token_bias=bias, **TOPK_TOPP))


def test_blockwise_causal_attention_equals_the_full_masked_one():
    """Past ATTENTION_BLOCK positions training attention skips the masked upper triangle block by block; it
    must give exactly the full masked softmax attention (and so the decode path's)."""
    from zoo.models import lm as gpt

    rng = np.random.default_rng(0)
    t = 3 * gpt.ATTENTION_BLOCK
    q, k, v = (jnp.asarray(rng.normal(size=(2, 3, t, 8)), jnp.float32) for _ in range(3))
    full = gpt._attend(q, k, v, jnp.tril(jnp.ones((t, t), dtype=bool)))
    np.testing.assert_allclose(gpt._causal_attend(q, k, v), full, rtol=1e-5, atol=1e-6)
    grads = [jax.grad(lambda q, f=f: (f(q) ** 2).sum())(q) for f in
             (lambda q: gpt._causal_attend(q, k, v), lambda q: gpt._attend(q, k, v, jnp.tril(jnp.ones((t, t), bool))))]
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype, tol", [(jnp.float32, 1e-5), (jnp.bfloat16, 2e-2)])
def test_attention_equals_softmax_attention(dtype, tol):
    """_attend normalises after the value matmul; it must equal textbook softmax(q k^T / sqrt(d)) v (computed
    in float64 from the same operands), with and without masked positions, values and gradients."""
    from zoo.models import lm as gpt

    rng = np.random.default_rng(1)
    q, k, v = (jnp.asarray(rng.normal(size=(2, 3, 6, 8)) * 2, dtype) for _ in range(3))
    mask = jnp.asarray(rng.random((6, 6)) < 0.7).at[:, 0].set(True)

    def reference(q, k, v):
        q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
        s = np.einsum("bhtd,bhsd->bhts", q, k) / np.sqrt(8)
        s = np.where(np.asarray(mask), s, -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True))
        return np.einsum("bhts,bhsd->bhtd", p / p.sum(-1, keepdims=True), v)

    got = gpt._attend(q, k, v, mask)
    assert got.dtype == dtype
    np.testing.assert_allclose(np.asarray(got, np.float64), reference(q, k, v), rtol=tol, atol=tol)
    if dtype == jnp.float32:  # gradients against jax.nn.softmax autodiff
        def textbook(q):
            s = jnp.where(mask, jnp.einsum("bhtd,bhsd->bhts", q, k) / np.sqrt(8), -jnp.inf)
            return jnp.einsum("bhts,bhsd->bhtd", jax.nn.softmax(s, axis=-1), v)

        np.testing.assert_allclose(jax.grad(lambda q: (gpt._attend(q, k, v, mask) ** 3).sum())(q),
                                   jax.grad(lambda q: (textbook(q) ** 3).sum())(q), rtol=1e-4, atol=1e-5)
