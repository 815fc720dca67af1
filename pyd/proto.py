"""pyd's HTTP and stream names at their old address. Each lives in its own module now; import it from there:

  pyd.http.parser, .server, .client, .aclient, .headers, .errors, .tls   HTTP/1.1, no Docker in it
  pyd.client.api            the Engine API client (APIClient, APIError, DaemonUnreachable)
  pyd.daemon.errors         the daemon's errors and their {"message": ...} answer
  pyd.daemon.api.version    the API version middleware
  pyd.formats.stdcopy, pyd.formats.jsonstream   Docker's multiplexed and JSON streams

Names resolve on first use, so importing this module costs nothing (the client's start-up stays lean).
"""
from __future__ import annotations

_HOMES = {
    "HTTPError": ("pyd.http.errors", "HTTPError"),
    "ParseError": ("pyd.http.errors", "ParseError"),
    "IncompleteMessage": ("pyd.http.errors", "IncompleteMessage"),
    "Headers": ("pyd.http.headers", "Headers"),
    "HTTPParser": ("pyd.http.parser", "HTTPParser"),
    "RequestHead": ("pyd.http.parser", "RequestHead"),
    "ResponseHead": ("pyd.http.parser", "ResponseHead"),
    "Data": ("pyd.http.parser", "Data"),
    "EndOfMessage": ("pyd.http.parser", "EndOfMessage"),
    "NEED_DATA": ("pyd.http.parser", "NEED_DATA"),
    "CLOSED": ("pyd.http.parser", "CLOSED"),
    "SWITCHED": ("pyd.http.parser", "SWITCHED"),
    "Request": ("pyd.http.server", "Request"),
    "StreamWriter": ("pyd.http.server", "StreamWriter"),
    "Response": ("pyd.http.server", "Response"),
    "Router": ("pyd.http.server", "Router"),
    "Server": ("pyd.http.server", "Server"),
    "APIError": ("pyd.client.api", "APIError"),
    "DaemonUnreachable": ("pyd.client.api", "DaemonUnreachable"),
    "Client": ("pyd.client.api", "APIClient"),
    "ClientResponse": ("pyd.client.api", "APIResponse"),
    "HijackedConnection": ("pyd.http.client", "HijackedConnection"),
    "TLSConfig": ("pyd.http.tls", "TLSConfig"),
    "AsyncClient": ("pyd.http.aclient", "AsyncClient"),
    "AsyncClientResponse": ("pyd.http.aclient", "AsyncClientResponse"),
    "JSONStreamDecoder": ("pyd.formats.jsonstream", "JSONStreamDecoder"),
    "stdcopy_frame": ("pyd.formats.stdcopy", "stdcopy_frame"),
    "StdcopyDemuxer": ("pyd.formats.stdcopy", "StdcopyDemuxer"),
}

__all__ = list(_HOMES)


def __getattr__(name: str) -> object:
    try:
        module_name, attr = _HOMES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    import importlib
    return getattr(importlib.import_module(module_name), attr)
