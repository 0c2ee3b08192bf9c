"""Google Drive download against the client library's own HTTP double (HttpMockSequence):
the real Drive v3 service object, built offline from the discovery document that ships
with google-api-python-client."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import stat
from urllib.parse import parse_qs, urlparse

import pytest
from click.testing import CliRunner

pytest.importorskip("googleapiclient")
from googleapiclient.discovery import build  # noqa: E402
from googleapiclient.http import HttpMockSequence  # noqa: E402

from vercye_lai.acquire import gdrive, gdrive_auth  # noqa: E402
from vercye_lai.cli.main import cli  # noqa: E402
from vercye_lai.errors import DataIOError, InputError, NoDataFoundError, ServiceError  # noqa: E402

A = bytes(range(256)) * 3 + b"tail"  # 772 bytes
B = b"second file content"


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def meta(fid, name, content, **kw):
    return {
        "id": fid,
        "name": name,
        "size": str(len(content)),
        "md5Checksum": md5(content),
        "mimeType": "image/tiff",
        "modifiedTime": "2024-01-01T00:00:00Z",
        **kw,
    }


def ok(body):
    return ({"status": "200"}, json.dumps(body))


def chunks(content: bytes, size: int):
    """The 206 responses of a chunked media download."""
    out = []
    for start in range(0, len(content), size):
        part = content[start : start + size]
        rng = f"bytes {start}-{start + len(part) - 1}/{len(content)}"
        out.append(({"status": "206", "content-range": rng}, part))
    return out


def error(status):
    return ({"status": str(status)}, json.dumps({"error": {"code": status, "message": "x"}}))


def service(responses):
    http = HttpMockSequence(list(responses))
    svc = build("drive", "v3", http=http, static_discovery=True)
    return svc, http


def listing(*files):
    return ok({"files": list(files)})


def test_list_folder_is_paged(caplog):
    folder = {"id": "f0", "name": "sub", "mimeType": gdrive.FOLDER_MIME}
    old = meta("x0", "r_20m_2022-10-05.tif", b"old", modifiedTime="2023-01-01T00:00:00Z")
    svc, http = service(
        [
            ok({"files": [meta("a", "r_20m_2022-10-05.tif", A), folder], "nextPageToken": "P2"}),
            error(503),  # transient: retried
            ok({"files": [old, meta("b", "r_20m_2022-10-08.tif", B)]}),
        ]
    )
    sleeps = []
    files = gdrive.list_folder(svc, "FOLDER", sleep=sleeps.append)
    assert [(f.id, f.name, f.size, f.md5) for f in files] == [
        ("a", "r_20m_2022-10-05.tif", len(A), md5(A)),
        ("b", "r_20m_2022-10-08.tif", len(B), md5(B)),
    ]
    q = [parse_qs(urlparse(uri).query) for uri, *_ in http.request_sequence]
    assert q[0]["q"] == ["'FOLDER' in parents and trashed = false"]
    assert "pageToken" not in q[0] and q[1]["pageToken"] == ["P2"] == q[2]["pageToken"]
    assert sleeps == [1.0]
    assert "several files named r_20m_2022-10-05.tif" in caplog.text
    with pytest.raises(InputError):
        gdrive.list_folder(svc, "a' or 'b")


def test_download_chunked_with_retry_and_md5(tmp_path):
    f = gdrive.DriveFile("a", "a.tif", len(A), md5(A))
    parts = chunks(A, 300)
    svc, http = service([parts[0], error(500), ({"status": "429"}, ""), *parts[1:]])
    sleeps, seen = [], []
    dest = gdrive.download_file(
        svc, f, tmp_path / "a.tif", chunksize=300, sleep=sleeps.append, on_bytes=seen.append
    )
    assert dest.read_bytes() == A
    assert sleeps == [1.0, 2.0] and seen == [300, 300, 172]
    ranges = [h["range"] for _, _, _, h in http.request_sequence]
    assert ranges == [
        "bytes=0-299",
        "bytes=300-599",
        "bytes=300-599",
        "bytes=300-599",
        "bytes=600-899",
    ]
    assert "alt=media" in http.request_sequence[0][0]
    assert [p.name for p in tmp_path.iterdir()] == ["a.tif"]


def test_md5_mismatch_leaves_nothing(tmp_path):
    f = gdrive.DriveFile("a", "a.tif", len(A), md5(b"something else"))
    svc, _ = service(chunks(A, 1000))
    with pytest.raises(DataIOError, match="md5") as exc:
        gdrive.download_file(svc, f, tmp_path / "a.tif", chunksize=1000)
    assert str(tmp_path / "a.tif") in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_download_folder_skips_complete_and_reports_failures(tmp_path):
    (tmp_path / "a.tif").write_bytes(A)  # already complete
    (tmp_path / "b.tif").write_bytes(B[:-1] + b"X")  # same size, different content
    c = b"third"
    svc, http = service(
        [
            listing(
                meta("a", "a.tif", A),
                meta("b", "b.tif", B),
                meta("c", "c.tif", c),
                meta("d", "notes.txt", b"n"),
            ),
            *chunks(B, 1000),
            error(404),  # not transient: c fails at once
        ]
    )
    report = gdrive.download_folder(svc, "F", tmp_path, pattern="*.tif", chunksize=1000)
    assert report.skipped == ["a.tif"] and report.downloaded == ["b.tif"]
    assert list(report.failed) == ["c.tif"] and "404" in report.failed["c.tif"]
    assert (tmp_path / "b.tif").read_bytes() == B and not (tmp_path / "c.tif").exists()
    assert len(http.request_sequence) == 3  # nothing asked for a.tif

    svc, _ = service([listing()])
    with pytest.raises(NoDataFoundError, match="no files in Drive folder F"):
        gdrive.download_folder(svc, "F", tmp_path)


def test_cli_download_and_rerun(tmp_path, monkeypatch):
    responses = [
        listing(meta("a", "r_20m_2022-10-05.tif", A), meta("b", "r_20m_2022-10-08.tif", B)),
        *chunks(A, 1 << 20),
        *chunks(B, 1 << 20),
        listing(meta("a", "r_20m_2022-10-05.tif", A), meta("b", "r_20m_2022-10-08.tif", B)),
    ]
    svc, http = service(responses)
    tokens = []
    monkeypatch.setattr(gdrive, "load_credentials", lambda s, t, **kw: tokens.append((s, t, kw)))
    monkeypatch.setattr(gdrive, "build_service", lambda creds: svc)
    out = tmp_path / "out"
    args = [
        "download-gdrive",
        "--folder-id",
        "F",
        "--outdir",
        str(out),
        "--token",
        str(tmp_path / "tok.json"),
        "--auth",
        "console",
    ]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "2 downloaded, 0 already complete, 0 failed" in res.output
    assert (out / "r_20m_2022-10-08.tif").read_bytes() == B
    assert tokens[0][1] == str(tmp_path / "tok.json") and tokens[0][2]["auth"] == "console"
    res = CliRunner().invoke(cli, args)
    assert "0 downloaded, 2 already complete" in res.output
    assert not http._iterable  # every canned response used, no extra request


OAUTH_CLIENT = json.dumps({"installed": {"client_id": "CID", "client_secret": "SECRET-CLIENT",
                                         "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                                         "token_uri": "https://oauth2.googleapis.com/token"}})


class FakeCreds:
    valid = True

    def to_json(self):
        return json.dumps({"token": "SECRET-ACCESS", "refresh_token": "SECRET-REFRESH"})


class FakeFlow:
    calls: list = []

    def __init__(self):
        self.credentials = FakeCreds()

    @classmethod
    def from_client_secrets_file(cls, path, scopes):
        cls.calls.append(("secrets", path, tuple(scopes)))
        return cls()

    def run_local_server(self, **kw):
        self.calls.append(("local", kw))
        return FakeCreds()

    def authorization_url(self, **kw):
        return "https://accounts.example/auth?x=1", "state"

    def fetch_token(self, **kw):
        self.calls.append(("fetch", kw))


@pytest.fixture
def fake_flow(monkeypatch):
    import google_auth_oauthlib.flow

    FakeFlow.calls = []
    monkeypatch.setattr(google_auth_oauthlib.flow, "InstalledAppFlow", FakeFlow)
    return FakeFlow


def test_headless_login_writes_private_token(tmp_path, fake_flow, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    secret = tmp_path / "client_secret.json"
    secret.write_text(OAUTH_CLIENT)
    token = tmp_path / "tok" / "token.json"
    gdrive.load_credentials(secret, token, auth="local", port=0, interactive=True)
    kind, kw = fake_flow.calls[1]
    assert (
        kind == "local"
        and kw["open_browser"] is False
        and "{url}" in kw["authorization_prompt_message"]
    )
    assert fake_flow.calls[0][2] == gdrive.SCOPES
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert json.loads(token.read_text())["refresh_token"] == "SECRET-REFRESH"
    assert "SECRET" not in caplog.text and "SECRET" not in capsys.readouterr().out

    token2 = tmp_path / "token2.json"
    gdrive.load_credentials(
        secret, token2, auth="console", prompt=lambda _: "http://localhost:1/?state=s&code=4/abc",
        interactive=True,
    )
    assert fake_flow.calls[-1] == (
        "fetch",
        {"authorization_response": "https://localhost:1/?state=s&code=4/abc"},
    )
    assert "https://accounts.example/auth?x=1" in capsys.readouterr().out
    assert stat.S_IMODE(token2.stat().st_mode) == 0o600


def test_valid_token_needs_no_login(tmp_path, fake_flow):
    token = tmp_path / "token.json"
    token.write_text(
        json.dumps(
            {
                "token": "t",
                "refresh_token": "r",
                "client_id": "c",
                "client_secret": "s",
                "expiry": "2999-01-01T00:00:00Z",
                "scopes": list(gdrive.SCOPES),
            }
        )
    )
    creds = gdrive.load_credentials(None, token)
    assert creds.valid and creds.token == "t" and not fake_flow.calls
    with pytest.raises(InputError, match="--secret-json"):
        gdrive.load_credentials(None, tmp_path / "missing.json", interactive=True)


def expired_token(tmp_path):
    token = tmp_path / "token.json"
    token.write_text(json.dumps({"token": "SECRET-ACCESS", "refresh_token": "SECRET-REFRESH",
                                 "client_id": "CID", "client_secret": "SECRET-CLIENT",
                                 "expiry": "2000-01-01T00:00:00Z", "scopes": list(gdrive.SCOPES)}))
    return token


def test_a_batch_job_never_waits_for_a_sign_in(tmp_path, fake_flow, monkeypatch):
    import google.auth.exceptions
    import google.oauth2.credentials

    def network_down(self, request):
        raise google.auth.exceptions.TransportError("Failed to establish a new connection")

    monkeypatch.setattr(google.oauth2.credentials.Credentials, "refresh", network_down)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal, as in a batch job
    secret = tmp_path / "client_secret.json"
    secret.write_text(OAUTH_CLIENT)
    token = expired_token(tmp_path)
    with pytest.raises(ServiceError, match="cannot refresh the Drive token: Failed to establish") as exc:
        gdrive.load_credentials(secret, token)
    assert exc.value.path == str(token) and "SECRET" not in str(exc.value)
    with pytest.raises(ServiceError, match="no terminal to sign in"):
        gdrive.load_credentials(secret, tmp_path / "none.json")
    assert fake_flow.calls == []  # no interactive flow was started
    # the CLI: one line, exit 1, and --no-input means the same with a terminal
    monkeypatch.setattr(gdrive, "build_service", lambda creds: pytest.fail("no service without creds"))
    for extra in ([], ["--no-input"]):
        r = CliRunner().invoke(cli, ["download-gdrive", "--folder-id", "F", "-o", str(tmp_path / "o"),
                                     "--token", str(token), "--secret-json", str(secret), *extra])
        assert r.exit_code == 1 and "cannot refresh the Drive token" in r.output
        assert "Traceback" not in r.output and fake_flow.calls == []


@pytest.mark.parametrize("content, message", [
    ('{"type": "service_account", "private_key": "x"}', "is a service-account key, not an OAuth client"),
    ('{"web": {}}', None),
    ('{"foo": 1}', "not an OAuth client secret"),
    ("not json", "not a JSON file"),
])
def test_client_secret_file_kinds(tmp_path, content, message):
    f = tmp_path / "secret.json"
    f.write_text(content)
    if message is None:
        gdrive.check_client_secret(f)
        return
    with pytest.raises(InputError, match=message) as exc:
        gdrive.check_client_secret(f)
    assert exc.value.path == str(f) and "Desktop app" in str(exc.value)


@pytest.fixture
def token_endpoint(tmp_path, monkeypatch):
    """A local OAuth token endpoint (loopback, plain http) and a client secret naming it;
    the Drive service after the sign-in stops the command (the test needs only the sign-in)."""
    import http.server
    import threading

    class TokenEndpoint(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"access_token": "SECRET-ACCESS-NEW", "refresh_token": "SECRET-REFRESH-NEW",
                               "expires_in": 3600, "token_type": "Bearer", "scope": gdrive.SCOPES[0]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), TokenEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secret = tmp_path / "client_secret.json"
    secret.write_text(json.dumps({"installed": {
        "client_id": "CID", "client_secret": "SECRET-CLIENT", "auth_uri": "https://accounts.example/auth",
        "token_uri": f"http://127.0.0.1:{server.server_port}/token", "redirect_uris": ["http://localhost"]}}))
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the local endpoint is plain http

    def stop(creds):
        raise ServiceError("stopped after the sign-in (test)")

    monkeypatch.setattr(gdrive, "build_service", stop)
    yield secret
    server.shutdown()


def _console_login(tmp_path, secret, *verbosity, stdin=None):
    return CliRunner().invoke(cli, [*verbosity, "download-gdrive", "--auth", "console", "--secret-json", str(secret),
                                    "--token", str(tmp_path / "token.json"), "--folder-id", "F",
                                    "-o", str(tmp_path / "o")], input=stdin)


def test_verbose_login_logs_no_secret(tmp_path, monkeypatch, token_endpoint):
    """A real console sign-in (requests_oauthlib against a local token endpoint) under -v:
    the whole output holds none of the code, the client secret, the tokens or the Basic header."""
    import base64

    secret = token_endpoint
    monkeypatch.setattr(gdrive_auth, "_terminal", lambda: True)  # a person at a terminal signs in
    r = _console_login(tmp_path, secret, "-v", stdin="CODE-SECRET-123\n")
    assert isinstance(r.exception, ServiceError), r.output  # -v re-raises after the sign-in
    assert json.loads((tmp_path / "token.json").read_text())["refresh_token"] == "SECRET-REFRESH-NEW"
    basic = base64.b64encode(b"CID:SECRET-CLIENT").decode()
    flat = re.sub(r"\s+", "", r.output)  # the console wraps long lines: a secret could be split
    for secret_text in ("CODE-SECRET-123", "SECRET-CLIENT", "SECRET-ACCESS-NEW", "SECRET-REFRESH-NEW", basic):
        assert secret_text not in flat, secret_text
    # -v reached DEBUG: the project's debug record of the sign-in is in the same output
    assert re.search(r"DEBUG\s+signing in \(console flow\); token endpoint", r.output), r.output


def test_run_no_input_means_no_sign_in_waits(tmp_path, monkeypatch):
    import io as _io

    from click.testing import CliRunner

    from vercye_lai.acquire import gdrive_auth
    from vercye_lai.cli.main import cli

    class Tty(_io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(gdrive_auth, "NO_INPUT", False)
    monkeypatch.setattr("sys.stdin", Tty())
    assert gdrive_auth._terminal()
    cfg = tmp_path / "run.toml"
    cfg.write_text('output_root = "o"\n[[regions]]\nname = "x"\nstart_date = 2023-01-01\n'
                   'end_date = 2023-01-02\n[source]\nkind = "local"\npath = "s"\n')
    r = CliRunner().invoke(cli, ["-q", "run", str(cfg), "--dry-run", "--no-input"])
    assert "Traceback" not in r.output
    assert gdrive_auth.NO_INPUT and not gdrive_auth._terminal()  # a batch job: every sign-in fails at once


def test_console_sign_in_reads_the_code_from_a_pipe(tmp_path, token_endpoint):
    """Headless sign-in is what --auth console is for: without a terminal the code is read
    from standard input; a pipe that ends first fails at once, naming why."""
    r = _console_login(tmp_path, token_endpoint, "-v", stdin="CODE-123\n")  # CliRunner's stdin: no terminal
    assert isinstance(r.exception, ServiceError) and "stopped after the sign-in" in str(r.exception), r.output
    assert json.loads((tmp_path / "token.json").read_text())["refresh_token"] == "SECRET-REFRESH-NEW"
    (tmp_path / "token.json").unlink()
    r = _console_login(tmp_path, token_endpoint, stdin="")
    assert r.exit_code == 1 and "no address or code on standard input (end of input)" in r.output


def test_a_wrong_client_secret_is_named_before_any_token_talk(tmp_path):
    key = tmp_path / "key.json"
    key.write_text(json.dumps({"type": "service_account", "client_email": "x@y"}))
    r = CliRunner().invoke(cli, ["download-gdrive", "--secret-json", str(key), "--token", str(tmp_path / "t.json"),
                                 "--folder-id", "F", "-o", str(tmp_path / "o"), "--no-input"])
    assert r.exit_code == 1 and "key.json: is a service-account key" in r.output and "token" not in r.output.split(":")[-1]
