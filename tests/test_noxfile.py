"""The nox sessions a new user runs first: installs that show their progress."""

import ast
from pathlib import Path

NOXFILE = Path(__file__).resolve().parent.parent / "noxfile.py"


def test_every_install_shows_pips_progress():
    calls = [node for node in ast.walk(ast.parse(NOXFILE.read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "install"]
    assert calls
    for call in calls:
        silent = {keyword.arg: keyword.value for keyword in call.keywords}.get("silent")
        assert isinstance(silent, ast.Constant) and silent.value is False, f"line {call.lineno}: add silent=False"
