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

Authentication works without a browser on the machine (:func:`load_credentials`): the
loopback flow prints the URL to open elsewhere (forward the port with ``ssh -L``), the
console flow asks for the address the browser was redirected to, or a token file made
on another machine is passed with ``--token``. The token file is written with mode 0600
and its content is never logged.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import http.client
import json
import logging
import os
import socket
import ssl
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from vercye_lai.errors import DataIOError, InputError, NoDataFoundError, ServiceError, require
from vercye_lai.io import atomic_output

log = logging.getLogger(__name__)

SCOPES: tuple[str, ...] = ("https://www.googleapis.com/auth/drive.readonly",)
FOLDER_MIME = "application/vnd.google-apps.folder"
DEFAULT_CHUNK = 32 * 1024 * 1024  # bytes per media request
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: headless log-ins: a local redirect server (open the printed URL), or paste the code
AUTH_MODES = ("local", "console")
_LIST_FIELDS = "nextPageToken, files(id, name, size, md5Checksum, mimeType, modifiedTime)"

T = TypeVar("T")


def default_token_path() -> Path:
    """``$XDG_CONFIG_HOME/vercye-lai/gdrive_token.json`` (``~/.config`` by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "vercye-lai" / "gdrive_token.json"


# --------------------------------------------------------------------------- auth


def save_token(creds: Any, path: str | Path) -> Path:
    """Write OAuth credentials (``creds.to_json()``) atomically with mode 0600."""
    path = Path(path)
    with atomic_output(path) as tmp:
        os.chmod(tmp, 0o600)  # before any secret is written (mkstemp already uses 0600)
        tmp.write_text(creds.to_json(), encoding="utf-8")
    os.chmod(path, 0o600)
    log.info("saved the Drive token to %s", path)
    return path


def _console_flow(flow: Any, prompt: Callable[[str], str]) -> Any:
    """OAuth without a listening server: the user pastes the redirected address (or code)."""
    flow.redirect_uri = "http://localhost:1/"  # nothing listens there: the browser shows an error
    url, _ = flow.authorization_url(prompt="consent", access_type="offline")
    print(
        "Open this address in a browser on any machine and allow access:\n"
        f"  {url}\n"
        "The browser then fails to load a http://localhost:1/?...code=... page;"
        " copy that whole address (or just the code) here.",
        flush=True,
    )
    answer = prompt("Address or code: ").strip()
    if answer.startswith("http"):
        # oauthlib insists on https; the loopback redirect is plain http by design
        flow.fetch_token(authorization_response=answer.replace("http://", "https://", 1))
    else:
        flow.fetch_token(code=answer)
    return flow.credentials


#: set by ``--no-input`` (``run``, ``download-gdrive``): never wait for a person in this process
NO_INPUT = False


def _terminal() -> bool:
    """A person may answer: stdin is a terminal, and ``--no-input`` was not given."""
    return not NO_INPUT and sys.stdin is not None and sys.stdin.isatty()


def check_client_secret(path: str | Path) -> dict[str, Any]:
    """The client section (``installed`` or ``web``) of an OAuth client secret file, or an
    :class:`InputError` saying what the file is and what is needed."""
    path = Path(path)
    if not path.exists():
        raise InputError("client secret file does not exist", path=path)
    need = ("an OAuth client ID of type 'Desktop app' (JSON with an 'installed' section), from "
            "Google Cloud Console -> APIs & Services -> Credentials")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputError(f"not a JSON file; the client secret must be {need}", path=path) from None
    if isinstance(doc, dict) and doc.get("type") == "service_account":
        raise InputError(f"is a service-account key, not an OAuth client secret; Drive downloads "
                         f"sign in as a user: give {need}", path=path)
    if not isinstance(doc, dict) or not ({"installed", "web"} & doc.keys()):
        raise InputError(f"not an OAuth client secret (no 'installed' section); give {need}", path=path)
    return doc.get("installed") or doc["web"]


def load_credentials(
    secret_json: str | Path | None,
    token: str | Path | None = None,
    *,
    auth: str = "local",
    scopes: Sequence[str] = SCOPES,
    port: int = 0,
    prompt: Callable[[str], str] = input,
    interactive: bool | None = None,
) -> Any:
    """OAuth user credentials for Drive: from ``token`` if valid, else by a headless flow.

    Parameters
    ----------
    secret_json
        OAuth client secret file ("Desktop app" client) from the Google Cloud console;
        only needed when no valid token exists.
    token
        Token file; read when it exists, (re)written after a refresh or a new consent.
    auth
        ``"local"``: loopback flow, prints the URL and waits on ``localhost:port``
        (``open_browser=False``); ``"console"``: paste the redirected address.
    scopes
        OAuth scopes (read-only Drive by default).
    port
        Loopback port of the local flow (0 = any free port).
    prompt
        Reads the pasted answer of the console flow.
    interactive
        Whether a sign-in may wait for a person (default: stdin is a terminal). A batch
        job (``False``) never starts one: an expired token that cannot be refreshed, or no
        token, is an error at once.

    Raises
    ------
    InputError
        No valid token and no client secret file, or a file that is not an OAuth client.
    ServiceError
        The refresh failed without a terminal, or the consent flow failed.
    """
    if interactive is None:
        interactive = _terminal()
    require("googleapiclient", "gdrive")
    creds_mod = require("google.oauth2.credentials", "gdrive")
    transport = require("google.auth.transport.requests", "gdrive")
    token = Path(token) if token else None
    creds = None
    if token and token.exists():
        try:
            creds = creds_mod.Credentials.from_authorized_user_file(str(token), list(scopes))
        except (ValueError, OSError) as exc:
            raise DataIOError(f"cannot read the token file ({exc})", path=token) from exc
        if creds.valid:
            return creds
        if creds.expired and creds.refresh_token:
            try:
                creds.refresh(transport.Request())
            except Exception as exc:  # noqa: BLE001 - RefreshError, transport errors (network down)
                if not interactive:  # a batch job must not wait for a sign-in nobody sees
                    raise ServiceError(f"cannot refresh the Drive token: {exc}", path=token) from exc
                log.warning("token refresh failed (%s); asking for consent again", exc)
            else:
                if token:
                    save_token(creds, token)
                return creds
    if not interactive:
        raise ServiceError("no valid Drive token and no terminal to sign in on: sign in once from a "
                           "terminal (vercye-lai download-gdrive), or copy a token made elsewhere",
                           path=token)
    if not secret_json:
        raise InputError("no valid Drive token: give --secret-json (OAuth client secret) to log in")
    client = check_client_secret(secret_json)
    # the endpoint only: the client id and secret, the code and the tokens are never logged
    log.debug("signing in (%s flow); token endpoint %s", auth, client.get("token_uri"))
    flow_mod = require("google_auth_oauthlib.flow", "gdrive")
    flow = flow_mod.InstalledAppFlow.from_client_secrets_file(str(secret_json), list(scopes))
    try:
        if auth == "console":
            creds = _console_flow(flow, prompt)
        elif auth == "local":
            creds = flow.run_local_server(
                host="localhost",
                port=port,
                open_browser=False,
                authorization_prompt_message=(
                    "Open this address in a browser (on another machine, first forward the "
                    "port: ssh -L PORT:localhost:PORT this-host):\n  {url}"
                ),
            )
        else:
            raise InputError(f"auth must be 'local' or 'console', got {auth!r}")
    except InputError:
        raise
    except Exception as exc:
        raise ServiceError(f"Google sign-in failed: {exc}") from exc
    if token:
        save_token(creds, token)
    return creds


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
    with atomic_output(dest) as tmp:
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
