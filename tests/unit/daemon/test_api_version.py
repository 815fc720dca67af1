"""pyd.daemon.api.version: Docker's API version policy as middleware of pyd.http.server, on its own and on
a server on a unix socket driven by the API client."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from pyd.client.api import APIClient, APIError
from pyd.daemon.api.version import APIVersion, api_version, split_version_prefix
from pyd.daemon.errors import HTTPError, error_response
from pyd.http.server import Router, Server


class _Req:
    """What the middleware touches of a request."""
    def __init__(self) -> None:
        self.state: dict[str, str] = {}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A server wired as the daemon's, in a thread; yields its unix:// address."""
    async def image(req: Any, name: str) -> dict:
        return {"name": name, "api_version": api_version(req)}

    router = Router()
    router.add("GET", "/images/{name:path}/json", image)
    srv = Server(router, middleware=[APIVersion("1.47", "1.24")], error_response=error_response)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    path = str(tmp_path / "api.sock")
    asyncio.run_coroutine_threadsafe(srv.listen_unix(path), loop).result(5)
    try:
        yield "unix://" + path
    finally:
        asyncio.run_coroutine_threadsafe(srv.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_split_version_prefix() -> None:
    assert split_version_prefix("/v1.47/containers/json") == ("1.47", "/containers/json")
    assert split_version_prefix("/v1.47") == ("1.47", "/")
    assert split_version_prefix("/containers/json") == (None, "/containers/json")
    assert split_version_prefix("/volumes/v1") == (None, "/volumes/v1")
    assert split_version_prefix("/vx/y") == (None, "/vx/y")


def test_route_check_and_headers() -> None:
    mw = APIVersion("1.47", "1.24")
    req = _Req()
    assert mw.route(req, "/v1.30/info") == "/info" and api_version(req) == "1.30"  # type: ignore[arg-type]
    mw.check(req)  # type: ignore[arg-type]
    req = _Req()
    assert mw.route(req, "/info") == "/info" and api_version(req) == "1.47"  # type: ignore[arg-type]
    mw.check(req)  # type: ignore[arg-type]
    req = _Req()
    mw.route(req, "/v2.0/info")  # type: ignore[arg-type]
    with pytest.raises(HTTPError) as info:
        mw.check(req)  # type: ignore[arg-type]
    assert info.value.status == 400 and "too new" in info.value.message
    assert mw.headers() == [("Api-Version", "1.47"), ("Docker-Experimental", "false"), ("Ostype", "linux")]


def test_version_prefix_and_its_limits(server: str) -> None:
    with APIClient(server, api_version="1.30", timeout=5) as c:
        assert c.request("GET", "/images/x/json").json() == {"name": "x", "api_version": "1.30"}
    with APIClient(server, api_version="", timeout=5) as c:  # unversioned path
        assert c.request("GET", "/images/x/json").json() == {"name": "x", "api_version": "1.47"}
    with APIClient(server, api_version="1.99", timeout=5) as c:
        with pytest.raises(APIError) as info:
            c.request("GET", "/images/x/json")
        assert info.value.status == 400
        assert info.value.message == "client version 1.99 is too new. Maximum supported API version is 1.47"
        resp = c.request("GET", "/no/such/route", check=False)  # an unknown path stays a 404
        assert resp.status == 404 and resp.json() == {"message": "page not found"}
        assert resp.headers["Api-Version"] == "1.47" and resp.headers["Ostype"] == "linux"
    with APIClient(server, api_version="1.12", timeout=5) as c:
        with pytest.raises(APIError) as info:
            c.request("GET", "/images/x/json")
        assert info.value.status == 400
        assert info.value.message == ("client version 1.12 is too old. Minimum supported API version is 1.24, "
                                      "please upgrade your client to a newer version")
