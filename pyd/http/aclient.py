"""The asyncio HTTP/1.1 client: full http(s):// URLs, or paths relative to a unix:// / tcp:// / http:// base.
Keep-alive connections are pooled per host; redirects are followed (Authorization is dropped when the host
changes). It drives the same ClientConnection as the blocking client."""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable

from pyd.http.errors import ConnectError, HTTPStatusError, StaleConnection
from pyd.http.headers import Headers
from pyd.http.parser import NEED_DATA, ClientConnection, OutgoingRequest, frame_request, replayable
from pyd.http.urls import PATH_SAFE, encode_query, host_header, join_url, origin, parse_host, quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl

    from pyd.http.parser import ResponseHead
    from pyd.http.tls import TLSConfig

_IO_SIZE = 1 << 18
_POOL_SIZE = 8                     # idle connections kept per host


class AsyncClient:
    """base: where relative paths go, with base_path in front of them. user_agent (when given) and unix_host
    (the Host of a unix socket) go in every request head."""

    def __init__(self, base: str | None = None, tls: TLSConfig | None = None, base_path: str = "",
                 ssl_context: ssl.SSLContext | None = None, timeout: float | None = 300.0,
                 follow_redirects: bool = True, max_redirects: int = 10, user_agent: str | None = None,
                 unix_host: str = "localhost") -> None:
        self.base = base
        self.tls = tls
        self.base_path = base_path
        self.timeout = timeout
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.user_agent = user_agent
        self.unix_host = unix_host
        self._ssl_context = ssl_context
        self._pool: dict[tuple[str, str, int], list[tuple[Any, Any]]] = {}

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        for conns in self._pool.values():
            for _, writer in conns:
                writer.close()
        self._pool.clear()

    def _resolve(self, url_or_path: str, query: dict[str, Any] | None) -> tuple[str, str, int, str, str]:
        """-> (scheme, host, port, target, url)."""
        if "://" in url_or_path:
            url = url_or_path
            scheme, host, port = parse_host(url)
            rest = url.split("://", 1)[1]
            slash = rest.find("/")
            target = rest[slash:] if slash >= 0 else "/"
        else:
            if not self.base:
                raise ValueError(f"relative path {url_or_path!r} without a base address")
            scheme, host, port = parse_host(self.base)
            target = self.base_path + quote(url_or_path, PATH_SAFE + "?%")
            url = self.base.rstrip("/") + target
        qs = encode_query(query)
        if qs:
            target += ("&" if "?" in target else "?") + qs
            url += ("&" if "?" in url.split("://", 1)[1] else "?") + qs
        if scheme == "tcp" and self.tls is not None:
            scheme = "https"
        return scheme, host, port, target, url

    def _ssl(self) -> Any:
        if self._ssl_context is None:
            if self.tls is not None:
                self._ssl_context = self.tls.client_context()
            else:
                import ssl
                self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    async def _open(self, scheme: str, host: str, port: int) -> tuple[Any, Any]:
        try:
            if scheme == "unix":
                conn = asyncio.open_unix_connection(host, limit=1 << 20)
            elif scheme == "https":
                conn = asyncio.open_connection(host, port, ssl=self._ssl(), server_hostname=host, limit=1 << 20)
            else:
                conn = asyncio.open_connection(host, port, limit=1 << 20)
            return await self._timed(conn)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            if self.base and self.base.startswith(("unix:", "tcp:")):
                raise ConnectError(self.base, e) from e
            raise

    async def _timed(self, awaitable: Awaitable[Any]) -> Any:
        if self.timeout is None:
            return await awaitable
        return await asyncio.wait_for(awaitable, self.timeout)

    async def request(self, method: str, url_or_path: str, query: dict[str, Any] | None = None, body: Any = None,
                      headers: Any = None, check: bool = False) -> AsyncClientResponse:
        """Returns once the response head arrived. check=True raises HTTPStatusError on status >= 400."""
        method = method.upper()
        headers = Headers(headers) if headers else Headers()
        for _ in range(self.max_redirects + 1):
            resp = await self._request_once(method, url_or_path, query, body, headers)
            location = resp.headers.get("location")
            if not (self.follow_redirects and location and resp.status in (301, 302, 303, 307, 308)):
                break
            if resp.status in (307, 308) and not replayable(body):
                break
            resp.close()
            new_url = join_url(resp.url, location)
            if origin(new_url) != origin(resp.url):
                del headers["Authorization"]
            if resp.status == 303 or (resp.status in (301, 302) and method not in ("GET", "HEAD")):
                method, body = ("GET" if method != "HEAD" else "HEAD"), None
                del headers["Content-Length"]
                del headers["Content-Type"]
            url_or_path, query = new_url, None
        if check and resp.status >= 400:
            await resp.raise_for_status()
        return resp

    async def _request_once(self, method: str, url_or_path: str, query: dict[str, Any] | None, body: Any,
                            headers: Headers) -> AsyncClientResponse:
        scheme, host, port, target, url = self._resolve(url_or_path, query)
        h = Headers([("Host", self.unix_host if scheme == "unix" else
                      host_header(host, port, 443 if scheme == "https" else 80))])
        if self.user_agent is not None:
            h.add("User-Agent", self.user_agent)
        h.update(headers)
        out = frame_request(method, target, h, body)
        key = (scheme, host, port)
        retry = replayable(body)
        while True:
            reader, writer, reused = await self._checkout(key)
            try:
                conn = ClientConnection(method, reused, f"{url}: the server")
                head = await self._exchange(reader, writer, conn, out)
                return AsyncClientResponse(self, key, reader, writer, conn, head, url)
            except StaleConnection:
                writer.close()
                if not retry:
                    raise ConnectionResetError(f"{url}: the server closed the connection") from None
            except BaseException:
                writer.close()
                raise

    async def _checkout(self, key: tuple[str, str, int]) -> tuple[Any, Any, bool]:
        conns = self._pool.get(key)
        while conns:
            reader, writer = conns.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer, True
            writer.close()
        reader, writer = await self._open(*key)
        return reader, writer, False

    def _checkin(self, key: tuple[str, str, int], reader: Any, writer: Any) -> None:
        conns = self._pool.setdefault(key, [])
        if len(conns) < _POOL_SIZE:
            conns.append((reader, writer))
        else:
            writer.close()

    async def _exchange(self, reader: Any, writer: Any, conn: ClientConnection, out: OutgoingRequest
                        ) -> ResponseHead:
        try:
            writer.write(out.first_write())
            rest = out.second_write()
            if rest is not None:
                writer.write(rest)
            if out.pieces is not None:
                await self._send_pieces(writer, out)
            await self._timed(writer.drain())
        except (BrokenPipeError, ConnectionResetError):
            conn.check_stale()
        while True:
            head = conn.next_head()
            if head is not NEED_DATA:
                return head
            try:
                data = await self._timed(reader.read(_IO_SIZE))
            except ConnectionResetError:
                conn.check_stale()
                raise
            conn.receive_data(data)

    async def _send_pieces(self, writer: Any, out: OutgoingRequest) -> None:
        async def each() -> AsyncIterator[bytes]:
            if hasattr(out.pieces, "__aiter__"):
                async for piece in out.pieces:
                    yield piece
            else:
                for piece in out.pieces:
                    yield piece
        async for piece in each():
            if piece:
                writer.write(out.encode_piece(piece))
                await self._timed(writer.drain())
        end = out.end()
        if end:
            writer.write(end)


class AsyncClientResponse:
    """Async twin of ClientResponse: await read()/json(), async for in iter_chunks()."""

    def __init__(self, client: AsyncClient, key: tuple[str, str, int], reader: Any, writer: Any,
                 conn: ClientConnection, head: ResponseHead, url: str) -> None:
        self.status = head.status
        self.reason = head.reason
        self.headers = head.headers
        self.head = head
        self.url = url
        self._client = client
        self._key = key
        self._reader = reader
        self._writer = writer
        self._conn = conn
        self._content: bytes | None = None
        self._done = False
        self._consumed = False
        if conn.ended:
            self._content = b""
            self._finish()

    def __repr__(self) -> str:
        return f"<AsyncClientResponse {self.status} {self.url}>"

    async def __aenter__(self) -> AsyncClientResponse:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        if self._content is not None:
            if self._content:
                yield self._content
            return
        if self._consumed:
            raise RuntimeError("the response body was already consumed")
        self._consumed = True
        conn = self._conn
        try:
            while True:
                data = conn.next_data()
                if data is NEED_DATA:
                    conn.receive_data(await self._client._timed(self._reader.read(_IO_SIZE)))
                elif data is None:
                    self._finish()
                    return
                else:
                    yield data
        finally:
            if not self._done:
                self.close()

    async def read(self) -> bytes:
        if self._content is None:
            self._content = b"".join([chunk async for chunk in self.iter_chunks()])
        return self._content

    async def json(self) -> Any:
        import json
        data = await self.read()
        return json.loads(data) if data.strip() else None

    async def raise_for_status(self) -> None:
        if self.status >= 400:
            raise HTTPStatusError(self.status, self.reason, await self.read())

    def take_connection(self) -> tuple[Any, Any, bytes]:
        """After a 101/hijack: (reader, writer, bytes already received past the head)."""
        self._done = True
        return self._reader, self._writer, self._conn.take_buffered()

    def _finish(self) -> None:
        self._done = True
        if self._conn.reusable:
            self._client._checkin(self._key, self._reader, self._writer)
        else:
            self._writer.close()

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._writer.close()
