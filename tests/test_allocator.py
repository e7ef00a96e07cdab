"""zoo.allocator: the commands restart under tcmalloc, or with glibc's malloc tuned, and the reason (XLA's
per-step temporaries page-fault under plain glibc, and not under tcmalloc, nor under tuned glibc up to 32 MB)
holds on this machine."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests import helpers
from zoo import allocator

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD is Linux's")
TCMALLOC = allocator.preload_library({})
needs_tcmalloc = pytest.mark.skipif(TCMALLOC is None, reason="tcmalloc is not installed "
                                    "(apt-get install libtcmalloc-minimal4), or not Linux: nothing to restart under")


def _huge_pages_always() -> bool:
    """With transparent huge pages always on, glibc's fresh mappings fault in 2 MB at a time."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[always]" in f.read()
    except OSError:
        return False

# A command (zoo.cli.run, as train.py's and sample.py's) whose step materialises ROWS x 4 KB of temporaries
# (a [ROWS, 1024] activation used twice: 134 MB by default). It prints its allocator and the page faults of
# each of 7 executions after the first.
COMMAND = """
import os, resource, jax, jax.numpy as jnp
from zoo import allocator, cli

def main(argv):
    def step(x, w):
        y = jnp.tanh(x)
        return jnp.sum(y @ w) + jnp.sum(jnp.cumsum(y, axis=0)[-1])

    step = jax.jit(step)
    x, w = jnp.ones((int(os.environ.get("ROWS", 16384)), 1024), jnp.float32), jnp.ones((1024, 8), jnp.float32)
    step(x, w).block_until_ready()
    faults = []
    for _ in range(7):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        step(x, w).block_until_ready()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(allocator.name(), *faults, sep="|")

cli.run(main)
"""


def run_command(zoo_malloc: str, rows: int = 16384) -> tuple[str, list[int]]:
    env = {**helpers.env(1), "ZOO_MALLOC": zoo_malloc, "ROWS": str(rows)}
    env.pop("LD_PRELOAD", None)
    env.pop("GLIBC_TUNABLES", None)
    env.pop("ZOO_MALLOC_REEXEC", None)
    result = subprocess.run([sys.executable, "-c", COMMAND], capture_output=True, text=True, cwd=helpers.ROOT,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    name, *faults = result.stdout.strip().split("|")
    return name, sorted(int(f) for f in faults)


def test_environment_preloads_the_library_first_once(tmp_path):
    library = tmp_path / "libmymalloc.so"
    library.write_bytes(b"")
    env = allocator.environment({"ZOO_MALLOC": str(library), "LD_PRELOAD": "libother.so"})
    assert env["LD_PRELOAD"] == f"{library}:libother.so"
    assert allocator.environment(env)["LD_PRELOAD"] == env["LD_PRELOAD"]  # not twice
    assert int(env["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"]) >= 1 << 40  # XLA's big buffers are no news
    assert env["TCMALLOC_RELEASE_RATE"] == "0"  # freed pages stay mapped: no faults in the next step
    assert allocator.environment({"ZOO_MALLOC": str(library), "TCMALLOC_RELEASE_RATE": "2"}
                                 )["TCMALLOC_RELEASE_RATE"] == "2"  # the user's setting wins


def test_system_malloc_leaves_the_environment_alone_and_a_missing_library_gives_the_default(tmp_path):
    env = {"ZOO_MALLOC": "system", "LD_PRELOAD": "libother.so"}
    assert allocator.environment(env) == env
    missing = {"ZOO_MALLOC": str(tmp_path / "missing.so")}
    assert allocator.missing_library(missing) == missing["ZOO_MALLOC"] and allocator.missing_library({}) is None
    default = allocator.environment({})
    assert {k: v for k, v in allocator.environment(missing).items() if k != "ZOO_MALLOC"} == default


def test_a_preloaded_replacement_malloc_is_kept_unless_system_is_asked_for():
    env = {"LD_PRELOAD": "/opt/lib/libjemalloc.so.2:libother.so"}
    assert allocator.environment(env)["LD_PRELOAD"] == env["LD_PRELOAD"]  # the user's choice: no tcmalloc added
    assert allocator.environment({**env, "ZOO_MALLOC": "system"})["LD_PRELOAD"] == "libother.so"
    assert "LD_PRELOAD" not in allocator.environment({"LD_PRELOAD": "libjemalloc.so.2", "ZOO_MALLOC": "system"})


def test_without_tcmalloc_glibc_is_tuned_and_a_users_tunable_wins():
    tuned = allocator.environment({"ZOO_MALLOC": "glibc", "LD_PRELOAD": "/opt/libjemalloc.so.2:libother.so"})
    assert tuned["LD_PRELOAD"] == "libother.so"  # "glibc" means glibc's: a preloaded replacement goes
    assert tuned["GLIBC_TUNABLES"].split(":") == [f"{k}={v}" for k, v in allocator.GLIBC_SETTINGS.items()]
    assert allocator.glibc_tuned(tuned) and allocator.environment(tuned) == tuned  # no second restart
    # A child asked to run on plain glibc drops what we tuned, and keeps what the user set.
    child = allocator.environment({**tuned, "ZOO_MALLOC": "system", "GLIBC_TUNABLES": "glibc.x=1:"
                                   + tuned["GLIBC_TUNABLES"]})
    assert child["GLIBC_TUNABLES"] == "glibc.x=1" and "ZOO_MALLOC_TUNED" not in child
    assert "GLIBC_TUNABLES" not in allocator.environment({**tuned, "ZOO_MALLOC": "system"})
    mine = allocator.environment({"ZOO_MALLOC": "glibc", "GLIBC_TUNABLES": "glibc.malloc.top_pad=0:glibc.x=1"})
    assert mine["GLIBC_TUNABLES"].split(":")[:2] == ["glibc.malloc.top_pad=0", "glibc.x=1"]
    assert mine["GLIBC_TUNABLES"].count("top_pad") == 1
    assert "GLIBC_TUNABLES" not in allocator.environment({"ZOO_MALLOC": "system"})


def test_tuned_glibc_can_reuse_temporaries_up_to_32_mb():
    """A 16 MB activation: plain glibc maps it afresh (about 8,200 pages faulted in) at every execution;
    tuned glibc serves it from a heap that keeps its pages. Which of XLA's threads allocates it varies, and
    a thread whose arena has not held it yet faults it in once more, so only "some executions take no
    faults" holds on a busy machine (docs/performance.md has the steps/s this buys)."""
    if _huge_pages_always():
        pytest.skip("transparent huge pages are always on: glibc's faults come in 2 MB pages")
    name, faults = run_command("glibc", rows=4096)
    plain_name, plain_faults = run_command("system", rows=4096)
    assert (name, plain_name) == ("glibc (tuned)", "glibc")
    assert min(plain_faults) > 4000, plain_faults
    assert min(faults) < 500, faults


def test_a_relative_library_path_is_made_absolute(tmp_path, monkeypatch):
    (tmp_path / "libmymalloc.so").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert allocator.environment({"ZOO_MALLOC": "libmymalloc.so"})["LD_PRELOAD"] == str(tmp_path / "libmymalloc.so")


@needs_tcmalloc
def test_command_restarts_under_tcmalloc_and_stops_page_faulting_its_temporaries():
    name, faults = run_command("")
    assert "tcmalloc" in name and "TCMALLOC_RELEASE_RATE=0" in name
    glibc_name, glibc_faults = run_command("system")
    assert glibc_name == "glibc"
    if _huge_pages_always():
        pytest.skip("transparent huge pages are always on: glibc's faults come in 2 MB pages")
    # glibc maps the temporaries afresh for every execution: about 32,800 4 KB pages faulted in again each
    # time. tcmalloc reuses them: most executions fault nothing (now and then its heap grows once).
    assert glibc_faults[0] > 16000, glibc_faults
    assert faults[len(faults) // 2] < 500, faults
