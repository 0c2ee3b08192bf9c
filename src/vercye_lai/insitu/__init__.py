"""In-situ measurements against the products: :mod:`.validate` matches them (points to pixels,
zones to an analysis' series) and reports the agreement; :mod:`.calibrate` fits a correction of
the estimates to them, judged on the groups (sites) it was not fitted on.
"""

from vercye_lai.insitu.agreement import Agreement
from vercye_lai.insitu.calibrate import CalibrationData, calibration_data, fit_calibration
from vercye_lai.insitu.validate import ValidateOptions, match_points, match_series, read_insitu

__all__ = ["Agreement", "CalibrationData", "ValidateOptions", "calibration_data", "fit_calibration", "match_points",
           "match_series", "read_insitu"]
