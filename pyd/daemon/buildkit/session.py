"""Client sessions (POST /session): the build client's own gRPC services, which the daemon calls back.

The client opens the session before Solve and names it in the request headers: its ID, name, shared key
and the gRPC methods it exposes (moby.filesync.v1.FileSync/DiffCopy for the context, Auth, Secrets,
SSH...). Over the hijacked connection the daemon is the HTTP/2 client. A session lives as long as that
connection; Solve finds it by ID (it may arrive a moment after the Solve that names it).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyd.daemon.buildkit.grpc import GrpcCall, GrpcClient
from pyd.daemon.errors import BadParameter, Conflict
from pyd.http.h2conn import H2Connection

if TYPE_CHECKING:
    from pyd.http.h2conn import Writer
    from pyd.http.headers import Headers

log = logging.getLogger("pyd.buildkit")

HEADER_ID = "X-Docker-Expose-Session-Uuid"
HEADER_NAME = "X-Docker-Expose-Session-Name"
HEADER_SHARED_KEY = "X-Docker-Expose-Session-Sharedkey"
HEADER_METHOD = "X-Docker-Expose-Session-Grpc-Method"

FILESYNC_DIFFCOPY = "/moby.filesync.v1.FileSync/DiffCopy"


@dataclass
class Session:
    id: str
    name: str
    shared_key: str
    methods: frozenset[str]
    client: GrpcClient = field(repr=False)
    conn: H2Connection = field(repr=False)

    async def closed(self) -> None:
        """Returns once the client closed the session."""
        await self.conn.wait_closed()

    def supports(self, method: str) -> bool:
        return method in self.methods

    async def call(self, method: str, metadata: list[tuple[str, str]] | None = None) -> GrpcCall:
        """Open a call to one of the client's services (e.g. FILESYNC_DIFFCOPY with its dir-name metadata)."""
        return await self.client.call(method, metadata or [])


class SessionManager:
    """The open sessions by ID."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._changed = asyncio.Event()

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    async def wait_for(self, session_id: str, timeout: float = 5.0) -> Session | None:
        """The session, waiting up to `timeout` seconds for it to open."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while session_id not in self._sessions:
            left = deadline - loop.time()
            if left <= 0:
                return None
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                return None
        return self._sessions[session_id]

    def check(self, headers: Headers) -> None:
        """Before the connection is taken over: a request that cannot open a session is a plain HTTP error."""
        session_id = headers.get(HEADER_ID) or ""
        if not session_id:
            raise BadParameter(f"no session ID: the {HEADER_ID} header is missing")
        if session_id in self._sessions:
            raise Conflict(f"session {session_id} already exists")

    async def serve(self, reader: asyncio.StreamReader, writer: Writer, headers: Headers) -> None:
        """Hold the session of an already hijacked connection (check() passed) until the client closes it."""
        self.check(headers)
        session_id = headers.get(HEADER_ID)
        conn = H2Connection(reader, writer, client=True)
        methods = frozenset(m for v in headers.get_all(HEADER_METHOD) for m in v.split(",") if m)
        session = Session(session_id, headers.get(HEADER_NAME) or "", headers.get(HEADER_SHARED_KEY) or "",
                          methods, GrpcClient(conn), conn)
        self._sessions[session_id] = session
        self._changed.set()
        log.debug("session %s (%s) open, exposing %s", session_id, session.name, ", ".join(sorted(methods)))
        try:
            await conn.run()
        finally:
            if self._sessions.get(session_id) is session:
                del self._sessions[session_id]
            self._changed.set()
            await conn.close()
            log.debug("session %s closed", session_id)

    def __len__(self) -> int:
        return len(self._sessions)
