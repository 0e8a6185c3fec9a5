"""The GUI speaks of its own fields: no command-line flags or `covey` commands in what the user reads."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from desktop.wording import gui_words, speaks_cli

ROOT = Path(__file__).resolve().parents[2]
# the areas of issue 10's new-user fixes: Training, Tasks, Knowledge, Network
AREAS = ("desktop/training", "desktop/tasks", "desktop/knowledge", "desktop/network")


def shown_strings(path: Path) -> list[tuple[int, str]]:
    """String constants of a module that are not docstrings or comments (what may reach the screen)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


@pytest.mark.parametrize("area", AREAS)
def test_no_string_of_these_tabs_tells_the_user_to_use_the_command_line(area):
    found = [f"{path.relative_to(ROOT)}:{line}: {text!r}"
             for path in sorted((ROOT / area).glob("*.py")) for line, text in shown_strings(path)
             if speaks_cli(text) and not text.startswith(("`covey", r"`covey"))]
    assert not found, "\n".join(found)


def test_flags_become_the_fields_and_commands_are_dropped_or_replaced():
    fields = {"attackers": "Attackers", "attack": "Attack", "dp-noise": "DP noise", "dp-clip": "DP clip"}
    assert gui_words("differential privacy needs both --dp-noise X and --dp-clip C", fields) == \
        "differential privacy needs both “DP noise” and “DP clip”"
    assert gui_words("--attackers K needs --attack KIND (sign_flip)", fields) == "“Attackers” needs “Attack” (sign_flip)"
    assert gui_words("no such task; see `covey tasks list`", commands={r"`covey tasks list`": "the list"}) == \
        "no such task; see the list"
    assert gui_words("refusing (attach with `covey proxy set --tor`), or not") == "refusing, or not"
    assert gui_words("run `covey init` first") == "run the command line first"
    assert gui_words("exact", sentences={"exact": "mine"}) == "mine"
    assert gui_words("give --frobnicate N") == "give frobnicate"
    for text in ("differential privacy needs both --dp-noise X and --dp-clip C",
                 "tor is not on: `covey proxy set --tor` first", "use --validate off with --secure-agg"):
        assert speaks_cli(text) and not speaks_cli(gui_words(text, fields))
    assert not speaks_cli("a range 1--2 and an em—dash")
