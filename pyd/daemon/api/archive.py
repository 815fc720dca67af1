"""/containers/{id}/archive (docker cp: GET, PUT, HEAD), /containers/{id}/export and /containers/{id}/changes
(docker diff)."""
from __future__ import annotations

import asyncio
import types
import os
from typing import TYPE_CHECKING

from pyd.daemon.api.util import LazyModule, spool_body
from pyd.daemon.errors import BadParameter
from pyd.http.server import Response

if TYPE_CHECKING:
    from pyd.daemon.containers.service import ContainerService
    from pyd.daemon.events import EventBus
    from pyd.daemon.storage.graph import Graph
    from pyd.http.server import Router

STAT_HEADER = "X-Docker-Container-Path-Stat"

copy: types.ModuleType = LazyModule("pyd.daemon.containers.copy")   # imported by the first docker cp, not by an idle daemon


def register(router: Router, svc: ContainerService, graph: Graph, events: EventBus, tmp_dir: str) -> None:
    """tmp_dir: where uploads are spooled."""

    async def mounted(c) -> str:
        """The container's root file system, mounted (or its mount referenced) for the copy."""
        return await asyncio.to_thread(graph.mount_rw, c.ID)

    async def release(c) -> None:
        try:
            await asyncio.to_thread(graph.unmount_rw, c.ID)
        except OSError:
            pass

    def path_arg(req) -> str:
        path = req.arg("path")
        if not path:
            raise BadParameter("bad parameter: path cannot be empty")
        return path

    async def stat_of(c, rootfs: str, path: str, name: str, live: int | None):
        try:
            return await asyncio.to_thread(copy.stat_path, c, rootfs, path, live)
        except copy.PathNotFound:
            raise copy.not_found(path, name) from None

    async def get_archive(req, id: str) -> Response | None:
        c = svc.get(id)
        path = path_arg(req)
        rootfs = await mounted(c)
        live = copy.live_root(c, rootfs)     # running: through its mount namespace (tmpfs, nested mounts)
        try:
            info, fd, name = await stat_of(c, rootfs, path, id, live)
            if req.method == "HEAD":
                os.close(fd)
                return Response(200, b"", headers={STAT_HEADER: copy.stat_header(info)})
            chunks = copy.archive_stream(fd, name)
            out = await req.stream(200, "application/x-tar", headers={STAT_HEADER: copy.stat_header(info)})
            await _pump(chunks, out)
            return None
        finally:
            if live is not None:
                os.close(live)
            await release(c)

    async def put_archive(req, id: str) -> None:
        c = svc.get(id)
        path = path_arg(req)
        no_overwrite = req.arg_bool("noOverwriteDirNonDir")
        copy_uid_gid = req.arg_bool("copyUIDGID")
        upload = await spool_body(req, tmp_dir)
        rootfs = await mounted(c)
        live = copy.live_root(c, rootfs)
        try:
            from pyd.daemon.storage.archive import decompressed
            with open(upload, "rb") as f:
                try:
                    await asyncio.to_thread(copy.put_archive, c, rootfs, path, decompressed(f), no_overwrite,
                                            copy_uid_gid, live)
                except copy.PathNotFound:
                    raise copy.not_found(path, id) from None
        finally:
            if live is not None:
                os.close(live)
            os.unlink(upload)
            await release(c)

    async def export(req, id: str) -> None:
        c = svc.get(id)
        rootfs = await mounted(c)
        try:
            out = await req.stream(200, "application/x-tar")
            await _pump(copy.export_stream(rootfs), out)
        finally:
            await release(c)
        events.publish("container", "export", c.ID, {"name": c.Name.lstrip("/"), "image": c.Config.get("Image", "")})

    async def changes(req, id: str) -> list:
        c = svc.get(id)
        found = await asyncio.to_thread(graph.changes, c.ID)
        return found or Response(200, b"null", content_type="application/json")    # Docker's nil slice

    router.add("GET", "/containers/{id}/changes", changes)
    router.add("GET", "/containers/{id}/archive", get_archive)
    router.add("HEAD", "/containers/{id}/archive", get_archive)
    router.add("PUT", "/containers/{id}/archive", put_archive)
    router.add("GET", "/containers/{id}/export", export)


async def _pump(chunks, out) -> None:
    """Send a synchronous tar generator from a worker thread; a client that leaves ends it."""
    try:
        while True:
            data = await asyncio.to_thread(next, chunks, None)
            if data is None:
                break
            await out.write(data)
        await out.close()
    except ConnectionError:
        pass
    finally:
        await asyncio.to_thread(chunks.close)
