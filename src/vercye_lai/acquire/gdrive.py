"""Download the files of a Google Drive folder (the Earth Engine exports), verified by md5.

* Listing is paged (``files().list`` with ``pageToken``); folders and Google Docs
  (which have no binary content nor md5) are skipped.
* Each file is downloaded in chunks with ``MediaIoBaseDownload`` into a hidden
  temporary file beside its destination and renamed onto the final name only after its
  md5 matches Drive's ``md5Checksum`` (:func:`vercye_lai.io.atomic_output`). A transient
  error (HTTP 429/5xx, socket errors) is retried with exponential backoff and the
  download resumes from the last complete chunk.
* A file already present with Drive's size and md5 is skipped, so a rerun only fetches
  what is missing or changed.

Signing in is :mod:`vercye_lai.acquire.gdrive_auth`'s (its names are re-exported here).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import http.client
import logging
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from vercye_lai.acquire.gdrive_auth import (  # noqa: F401 - signing in, part of this module's API
    AUTH_MODES,
    SCOPES,
    check_client_secret,
    default_token_path,
    load_credentials,
    save_token,
)
from vercye_lai.errors import DataIOError, InputError, NoDataFoundError, ServiceError, require
from vercye_lai.io import atomic_output

log = logging.getLogger(__name__)

FOLDER_MIME = "application/vnd.google-apps.folder"
DEFAULT_CHUNK = 32 * 1024 * 1024  # bytes per media request
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_LIST_FIELDS = "nextPageToken, files(id, name, size, md5Checksum, mimeType, modifiedTime)"

T = TypeVar("T")


def build_service(creds: Any) -> Any:
    """A Drive v3 service from credentials (static discovery document, no extra request)."""
    discovery = require("googleapiclient.discovery", "gdrive")
    return discovery.build("drive", "v3", credentials=creds, cache_discovery=False)


# --------------------------------------------------------------------------- retries


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: HTTP 408/429/5xx, timeouts, dropped connections."""
    errors = require("googleapiclient.errors", "gdrive")
    if isinstance(exc, errors.HttpError):
        return exc.resp.status in TRANSIENT_STATUS
    try:
        import httplib2

        if isinstance(exc, httplib2.HttpLib2Error):
            return True
    except ImportError:  # pragma: no cover - httplib2 comes with the client library
        pass
    # not every OSError: a full disk or a missing folder is not worth retrying
    return isinstance(
        exc,
        ConnectionError | TimeoutError | socket.gaierror | ssl.SSLError | http.client.HTTPException,
    )


def with_retries(
    call: Callable[[], T],
    *,
    what: str,
    retries: int = 5,
    initial: float = 1.0,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Run ``call``; on a transient error wait ``initial``·2ⁿ s and try again, ``retries`` times."""
    sleep = sleep or time.sleep
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as exc:
            if attempt == retries or not is_transient(exc):
                raise
            delay = initial * 2**attempt
            log.warning(
                "%s: %s; retrying in %.0f s (%d/%d)", what, exc, delay, attempt + 1, retries
            )
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- listing


@dataclasses.dataclass(frozen=True)
class DriveFile:
    """A binary file in a Drive folder.

    Attributes
    ----------
    id, name
        Drive file id and name.
    size
        Size in bytes.
    md5
        Drive's ``md5Checksum`` (hex).
    modified
        RFC 3339 modification time.
    """

    id: str
    name: str
    size: int
    md5: str | None
    modified: str = ""


def list_folder(
    service: Any,
    folder_id: str,
    *,
    pattern: str | None = None,
    retries: int = 5,
    sleep: Callable[[float], None] | None = None,
) -> list[DriveFile]:
    """The binary files directly in a Drive folder, all pages, sorted by name.

    Parameters
    ----------
    service
        Drive v3 service (:func:`build_service`).
    folder_id
        Id of the folder (the last part of its ``drive.google.com/drive/folders/…`` URL).
    pattern
        Optional shell pattern on the file names (``"*_20m_*.tif"``).

    Notes
    -----
    When several files share a name (an export run twice), the most recently modified
    one is kept, with a warning.
    """
    if "'" in folder_id or "\\" in folder_id:
        raise InputError(f"invalid Drive folder id {folder_id!r}")
    query = f"'{folder_id}' in parents and trashed = false"
    found: dict[str, DriveFile] = {}
    page_token = None
    page = 0
    while True:
        request = service.files().list(
            q=query,
            fields=_LIST_FIELDS,
            pageSize=1000,
            pageToken=page_token,
            supportsAllDrives=True,
            includeItemsFromAllDrives=True,
        )
        try:
            resp = with_retries(
                request.execute, what="listing the folder", retries=retries, sleep=sleep
            )
        except Exception as exc:
            raise ServiceError(f"cannot list Drive folder {folder_id}: {exc}") from exc
        page += 1
        for item in resp.get("files", []):
            name = item["name"]
            if item.get("mimeType") == FOLDER_MIME or "size" not in item:
                log.debug("skipping %s (%s: no binary content)", name, item.get("mimeType"))
                continue
            if pattern and not fnmatch.fnmatch(name, pattern):
                continue
            f = DriveFile(
                item["id"],
                name,
                int(item["size"]),
                item.get("md5Checksum"),
                item.get("modifiedTime", ""),
            )
            old = found.get(name)
            if old is not None:
                log.warning("several files named %s in the folder; keeping the newest", name)
                if old.modified >= f.modified:
                    continue
            found[name] = f
        page_token = resp.get("nextPageToken")
        if not page_token:
            break
    log.debug("listed %d file(s) in %d page(s)", len(found), page)
    return sorted(found.values(), key=lambda f: f.name)


# --------------------------------------------------------------------------- download


def file_md5(path: str | Path, *, block: int = 8 * 1024 * 1024) -> str:
    """Hex md5 of a local file, read in blocks."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def is_complete(f: DriveFile, path: str | Path) -> bool:
    """True when ``path`` exists with the Drive file's size and md5."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size != f.size:
        return False
    return f.md5 is None or file_md5(path) == f.md5


def download_file(
    service: Any,
    f: DriveFile,
    dest: str | Path,
    *,
    chunksize: int = DEFAULT_CHUNK,
    retries: int = 5,
    sleep: Callable[[float], None] | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Path:
    """Download one Drive file to ``dest`` atomically, checking its md5.

    Parameters
    ----------
    service
        Drive v3 service.
    f
        The file (from :func:`list_folder`).
    dest
        Destination path; written only when the download is complete and verified.
    chunksize
        Bytes per media request.
    retries
        Retries of each chunk on transient errors (exponential backoff).
    on_bytes
        Called with the number of bytes of each chunk received (progress display).

    Raises
    ------
    DataIOError
        When the downloaded content does not match Drive's md5 (``dest`` untouched).
    ServiceError
        When Drive keeps failing.
    """
    http_mod = require("googleapiclient.http", "gdrive")
    dest = Path(dest)
    with atomic_output(dest, whole_raster=False) as tmp:  # (checked by its md5)
        request = service.files().get_media(fileId=f.id, supportsAllDrives=True)
        with open(tmp, "wb") as fh:
            downloader = http_mod.MediaIoBaseDownload(fh, request, chunksize=chunksize)
            done, received = False, 0
            while not done:
                # a failed chunk is asked for again from the same offset: the download resumes
                try:
                    status, done = with_retries(
                        downloader.next_chunk,
                        what=f"downloading {f.name}",
                        retries=retries,
                        sleep=sleep,
                    )
                except Exception as exc:
                    raise ServiceError(f"download failed: {exc}", path=dest) from exc
                if on_bytes and status is not None:
                    on_bytes(status.resumable_progress - received)
                    received = status.resumable_progress
        got = file_md5(tmp)
        if f.md5 and got != f.md5:
            raise DataIOError(
                f"md5 of the download ({got}) differs from Drive's md5Checksum ({f.md5}); "
                "the file was not written, run again to retry",
                path=dest,
            )
    return dest


@dataclasses.dataclass
class DownloadReport:
    """What :func:`download_folder` did: file names downloaded, skipped, failed (with why)."""

    downloaded: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)


def download_folder(
    service: Any,
    folder_id: str,
    outdir: str | Path,
    *,
    pattern: str | None = None,
    overwrite: bool = False,
    chunksize: int = DEFAULT_CHUNK,
    retries: int = 5,
    sleep: Callable[[float], None] | None = None,
    on_start: Callable[[list[DriveFile]], None] | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> DownloadReport:
    """Download every file of a Drive folder into ``outdir``; skip complete ones.

    A file that fails is reported and the others still downloaded; the caller decides
    whether a non-empty ``failed`` is an error.

    Parameters
    ----------
    on_start
        Called once with the files that will be considered (progress display).
    on_bytes
        Called with byte counts as chunks arrive, and with a skipped file's size.

    Raises
    ------
    NoDataFoundError
        When the folder holds no (matching) file.
    """
    outdir = Path(outdir)
    files = list_folder(service, folder_id, pattern=pattern, retries=retries, sleep=sleep)
    if not files:
        what = f" matching {pattern!r}" if pattern else ""
        raise NoDataFoundError(f"no files{what} in Drive folder {folder_id}")
    if on_start:
        on_start(files)
    report = DownloadReport()
    for f in files:
        dest = outdir / Path(f.name).name  # a Drive name is no path: never leave outdir
        if not overwrite and is_complete(f, dest):
            report.skipped.append(f.name)
            if on_bytes:
                on_bytes(f.size)
            continue
        try:
            download_file(
                service,
                f,
                dest,
                chunksize=chunksize,
                retries=retries,
                sleep=sleep,
                on_bytes=on_bytes,
            )
        except (DataIOError, ServiceError) as exc:
            log.error("%s", exc)
            report.failed[f.name] = exc.message
            continue
        report.downloaded.append(f.name)
        log.info("downloaded %s (%d bytes, md5 ok)", f.name, f.size)
    return report
