"""One options type per step: the CLI options, the run config's keys and the library's checks
all come from its fields, so they cannot drift apart."""

from __future__ import annotations

import re

import dataclasses
import tomllib

import click
import pytest
from click.testing import CliRunner

from vercye_lai.analysis.options import AnalysisOptions
from vercye_lai.cli.main import cli
from vercye_lai.cli.options import click_options, from_cli, resolve_inout
from vercye_lai.errors import ConfigError
from vercye_lai.options import Options, Table, fields_of, from_table, setting
from vercye_lai.predict import PredictOptions
from vercye_lai.run import EXAMPLE_CONFIG


@dataclasses.dataclass(frozen=True)
class Toy(Options):
    kind: str = setting("a", choices=("a", "b"), help="A choice.")
    size: int = setting(3, min=1, help="A bounded number.")
    names: tuple[str, ...] = setting(("x",), cli="--name", help="Repeatable.")
    on: bool = setting(True, help="A pair of flags.")
    limit: float | None = setting(None, max=10, default_help="none", help="Optional.")
    secret: int = setting(0, cli=None, config=False, help="Neither CLI nor config.")


def toy_command():
    @click.command()
    @click_options(Toy)
    def cmd(**params):
        click.echo(repr(from_cli(Toy, params)))

    return cmd


def test_cli_options_come_from_the_fields():
    r = CliRunner().invoke(toy_command(), ["--kind", "b", "--size", "5", "--name", "p",
                                           "--name", "q", "--no-on", "--limit", "2.5"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == repr(Toy(kind="b", size=5, names=("p", "q"), on=False, limit=2.5))
    assert CliRunner().invoke(toy_command(), []).output.strip() == repr(Toy())
    for bad in (["--kind", "c"], ["--size", "0"], ["--limit", "11"], ["--secret", "1"]):
        assert CliRunner().invoke(toy_command(), bad).exit_code == 2


def test_config_keys_come_from_the_fields():
    t = Table({"kind": "b", "names": "solo", "limit": 4}, "toy")
    assert from_table(Toy, t) == Toy(kind="b", names=("solo",), limit=4.0)
    t.done()
    for data, message in [
        ({"kind": "c"}, "toy.kind: 'c' is not allowed; allowed values: a, b"),
        ({"size": 0}, "toy.size: must be at least 1, not 0"),
        ({"size": "big"}, "toy.size: expected an integer, got 'big'"),
        ({"names": [1]}, "toy.names: expected a list of a string values"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            from_table(Toy, Table(data, "toy"))
    t = Table({"secret": 1}, "toy")
    from_table(Toy, t)
    with pytest.raises(ConfigError, match="toy: unknown key"):
        t.done()  # not a config key


def test_library_callers_get_the_same_checks():
    with pytest.raises(ConfigError, match="mode: 'poly' is not allowed; allowed values: raster"):
        AnalysisOptions(mode="poly")
    with pytest.raises(ConfigError, match="min_valid_fraction: must be at most 1"):
        AnalysisOptions(min_valid_fraction=2)
    with pytest.raises(ConfigError, match="variables: 'NDVI' is not allowed"):
        PredictOptions(variables=("NDVI",))
    assert PredictOptions(variables=("lai", "LAI", "fapar")).variables == ("LAI", "FAPAR")


@pytest.mark.parametrize("cls, command, section", [
    (AnalysisOptions, "analyze", "analyses"),
    (PredictOptions, "predict", "predict"),
])
def test_cli_config_and_example_agree(cls, command, section):
    """Every option of the type is on the command line, but those marked config-only (and
    the per-invocation ones the shared --workers/--overwrite give), and every key the example
    config shows is a field of the type."""
    params = {p.name for p in cli.get_command(click.Context(cli), command).params}
    for f, s, _ in fields_of(cls):
        if s.cli is not None:
            assert f.name in params, f.name
        elif s.config:
            assert f.name not in params, f.name
    example = tomllib.loads(EXAMPLE_CONFIG)[section]
    example = example[0] if isinstance(example, list) else example
    names = {f.name for f, s, _ in fields_of(cls) if s.config}
    extra = {"name", "geometry", "regions", "quicklook"} if section == "analyses" else set()
    assert set(example) <= names | extra


def test_resolve_inout_follows_rio():
    assert resolve_inout(("a", "b"), None, inputs=1) == (("a",), __import__("pathlib").Path("b"))
    assert resolve_inout(("a",), "o", inputs=1) == (("a",), "o")
    with pytest.raises(click.UsageError, match="expected 1 input"):
        resolve_inout(("a",), None, inputs=1)


def run_cli(*args):
    return CliRunner().invoke(cli, ["-q", *map(str, args)], catch_exceptions=False)


@pytest.mark.slow  # 1.6 s
def test_every_output_spelling_gives_the_same_analysis(tmp_path, strickhof_lai):
    """-o/--out-dir, the hidden aliases and the positional forms of existing scripts."""
    from conftest import DATA

    fields = DATA / "strickhof" / "fields.geojson"
    forms = {
        "o": [strickhof_lai, fields, "--region", "strickhof", "-o", tmp_path / "o"],
        "positional": [strickhof_lai, fields, tmp_path / "positional", "--region", "strickhof"],
        "legacy": [strickhof_lai, tmp_path / "legacy", "strickhof", fields],
        "outdir": [strickhof_lai, fields, "--region", "strickhof", "--outdir", tmp_path / "outdir"],
    }
    for name, args in forms.items():
        r = run_cli("analyze", *args, "--resolution", 10, "--id-column", "name")
        assert r.exit_code == 0, (name, r.output)
    listings = {n: sorted(p.name for p in (tmp_path / n).iterdir()) for n in forms}
    assert len({tuple(v) for v in listings.values()}) == 1 and len(listings["o"]) == 7  # + MANIFEST.json
    help_text = run_cli("analyze", "--help").output
    assert "-o, --out-dir" in help_text and "--outdir" not in help_text.split("Older spellings")[0]


@pytest.fixture
def strickhof_lai():
    from conftest import DATA

    return DATA / "strickhof" / "lai"


def test_example_config_names_every_source_key():
    """The example's comment on each source lists exactly the config keys of its options."""
    import re

    from vercye_lai.acquire import SOURCES, source

    comment = EXAMPLE_CONFIG.split("# Where the stacks come from")[1].split("[source]")[0]
    blocks = re.split(r"\n#   (\w+):", comment)[1:]
    listed = {kind: set(re.findall(r"\b([a-z_]+)\b(?= =|,|;|$|\n)", text))
              for kind, text in zip(blocks[::2], blocks[1::2])}
    assert set(listed) == set(SOURCES)
    for kind in SOURCES:
        keys = {f.name for f, s, _ in fields_of(source(kind).options) if s.config}
        assert keys <= listed[kind], (kind, keys - listed[kind])


def test_help_fits_its_command():
    """A shared option whose meaning differs in a command gets that command's text; options
    that mean nothing there are not offered; required is said by click, not in prose."""
    from click.testing import CliRunner

    from vercye_lai.cli.main import cli

    def helptext(*cmd):
        r = CliRunner().invoke(cli, [*cmd, "--help"], terminal_width=200)
        assert r.exit_code == 0, r.output
        return " ".join(r.output.split())

    table = helptext("predict-table")
    assert "_uncertainty.tif" not in table and "'{VAR} uncertainty' column" in table
    assert "--landsat-model" not in table and "--cog" not in table and "--dtype" not in table  # (it did nothing)
    cal = helptext("calibrate")
    assert "Required." not in cal and "--landsat-model" not in cal and "the first one given counts" in cal
    assert "--dtype" not in cal
    assert "Usage: cli validate [OPTIONS] INSITU [LAI_DIR]" in helptext("validate").replace("vercye-lai", "cli")
    mask = helptext("reproject-mask")
    assert "--lai-region" not in mask.split("Older spellings")[0]  # shown only as the spelling it keeps
    # the older spellings said are the command's own: it took no --outdir nor --start_date
    assert "--outdir" not in mask and "--start_date" not in mask and "--out for -o/--output" in mask
    assert "--time YYYY-MM-DDTHH:MM[:SS]" in helptext("stack-bands")
    assert "--res for short" in helptext("predict")


def test_options_made_by_hand_take_their_declared_types_or_say_which_field_is_wrong():
    """A library caller's variables="LAI" was split into letters ("'L' is not allowed"), scale="x"
    accepted (a deep ValueError later), id_column=5 an AttributeError inside analyze; scale=0 a
    bare ValueError on every date."""
    from vercye_lai.analysis.options import AnalysisOptions
    from vercye_lai.errors import ConfigError
    from vercye_lai.predict import PredictOptions

    assert PredictOptions(variables="lai").variables == ("LAI",)
    assert PredictOptions(variables=["LAI", "fapar"]).variables == ("LAI", "FAPAR")
    assert AnalysisOptions(sensors="S2").sensors == ("s2",)
    assert PredictOptions(scale=1).scale == 1.0 and isinstance(PredictOptions(scale=1).scale, float)
    for kw, said in [({"block_size": "big"}, "block_size: expected an integer, got 'big'"),
                     ({"flags": "yes"}, "flags: expected true or false, got 'yes'"),
                     ({"scale": "x"}, "scale: expected a number, got 'x'"),
                     ({"workers": True}, "workers: expected an integer, got True"),
                     ({"scale": 0}, "scale: must be positive, not 0.0"),
                     ({"scale": -1e-4}, "scale: must be positive")]:
        with pytest.raises(ConfigError, match=re.escape(said)):
            PredictOptions(**kw)
    with pytest.raises(ConfigError, match="id_column: expected text, got 5"):
        AnalysisOptions(id_column=5)
