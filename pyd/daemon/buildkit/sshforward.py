"""SSH agent forwarding from the client's session (`buildx build --ssh ID=SOCKET`), for RUN --mount=type=ssh.

The daemon listens on a unix socket of its own for the step (what the RUN sees at the mount's target);
each connection to it becomes one /moby.sshforward.v1.SSH/ForwardAgent call on the session (the key ID in
the `buildkit.ssh.id` metadata), bytes copied both ways in BytesMessages, as BuildKit's MountSSHSocket does.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Awaitable, Callable

from pyd.daemon.buildkit import messages as m
from pyd.daemon.buildkit.grpc import GrpcError

if TYPE_CHECKING:
    from pyd.daemon.build.runmounts import RunMount
    from pyd.daemon.buildkit.session import Session

log = logging.getLogger("pyd.buildkit")

CHECK_AGENT = "/moby.sshforward.v1.SSH/CheckAgent"
FORWARD_AGENT = "/moby.sshforward.v1.SSH/ForwardAgent"
KEY_SSH_ID = "buildkit.ssh.id"
CHUNK = 32 << 10


async def open_agent(session: Session, mount: RunMount, tmp: str) -> tuple[str, Callable[[], Awaitable[None]]] | None:
    """A socket on this host that reaches the client's agent `mount.id` (its path, and close()); None when
    the client forwards no such agent."""
    if not session.supports(FORWARD_AGENT) or not session.supports(CHECK_AGENT):
        return None
    try:
        await session.client.unary(CHECK_AGENT, m.CHECK_AGENT_REQUEST.encode({"ID": mount.id}))
    except GrpcError as exc:
        log.debug("ssh agent %s: %s", mount.id, exc.message)
        return None
    folder = await asyncio.to_thread(tempfile.mkdtemp, prefix="build-ssh-", dir=tmp)
    path = os.path.join(folder, "ssh_auth_sock")
    connections: set[asyncio.Task] = set()

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            await _forward(session, mount.id, reader, writer)
        except (GrpcError, OSError) as exc:
            log.debug("ssh agent %s: forwarding ended: %s", mount.id, exc)
        finally:
            connections.discard(task)
            writer.close()

    try:
        server = await asyncio.start_unix_server(accepted, path)
        os.chown(path, mount.uid or 0, mount.gid or 0)
        os.chmod(path, mount.mode if mount.mode is not None else 0o600)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise

    async def close() -> None:
        server.close()
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await asyncio.to_thread(shutil.rmtree, folder, True)
    return path, close


async def _forward(session: Session, key_id: str, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> None:
    call = await session.call(FORWARD_AGENT, [(KEY_SSH_ID, key_id)])

    async def up() -> None:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            await call.send(m.BYTES_MESSAGE.encode({"data": data}))
        await call.close()

    async def down() -> None:
        while True:
            raw = await call.recv()
            if raw is None:
                break
            writer.write(m.BYTES_MESSAGE.decode(raw)["data"])
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    sending = asyncio.ensure_future(up())
    try:
        await down()          # the agent's side ended (or failed): the connection ends
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, GrpcError, OSError):
            await sending
        call.cancel()
