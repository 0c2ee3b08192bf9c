"""Signing in to Google Drive without a browser on the machine (:func:`load_credentials`):
the loopback flow prints the URL to open elsewhere (forward the port with ``ssh -L``), the
console flow asks for the address the browser was redirected to, or a token file made on
another machine is passed with ``--token``. The token file is written with mode 0600 and its
content is never logged; a job without a terminal (or with :data:`NO_INPUT`) never waits for
a sign-in.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vercye_lai.errors import DataIOError, InputError, ServiceError, require
from vercye_lai.io import atomic_output

log = logging.getLogger(__name__)

SCOPES: tuple[str, ...] = ("https://www.googleapis.com/auth/drive.readonly",)
#: headless log-ins: a local redirect server (open the printed URL), or paste the code
AUTH_MODES = ("local", "console")


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
    try:
        answer = prompt("Address or code: ").strip()
    except EOFError:  # a pipe that ends before the code: fail at once, never wait
        raise ServiceError("no address or code on standard input (end of input)") from None
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
    if secret_json:  # a wrong secret file is named first, whatever the token's state
        check_client_secret(secret_json)
    if interactive is None:
        # the console flow reads the code from standard input: a pipe will do (headless)
        interactive = _terminal() or (auth == "console" and not NO_INPUT and sys.stdin is not None)
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
