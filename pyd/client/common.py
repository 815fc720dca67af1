"""What every command gets: the Cli object (streams, daemon address, lazily made API clients) and the
errors that end a command with a given exit status."""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False     # typing and dataclasses cost milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, TextIO

    from pyd.client.api import APIClient

DEFAULT_HOST = "unix:///var/run/pyd.sock"
PROG = "pyd"


class StatusError(Exception):
    """End the command with `status`; `message` (if any) goes to stderr as is."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class TLSOptions:
    def __init__(self, enabled: bool = False, verify: bool = False, ca: str | None = None,
                 cert: str | None = None, key: str | None = None) -> None:
        self.enabled, self.verify, self.ca, self.cert, self.key = enabled, verify, ca, cert, key


class Cli:
    """The client side's context, passed to every cmd_* function."""

    def __init__(self, host: str = DEFAULT_HOST, tls: TLSOptions | None = None, debug: bool = False,
                 log_level: str = "info", stdin: TextIO | None = None, stdout: TextIO | None = None,
                 stderr: TextIO | None = None) -> None:
        self.host = host
        self.tls = tls or TLSOptions()
        self.debug = debug
        self.log_level = log_level
        self.command_path = PROG        # "pyd run", "pyd container ls": for "Run '... --help'" hints
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self._client: APIClient | None = None

    def client(self) -> APIClient:
        """The shared APIClient (made on first use, so commands that need no daemon pay nothing)."""
        if self._client is None:
            self._client = self.new_client()
        return self._client

    def new_client(self) -> APIClient:
        """A separate APIClient, for a request that runs alongside another one (wait during attach)."""
        from pyd.client.api import APIClient
        from pyd.http.tls import TLSConfig
        tls = None
        if self.tls.enabled or self.tls.verify:
            tls = TLSConfig(ca=self.tls.ca, cert=self.tls.cert, key=self.tls.key, verify=self.tls.verify)
        return APIClient(self.host, tls=tls)

    def out(self, text: str) -> None:
        self.stdout.write(text)

    def err(self, text: str) -> None:
        self.stdout.flush()
        self.stderr.write(text)
        self.stderr.flush()

    def out_bytes(self, data: bytes) -> None:
        self.stdout.flush()
        _write_all(self.stdout.fileno(), data)

    def err_bytes(self, data: bytes) -> None:
        _write_all(self.stderr.fileno(), data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def normalize_host(value: str) -> str:
    """Accept docker's spellings of -H: unix:///p, tcp://h:p, /path, h:p."""
    if not value:
        return DEFAULT_HOST
    if "://" not in value:
        return "unix://" + value if value.startswith("/") else "tcp://" + value
    if value == "unix://":
        return DEFAULT_HOST
    return value


def api_error_message(exc: BaseException) -> str:
    """'Error response from daemon: ...' for an APIError; the exception's own text otherwise."""
    message = getattr(exc, "message", None)
    if message is not None and hasattr(exc, "status"):
        return f"Error response from daemon: {message}"
    return str(exc)


def is_api_error(exc: BaseException) -> bool:
    """An error to report as the daemon's (or its absence), not a bug to show as a traceback."""
    from pyd.client.api import APIError, DaemonUnreachable
    return isinstance(exc, (APIError, DaemonUnreachable))


def for_each(cli: "Cli", names: list[str], action, report=None, tolerate=None) -> None:
    """docker's multi-object commands (rm, stop, pause, rmi...): apply action to every name, report each
    success (default: print the name), and raise every error of the daemon together at the end (exit 1).
    tolerate(exc) -> True skips an error (e.g. `rm -f` of something already gone)."""
    errors = []
    for name in names:
        try:
            result = action(name)
        except Exception as exc:
            if not is_api_error(exc):
                raise
            if tolerate is None or not tolerate(exc):
                errors.append(api_error_message(exc))
            continue
        if report is None:
            cli.out(name + "\n")
        else:
            report(name, result)
        cli.stdout.flush()
    if errors:
        raise StatusError(1, "\n".join(errors))


def isatty(stream: Any) -> bool:
    """stream.isatty(), False for a stream without one or already closed."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def time_query(opts: Any, keys: tuple[str, ...] = ("since", "until")) -> dict[str, str]:
    """The given --since/--until flags as the API's timestamps (docker's "invalid value" error otherwise)."""
    from pyd.client import formatting as fmt
    query: dict[str, str] = {}
    for key in keys:
        value = getattr(opts, key)
        if value:
            try:
                query[key] = fmt.api_timestamp(value)
            except ValueError as exc:
                raise StatusError(1, f'invalid value for "{key}": {exc}') from None
    return query


def is_not_found(exc: BaseException) -> bool:
    return getattr(exc, "status", None) == 404


def encode_filters(items: list[str]) -> str | None:
    """-f name=value flags as the API's filters JSON: {"name": {"value": true}}."""
    if not items:
        return None
    import json
    filters: dict[str, dict[str, bool]] = {}
    for item in items:
        name, _, value = item.partition("=")
        filters.setdefault(name.strip().lower(), {})[value] = True
    return json.dumps(filters, separators=(",", ":"))


def validate_filter(raw: str) -> str:
    if "=" not in raw:
        raise ValueError("bad format of filter (expected name=value)")
    return raw


def read_stream_messages(cli: Cli, resp: Any) -> None:
    """Print a JSON-message stream (import, load) as docker's DisplayJSONMessagesStream does without a
    terminal: status/stream lines as they come; an error message ends the command with status 1."""
    for msg in resp.iter_json():
        if not isinstance(msg, dict):
            continue
        error = msg.get("errorDetail") or ({"message": msg["error"]} if msg.get("error") else None)
        if error:
            raise StatusError(1, str(error.get("message", "")))
        if msg.get("stream"):
            cli.out(msg["stream"])
        elif msg.get("status"):
            prefix = f"{msg['id']}: " if msg.get("id") else ""
            progress = f" {msg['progress']}" if msg.get("progress") else ""
            cli.out(f"{prefix}{msg['status']}{progress}\n")
        elif msg.get("aux") is not None and isinstance(msg["aux"], dict) and msg["aux"].get("ID"):
            pass      # images' aux IDs are for programs, not printed
    cli.stdout.flush()
