"""What a season's products and analyses become for others: the season :mod:`.cube` (NetCDF,
Zarr), a STAC :mod:`.catalog`, APSIM observed data (:mod:`.apsim`) and the :mod:`.report` page.
"""

from vercye_lai.outputs.apsim import apsim_table, export_apsim
from vercye_lai.outputs.catalog import write_catalog
from vercye_lai.outputs.cube import build_cube
from vercye_lai.outputs.report import write_report

__all__ = ["apsim_table", "build_cube", "export_apsim", "write_catalog", "write_report"]
