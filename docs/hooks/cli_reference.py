"""mkdocs hook: tidy what mkdocs-click writes for ``reference/cli.md``.

mkdocs-click turns the ``::: mkdocs-click`` directive into Markdown from the click commands
themselves (the lazily loaded subcommands of ``vercye_lai.cli.main.LazyGroup`` included:
it asks the group's ``list_commands``/``get_command``). It copies the help texts as they
are, though, and they are written for a terminal: file patterns such as
``{region}_{res}m_{date}`` would turn into emphasis, the ``\\b`` blocks of examples would
be run together into one paragraph, and click ≥ 8.3's unset defaults show as
``Sentinel.UNSET``. This hook adds a Markdown preprocessor that runs right after
mkdocs-click's, on the lines between the page's two markers only, and

* escapes ``_``, ``*`` and ``<`` outside code spans, in text and table cells;
* fences the indented blocks of the help texts (examples, step lists) as text;
* leaves a list its blank line before and after, as Markdown wants;
* shows no default where there is none (``Sentinel.UNSET``, ``None``).

It also fails the build when the directive produced no command, so the page can never be
published empty.
"""

from __future__ import annotations

import re
from typing import Any

from markdown import Extension
from markdown.preprocessors import Preprocessor
from mkdocs.exceptions import PluginError

BEGIN = "<!-- cli-reference:begin -->"
END = "<!-- cli-reference:end -->"
#: mkdocs-click's preprocessor runs at priority 141; this one right after it
PRIORITY = 140
#: an entry of mkdocs-click's list of subcommands: ``- *[name](#anchor)*: short help``
SUBCOMMAND = re.compile(r"^- \*\[[^]]*\]\(#[^)]*\)\*: ")


def _escape(text: str) -> str:
    """Markdown specials escaped outside `code spans`."""
    out = []
    for i, part in enumerate(re.split(r"(`[^`]*`)", text)):
        if not i % 2:
            part = part.replace("_", "\\_").replace("*", "\\*").replace("<", "&lt;")
        out.append(part)
    return "".join(out)


def _row(line: str) -> str:
    cells = line.strip().strip("|").split("|")
    if all(set(c.strip()) <= set("-: ") for c in cells):  # the header rule
        return line
    cells = [c.strip() for c in cells]
    if cells[-1] in ("`Sentinel.UNSET`", "None"):
        cells[-1] = ""
    required = cells[-1] == "_required"
    cells = [_escape(c) for c in cells]
    if required:
        cells[-1] = "*required*"
    return "| " + " | ".join(cells) + " |"


def tidy(lines: list[str]) -> list[str]:
    out: list[str] = []
    fence = False  # inside a ``` block of mkdocs-click (usage)
    block: list[str] = []  # indented help lines, fenced as text
    in_list = False

    def flush() -> None:
        if block:
            if out and out[-1].strip():
                out.append("")
            out.extend(["```text", *block, "```", ""])
            block.clear()

    for line in lines:
        if line.startswith("```"):
            flush()
            fence = not fence
            out.append(line)
            continue
        if fence:
            out.append(line)
            continue
        indented = line.startswith("  ") and line.strip()
        if indented and not in_list:
            block.append(line)
            continue
        flush()
        if line.startswith("|"):
            out.append(_row(line))
        elif line.startswith("#") or line.startswith("**"):  # headings, mkdocs-click's labels
            out.append(line)
        elif SUBCOMMAND.match(line):  # mkdocs-click's list of subcommands: keep the link
            m = SUBCOMMAND.match(line)
            out.append(m.group(0) + _escape(line[m.end():]))
            in_list = True
            continue
        elif line.startswith("- "):
            if not in_list and out and out[-1].strip():
                out.append("")
            in_list = True
            out.append(_escape(line))
            continue
        elif indented:  # a list item's continuation
            out.append(_escape(line))
            continue
        else:
            if in_list and line.strip():
                out.append("")
            out.append(_escape(line))
        in_list = False
    flush()
    return out


class _Tidy(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        if BEGIN not in lines:
            return lines
        start = lines.index(BEGIN)
        end = lines.index(END) if END in lines else len(lines)
        section = lines[start + 1:end]
        if not any(line.startswith("#") for line in section):
            raise PluginError("reference/cli.md: mkdocs-click listed no command")
        return lines[:start + 1] + tidy(section) + lines[end:]


class _TidyExtension(Extension):
    def extendMarkdown(self, md: Any) -> None:
        md.preprocessors.register(_Tidy(md), "vercye_cli_tidy", PRIORITY)


def on_config(config: Any) -> Any:
    config.markdown_extensions.append(_TidyExtension())
    return config
