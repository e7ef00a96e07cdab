"""PyTorch twins of the zoo's model families, for `python -m benchmarks.compare` (needs the [torch] extra).

Each module here mirrors one family: the same architecture, initialisation scheme, optimizer and
hyper-parameters as its JAX original, read from the same config, and a `build(config, dims, seed)` that
returns a `common.Twin`: `step(batch)` runs one training step on the JAX task's own batch (numpy arrays),
`sample(...)` the family's sampling. Twins exist to time and to cross-check the JAX side, not to train
models for use.
"""
