"""The ``local`` source: stacks that already exist in a folder, read where they are."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vercye_lai.acquire.source import Source
from vercye_lai.naming import find_rasters
from vercye_lai.options import Options as OptionsBase
from vercye_lai.options import setting


@dataclass(frozen=True)
class Options(OptionsBase):
    """Where the stacks are."""

    path: Path = setting(
        cli=None, help='Folder of {region}_{res}m_{date}.{tif,vrt} stacks; "{region}" is '
        "replaced by the region name.")

    def stacks_folder(self, region: str) -> Path:
        return Path(str(self.path).replace("{region}", region))


def acquire(region: Any, options: Options, out_dir: Path, *, resolution: float,
            state_dir: Path) -> dict[dt.date, Path]:
    """The stacks of ``region`` in the folder (nothing is written)."""
    return find_rasters(options.stacks_folder(region.name), region.name, resolution,
                        start=region.start, end=region.end)


SOURCE = Source("local", Options, acquire, needs_geometry=False)
