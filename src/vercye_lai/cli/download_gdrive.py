"""``vercye-lai download-gdrive``: fetch the exported stacks from a Google Drive folder."""

from __future__ import annotations

import logging

import click

from vercye_lai.acquire import gdrive
from vercye_lai.cli import options as opts
from vercye_lai.cli.ui import progress_bar
from vercye_lai.errors import ServiceError

log = logging.getLogger(__name__)


@click.command(name="download-gdrive", epilog=opts.ALIASES_EPILOG)
@click.option(
    "--secret-json",
    type=click.Path(dir_okay=False),
    default=None,
    help="OAuth client secret (Desktop app) from the Google Cloud console; needed to log in "
    "when --token holds no valid token.",
)
@click.option("--folder-id", required=True, help="Drive folder id (last part of the folder's URL).")
@opts.out_dir_option(help="Local folder to download into (created if missing).")
@click.option(
    "--token",
    type=click.Path(dir_okay=False),
    default=None,
    help="OAuth token file, read if present and written (mode 0600) after login "
    "[default: ~/.config/vercye-lai/gdrive_token.json]. Copy one made elsewhere to skip the login.",
)
@click.option(
    "--auth",
    type=click.Choice(gdrive.AUTH_MODES),
    default="local",
    show_default=True,
    help="Login without a browser here: 'local' prints the URL and waits on a localhost port "
    "(forward it with ssh -L); 'console' asks you to paste the address the browser was sent to.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port of the 'local' login flow (0 = any free port).",
)
@click.option("--pattern", default=None, help="Only files whose name matches this shell pattern.")
@click.option(
    "--chunk-mb",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Size of each download request (MiB).",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Retries of a request on transient errors (429, 5xx, network), backing off.",
)
@opts.overwrite_option
@opts.no_input_option
def command(
    secret_json, folder_id, out_dir, token, auth, port, pattern, chunk_mb, retries, overwrite, no_input
):
    """Download every file of a Google Drive folder, verified against Drive's md5.

    \b
    Files already in -o/--out-dir with Drive's size and md5 are skipped, so a rerun fetches
    only what is missing; each download goes to a hidden temporary file that is renamed
    into place after its md5 checks out. Transient errors are retried with backoff.
    Needs the 'gdrive' extra: pip install 'vercye-lai[gdrive]'.
    """
    token = token or gdrive.default_token_path()
    creds = gdrive.load_credentials(secret_json, token, auth=auth, port=port,
                                    interactive=False if no_input else None)
    service = gdrive.build_service(creds)
    with progress_bar() as progress:
        bar = progress.add_task("listing Drive folder", total=None)

        def start(files):
            progress.update(
                bar, description=f"{len(files)} file(s)", total=sum(f.size for f in files)
            )

        report = gdrive.download_folder(
            service,
            folder_id,
            out_dir,
            pattern=pattern,
            overwrite=overwrite,
            chunksize=chunk_mb * 1024 * 1024,
            retries=retries,
            on_start=start,
            on_bytes=lambda n: progress.advance(bar, n),
        )
    click.echo(
        f"{len(report.downloaded)} downloaded, {len(report.skipped)} already complete, "
        f"{len(report.failed)} failed"
    )
    if report.failed:
        raise ServiceError(
            f"{len(report.failed)} file(s) failed ({', '.join(sorted(report.failed))}); "
            "run the same command again to retry them",
            path=out_dir,
        )
