"""The errors of the HTTP layer: one a server answers with a status, and the ones its clients raise."""
from __future__ import annotations


class HTTPError(Exception):
    """An error a server answers with `status`; the server's error renderer turns `message` into the body.
    Subclasses set a class-level `status`."""
    status = 500

    def __init__(self, message: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class ParseError(HTTPError):
    """The peer sent something that is not HTTP/1.1 we accept; `status` is what a server should answer."""
    status = 400


class IncompleteMessage(ParseError):
    """The peer closed the connection in the middle of a message."""


class StaleConnection(Exception):
    """A reused keep-alive connection was closed by the server before it answered: retry on a new one."""


class HTTPStatusError(Exception):
    """A response with an error status (a client's check=True or raise_for_status())."""

    def __init__(self, status: int, reason: str, body: bytes) -> None:
        from pyd.http.headers import REASONS
        self.status = status
        self.reason = reason
        self.body = body
        self.message = body.decode("utf-8", "replace").strip() or reason or REASONS.get(status, f"HTTP status {status}")
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class ConnectError(Exception):
    """Nothing could be reached at `address`; `error` is the OSError of the attempt."""

    def __init__(self, address: str, error: OSError) -> None:
        self.address = address
        self.error = error
        super().__init__(f"cannot connect to {address}: {error}")
