"""mkdocs hook: the module tree of ``development.md``, one line per module, made from the
first line of each module's docstring when the site is built (so it cannot go stale).

The page holds the marker ``<!-- layout -->``; it is replaced by a table of every module of
``src/vercye_lai`` (packages first, each followed by its modules), read with ``ast`` (nothing
is imported).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

PAGE = "development.md"
MARKER = "<!-- layout -->"
SRC = Path(__file__).resolve().parents[2] / "src" / "vercye_lai"


def _first_line(path: Path) -> str:
    """The docstring's first sentence, Sphinx roles dropped (``:mod:`x``` → ``x``)."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    text = " ".join(doc.split("\n\n")[0].split())
    text = re.sub(r":(?:py:)?\w+:`~?([^`]+)`", r"`\1`", text).replace("``", "`")
    sentence = re.split(r"(?<=[.)])\s+(?=[A-Z(*])", text, maxsplit=1)[0]
    return sentence.replace("|", "\\|")


def _rows() -> list[str]:
    rows = []
    top = sorted(p for p in SRC.glob("*.py"))
    for p in top:
        name = "vercye_lai" if p.stem == "__init__" else f"vercye_lai.{p.stem}"
        rows.append(f"| `{name}` | {_first_line(p)} |")
    for pkg in sorted(d for d in SRC.iterdir() if (d / "__init__.py").exists()):
        rows.append(f"| **`vercye_lai.{pkg.name}`** | {_first_line(pkg / '__init__.py')} |")
        for p in sorted(pkg.glob("*.py")):
            if p.stem != "__init__":
                rows.append(f"| `  .{pkg.name}.{p.stem}` | {_first_line(p)} |")
    if len(rows) < 20:
        raise RuntimeError(f"layout hook: only {len(rows)} modules found under {SRC}")
    return rows


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise RuntimeError(f"{PAGE}: the marker {MARKER} is missing")
    table = "\n".join(["| module | what it is |", "| --- | --- |", *_rows()])
    return markdown.replace(MARKER, table)
