"""mkdocs hook: the run-config reference (``reference/config.md``), generated at build time.

Every key of ``[source]``, ``[predict]``, ``[[analyses]]`` and ``[dask]`` comes from the
fields of that table's options type (``vercye_lai.options.fields_of``: type, default,
allowed values and help, the same as the command-line options). The few keys that are
not an options type's field (the top level, ``[[regions]]``, ``[executor]``, the names and
geometry of ``[[analyses]]``) are described here, but their names and defaults are read
from the config parser itself (a config with an unknown key is rejected with the list of
the keys the parser reads), so the build fails when they drift apart.

The options types are read through the package's public names: ``vercye_lai.PredictOptions``,
``vercye_lai.AnalysisOptions``, ``vercye_lai.options``, ``vercye_lai.acquire.SOURCES`` /
``source`` (typed ``Source`` objects) and ``vercye_lai.run.config``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import re
import sys
import tempfile
import typing
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

PAGE = "reference/config.md"
MARKER = "<!-- config-reference -->"

#: the command whose options a source kind's keys are
SOURCE_COMMANDS = {
    "local": None,
    "bands": "stack-bands",
    "safe": "stack-safe",
    "stac": "stack-stac",
    "gee": "export-gee",
    "hls": "stack-hls",
    "landsat": "stack-landsat",
    "stac-direct": "predict-stac",
}

#: keys that are not fields of an options type: (type, help); names and defaults are checked
#: against the parser at build time
TOP_KEYS = {
    "output_root": ("path", "Everything goes under it: `stacks/{region}/`, `lai/{region}/`, "
                    "`analysis/{region}/{analysis}/`, `run_summary.json`, `run.log`."),
    "resolution": ("number", "Metres, as in `{region}_{res}m_{date}`: Sentinel-2's (10 or 20); HLS and "
                   "Landsat stacks are 30 m whatever it says."),
    "regions": ("list of tables", "The `[[regions]]` entries (below); at least one."),
    "source": ("table or list of tables", "`[source]` (below), or several `[[source]]` tables: one season "
               "from several sensors."),
    "predict": ("table", "`[predict]` (below)."),
    "analyses": ("list of tables", "The `[[analyses]]` entries (below); none: no analysis."),
    "executor": ("table", "`[executor]` (below)."),
    "dask": ("table", "`[dask]` (below), used with `executor.kind = \"dask\"`."),
}
REGION_KEYS = {
    "name": ("string", "The region's name, as in the file names `{region}_{res}m_{date}`; distinct."),
    "start_date": ("date", "First date, inclusive (YYYY-MM-DD)."),
    "end_date": ("date", "Last date, inclusive (YYYY-MM-DD)."),
    "library": ("path", "A region-library folder holding `{name}.geojson` (`vercye-lai build-library`)."),
    "geometry": ("path", "A vector file of the region (instead of `library`). Sources that clip to the "
                 "region need one of the two."),
}
ANALYSIS_KEYS = {
    "name": ("string", "The analysis' name (its folder `analysis/{region}/{name}/`); distinct."),
    "geometry": ("path", "A vector file of the fields (`poly_*` modes) or a crop-mask raster (`raster`)."),
    "regions": ("list of strings", "The regions it covers (names of `[[regions]]`)."),
    "quicklook": ("boolean", "A PNG per zone (`vercye-lai quicklook`)."),
}
EXECUTOR_KEYS = {
    "kind": ("string", "`serial` (one thread), `threads` (one machine, all cores) or `dask` "
             "(extra `dask`: a LocalCluster, a running scheduler, or SLURM/PBS jobs)."),
    "workers": ("integer", "Parallel workers (threads, or local Dask workers)."),
    "zones_per_task": ("integer", "Fields (zones) one analysis part task covers; fields are ordered "
                       "along a Hilbert curve, so a part reads a small window."),
    "dates_per_task": ("integer", "Dates one analysis part task covers."),
}
#: what an unset default means, where the parser leaves the value empty
UNSET = {
    ("regions", "library"): "—",
    ("regions", "geometry"): "—",
    ("analyses", "name"): "the geometry file's stem",
    ("analyses", "regions"): "every region",
    ("executor", "workers"): "the cores available to the process (affinity, cgroup quota)",
    ("executor", "dates_per_task"): "about two parts per worker",
}

_TYPE_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path",
               dt.date: "date"}


# ------------------------------------------------------------------ the package


def _import_vercye():
    try:
        importlib.import_module("vercye_lai")
    except ImportError:  # not installed: the source tree beside mkdocs.yml
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    options = importlib.import_module("vercye_lai.options")
    face = importlib.import_module("vercye_lai")
    PredictOptions, AnalysisOptions = face.PredictOptions, face.AnalysisOptions  # noqa: N806 - types
    acquire = importlib.import_module("vercye_lai.acquire")
    config = importlib.import_module("vercye_lai.run.config")
    errors = importlib.import_module("vercye_lai.errors")
    return options, PredictOptions, AnalysisOptions, acquire, config, errors


# ------------------------------------------------------------------ Markdown helpers


def _escape(text: str) -> str:
    """Text for a table cell: Markdown specials escaped outside `code spans`."""
    out = []
    for i, part in enumerate(re.split(r"(`[^`]*`)", text)):
        if i % 2:  # a code span
            out.append(part.replace("|", "\\|"))
        else:
            for a, b in (("\\", "\\\\"), ("*", "\\*"), ("_", "\\_"), ("<", "&lt;"), ("[", "\\["),
                         ("]", "\\]"), ("|", "\\|")):
                part = part.replace(a, b)
            out.append(part)
    return "".join(out).replace("\n", " ")


def _rst_to_md(text: str) -> str:
    """``literal`` and :role:`target` of a docstring as Markdown code spans."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, Path)):
        return f'"{value}"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dt.date):
        return value.isoformat()
    return repr(value)


def _code(value: Any) -> str:
    return f"`{_toml(value)}`"


def _table(rows: list[tuple[str, str, str, str, str]]) -> str:
    lines = ["| key | type | default | allowed values | help |", "| --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------ options types


def _type_name(kind: Any) -> str:
    name = _TYPE_NAMES.get(kind.base, getattr(kind.base, "__name__", str(kind.base)))
    return f"list of {name}s" if kind.many else name


def _allowed(options: Any, s: Any) -> str:
    parts = []
    values = options.allowed_values(s)
    if values is not None:
        parts.append(", ".join(f"`{v}`" for v in values))
    if s.or_file:
        parts.append(f"or a `{s.or_file}` file")
    if s.min is not None and s.max is not None:
        parts.append(f"{s.min:g} to {s.max:g}")
    elif s.min is not None:
        parts.append(f"≥ {s.min:g}")
    elif s.max is not None:
        parts.append(f"≤ {s.max:g}")
    return " ".join(parts) if parts else ""


def _option_rows(options: Any, cls: type) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for f, s, kind in options.fields_of(cls):
        if not s.config:  # a per-invocation setting (workers, overwrite): command line only
            continue
        default = options.default_of(f)
        if default is options.MISSING:
            shown = "required"
        elif default is None:
            shown = _escape(s.default_help) if s.default_help else "—"
        else:
            shown = _code(default)
        rows.append((f"`{f.name}`", _type_name(kind), shown, _allowed(options, s), _escape(s.help)))
    return rows


# ------------------------------------------------------------------ the parser's own keys


class _Probe:
    """Runs the config parser on small configs to read its keys, defaults and choices."""

    def __init__(self, config: Any, errors: Any, folder: Path) -> None:
        self.config, self.error, self.folder = config, errors.ConfigError, folder
        (folder / "fields.geojson").write_text('{"type": "FeatureCollection", "features": []}')
        (folder / "stacks").mkdir()

    def minimal(self, **extra: Any) -> dict[str, Any]:
        doc = {"output_root": "out", "source": {"kind": "local", "path": "stacks"},
               "regions": [{"name": "r", "start_date": "2024-04-01", "end_date": "2024-07-31"}]}
        doc.update(extra)
        return doc

    def parse(self, doc: dict[str, Any]) -> Any:
        return self.config.parse_config(doc, base_dir=self.folder)

    def message(self, doc: dict[str, Any]) -> str:
        try:
            self.parse(doc)
        except self.error as exc:
            return str(exc)
        raise PluginError(f"{PAGE}: the config parser accepted a config it should reject: {doc}")

    def _listed(self, doc: dict[str, Any], pattern: str, what: str) -> list[str]:
        """The comma-separated list the parser's message about ``doc`` gives after ``pattern``."""
        msg = self.message(doc)
        m = re.search(pattern + r"(.*)$", msg)
        if not m:
            raise PluginError(f"{PAGE}: cannot read {what} from the parser: {msg}")
        return [k.strip() for k in m.group(1).split(",")]

    def keys(self, doc: dict[str, Any], where: str) -> list[str]:
        """The keys the parser reads in a table (from its message about an unknown key)."""
        return self._listed(doc, r"unknown key\(s\) zz_unknown; allowed keys: ", f"the keys of {where}")

    def choices(self, doc: dict[str, Any], where: str) -> list[str]:
        return self._listed(doc, r"allowed values: ", f"the allowed values of {where}")


def _check(where: str, documented: dict[str, Any], parsed: list[str]) -> None:
    if set(documented) != set(parsed):
        raise PluginError(
            f"{PAGE}: the keys of {where} described in docs/hooks/config_reference.py "
            f"({', '.join(sorted(documented))}) differ from those the parser reads "
            f"({', '.join(sorted(parsed))}); update the hook")


def _hand_rows(table: str, described: dict[str, tuple[str, str]], defaults: dict[str, Any],
               required: set[str],
               allowed: dict[str, str] | None = None) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for key in described:  # in the order described (the same keys as the parser's: _check)
        typ, help_ = described[key]
        if key in required:
            shown = "required"
        elif key in defaults and defaults[key] is not None:
            shown = _code(defaults[key])
        else:
            shown = _escape(UNSET.get((table, key), "—"))
        rows.append((f"`{key}`", typ, shown, (allowed or {}).get(key, ""), _escape(help_)))
    return rows


# ------------------------------------------------------------------ the page


def render() -> str:
    options, PredictOptions, AnalysisOptions, acquire, config, errors = _import_vercye()
    hints = typing.get_type_hints(config.RunConfig)
    DaskSettings = hints["dask"]

    with tempfile.TemporaryDirectory() as tmp:
        p = _Probe(config, errors, Path(tmp))
        base = p.parse(p.minimal(analyses=[{"geometry": "fields.geojson"}]))

        top = p.keys(p.minimal(zz_unknown=1), "the top level")
        _check("the top level", TOP_KEYS, top)
        region_keys = p.keys(p.minimal(regions=[{**p.minimal()["regions"][0], "zz_unknown": 1}]),
                             "[[regions]]")
        _check("[[regions]]", REGION_KEYS, region_keys)
        option_fields = {f.name for f, s, _ in options.fields_of(AnalysisOptions) if s.config}
        analysis_keys = [k for k in p.keys(p.minimal(analyses=[{"geometry": "fields.geojson",
                                                                "zz_unknown": 1}]), "[[analyses]]")
                         if k not in option_fields]
        _check("[[analyses]] (besides the analysis options)", ANALYSIS_KEYS, analysis_keys)
        executor_keys = p.keys(p.minimal(executor={"zz_unknown": 1}), "[executor]")
        _check("[executor]", EXECUTOR_KEYS, executor_keys)
        executors = p.choices(p.minimal(executor={"kind": "zz_unknown"}), "executor.kind")
        default_kind = p.parse(p.minimal(source={"path": "stacks"})).sources[0].kind

    region = base.regions[0]
    analysis = base.analyses[0]
    top_defaults = {"resolution": base.resolution}
    required_top = {"output_root", "regions", "source"}
    region_defaults = {f.name: getattr(region, f.name) for f in dataclasses.fields(region)}
    analysis_defaults = {"regions": analysis.regions, "quicklook": analysis.quicklook}
    executor_defaults = {"kind": base.executor, "workers": base.workers,
                         "zones_per_task": base.zones_per_task, "dates_per_task": base.dates_per_task}

    out = []
    out += ["## Top level", "",
            _table(_hand_rows("top", TOP_KEYS, top_defaults, required_top)), ""]
    out += ["## `[[regions]]`", "",
            "One entry per region: a name, its geometry and an inclusive date range.", "",
            _table(_hand_rows("regions", REGION_KEYS, region_defaults,
                              {"name", "start_date", "end_date"})), ""]

    kinds = list(config.KINDS)  # every kind a run takes: the stack sources, then stac-direct
    out += ["## `[source]`", "",
            "Where the stacks come from: `kind` picks the source, the other keys are that source's "
            "options, the same as its command's (`[[source]]`, written once per source, for several "
            "sensors in one season).", "",
            _table([("`kind`", "string", _code(default_kind), ", ".join(f"`{k}`" for k in kinds),
                     "The source (one table below each).")]), ""]
    for kind in kinds:
        options_type = acquire.source(kind).options
        module = sys.modules.get(options_type.__module__)
        doc = _rst_to_md(((module and module.__doc__) or "").strip().split("\n\n")[0])
        command = SOURCE_COMMANDS.get(kind)
        same = f" The options of `vercye-lai {command}`." if command else ""
        out += [f"### `kind = \"{kind}\"`", "", " ".join(doc.split()) + same, ""]
        rows = _option_rows(options, options_type)
        out += [_table(rows) if rows else "No other keys.", ""]

    out += ["## `[predict]`", "",
            "The options of `vercye-lai predict` (command-line-only settings such as `--workers` and "
            "`--overwrite` are not config keys).", "",
            _table(_option_rows(options, PredictOptions)), ""]
    out += ["## `[[analyses]]`", "",
            "Any number of analyses, each over every region (or those of `regions`). Besides these "
            f"{len(ANALYSIS_KEYS)} keys, an entry takes every option of `vercye-lai analyze` (the second "
            "table).", "",
            _table(_hand_rows("analyses", ANALYSIS_KEYS, analysis_defaults,
                              {"geometry"})), "",
            _table(_option_rows(options, AnalysisOptions)), ""]
    out += ["## `[executor]`", "",
            _table(_hand_rows("executor", EXECUTOR_KEYS, executor_defaults, set(),
                              {"kind": ", ".join(f"`{k}`" for k in executors)})), ""]
    dask_doc = (DaskSettings.__doc__ or "").strip().split("\n\n")[1:]
    out += ["## `[dask]`", "",
            "Used with `executor.kind = \"dask\"` (extra `dask`; `slurm` and `pbs`: extra `jobqueue`)."
            + "".join(" " + _rst_to_md(" ".join(d.split())) for d in dask_doc), "",
            _table(_option_rows(options, DaskSettings)), ""]
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"{PAGE} lacks the marker {MARKER} where the tables go")
    return markdown.replace(MARKER, render())
