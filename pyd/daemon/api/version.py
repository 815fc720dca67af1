"""Docker's API version policy, as middleware of the HTTP server: a /vX.Y prefix names the version a client
speaks (none: the current one), versions outside [minimum, current] are refused with Docker's words, and
every response says which version and OS this daemon serves."""
from __future__ import annotations

from pyd import API_VERSION, MIN_API_VERSION
from pyd.daemon.errors import BadParameter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyd.http.server import Request

_STATE_KEY = "api_version"


def split_version_prefix(path: str) -> tuple[str | None, str]:
    """"/v1.47/containers/json" -> ("1.47", "/containers/json"); unversioned paths -> (None, path)."""
    if path.startswith("/v") and len(path) > 2 and path[2].isdigit():
        end = path.find("/", 2)
        version = path[2:] if end < 0 else path[2:end]
        if all(c in "0123456789." for c in version):
            return version, ("/" if end < 0 else path[end:])
    return None, path


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


def api_version(req: Request) -> str:
    """The API version the request speaks (its /vX.Y prefix, else the daemon's current one)."""
    return req.state.get(_STATE_KEY, API_VERSION)


def api_at_least(req: Request, minimum: str) -> bool:
    """Whether the request speaks API `minimum` or later (a behaviour that version introduced)."""
    return version_tuple(api_version(req)) >= version_tuple(minimum)


class APIVersion:
    """The version middleware: route() strips the prefix (a handler reads the version with api_version()),
    check() refuses versions out of range once the route is known (an unknown path stays a 404)."""

    def __init__(self, current: str = API_VERSION, minimum: str = MIN_API_VERSION) -> None:
        self.current = current
        self.minimum = minimum
        self._max = version_tuple(current)
        self._min = version_tuple(minimum)
        self._headers = [("Api-Version", current), ("Docker-Experimental", "false"), ("Ostype", "linux")]

    def route(self, req: Request, path: str) -> str:
        version, rest = split_version_prefix(path)
        req.state[_STATE_KEY] = version or self.current
        return rest

    def check(self, req: Request) -> None:
        self.check_version(req.state.get(_STATE_KEY, self.current))

    def check_version(self, version: str) -> None:
        v = version_tuple(version)
        if v > self._max:
            raise BadParameter(f"client version {version} is too new. Maximum supported API version is "
                               f"{self.current}")
        if v < self._min:
            raise BadParameter(f"client version {version} is too old. Minimum supported API version is "
                               f"{self.minimum}, please upgrade your client to a newer version")

    def headers(self) -> list[tuple[str, str]]:
        return self._headers
