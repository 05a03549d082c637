"""Every `python -m qtrain ...` command in README.md and docs/ composes, as `--cfg job`
would check it without training: placeholders (`<run>`) stand for any value, a sweep
(`-m a=1,2`) is composed at its first point. The few commands it cannot compose here are
listed in NOT_COMPOSED with the reason."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import qtrain
from qtrain.config import first_point

ROOT = Path(qtrain.CONFIG_DIR).parent
# python -m qtrain, .venv/bin/qtrain, torchrun ... -m qtrain (not qtrain.predict: another app)
QTRAIN = re.compile(r"^(\S*python\S* -m qtrain|\S*qtrain|\S*torchrun .* -m qtrain)(\s|$)")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A command shown in the docs that this test cannot compose, and why.
NOT_COMPOSED = {
    "python -m qtrain experiment=nope": "shows the refusal of an unknown preset",
    "python -m qtrain stages.train.epoch=3": "shows the refusal of a misspelled key",
}


def shell_blocks(text: str) -> list[str]:
    """The code blocks of a Markdown page that hold shell commands (bash, console, or none)."""
    blocks, language, lines = [], None, []
    for line in text.splitlines():
        if line.startswith("```"):
            if language is None:
                language, lines = line[3:].strip(), []
            else:
                if language in ("", "bash", "console", "sh"):
                    blocks.append("\n".join(lines))
                language = None
        elif language is not None:
            lines.append(line)
    return blocks


def commands() -> list[tuple[str, str]]:
    """(page, command) for each `qtrain` command in a shell block, continuation lines joined."""
    found = []
    for page in PAGES:
        for block in shell_blocks(page.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #", 1)[0].strip().removeprefix("$ ")
                if QTRAIN.match(line):
                    found.append((page.name, line))
    return found


def overrides(command: str) -> list[str]:
    """The command's overrides, placeholders filled, a sweep at its first point."""
    words = shlex.split(re.sub(r"<[^>]*>", "x", command))
    start = next(i for i, w in enumerate(words) if w == "qtrain" or w.endswith("/qtrain")) + 1
    return first_point([w for w in words[start:] if w not in ("-m", "--multirun", "--cfg", "job", "--help")])


CASES = commands()


def test_the_docs_show_commands_and_the_exceptions_are_in_them():
    shown = {command for _, command in CASES}
    assert len(CASES) >= 30
    assert set(NOT_COMPOSED) <= shown, set(NOT_COMPOSED) - shown


@pytest.mark.parametrize("page,command", [c for c in CASES if c[1] not in NOT_COMPOSED])
def test_a_command_in_the_docs_composes(page, command):
    qtrain.compose(overrides(command))
