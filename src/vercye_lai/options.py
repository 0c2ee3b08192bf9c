"""Typed, frozen options objects — one per step — and what is derived from them.

Each step's options are one frozen dataclass (:class:`~vercye_lai.predict.PredictOptions`,
:class:`~vercye_lai.analysis.options.AnalysisOptions`, one per acquisition source) whose
fields are declared with :func:`setting`: the default, the allowed values or range and
the help text live there, once. From those fields come

* the command-line options (:func:`vercye_lai.cli.options.click_options` as a decorator,
  :func:`~vercye_lai.cli.options.from_cli` to build the object from the parsed values),
* the run config's parser (:func:`from_table`, whose errors name the key path:
  ``analyses[1].mode: 'poly' is not allowed; allowed values: raster, poly_agg, poly_iter``),
* the checks a library caller gets when building the object by hand (``__post_init__``
  of :class:`Options`).

So the CLI, the run config and the library cannot drift apart: adding an option is one
:func:`setting` field plus the code that uses it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vercye_lai.errors import ConfigError

__all__ = ["MISSING", "Options", "Setting", "Table", "check_value", "default_of", "fields_of", "settings_of", "from_table", "setting"]

MISSING = _MISSING = dataclasses.MISSING


@dataclasses.dataclass(frozen=True)
class Setting:
    """What a field of an options type declares besides its type and default.

    Attributes
    ----------
    help
        One help text for ``--help`` and the docs.
    choices
        Allowed values (a sequence, or a callable returning one, so that heavy imports such
        as the model registry wait until they are needed).
    min, max
        Inclusive numeric bounds.
    cli
        The option's spelling (default ``--field-name``); ``None``: not on the command line.
    aliases
        Other spellings accepted but not shown (older scripts, the reference implementation).
    config
        Read from the run config (``False``: a per-invocation setting such as ``workers``).
    case_sensitive
        Choices compared case-insensitively on the command line when ``False``.
    default_help
        Text shown as the default when the default is ``None`` (e.g. ``no limit``).
    metavar
        Placeholder shown in ``--help``.
    sep
        For a tuple field: on the command line one value with items separated by ``sep``
        (``--scl-mask 0,1,3``) instead of a repeated option; a list in the run config.
    exists
        A path the run config must name an existing file or folder for (an input).
    or_file
        A suffix (``".json"``): besides the ``choices``, the path of such a file is allowed.
    """

    help: str
    choices: Sequence[Any] | Callable[[], Sequence[Any]] | None = None
    min: float | None = None
    max: float | None = None
    cli: str | None = ""
    aliases: tuple[str, ...] = ()
    config: bool = True
    case_sensitive: bool = True
    default_help: str | None = None
    metavar: str | None = None
    sep: str | None = None
    exists: bool = False
    or_file: str | None = None



def setting(default: Any = _MISSING, *, default_factory: Any = _MISSING, **kw: Any) -> Any:
    """A dataclass field carrying a :class:`Setting` (keywords as its attributes)."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"setting": Setting(**kw)})


# ------------------------------------------------------------------ types of the fields


@dataclasses.dataclass(frozen=True)
class _Kind:
    """A field's type, reduced to what the parsers need."""

    base: type  # str, int, float, bool, Path, dt.date
    optional: bool  # ``X | None``
    many: bool  # ``tuple[X, ...]``


def _kind(tp: Any) -> _Kind:
    optional = False
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        optional, tp = len(rest) < len(args), rest[0]
    if typing.get_origin(tp) is tuple:
        return _Kind(typing.get_args(tp)[0], optional, True)
    return _Kind(tp, optional, False)


@functools.cache
def fields_of(cls: type) -> tuple[tuple[dataclasses.Field, Setting, _Kind], ...]:
    """The :func:`setting` fields of ``cls`` with their declared types, in order."""
    hints = typing.get_type_hints(cls)
    return tuple((f, f.metadata["setting"], _kind(hints[f.name]))
                 for f in dataclasses.fields(cls) if "setting" in f.metadata)


def settings_of(cls: type) -> dict[str, Setting]:
    """Field name → :class:`Setting` of an options type."""
    return {f.name: s for f, s, _ in fields_of(cls)}


def allowed_values(s: Setting) -> tuple[Any, ...] | None:
    """The allowed values of a setting (``None``: any value of its type)."""
    if s.choices is None:
        return None
    return tuple(s.choices() if callable(s.choices) else s.choices)


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:
        return f.default_factory()
    return _MISSING


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "a table", dt.date: "a date (YYYY-MM-DD)", Path: "a path"}


def _join(values: Iterable[Any]) -> str:
    return ", ".join(map(str, values))


def check_value(name: str, value: Any, s: Setting) -> None:
    """Raise :class:`ConfigError` (``name: …``) when ``value`` is outside what ``s`` allows."""
    if value is None:
        return
    values = value if isinstance(value, tuple) else (value,)
    allowed = allowed_values(s)
    for v in values:
        if s.or_file and v not in (allowed or ()) and str(v).lower().endswith(s.or_file):
            continue
        if allowed is not None and v not in allowed:
            extra = f", or a {s.or_file} file" if s.or_file else ""
            raise ConfigError(f"{name}: {v!r} is not allowed; allowed values: {_join(allowed)}{extra}")
        if s.min is not None and v < s.min:
            raise ConfigError(f"{name}: must be at least {s.min:g}, not {v}")
        if s.max is not None and v > s.max:
            raise ConfigError(f"{name}: must be at most {s.max:g}, not {v}")


class Options:
    """Base of the options types: checks every :func:`setting` field when made, after giving
    each the type it declares (a library caller's ``variables="LAI"`` is ``("LAI",)``, not
    the letters; ``"2022-06-01"`` a date; a value of another type is a :class:`ConfigError`
    naming the field, not an AttributeError deep inside a step)."""

    def __post_init__(self) -> None:
        self._type_fields()
        for f, s, _ in fields_of(type(self)):
            check_value(f.name, getattr(self, f.name), s)

    def _type_fields(self) -> None:
        """Give every field its declared type (idempotent; subclasses call it first when they
        derive values in their own ``__post_init__``)."""
        for f, _, kind in fields_of(type(self)):
            v = getattr(self, f.name)
            if v is None:
                continue
            if kind.many:
                items = (v,) if isinstance(v, (str, Path)) or not isinstance(v, Iterable) else tuple(v)
                typed = tuple(_as_type(f.name, x, kind.base) for x in items)
            else:
                typed = _as_type(f.name, v, kind.base)
            if typed is not v:
                object.__setattr__(self, f.name, typed)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values (tuples as lists), in field order."""
        return {f.name: _plain(getattr(self, f.name)) for f, _, _ in fields_of(type(self))}


def _as_type(name: str, v: Any, base: type) -> Any:
    """``v`` as ``base`` (str, int, float, bool, Path, date), or a ConfigError naming ``name``."""
    wrong = ConfigError(f"{name}: expected {_TYPE_WORDS.get(base, base.__name__)}, got {v!r}")
    if base is bool:
        if not isinstance(v, bool):
            raise wrong
        return v
    if base is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise wrong
        return v
    if base is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise wrong
        return v if isinstance(v, float) else float(v)
    if base is Path:
        if not isinstance(v, (str, Path)):
            raise wrong
        return v if isinstance(v, Path) else Path(v)
    if base is dt.date:
        if isinstance(v, dt.datetime) or not isinstance(v, (dt.date, str)):
            raise wrong
        try:
            return v if isinstance(v, dt.date) else dt.date.fromisoformat(v)
        except ValueError:
            raise wrong from None
    if base is str and not isinstance(v, str):
        raise wrong
    return v


_TYPE_WORDS = {str: "text", int: "an integer", float: "a number", bool: "true or false", Path: "a path",
               dt.date: "a date (YYYY-MM-DD)"}


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return str(v) if isinstance(v, Path) else v


# ------------------------------------------------------------------ the run config


class Table:
    """Typed access to one table of the run config; every error names the full key path.

    Keys read are remembered, so that :meth:`done` can reject unknown ones (a typo in a
    config must not be ignored).
    """

    def __init__(self, data: Any, path: str, *, base: Path | None = None) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a table, got {data!r}")
        self.data, self.path, self.used = dict(data), path, set()
        self.base = base

    def key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, typ: type, default: Any = _MISSING, *,
            choices: Sequence | None = None, exists: bool = False) -> Any:
        """The value of ``key`` as a ``typ`` (``default`` when absent; required without).

        ``exists``: a path that must exist now (an input), so that a typo fails the run
        before any work, naming the key.
        """
        self.used.add(key)
        if key not in self.data:
            if default is _MISSING:
                raise ConfigError(f"{self.key(key)}: required key is missing")
            return default
        v = self._typed(key, self.data[key], typ)
        if choices is not None and v not in choices:
            raise ConfigError(f"{self.key(key)}: {v!r} is not allowed; allowed values: "
                              + _join(choices))
        if exists and typ is Path and not v.exists():
            raise ConfigError(f"{self.key(key)}: file does not exist: {v}")
        return v

    def _typed(self, key: str, v: Any, typ: type) -> Any:
        if typ is dt.date and isinstance(v, str):
            try:
                v = dt.date.fromisoformat(v)
            except ValueError:
                pass
        want = str if typ is Path else typ
        ok = isinstance(v, want) and not (isinstance(v, bool) and want is not bool)
        if want is float and isinstance(v, int) and not isinstance(v, bool):
            ok, v = True, float(v)
        if want is dt.date and isinstance(v, dt.datetime):
            ok = False
        if not ok:
            raise ConfigError(f"{self.key(key)}: expected {_TYPE_NAMES[typ]}, got {v!r}")
        return self.path_of(v) if typ is Path else v

    def opt(self, key: str, typ: type, **kw: Any) -> Any:
        return self.get(key, typ, None, **kw)

    def path_of(self, value: str | None) -> Path | None:
        """``value`` as a path, relative to the config file's folder."""
        if value is None:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() or self.base is None else self.base / p

    def many(self, key: str, typ: type = str, default: Any = _MISSING) -> tuple | None:
        """A list of ``typ`` (a single value is accepted as a list of one)."""
        v = self.data.get(key, _MISSING)
        if v is not _MISSING and not isinstance(v, list):
            self.used.add(key)
            return (self._typed(key, v, typ),)
        v = self.get(key, list, default)
        if v is None or v is default:
            return v
        try:
            return tuple(self._typed(key, x, typ) for x in v)
        except ConfigError:
            raise ConfigError(f"{self.key(key)}: expected a list of {_TYPE_NAMES[typ]} values, "
                              f"got {v!r}") from None

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(f"{self.path or 'config'}: unknown key(s) {', '.join(unknown)}; "
                              f"allowed keys: {', '.join(sorted(self.used))}")


def from_table(cls: type, table: Table, **given: Any) -> Any:
    """An options object of type ``cls`` from a config table.

    Each config field of ``cls`` is read from its key (type-checked, default from the
    field); ``given`` supplies fields that do not come from the table. Errors are
    :class:`ConfigError` naming the key path and, for a choice, the allowed values.
    """
    kw = dict(given)
    for f, s, k in fields_of(cls):
        if not s.config or f.name in kw:
            continue
        default = default_of(f)
        if k.many:
            v = table.many(f.name, k.base, default)
        else:
            v = table.get(f.name, k.base, default, exists=s.exists)
        if v is not _MISSING:
            kw[f.name] = v
    try:
        return cls(**kw)
    except ConfigError as exc:  # a value outside what the field allows: name its key path
        raise ConfigError(f"{table.path}.{exc.message}" if table.path else exc.message) from None
