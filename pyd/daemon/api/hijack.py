"""Docker's answer to attach and exec start: the connection becomes the container's stream."""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio

    from pyd.http.server import HijackWriter, Request


async def hijack(req: Request, content_type: str) -> tuple[asyncio.StreamReader, HijackWriter]:
    """"101 UPGRADED" with Upgrade: tcp when the client asked for an upgrade (Docker looks at nothing but the
    Upgrade header), else "200 OK" with the stream as the body until the connection closes. The stream
    starts once the client has read the head: docker-py would lose output that came with it."""
    reader, writer = await req.hijack(content_type, protocol="tcp", reason="UPGRADED")
    await writer.wait_peer_read()
    return reader, writer
