"""The shape of the package: the public face, the typed source registry, the CLI's sections,
and the layering (no import cycles, at most 10 modules at the top)."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import pytest
from conftest import REPO

import vercye_lai
from vercye_lai import acquire
from vercye_lai.acquire.source import Source, register, registered, source
from vercye_lai.cli.main import COMMANDS, SECTIONS
from vercye_lai.errors import ConfigError
from vercye_lai.options import Options

SRC = REPO / "src" / "vercye_lai"


def test_the_public_face_exports_what_it_lists():
    assert len(vercye_lai.__all__) == len(set(vercye_lai.__all__))
    for name in vercye_lai.__all__:
        assert getattr(vercye_lai, name) is not None, name
    for name in ("PredictOptions", "AnalysisOptions", "TableOptions", "ValidateOptions"):
        assert issubclass(getattr(vercye_lai, name), Options), name
    text = subprocess.run([sys.executable, "-c", "import vercye_lai; help(vercye_lai)"], capture_output=True,
                          text=True, env={**os.environ, "PAGER": "cat"}, check=True).stdout
    for name in ("predict_dir", "analyze", "run_pipeline", "PredictOptions", "Grid"):
        assert name in text, name


def test_every_registered_source_is_a_typed_source():
    import vercye_lai.run  # noqa: F401 - registers the sources that write products (stac-direct)

    assert acquire.SOURCES == ("local", "bands", "safe", "stac", "gee", "hls", "landsat")
    assert tuple(registered()) == (*acquire.SOURCES, "stac-direct")
    assert source("stac-direct").products and not source("stac").products
    for kind, src in registered().items():
        assert isinstance(src, Source) and src.kind == kind
        assert issubclass(src.options, Options)
        params = inspect.signature(src.acquire).parameters
        assert list(params)[:3] == ["region", "options", "out_dir"], kind
        assert {"resolution", "state_dir"} <= set(params), kind
        assert source(kind) is src
    assert source("gee").in_process and not source("safe").in_process
    assert not source("local").needs_geometry and source("stac").needs_geometry


def test_a_kind_registers_once_and_an_unknown_kind_names_the_known():
    with pytest.raises(ValueError, match="registered already"):
        register(Source("safe", source("local").options, source("local").acquire))
    with pytest.raises(TypeError, match="Options type"):
        Source("x", dict, lambda *a, **k: {})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="allowed values: local, bands, safe"):
        source("sentinel-hub")


def test_help_lists_every_command_in_one_section():
    listed = [n for names in SECTIONS.values() for n in names]
    assert sorted(listed) == sorted(COMMANDS)


def test_top_of_the_package_and_no_import_cycle():
    top = sorted(p.stem for p in SRC.glob("*.py") if p.stem != "__init__")
    assert len(top) <= 10, top
    tool = REPO.parent / "shared" / "tools" / "import_cycles.py"
    if not tool.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is missing (../shared beside the clone)", pytrace=False)
        pytest.skip(f"{tool} is missing")
    r = subprocess.run([sys.executable, str(tool), str(SRC.parent)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout
    assert "0 import cycle(s); 0 import(s)" in r.stdout, r.stdout
