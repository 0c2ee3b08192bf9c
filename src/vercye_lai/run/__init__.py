"""One command for the whole pipeline: ``vercye-lai run CONFIG``.

:mod:`.config` reads and checks the config (TOML, or YAML with PyYAML), :mod:`.runner`
takes every region through the steps and :mod:`.summary` records what each unit of work
did (``run_summary.json``).
"""

from vercye_lai.acquire import SOURCES
from vercye_lai.run.config import (
    EXAMPLE_CONFIG,
    STEPS,
    AnalysisConfig,
    RegionConfig,
    RunConfig,
    load_config,
    parse_config,
)
from vercye_lai.run.runner import LOG_NAME, run_pipeline
from vercye_lai.run.summary import SUMMARY_NAME, RunSummary, StepSummary, UnitResult

__all__ = [
    "EXAMPLE_CONFIG",
    "LOG_NAME",
    "SOURCES",
    "STEPS",
    "SUMMARY_NAME",
    "AnalysisConfig",
    "RegionConfig",
    "RunConfig",
    "RunSummary",
    "StepSummary",
    "UnitResult",
    "load_config",
    "parse_config",
    "run_pipeline",
]
