"""The blocking HTTP/1.1 client (unix://, tcp://, https with TLSConfig); one idle keep-alive connection is
reused. It never imports asyncio, and socket/ssl only when a connection needs them: a command line pays
for what it uses.

Subclasses adapt it to an API: `response_class`, status_error() (the exception of an error status),
connect_error() (of a failed connect) and `peer` (how messages name the server)."""
from __future__ import annotations

from pyd.http.errors import ConnectError, HTTPStatusError, StaleConnection
from pyd.http.headers import Headers
from pyd.http.parser import NEED_DATA, ClientConnection, OutgoingRequest, frame_request, replayable
from pyd.http.urls import PATH_SAFE, encode_query, host_header, parse_host, quote

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from typing import Any, Iterator

    from pyd.http.parser import ResponseHead
    from pyd.http.tls import TLSConfig

_IO_SIZE = 1 << 18                 # read size


class Client:
    """host: unix://PATH, tcp://HOST:PORT (https when tls is given), http(s)://HOST:PORT. base_path goes in
    front of every request path; user_agent (when given) and unix_host (the Host of a unix socket) go in
    every request head."""
    peer = "the server"
    tcp_port = 80                  # the port of a tcp:// host that names none

    def __init__(self, host: str, tls: TLSConfig | None = None, base_path: str = "", timeout: float | None = None,
                 user_agent: str | None = None, unix_host: str = "localhost") -> None:
        self.host = host
        self.tls = tls
        self.base_path = base_path
        self.timeout = timeout
        self.user_agent = user_agent
        self._scheme, self._address, self._port = parse_host(host, self.tcp_port)
        if self._scheme == "https" and tls is None:
            from pyd.http.tls import TLSConfig
            self.tls = TLSConfig()
        if self._scheme == "unix":
            self._host_header = unix_host
        else:
            self._host_header = host_header(self._address, self._port, 443 if self.tls else 80)
        self._ssl_context: ssl.SSLContext | None = None
        self._idle: list[Any] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.host!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    # ---- what subclasses adapt
    response_class: type[ClientResponse]     # set below the class ClientResponse

    def status_error(self, status: int, reason: str, body: bytes) -> Exception:
        """The exception for a response with an error status."""
        return HTTPStatusError(status, reason, body)

    def connect_error(self, error: OSError) -> Exception:
        """The exception for a connection that could not be made (or whose TLS handshake failed)."""
        return ConnectError(self.host, error)

    # ---- connections
    def _connect(self) -> Any:
        try:
            if self._scheme == "unix":
                import _socket  # the C module: `socket` costs ~6 ms more (enum, selectors)
                sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
                try:
                    sock.settimeout(self.timeout)
                    sock.connect(self._address)
                except BaseException:
                    sock.close()
                    raise
                return sock
            if self.tls is not None:
                import socket
                if self._ssl_context is None:
                    self._ssl_context = self.tls.client_context()
                raw = socket.create_connection((self._address, self._port), timeout=self.timeout)
                try:
                    return self._ssl_context.wrap_socket(raw, server_hostname=self._address)
                except BaseException:
                    raw.close()
                    raise
            return self._connect_tcp()
        except OSError as e:
            raise self.connect_error(e) from e

    def _connect_tcp(self) -> Any:
        import _socket
        error: OSError | None = None
        for family, kind, proto, _, addr in _socket.getaddrinfo(self._address, self._port, 0, _socket.SOCK_STREAM):
            sock = _socket.socket(family, kind, proto)
            try:
                sock.settimeout(self.timeout)
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
                sock.connect(addr)
                return sock
            except OSError as e:
                sock.close()
                error = e
        raise error or ConnectionRefusedError(f"no address for {self._address}")

    def _release(self, sock: Any) -> None:
        if self._idle:
            sock.close()
        else:
            self._idle.append(sock)

    # ---- requests
    def _target(self, path: str, query: dict[str, Any] | None) -> str:
        path, _, raw_query = path.partition("?")  # a query written into the path is passed as it is
        qs = "&".join(q for q in (raw_query, encode_query(query)) if q)
        return self.base_path + quote(path, PATH_SAFE) + ("?" + qs if qs else "")

    def _frame(self, method: str, path: str, query: dict[str, Any] | None, body: Any, headers: Any,
               extra: list[tuple[str, str]] = ()) -> OutgoingRequest:
        h = Headers([("Host", self._host_header)])
        if self.user_agent is not None:
            h.add("User-Agent", self.user_agent)
        h.extend(extra)
        if headers:
            h.update(headers)
        return frame_request(method, self._target(path, query), h, body)

    def request(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                headers: Any = None, check: bool = True) -> ClientResponse:
        """Send a request, return once the response head arrived (the body is read on demand).
        body: bytes/str, dict/list (JSON), a file or an iterable of bytes (chunked). check=True raises
        status_error() on a status >= 400."""
        method = method.upper()
        out = self._frame(method, path, query, body, headers)
        retry = replayable(body)
        while True:
            reused = bool(self._idle)
            sock = self._idle.pop() if reused else self._connect()
            try:
                conn = ClientConnection(method, reused, self.peer)
                resp = self.response_class(self, sock, conn, self._exchange(sock, conn, out), pooled=True)
                break
            except StaleConnection:
                sock.close()
                if not retry:
                    raise ConnectionResetError(f"{self.peer} closed the connection") from None
            except BaseException:
                sock.close()
                raise
        if check and resp.status >= 400:
            resp.raise_for_status()
        return resp

    def _exchange(self, sock: Any, conn: ClientConnection, out: OutgoingRequest) -> ResponseHead:
        try:
            _send(sock, out)
        except (BrokenPipeError, ConnectionResetError):
            conn.check_stale()
            # the server may have answered early (e.g. an error) and closed: read that answer
        while True:
            head = conn.next_head()
            if head is not NEED_DATA:
                return head
            try:
                data = sock.recv(_IO_SIZE)
            except ConnectionResetError:
                conn.check_stale()
                raise
            conn.receive_data(data)

    def hijack(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
               headers: Any = None, *, protocol: str) -> HijackedConnection:
        """Ask for the connection (Connection: Upgrade, Upgrade: <protocol>), expect 101 (or 200); a status
        of 300 or more raises status_error()."""
        method = method.upper()
        out = self._frame(method, path, query, body, headers, [("Connection", "Upgrade"), ("Upgrade", protocol)])
        sock = self._connect()
        try:
            conn = ClientConnection(method, False, self.peer)
            head = self._exchange(sock, conn, out)
            if head.status >= 300:
                resp = self.response_class(self, sock, conn, head, pooled=False)
                resp.raise_for_status()
                raise self.status_error(head.status, head.reason or "unexpected response to a hijack request", b"")
        except BaseException:
            sock.close()
            raise
        return HijackedConnection(sock, conn.take_buffered(), head.status, head.headers)


def _send(sock: Any, out: OutgoingRequest) -> None:
    sock.sendall(out.first_write())
    rest = out.second_write()
    if rest is not None:
        sock.sendall(rest)
    if out.pieces is not None:
        for piece in out.pieces:
            if piece:
                sock.sendall(out.encode_piece(piece))
        end = out.end()
        if end:
            sock.sendall(end)


class ClientResponse:
    """A response whose body is read on demand: read(), json(), iter_chunks()."""

    def __init__(self, client: Client, sock: Any, conn: ClientConnection, head: ResponseHead,
                 pooled: bool = True) -> None:
        self.status = head.status
        self.reason = head.reason
        self.headers = head.headers
        self.head = head
        self._client = client
        self._sock = sock
        self._conn = conn
        self._pooled = pooled          # the connection may go back to the client when the body is over
        self._content: bytes | None = None
        self._done = False
        self._consumed = False
        if conn.ended:  # 204, HEAD, Content-Length: 0: done now, the connection can serve the next request
            self._content = b""
            self._finish()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status} {self.reason}>"

    def __enter__(self) -> ClientResponse:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def iter_chunks(self) -> Iterator[bytes]:
        """The body in pieces as they arrive (not aligned with chunked-encoding boundaries)."""
        if self._content is not None:
            if self._content:
                yield self._content
            return
        if self._consumed:
            raise RuntimeError("the response body was already consumed")
        self._consumed = True
        conn, sock = self._conn, self._sock
        try:
            while True:
                data = conn.next_data()
                if data is NEED_DATA:
                    conn.receive_data(sock.recv(_IO_SIZE))
                elif data is None:
                    self._finish()
                    return
                else:
                    yield data
        finally:
            if not self._done:
                self.close()

    def read(self) -> bytes:
        if self._content is None:
            self._content = b"".join(self.iter_chunks())
        return self._content

    def json(self) -> Any:
        import json
        data = self.read()
        return json.loads(data) if data.strip() else None

    def raise_for_status(self) -> None:
        if self.status >= 400:
            raise self._client.status_error(self.status, self.reason, self.read())

    def _finish(self) -> None:
        self._done = True
        if self._pooled and self._conn.reusable:
            self._client._release(self._sock)
        else:
            self._sock.close()

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._sock.close()


Client.response_class = ClientResponse


class HijackedConnection:
    """The raw connection after a hijack. recv() first returns the bytes that arrived with the response
    head; pending() counts them, for callers that select() on fileno()."""

    def __init__(self, sock: Any, buffered: bytes, status: int = 101, headers: Headers | None = None) -> None:
        self.sock = sock
        self.status = status
        self.headers = headers if headers is not None else Headers()
        self._buffered = buffered

    def __enter__(self) -> HijackedConnection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type") or ""

    def pending(self) -> int:
        extra = self.sock.pending() if hasattr(self.sock, "pending") else 0
        return len(self._buffered) + extra

    def recv(self, n: int = 1 << 16) -> bytes:
        if self._buffered:
            data, self._buffered = self._buffered[:n], self._buffered[n:]
            return data
        return self.sock.recv(n)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        """Half-close: the server sees EOF and can go on sending. Not possible over TLS (Python's ssl has no
        half-close), where it does nothing."""
        if hasattr(self.sock, "pending"):  # ssl.SSLSocket
            return
        import _socket
        try:
            self.sock.shutdown(_socket.SHUT_WR)
        except OSError:
            pass

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()
