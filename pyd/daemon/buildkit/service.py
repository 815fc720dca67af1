"""The BuildKit front: one Control service and the session registry, serving hijacked connections."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pyd.daemon.buildkit.control import ControlService
from pyd.daemon.buildkit.session import SessionManager

if TYPE_CHECKING:
    from pyd.http.h2conn import Writer
    from pyd.http.headers import Headers


class BuildKit:
    def __init__(self, control: ControlService, sessions: SessionManager) -> None:
        self.control = control
        self.sessions = sessions
        self._grpc = control.server()

    async def serve_control(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        """One /grpc connection: HTTP/2 server, Control's methods, until the client hangs up."""
        await self._grpc.serve(reader, writer)

    async def serve_session(self, reader: asyncio.StreamReader, writer: Writer, headers: Headers) -> None:
        await self.sessions.serve(reader, writer, headers)
