"""Acquisition sources that end in the input-stack contract of :mod:`vercye_lai.bands`:
local L2A SAFE products, band stacks from other tools, Earth Engine and STAC."""
