"""Writing a poem with the model, line by line, in a terminal or through a pipe.

    python sample.py --model poem-zh --interactive [--prompt FIRST_LINE] [--out poem.txt]

The person types a line; the model proposes the next one, `proposals` of them, numbered. The person then
keeps one (its number, or Enter for the first), writes their own line instead, asks again, undoes, or
saves:

    a line of text   add it to the poem; the model proposes what follows
    Enter / 1..N     keep the first / the N-th proposal
    /again           new proposals for the same place
    /undo            take back the last line
    /save [FILE]     write the poem (to FILE, else --out); an existing file is never replaced
    /show            print the poem so far
    /quit            end (so does the end of input); with --out the poem is saved there

Proposals are drawn with the same settings as `sample.py` (temperature, top-k, top-p) from the whole poem
so far, so the model keeps its rhyme and metre in view; round r of a session draws with seed + r, so the
same typed lines give the same proposals. Reading lines from a pipe works the same way (each line read is
echoed after the prompt, so a transcript reads like the terminal session), which is how the tests drive it.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Protocol, TextIO

from zoo.errors import UsageError
from zoo.sample import writers

PROMPT = "> "
COMMANDS = ("/again", "/undo", "/save", "/show", "/quit", "/help")


class LineWriter(Protocol):
    def next_lines(self, lines: list[str], num: int, seed: int, **options) -> list[str]: ...


class Session:
    """One poem written together. `read` maps typed text into the model's script and `show` maps the
    model's text back (identity for English; OpenCC for a Chinese model, see sample.py)."""

    def __init__(self, sampler: LineWriter, *, proposals: int = 3, seed: int = 0, options: dict | None = None,
                 out: str | None = None, read: Callable[[str], str] = str, show: Callable[[str], str] = str,
                 overwrite: bool = False):
        if not 1 <= proposals <= 9:
            raise UsageError(f"--num sets the proposals per line in --interactive: 1-9, got {proposals}")
        self.sampler, self.proposals, self.seed = sampler, proposals, seed
        self.options, self.out, self.read, self.show = options or {}, out, read, show
        self.lines: list[str] = []
        self.offered: list[str] = []
        self.round = 0
        self.written: set[pathlib.Path] = set()  # files this session saved: only these may be saved over
        if overwrite and out is not None:  # --overwrite: the person allowed replacing --out
            self.written.add(pathlib.Path(out).expanduser().resolve())

    @property
    def poem(self) -> str:
        return self.show("\n".join(self.lines))

    def propose(self) -> list[str]:
        """The next `proposals` lines after the poem so far (round r drawn with seed + r)."""
        self.offered = self.sampler.next_lines(self.lines, self.proposals, self.seed + self.round, **self.options)
        self.round += 1
        return self.offered

    def handle(self, typed: str) -> tuple[str, bool]:
        """(what to print, whether the session ends) for one typed line."""
        text = typed.strip()
        if text in ("/quit", "/exit"):
            return self._finish(), True
        if text == "/help":
            return __doc__.split("\n\n")[2], False
        if text == "/show":
            return self.poem or "(the poem is empty)", False
        if text.startswith("/save"):
            return self._save(text[len("/save"):].strip() or self.out), False
        if text == "/undo":
            if not self.lines:
                return "nothing to undo", False
            self.lines.pop()
            return self._offer() if self.lines else "(the poem is empty: type its first line)", False
        if text == "/again":
            return (self._offer() if self.lines else "type a first line first"), False
        if text.startswith("/"):
            return f"unknown command {text.split()[0]}; commands: {', '.join(COMMANDS)}", False
        if not text or (len(text) == 1 and text in "123456789" and self.offered):  # "1984" is a line
            choice = int(text or "1")
            if not self.offered:
                return "type a line to begin", False
            if not 1 <= choice <= len(self.offered):
                return f"choose 1-{len(self.offered)}", False
            if not self.offered[choice - 1]:
                return "that proposal ends the poem: /quit to finish, or choose another", False
            self.lines.append(self.offered[choice - 1])
        else:
            self.lines.append(self.read(text))
        try:
            return self._offer(), False
        except UsageError as e:  # e.g. a pasted line longer than the model's context: take it back
            self.lines.pop()
            return f"{e} (the line was not added)", False

    def _offer(self) -> str:
        proposals = self.propose()
        shown = "\n".join(f"  {i}. {self.show(line) if line else '(the end of the poem)'}"
                          for i, line in enumerate(proposals, 1))
        return f"{self.poem}\n--\n{shown}"

    def _save(self, target: str | None) -> str:
        if target is None:
            return "/save needs a file name (or start with --out FILE)"
        path = pathlib.Path(target).expanduser()
        if path.is_dir():
            return f"{path} is a directory: /save FILE"
        if path.exists() and path.resolve() not in self.written:
            return f"{path} exists; not replaced: /save ANOTHER_NAME"
        try:
            writers.write_bytes(path, (self.poem + "\n").encode("utf-8"))
        except OSError as e:
            return f"cannot save {path}: {e.strerror or e}"
        self.written.add(path.resolve())
        return f"saved {path}"

    def _finish(self) -> str:
        if self.out is not None and self.lines:
            message = self._save(self.out)
            return f"{self.poem}\n{message}"
        return self.poem

    def run(self, first: str | None, source: TextIO, sink: TextIO, echo: bool) -> None:
        """The conversation: `first` (e.g. --prompt) as the opening line, then one line of `source` at a
        time until /quit or its end."""
        print("Write a poem with the model, line by line; /help lists the commands.", file=sink)
        if first:
            print(self.handle(first)[0], file=sink)
        try:
            while True:
                print(PROMPT, end="", file=sink, flush=True)
                typed = source.readline()
                if not typed:  # end of input
                    break
                if echo:
                    print(typed.rstrip("\n"), file=sink)
                reply, done = self.handle(typed)
                print(reply, file=sink, flush=True)
                if done:
                    return
        except KeyboardInterrupt:  # Ctrl-C ends the session as /quit does: the poem is kept
            pass
        print("", file=sink)
        print(self.handle("/quit")[0], file=sink)
