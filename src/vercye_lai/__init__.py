"""vercye-lai: Sentinel-2 L2A stacks to Leaf Area Index (LAI) products for crop-yield modelling."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vercye-lai")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
