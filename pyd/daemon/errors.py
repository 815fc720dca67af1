"""Docker-shaped errors: raised where detected, answered by the API server as {"message": ...} with their
status (error_response, the one place that shapes them)."""
from __future__ import annotations

from pyd.http.errors import HTTPError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyd.http.server import Response

__all__ = ["HTTPError", "BadParameter", "Forbidden", "NotFound", "Conflict", "NotModified", "ServerError",
           "error_response"]


class BadParameter(HTTPError):
    status = 400


class Forbidden(HTTPError):
    status = 403


class NotFound(HTTPError):
    status = 404


class Conflict(HTTPError):
    status = 409


class NotModified(HTTPError):
    status = 304


class ServerError(HTTPError):
    status = 500


def error_response(status: int, message: str) -> Response:
    """Docker's error body (a 304 has none)."""
    from pyd.http.server import Response  # asyncio: only the server needs it, not every module that raises
    return Response(status, None if status == 304 else {"message": message})


class NotImplementedFeature(HTTPError):
    """A part of the Engine API that pyd does not offer (swarm mode, plugins)."""
    status = 501


class Unavailable(HTTPError):
    status = 503
