"""The fenced blocks of README.md and docs/*.md, read at test time, for the docs' own tests.

Pure: reads the Markdown files and returns each fenced block (its file, the line it starts on,
its language and its text, the fence's indentation removed), the shell commands of a shell
block (one per line, a backslash joining lines as the shell does) and Python source with a
prelude around it. Nothing here runs a block; ``tests/test_docs.py`` does.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DOC_FILES", "REPO", "Block", "BlockRef", "Blocks", "Handler", "Handlers", "docs_blocks",
           "read_blocks"]

REPO = Path(__file__).resolve().parent.parent
#: the documents a user reads: the README and every page under docs/
DOC_FILES = ("README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")))
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block.

    Attributes:
        file: the document, relative to the repository (``docs/demo.md``).
        line: the 1-based line of the block's first line of text.
        lang: the fence's language (``sh``, ``python``...), empty when it names none.
        text: the block's text, the fence's indentation removed, ending in a newline.
    """

    file: str
    line: int
    lang: str
    text: str

    @property
    def first_line(self) -> str:
        """The block's first line: with the file, what a block is known by."""
        return self.text.splitlines()[0] if self.text.strip() else ""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def commands(self) -> list[str]:
        """A shell block's command lines as the shell reads them: a line ending in a backslash
        goes on with the next, blank lines and lines that are only a comment are left out. Each
        is the text typed, its trailing comment included (the shell ignores it)."""
        commands, pending = [], ""
        for raw in self.text.splitlines():
            if pending:
                raw = pending + "\n" + raw
            if raw.endswith("\\"):
                pending = raw
                continue
            pending = ""
            if raw.strip() and not raw.lstrip().startswith("#"):
                commands.append(raw)
        return commands

    def output_pattern(self) -> re.Pattern[str]:
        """A block that shows what a command prints, as a pattern for the real output: its lines
        in order, a line of ``...`` for any lines, and what changes from run to run (numbers,
        a session's hex id) for any such value."""
        parts = []
        for line in self.text.splitlines():
            if line.strip() == "...":
                parts.append(r"(?:.*\n)*?")
                continue
            pattern = re.sub(r"[0-9a-f]{12}", "\0HEX\0", line)
            pattern = re.sub(r"\d+(?:\.\d+)?", "\0NUM\0", pattern)
            pattern = re.escape(pattern).replace("\0HEX\0", "[0-9a-f]{12}")
            parts.append(pattern.replace("\0NUM\0", r"\d+(?:\.\d+)?") + r"\n")
        return re.compile("^" + "".join(parts), re.MULTILINE)

    def python(self, prelude: str = "", epilogue: str = "") -> str:
        """The block as a Python file: ``prelude`` (what a user has around a fragment: imports,
        an ``app``), the block's text as written, then ``epilogue``."""
        return "".join(textwrap.dedent(part).strip("\n") + "\n" for part in (prelude, self.text, epilogue)
                       if part.strip())

    def with_placeholder(self, body: str) -> Block:
        """The block with its ``...`` line (where the docs leave the app's own code) replaced by
        ``body``, indented as the ``...`` was.

        Raises:
            ValueError: the block has no line that is only ``...``.
        """
        lines = self.text.splitlines()
        at = next((i for i, line in enumerate(lines) if line.strip() == "..."), None)
        if at is None:
            raise ValueError(f"{self.where}: no `...` line to fill")
        indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
        lines[at : at + 1] = [indent + line for line in textwrap.dedent(body).strip("\n").splitlines()]
        return Block(self.file, self.line, self.lang, "\n".join(lines) + "\n")

    def python_in_main(self, prelude: str = "", epilogue: str = "") -> str:
        """An ``await``-using fragment as a script: ``prelude`` at the top, then the block (and
        ``epilogue``) as the body of ``async def main()``, run by ``asyncio.run``: what a user
        pastes it into."""
        body = textwrap.indent(self.text + textwrap.dedent(epilogue).strip("\n") + "\n", "    ")
        return (textwrap.dedent(prelude).strip("\n") + "\n\n\nasync def main():\n" + body
                + "\n\nasyncio.run(main())\n")


def read_blocks(file: str, text: str) -> list[Block]:
    """Every fenced block of one Markdown document, in order.

    Raises:
        ValueError: a fence that is never closed.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent = len(opening["indent"])
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise ValueError(f"{file}:{i + 1}: a fenced block is never closed")
        body = [line[indent:] if line[:indent].isspace() or not indent else line.lstrip()
                for line in lines[i + 1 : end]]
        blocks.append(Block(file, i + 2, opening["lang"], "\n".join(body) + "\n"))
        i = end + 1
    return blocks


def docs_blocks() -> list[Block]:
    """Every fenced block of README.md and docs/*.md, as the files are now."""
    return [block for file in DOC_FILES for block in read_blocks(file, (REPO / file).read_text())]


#: a block as the tests know it: its document and its first line (a block whose first line
#: changes is a new block, which needs a handler)
BlockRef = tuple[str, str]
Blocks = Mapping[BlockRef, Block]


@dataclass(frozen=True)
class Handler:
    """Runs some blocks: ``run(blocks, box, tmp)``, with ``box`` a sandbox when ``sandboxed``.

    Handlers of one ``group`` run in one test, at the same time (each in its own sandbox and
    directory): most of their time is waiting on real time (a demo's talk, a client's turns),
    which they then share.
    """

    name: str
    refs: tuple[BlockRef, ...]
    run: Callable[..., Awaitable[None]]
    sandboxed: bool
    group: str | None = None


@dataclass
class Handlers:
    """The handlers of one test module, and the blocks it says cannot run here, with why."""

    all: list[Handler] = field(default_factory=list)
    not_runnable: dict[BlockRef, str] = field(default_factory=dict)

    def runs(self, *refs: BlockRef, sandboxed: bool = True, group: str | None = None
             ) -> Callable[[Any], Any]:
        """Decorate the handler of ``refs`` (its first block is the one it is named after)."""
        def register(run: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
            self.all.append(Handler(run.__name__, refs, run, sandboxed, group))
            return run
        return register

    def cases(self) -> list[tuple[Handler, ...]]:
        """What each test runs: a group's handlers together, every other handler alone."""
        cases: dict[str, list[Handler]] = {}
        for handler in self.all:
            cases.setdefault(handler.group or handler.name, []).append(handler)
        return [tuple(case) for case in cases.values()]

    def cannot_run(self, ref: BlockRef, reason: str) -> None:
        self.not_runnable[ref] = reason
