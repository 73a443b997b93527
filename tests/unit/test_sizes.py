"""The size limits of edgecam/, checked: no module over 300 lines, no function over 50.

A module that grows past 300 lines owns more than one thing and is split; a function
past 50 lines is read in two screens and is cut at its seams. Every function counts,
methods and nested ones too, from its `def` line to its last line. Nothing is
allowed to stay over: a file that must grow is split in the same change.

`python tests/unit/test_sizes.py` prints every excess, one a line, as
`edgecam/a/b.py: 312 lines (at most 300)` or `edgecam/a/b.py:40 f: 56 lines (at most 50)`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "edgecam"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 50


def excesses() -> Iterator[str]:
    """Every module and function of edgecam/ over its limit, as one line each."""
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(ROOT)
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            yield f"{name}: {lines} lines (at most {MAX_MODULE_LINES})"
        for node in ast.walk(ast.parse(text, str(name))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    yield f"{name}:{node.lineno} {node.name}: {length} lines (at most {MAX_FUNCTION_LINES})"


def test_no_module_over_300_lines_and_no_function_over_50() -> None:
    found = list(excesses())
    assert not found, "over the limits:\n" + "\n".join(found)


def test_the_check_names_an_overlong_module_and_function(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The check itself: a planted module too long, holding a function too long, is named twice."""
    package = tmp_path / "edgecam"
    package.mkdir()
    body = "".join(f"    x{i} = {i}\n" for i in range(50))
    (package / "big.py").write_text("def long():\n" + body + "\n" * 260, encoding="utf-8")
    (package / "small.py").write_text("def short():\n    return 1\n", encoding="utf-8")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "PACKAGE", package)
    assert list(excesses()) == ["edgecam/big.py: 311 lines (at most 300)",
                                "edgecam/big.py:1 long: 51 lines (at most 50)"]


if __name__ == "__main__":
    for line in excesses():
        print(line)
