"""zoo.train.loop.compiler_options: a config's XLA CPU options reach the compiler and change what it emits;
an option this XLA rejects (a bad value, or a flag a release dropped) is dropped with a warning instead of
stopping the run; other backends get none. tests/test_vae.py checks that train.py uses them."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import ml_collections
import pytest
from jax import lax

from tests.helpers import ROOT
from zoo import config as config_lib
from zoo.train import loop
from zoo.train.loop import compiler_options

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the options are XLA CPU options")

YNN_TYPE = "--config.xla_cpu_options.xla_cpu_experimental_ynn_fusion_type"


def _conv_hlo(options: dict[str, str] | None) -> str:
    x, w = jnp.ones((8, 14, 14, 32)), jnp.ones((4, 4, 32, 64))

    def conv(x: jax.Array, w: jax.Array) -> jax.Array:
        return lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    return jax.jit(conv, compiler_options=options).lower(x, w).compile().as_text()


def _dot_hlo(options: dict[str, str] | None) -> str:
    x, w = jnp.ones((512, 256)), jnp.ones((256, 1024))
    return jax.jit(jnp.matmul, compiler_options=options).lower(x, w).compile().as_text()


EIGEN_CONVOLUTIONS = ("LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE", _conv_hlo, " convolution(")
EIGEN_DOTS = ("LIBRARY_FUSION_TYPE_REDUCE", _dot_hlo, " dot(")


@pytest.mark.parametrize(("name", "chosen_type", "hlo", "plain_op"), [
    ("vae", *EIGEN_CONVOLUTIONS), ("dcgan", *EIGEN_CONVOLUTIONS), ("poem", *EIGEN_DOTS), ("music", *EIGEN_DOTS)])
def test_configs_take_their_ops_off_ynnpack(name: str, chosen_type: str, hlo, plain_op: str) -> None:
    """The convolution families run their convolutions on Eigen, the LM and the LSTM their matmuls."""
    options = compiler_options(config_lib.load_config_file(ROOT / f"configs/{name}.py"))
    assert options == {"xla_cpu_experimental_ynn_fusion_type": chosen_type}
    default, chosen = hlo(None), hlo(options)
    assert "kind=kCustom" in default  # XLA's default: the op inside a YNNPACK fusion
    assert "kind=kCustom" not in chosen and plain_op in chosen  # with the options: a plain one (Eigen)


def test_no_options_or_an_empty_one_means_the_defaults() -> None:
    assert compiler_options(config_lib.load_config_file(ROOT / "configs/textgan.py")) is None
    vae = config_lib.load_config_file(ROOT / "configs/vae.py")
    assert compiler_options(config_lib.apply_overrides(vae, [f"{YNN_TYPE}="])) is None


def test_an_option_xla_rejects_is_dropped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    vae = config_lib.load_config_file(ROOT / "configs/vae.py")
    with caplog.at_level(logging.WARNING, logger="zoo.train.loop"):
        assert compiler_options(config_lib.apply_overrides(vae, [f"{YNN_TYPE}=NO_SUCH_TYPE"])) is None
    assert "xla_cpu_options ignored" in caplog.text and "NO_SUCH_TYPE" in caplog.text


def test_a_flag_this_xla_does_not_know_is_dropped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """What an XLA release that removed the flag would do (a CLI override cannot add a key, a config can)."""
    config = ml_collections.ConfigDict({"xla_cpu_options": {"xla_cpu_no_such_flag": "1"}})
    with caplog.at_level(logging.WARNING, logger="zoo.train.loop"):
        assert compiler_options(config) is None
    assert "xla_cpu_no_such_flag" in caplog.text


def test_other_backends_get_no_options(monkeypatch: pytest.MonkeyPatch) -> None:
    vae = config_lib.load_config_file(ROOT / "configs/vae.py")
    monkeypatch.setattr(loop.jax, "default_backend", lambda: "gpu")
    assert compiler_options(vae) is None
