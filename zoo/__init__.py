"""zoo: a multimodal generative model zoo in JAX/Flax with one shared training loop."""

__version__ = "0.1.0"
