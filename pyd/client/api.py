"""The client of the Engine API: the blocking HTTP client with Docker's conventions (the /vX.Y prefix, errors
from {"message": ...} bodies, the daemon's absence in the docker CLI's words, JSON progress streams)."""
from __future__ import annotations

from pyd import API_VERSION, __version__
from pyd.http.client import Client, ClientResponse, HijackedConnection
from pyd.http.headers import REASONS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

    from pyd.http.tls import TLSConfig

DEFAULT_HOST = "unix:///var/run/pyd.sock"
USER_AGENT = f"pyd-client/{__version__}"
DEFAULT_TCP_PORT = 2375


class APIError(Exception):
    """The daemon answered with an error status; `message` comes from its {"message": ...} body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message


class DaemonUnreachable(Exception):
    """Nothing answers at the daemon's address."""

    def __init__(self, host: str, message: str | None = None) -> None:
        self.host = host
        self.message = message or f"Cannot connect to the pyd daemon at {host}. Is the pyd daemon running?"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def error_message(status: int, body: bytes, reason: str = "") -> str:
    """The "message" of a Docker error body, else the body text, else the reason phrase."""
    text = body.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        import json
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            return doc["message"]
    return text or reason or REASONS.get(status, f"HTTP status {status}")


class APIResponse(ClientResponse):
    def iter_json(self) -> Iterator[Any]:
        """The stream of JSON documents of /events, pull, push, load and build."""
        from pyd.formats.jsonstream import iter_json
        return iter_json(self.iter_chunks())


class APIClient(Client):
    """host: unix://PATH or tcp://HOST[:PORT] (https with tls); api_version "" sends unversioned paths."""
    peer = "the daemon"
    tcp_port = DEFAULT_TCP_PORT
    response_class = APIResponse

    def __init__(self, host: str = DEFAULT_HOST, tls: TLSConfig | None = None, api_version: str = API_VERSION,
                 timeout: float | None = None) -> None:
        super().__init__(DEFAULT_HOST if host == "unix://" else host, tls,
                         base_path=f"/v{api_version}" if api_version else "", timeout=timeout,
                         user_agent=USER_AGENT, unix_host="pyd")
        self.host = host
        self.api_version = api_version

    def hijack(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
               headers: Any = None) -> HijackedConnection:
        """attach and exec start: Docker asks for "Upgrade: tcp" and expects 101 (or 200)."""
        return super().hijack(method, path, query, body, headers, protocol="tcp")

    def status_error(self, status: int, reason: str, body: bytes) -> Exception:
        return APIError(status, error_message(status, body, reason))

    def connect_error(self, error: OSError) -> Exception:
        host = self.host
        if isinstance(error, (FileNotFoundError, ConnectionRefusedError, NotADirectoryError)):
            return DaemonUnreachable(host)
        if isinstance(error, PermissionError):
            return DaemonUnreachable(host, "permission denied while trying to connect to the pyd daemon "
                                     f"socket at {host}: {error.strerror or error}")
        if type(error).__name__.startswith("SSL"):
            return DaemonUnreachable(host, f"error during TLS handshake with {host}: {error}")
        return DaemonUnreachable(host, f"Cannot connect to the pyd daemon at {host}: {error}")
