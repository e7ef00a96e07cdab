"""sample.py --interactive: a poem written line by line with the embedded models, driven through a pipe and
through a real pseudo-terminal; the same typed lines give the same proposals; files are never clobbered."""

from __future__ import annotations

import os
import pathlib
import pty
import select
import subprocess
import sys
import time

from tests.helpers import ROOT, assert_usage_error, env, run_sample
from zoo.text import chinese


def _pipe(lines: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "sample.py"), "--interactive", *args],
                          input="".join(f"{line}\n" for line in lines), env=env(1), capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def _proposals(transcript: str) -> list[list[str]]:
    """Each round of numbered proposals in a transcript."""
    rounds = []
    for block in transcript.split("--\n")[1:]:
        rounds.append([line.split(". ", 1)[1] for line in block.splitlines() if line.startswith("  ") and ". " in line])
    return rounds


def test_a_poem_written_through_a_pipe(tmp_path: pathlib.Path) -> None:
    saved, final = tmp_path / "draft.txt", tmp_path / "poem.txt"
    typed = ["夏天的海边", "", "/again", "2", "/undo", "/show", f"/save {saved}", "明月照高楼"]
    result = _pipe(typed, "--model", "poem-zh", "--out", str(final), "--num", "3")
    assert result.returncode == 0, result.stderr
    rounds = _proposals(result.stdout)
    assert len(rounds) == 6 and all(len(r) == 3 for r in rounds)  # after: a line, Enter, /again, 2, /undo, a line
    assert all(chinese.convert(p, "simplified") == p for r in rounds for p in r)  # shown in the typed script
    first = rounds[0][0]
    assert rounds[2] != rounds[1]  # /again drew new proposals
    draft = saved.read_text(encoding="utf-8").splitlines()
    assert draft == ["夏天的海边", first]  # Enter kept the first proposal; /undo took back the one chosen by 2
    assert final.read_text(encoding="utf-8").splitlines() == ["夏天的海边", first, "明月照高楼"]
    assert f"> {typed[-1]}\n" in result.stdout  # piped lines are echoed: the transcript reads like a session
    again = _pipe(typed[:3], "--model", "poem-zh", "--num", "3")
    assert _proposals(again.stdout) == rounds[:3]  # the same lines, the same proposals
    # /save never replaces a file the session did not write; --out is checked before anything loads.
    refused = _pipe(["Night falls", f"/save {saved}"], "--model", "poem", "--num", "2")
    assert f"{saved} exists; not replaced" in refused.stdout
    assert saved.read_text(encoding="utf-8").splitlines()[0] == "夏天的海边"
    assert_usage_error(run_sample("--model", "poem", "--interactive", "--out", str(final)), "already exists")
    assert_usage_error(run_sample("--model", "music", "--interactive"), "--interactive writes poems")


def test_a_poem_written_in_a_terminal(tmp_path: pathlib.Path) -> None:
    primary, secondary = pty.openpty()
    process = subprocess.Popen([sys.executable, str(ROOT / "sample.py"), "--interactive", "--model", "poem",
                                "--prompt", "The sea", "--num", "2", "--out", str(tmp_path / "sea.txt")],
                               stdin=secondary, stdout=secondary, stderr=subprocess.PIPE, env=env(1), cwd=ROOT)
    os.close(secondary)
    seen = b""

    def read_until(marker: bytes, timeout: float = 240) -> None:
        nonlocal seen
        deadline = time.time() + timeout
        while seen.count(marker) < 1 and time.time() < deadline:
            if select.select([primary], [], [], 1)[0]:
                try:
                    seen += os.read(primary, 4096)
                except OSError:
                    return

    read_until(b"\r\n> ")
    assert b"1. " in seen and b"2. " in seen
    seen = b""
    os.write(primary, b"1\n")
    read_until(b"\r\n> ")
    os.write(primary, b"/quit\n")
    assert process.wait(timeout=120) == 0, process.stderr.read()
    os.close(primary)
    lines = (tmp_path / "sea.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "The sea" and len(lines) == 2 and lines[1].strip()


def test_a_line_the_model_cannot_take_is_refused_and_the_poem_kept() -> None:
    from zoo import registry
    from zoo.sample.interactive import Session

    entry = registry.get("poem-zh")
    session = Session(registry.load_sampler(entry)(entry.pretrained_dir), proposals=2)
    reply, done = session.handle("明月照高樓")
    assert not done and len(session.offered) == 2
    reply, done = session.handle("春" * 400)  # longer than the model's context
    assert not done and "too long" in reply and "the line was not added" in reply
    assert session.lines == ["明月照高樓"]
    reply, _ = session.handle("²")  # not a proposal's number: a line of its own, not a crash
    assert session.lines[-1] == "²"
    assert session.handle("/quit") == ("明月照高樓\n²", True)
