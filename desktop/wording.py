"""The core's sentences in the GUI's words: its fields instead of command-line flags and commands.

The core words a refusal once, for every surface, and often names the flag of
``covey`` that fixes it ("--attackers K needs --attack KIND"). A form shows the
same refusal but speaks of its own fields: each form passes the names of its
fields by flag, the sentences it words better itself, and what a command means
in the window (the list below, the Trust tab).
"""
from __future__ import annotations

import re
from typing import Any, Awaitable, Callable, Mapping

from core.errors import BadRequest, CoveyError, human

FLAG = re.compile(r"--([a-z][a-z0-9-]*)((?: (?:[A-Z][A-Z0-9_]*(?:[:,.][A-Z][A-Z0-9_]*)*|X|C|K|N))*)")
COMMAND = re.compile(r"`covey[^`]*`")
ASIDE = re.compile(r"\s*\([^()]*`covey[^`]*`[^()]*\)")


def gui_words(text: str, fields: Mapping[str, str] | None = None,
              sentences: Mapping[str, str] | None = None,
              commands: Mapping[str, str] | None = None) -> str:
    """``text`` as a window says it.

    ``sentences``: a whole sentence of the core -> the form's own sentence;
    ``commands``: a regular expression matching a ``covey ...`` command -> what
    does the same in the window; ``fields``: a flag without its dashes -> the
    field's label (shown in quotes). A command left over is dropped with the
    parenthesis around it, or named "the command line"; a flag left over loses
    its dashes.
    """
    if sentences and text in sentences:
        return sentences[text]
    for pattern, words in (commands or {}).items():
        text = re.sub(pattern, words, text)
    text = ASIDE.sub("", text)
    text = COMMAND.sub("the command line", text)

    def field(match: re.Match) -> str:
        name = match.group(1)
        label = (fields or {}).get(name)
        return f"“{label}”" if label else name.replace("-", " ")
    return FLAG.sub(field, text)


async def reworded(call: Awaitable[Any], words: Callable[[str], str]) -> Any:
    """Await ``call``; a refusal of the core is raised again as ``words`` says it (the status bar and
    the form then show the same sentence)."""
    try:
        return await call
    except CoveyError as exc:
        raise BadRequest(words(human(exc))) from exc


def speaks_cli(text: str) -> bool:
    """Whether ``text`` still uses command-line words (a flag or a ``covey`` command)."""
    return bool(re.search(r"(^|[\s(“\"'])--[a-z]|`covey", text))
