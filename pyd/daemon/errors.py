"""Docker-shaped errors: raised where detected, turned into responses by proto.Server."""
from __future__ import annotations

from pyd.proto import HTTPError


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


class NotImplementedFeature(HTTPError):
    """A part of the Engine API that pyd does not offer (swarm mode, plugins)."""
    status = 501


class Unavailable(HTTPError):
    status = 503
