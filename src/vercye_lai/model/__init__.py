"""SL2P models: the network, bundled coefficient sets and weight conversion."""

from vercye_lai.model.registry import (
    DEFAULT_MODEL,
    MODELS,
    VARIABLES,
    available_variables,
    load_error_network,
    load_network,
    variable,
)
from vercye_lai.model.sl2p import FLAG_NAMES, FLAG_NODATA, Network

__all__ = [
    "DEFAULT_MODEL",
    "FLAG_NAMES",
    "FLAG_NODATA",
    "MODELS",
    "VARIABLES",
    "Network",
    "available_variables",
    "load_error_network",
    "load_network",
    "variable",
]
