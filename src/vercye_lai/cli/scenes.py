"""What ``stack-hls`` and ``stack-landsat`` share: their options and their driver."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import click

from vercye_lai.acquire.scene import scenes_in_range, stack_scenes
from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import progress_bar, stdout


def scene_source_options(options_type: type):
    """PATHS (or --catalog and the dates), the region, ``--res`` (30 m), ``-o`` and the
    source's own options."""

    def decorator(f):
        for deco in reversed((click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path)),
                              opts.region_source_options, opts.resolution_option_of(30), opts.date_options(required=False),
                              opts.stack_out_dir_option, opts.click_options(options_type), opts.overwrite_option)):
            f = deco(f)
        return f

    return decorator


def stack_scene_source(name: str, options_type: type, params: dict, *, paths, region, library, shpfile,
                       resolution, start_date, end_date, out_dir, overwrite,
                       local: Callable, catalogue: Callable) -> None:
    """Build the stacks of the files (``local(paths, options)``) or of the catalogue
    (``catalogue(catalog, options, geometry=, start=, end=)``), with a progress bar."""
    o = opts.from_cli(options_type, params, paths=paths)
    region_name, geometry = opts.resolve_region(region, library, shpfile)
    opts.check_source(paths, o.catalog, start_date, end_date)
    scenes = (catalogue(o.catalog, o, geometry=geometry, start=start_date, end=end_date) if o.catalog
              else scenes_in_range(local(paths, o), start_date, end_date, what=", ".join(map(str, paths))))
    with progress_bar() as bar:
        task = bar.add_task("dates", total=None)
        written = stack_scenes(scenes, geometry, region_name, resolution, out_dir, overwrite=overwrite, source=name,
                               cloud_buffer=o.cloud_buffer, progress=functools.partial(lambda i, n: bar.update(task, completed=i, total=n)))
    stdout.print(f"{name} {region_name}: {len(written)} stack(s) in {out_dir}")
