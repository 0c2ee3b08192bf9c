"""vercye-lai: Sentinel-2, Landsat 8/9 and HLS imagery to Leaf Area Index (LAI) products for
crop-yield modelling (VeRCYe feeds the LAI series to APSIM).

The pipeline, one package per stage; each step is a function over files on disk, named by the
conventions of :mod:`vercye_lai.naming`, with its options as one typed, frozen value that the
command line, the run config and the library share:

* ``acquire``: regional input stacks per date (sources, mosaics): :class:`Region`,
  :class:`Source`, ``vercye_lai.acquire.source(kind)``.
* ``predict``: SL2P products of the stacks: :func:`predict_dir`, :func:`predict_file`,
  :func:`predict_table` (:class:`PredictOptions`, :class:`TableOptions`).
* ``analysis``: per-date statistics, gap-filled series and max-LAI maps of fields or crop
  masks: :func:`analyze`, :func:`quicklook` (:class:`AnalysisOptions`).
* ``insitu``: agreement with in-situ LAI: :func:`match_points`, :func:`match_series`
  (:class:`ValidateOptions`), :func:`fit_calibration`.
* ``outputs``: products other tools open: :func:`build_cube`, :func:`write_catalog`,
  :func:`export_apsim`, :func:`write_report`.
* ``run``: the whole pipeline from a config: :func:`load_config`, :func:`run_pipeline`,
  :func:`run_demo`.

Layering (a test keeps it free of import cycles): the shared floor (``errors``, ``io``,
``options``, ``naming``, ``grid``, ``regions``, ``stack``, ``system``) imports nothing from
above it; ``model`` and ``acquire`` sit on the floor; ``predict`` on both; ``analysis`` on the
model; ``insitu`` on predict and analysis; ``outputs`` on analysis; ``run`` on all of them;
``cli`` is a thin layer over the functions named here. Errors are :mod:`vercye_lai.errors`'
(``LaiError`` and builtins: ``InputError`` is a ``ValueError``, ``DataIOError`` an ``OSError``).
"""

from vercye_lai._version import __version__
from vercye_lai.acquire import Region, Source
from vercye_lai.analysis import AnalysisOptions, AnalysisResult, analyze
from vercye_lai.analysis.quicklook import quicklook
from vercye_lai.errors import (
    ConfigError,
    DataIOError,
    DependencyError,
    InputError,
    LaiError,
    NoDataFoundError,
)
from vercye_lai.grid import Grid
from vercye_lai.insitu.calibrate import fit_calibration
from vercye_lai.insitu.validate import ValidateOptions, match_points, match_series
from vercye_lai.model import load_network
from vercye_lai.model.calibration import Calibration, load_calibration
from vercye_lai.outputs.apsim import export_apsim
from vercye_lai.outputs.catalog import write_catalog
from vercye_lai.outputs.cube import build_cube
from vercye_lai.outputs.report import write_report
from vercye_lai.predict import (
    PredictOptions,
    PredictResult,
    TableOptions,
    predict_dir,
    predict_file,
    predict_table,
)
from vercye_lai.run import RunConfig, load_config, run_pipeline
from vercye_lai.run.demo import run_demo

__all__ = [
    "__version__",
    # value types
    "Grid",
    "Region",
    "Source",
    "PredictOptions",
    "TableOptions",
    "AnalysisOptions",
    "ValidateOptions",
    "RunConfig",
    "Calibration",
    "PredictResult",
    "AnalysisResult",
    # the steps
    "predict_dir",
    "predict_file",
    "predict_table",
    "load_network",
    "analyze",
    "quicklook",
    "match_points",
    "match_series",
    "fit_calibration",
    "load_calibration",
    "build_cube",
    "write_catalog",
    "export_apsim",
    "write_report",
    "load_config",
    "run_pipeline",
    "run_demo",
    # errors
    "LaiError",
    "InputError",
    "ConfigError",
    "NoDataFoundError",
    "DataIOError",
    "DependencyError",
]
