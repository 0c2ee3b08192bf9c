"""mkdocs hook: the Python API page (``reference/api.md``) reads Sphinx roles as plain code.

The docstrings are numpy style, written for ``help()`` and Sphinx alike, so they name other
objects as ``:class:`~vercye_lai.predict.PredictOptions```. mkdocstrings renders the role
as text before the code span (``:class:PredictOptions``); this hook drops the role and the
``~`` (the short name is what Sphinx shows too).
"""

from __future__ import annotations

import re
from typing import Any

PAGE = "reference/api.md"
ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const|term|ref):(<code>)~?")


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return html
    html = ROLE.sub(r"\1", html)
    # `~a.b.C` names C, as Sphinx shows it
    return re.sub(r"<code>~([\w.]+\.)?(\w+)</code>", r"<code>\2</code>", html)
