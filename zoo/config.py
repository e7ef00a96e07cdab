"""Config files (`get_config()` returning an `ml_collections.ConfigDict`) and `--config.KEY=VALUE` overrides.

We parse overrides ourselves instead of using absl's `config_flags`: a bad override must give one clear line
and exit code 2 (absl prints a usage dump and exits 1), and we want the same behaviour in train.py, in tests
and in notebooks.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import json
import math
import pathlib
import sys
from typing import Any

import ml_collections

from zoo.errors import UsageError

OVERRIDE_PREFIX = "--config."


def load_config_file(path: str | pathlib.Path) -> ml_collections.ConfigDict:
    """Imports `path` as a module and returns its `get_config()`."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise UsageError(f"config file not found: {path}")
    # An explicit source loader: a file named other than *.py is still read as Python (and reported as bad
    # input if it is not), where spec_from_file_location would return None.
    loader = importlib.machinery.SourceFileLoader(f"zoo_config_{path.stem}", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    # Configs may build on each other (`from configs import poem`): make their package importable.
    sys.path.insert(0, str(path.resolve().parent.parent))
    try:
        spec.loader.exec_module(module)
        config = module.get_config()
    except Exception as e:  # a broken user config (or not Python at all) is bad input, not a crash of ours
        raise UsageError(f"cannot load config {path} (a Python file defining get_config()): "
                         f"{type(e).__name__}: {e}") from e
    finally:
        sys.path.pop(0)
    if not isinstance(config, ml_collections.ConfigDict):
        raise UsageError(f"{path}: get_config() must return an ml_collections.ConfigDict")
    return config


def _parse_value(text: str, current: Any, key: str) -> Any:
    """Converts `text` to the type of the value it replaces, so `--config.seed=abc` fails loudly."""
    try:
        if isinstance(current, bool):
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return lowered in ("true", "1")
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, str):
            return text
        if isinstance(current, (tuple, list)):
            value = ast.literal_eval(text)
            if not isinstance(value, (tuple, list)):
                raise ValueError(text)
            return type(current)(value)
        if current is None:
            try:
                return ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return text
    except (ValueError, SyntaxError):
        raise UsageError(
            f"bad override --config.{key}={text}: expected a {type(current).__name__}"
        ) from None
    raise UsageError(f"--config.{key} cannot be overridden from the command line")


# Settings of the loop that any config takes on the command line without spelling them out (and that a run
# records only when set): early_stop = N stops after N evaluations without a better held-out loss, the
# export keeping the best step (zoo/train/loop.py).
LOOP_OPTIONS = {"early_stop": 0}


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str]) -> ml_collections.ConfigDict:
    """Applies `--config.a.b=value` strings to a copy of `config`; unknown keys are errors."""
    config = ml_collections.ConfigDict(config.to_dict())  # unlocked copy; keep the caller's intact
    for item in overrides:
        if not item.startswith(OVERRIDE_PREFIX) or "=" not in item:
            raise UsageError(f"bad argument {item!r}: expected --config.KEY=VALUE")
        key, text = item[len(OVERRIDE_PREFIX):].split("=", 1)
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            if not isinstance(node, ml_collections.ConfigDict) or part not in node:
                raise UsageError(f"unknown config key --config.{key}")
            node = node[part]
        if not parents and leaf in LOOP_OPTIONS and leaf not in node:  # a loop setting no config spells out
            node[leaf] = LOOP_OPTIONS[leaf]
        if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
            raise UsageError(f"unknown config key --config.{key}")
        if isinstance(node[leaf], ml_collections.ConfigDict):
            raise UsageError(f"--config.{key} is a group; set one of its keys instead")
        node[leaf] = _parse_value(text, node[leaf], key)
    return config


def to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(json.loads(text))


def _leaves(config: ml_collections.ConfigDict, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            out += _leaves(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def parse_profile_steps(spec: str) -> tuple[int, int] | None:
    """"START:END" -> (START, END) with 0 <= START < END; "" -> None (no trace); anything else a UsageError."""
    if not spec:
        return None
    try:
        start, end = (int(part) for part in spec.split(":"))
    except ValueError:
        raise UsageError(f"--config.profile_steps must be START:END (e.g. 10:20), got {spec!r}") from None
    if not 0 <= start < end:
        raise UsageError(f"--config.profile_steps needs 0 <= START < END, got {spec!r}")
    return start, end


def validate_training(config: ml_collections.ConfigDict) -> None:
    """Config values that can only waste a run (or crash it hours in) are refused before anything loads."""
    for key in ("train_steps", "batch_size", "log_every", "checkpoint_every", "max_to_keep"):
        if config[key] <= 0:
            raise UsageError(f"--config.{key} must be positive, got {config[key]}")
    if not 0 <= config.get("min_learning_rate_ratio", 0) <= 1:  # NaN fails this too
        raise UsageError(f"--config.min_learning_rate_ratio must be in [0, 1], got {config.min_learning_rate_ratio}")
    if config.get("early_stop", 0) < 0 or (config.get("early_stop", 0) and not config.get("eval_every", 0)):
        raise UsageError("--config.early_stop needs evaluations (--config.eval_every > 0) and must be >= 0")
    if config.get("eval_every", 0) < 0:
        raise UsageError(f"--config.eval_every must be >= 0 (0: no evaluation), got {config.eval_every}")
    for key, value in _leaves(config):
        name = key.rsplit(".", 1)[-1]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        if name.endswith("learning_rate") and not (math.isfinite(value) and value > 0):
            raise UsageError(f"--config.{key} must be a finite number > 0, got {value}")
        if name.endswith("warmup_steps") and value < 0:
            raise UsageError(f"--config.{key} must be >= 0, got {value}")
        if "dropout" in name and not 0 <= value < 1:  # NaN fails this too
            raise UsageError(f"--config.{key} is a probability in [0, 1), got {value}")
    if config.get("export_dtype", "bfloat16") not in ("bfloat16", "float16", "float32"):
        raise UsageError(f"--config.export_dtype must be bfloat16, float16 or float32, got {config.export_dtype}")
    parse_profile_steps(str(config.get("profile_steps", "")))
    if not 0 <= config.seed < 2**32:
        raise UsageError(f"--config.seed must be in [0, 2**32), got {config.seed}")
