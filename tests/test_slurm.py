"""``vercye-lai run`` on a live one-node SLURM (``tools/start_slurm.sh``): the Dask workers are
batch jobs that really go through sbatch, and the outputs equal the threads executor's."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner
from conftest import assert_same_outputs, strickhof_run_config

from vercye_lai.cli.main import cli

pytestmark = pytest.mark.slow


def why_no_slurm() -> str | None:
    """Why no SLURM node can take jobs here (``None``: one can)."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "SLURM is not installed (apt-get install slurm-wlm munge, then tools/start_slurm.sh)"
    r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if r.returncode or not re.search(r"idle|mixed|alloc", r.stdout):
        return f"no SLURM node is up ({(r.stdout or r.stderr).strip() or 'sinfo said nothing'}): run tools/start_slurm.sh"
    return None


@pytest.fixture(scope="module")
def slurm():
    why = why_no_slurm()
    if why:
        if os.environ.get("CI") == "true" and os.geteuid() == 0 and shutil.which("slurmctld"):
            pytest.fail(f"CI starts the SLURM it installed (.ci/run, tools/start_slurm.sh): {why}")
        pytest.skip(why)


def test_a_run_on_slurm_equals_the_threads_executor(tmp_path, strickhof_stacks, slurm):
    span = {"start": "2022-06-01", "end": "2022-06-30"}
    threads = strickhof_run_config(tmp_path, strickhof_stacks, "threads", kind="threads", workers=2, **span)
    assert CliRunner().invoke(cli, ["-q", "run", str(threads)]).exit_code == 0
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    extra = ("[dask]\ncluster = \"slurm\"\nn_workers = 1\ncores = 1\nmemory = \"2GB\"\nwalltime = \"00:20:00\"\n"
             f"queue = \"debug\"\njob_extra = [\"--output={jobs}/slurm-%j.out\"]\ngdal_cache_mb = 64")
    cfg = strickhof_run_config(tmp_path, strickhof_stacks, "slurm", kind="dask", workers=1, extra=extra, **span)
    r = CliRunner().invoke(cli, ["-q", "run", str(cfg)])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "slurm" / "run_summary.json").read_text())
    assert summary["executor"] == "dask" and summary["ok"]
    assert assert_same_outputs(tmp_path / "threads", tmp_path / "slurm") > 6  # every raster and CSV
    # the workers were batch jobs: their output files, and the controller's record of them
    ids = sorted(int(p.stem.split("-")[1]) for p in jobs.glob("slurm-*.out"))
    assert ids, "no job wrote its output: the workers did not run through sbatch"
    for job in ids:
        show = subprocess.run(["scontrol", "show", "job", str(job)], capture_output=True, text=True).stdout
        assert "JobName=dask-worker" in show and re.search(r"JobState=(COMPLETED|CANCELLED)", show), show
    log = (jobs / f"slurm-{ids[0]}.out").read_text()
    assert "Start worker" in log or "Starting Worker" in log, log[-2000:]
