"""The imports run one way (docs/architecture.md): a module may import only the layers below it.

Read from the source with `ast`, deferred imports inside functions included, so an arrow pointing the wrong
way fails here before it tangles the house.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

from tests.helpers import ROOT

ABOVE_THE_BOTTOM = ("zoo.layers", "zoo.models", "zoo.objectives", "zoo.train", "zoo.sample", "zoo.registry",
                    "zoo.data", "zoo.text", "zoo.melody", "zoo.export", "zoo.metrics", "zoo.critics", "zoo.picture")

# package -> the zoo packages it must never import
FORBIDDEN = {
    **{bottom: ABOVE_THE_BOTTOM for bottom in ("zoo.storage", "zoo.config", "zoo.errors", "zoo.cli", "zoo.allocator")},
    # A person's picture as a model input: read by data (kept folders) and sample (--init), above neither.
    "zoo.picture": tuple(m for m in ABOVE_THE_BOTTOM if m != "zoo.picture"),
    "zoo.layers": ("zoo.models", "zoo.objectives", "zoo.train", "zoo.sample", "zoo.registry", "zoo.data",
                   "zoo.critics"),
    "zoo.models": ("zoo.objectives", "zoo.train", "zoo.sample", "zoo.registry", "zoo.data", "zoo.critics"),
    "zoo.melody": ("zoo.objectives", "zoo.train", "zoo.sample", "zoo.registry", "zoo.models", "zoo.critics"),
    "zoo.text": ("zoo.objectives", "zoo.train", "zoo.sample", "zoo.registry", "zoo.models", "zoo.critics"),
    "zoo.data": ("zoo.objectives", "zoo.train", "zoo.sample", "zoo.registry", "zoo.models", "zoo.export",
                 "zoo.critics"),
    "zoo.export": ("zoo.objectives", "zoo.train", "zoo.sample", "zoo.registry", "zoo.critics"),
    "zoo.objectives": ("zoo.sample", "zoo.registry", "zoo.critics"),
    "zoo.train": ("zoo.objectives", "zoo.sample", "zoo.registry", "zoo.models", "zoo.critics"),
    "zoo.sample": ("zoo.objectives", "zoo.train", "zoo.registry", "zoo.data", "zoo.critics"),
    "zoo.critics": ("zoo.sample", "zoo.objectives", "zoo.train", "zoo.registry"),
}


def _module_name(path: pathlib.Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: pathlib.Path) -> set[str]:
    """Every module `path` imports, `from zoo import x` counted as zoo.x."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.add("." * node.level + (node.module or ""))  # relative: the rules cannot place it
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = sorted(p for p in (ROOT / "zoo").rglob("*.py") if "pretrained" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_one_way(path: pathlib.Path) -> None:
    name = _module_name(path)
    rules = [bad for package, bad in FORBIDDEN.items() if name == package or name.startswith(package + ".")]
    wrong = sorted(i for i in _imports(path) for bad in rules for b in bad if i == b or i.startswith(b + "."))
    assert not wrong, f"{name} imports {wrong}"
    assert not [i for i in _imports(path) if i.startswith(".")], f"{name}: use absolute imports"


def test_the_rules_see_a_wrong_arrow(tmp_path: pathlib.Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from zoo import registry\ndef f():\n    from zoo.objectives.lm import LMTask\n")
    assert {"zoo.registry", "zoo.objectives.lm", "zoo.objectives.lm.LMTask"} <= _imports(module)
