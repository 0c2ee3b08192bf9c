"""What a run writes beside its products for other tools, once its steps are done."""

from __future__ import annotations

import logging
from pathlib import Path

from vercye_lai.errors import DependencyError, NoDataFoundError, error_text
from vercye_lai.outputs.catalog import write_catalog
from vercye_lai.outputs.report import write_report

log = logging.getLogger(__name__)


def publish(root: Path) -> tuple[list[Path], list[str]]:
    """What a run writes beside its products for other tools: the STAC catalogue and the
    HTML report; and what could not be written, and why. A failure here stops nothing (the
    products are all there) but is the run's: a full disk or a folder in the report's place
    made a run that said "ok": true."""
    written, failed = [], []
    for what, fn in (("STAC catalogue", write_catalog), ("report", write_report)):
        try:
            written.append(fn(root))
            log.info("%s: %s", what, written[-1])
        except NoDataFoundError:
            log.info("%s: nothing to put in a %s yet", root, what)
        except DependencyError as exc:
            log.info("no %s: %s", what, exc)
        except Exception as exc:  # noqa: BLE001 - reported, the run's outputs stand
            failed.append(f"{what} not written: {error_text(exc)}")
            log.error("%s", failed[-1])
    return written, failed
