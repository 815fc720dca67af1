"""/containers/...: create, list, inspect, start, stop, kill, wait, attach, logs, remove."""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from pyd.daemon.containers import initlayer, mounts
from pyd.daemon.api.container_filters import filter_containers, parse_filters
from pyd.daemon.api.util import filters_arg, parse_time_arg
from pyd.daemon.containers.attach import AttachOptions, Attachments
from pyd.daemon.containers.logstream import LogOptions, LogStream
from pyd.daemon.containers.model import Container
from pyd.daemon.network import links
from pyd.formats import rfc3339
from pyd.formats.rfc3339 import ZERO_TIME
from pyd.daemon.errors import BadParameter, NotFound, ServerError
from pyd.daemon.storage.trees import tree_size
from pyd.http.server import Response
from pyd.daemon.api.hijack import hijack
from pyd.daemon.api import compat
from pyd.daemon.api.version import api_at_least, api_version

if TYPE_CHECKING:
    from pyd.daemon.containers.service import ContainerService
    from pyd.daemon.network.controller import NetworkController
    from pyd.daemon.storage.graph import Graph
    from pyd.http.server import Request, Router

log = logging.getLogger("pyd")

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def stream_type(req: Request, c: Container) -> str:
    """The Content-Type of attach and logs: a non-TTY container's streams are multiplexed at every API
    version, but only 1.42 and later say so (before, every stream was labelled raw)."""
    if c.tty:
        return RAW
    return MULTIPLEXED if api_at_least(req, "1.42") else RAW


def stop_signal(req: Request) -> str | None:
    """stop and restart take `signal` since 1.42 (the container's StopSignal before)."""
    return req.arg("signal") if api_at_least(req, "1.42") else None


def register(router: Router, svc: ContainerService, networks: NetworkController, graph: Graph) -> None:
    attachments = Attachments(svc)

    async def create(req) -> Response:
        body = await req.json()
        if isinstance(body, dict):
            body = compat.create_body(api_version(req), body)
        result = await svc.create(req.arg("name"), body, req.arg("platform") or "")
        return Response(201, result)

    async def list_(req) -> list:
        filters = filters_arg(req)
        flt = parse_filters(filters, svc)
        limit = req.arg_int("limit", -1) or -1
        show_all = req.arg_bool("all") or limit > 0          # dockerd: a limit (ps -n, -l) lists stopped ones too
        items = sorted(svc.all(), key=lambda c: c.Created, reverse=True)
        items = [c for c in items if (show_all or c.State.Running or filters.get("status") or filters.get("exited"))]
        items = filter_containers(items, flt, graph, lambda c: _network_settings(c)["Networks"], networks.ports_of)
        if limit > 0:
            items = items[:limit]
        entries = [list_entry(c, networks) for c in items]
        link_names = links.names_by_child(svc.all(), svc.store)   # a linked container is also /PARENT/ALIAS
        for entry in entries:
            entry["Names"] += link_names.get(entry["Id"], [])
        if req.arg_bool("size"):
            sizes = await asyncio.to_thread(lambda: [container_sizes(graph, c.ID, c.Image) for c in items])
            for entry, size in zip(entries, sizes):
                entry.update(size)
        return entries

    async def inspect(req, id: str) -> dict:
        c = svc.get(id)
        entry = inspect_entry(c, svc, graph)
        if req.arg_bool("size"):         # inspect -s
            entry.update(await asyncio.to_thread(container_sizes, graph, c.ID, c.Image))
        return entry

    async def start(req, id: str) -> None:
        await svc.start(id)

    async def stop(req, id: str) -> None:
        t = req.arg_int("t", None)
        await svc.stop(id, t, stop_signal(req))

    async def restart(req, id: str) -> None:
        c = svc.get(id)
        if c.State.Running:
            await svc.stop(id, req.arg_int("t", None), stop_signal(req))
        await svc.start(id)
        svc.publish_event(c, "restart")      # dockerd's last event of a restart

    async def update(req, id: str) -> dict:
        body = await req.json()
        if isinstance(body, dict):
            body = compat.update_body(api_version(req), body)
        return await svc.update(id, body)

    async def kill(req, id: str) -> None:
        await svc.kill(id, req.arg("signal") or "KILL")

    async def wait(req, id: str) -> None:
        # before 1.30 wait had no conditions
        condition = (req.arg("condition") if api_at_least(req, "1.30") else None) or "not-running"
        c = svc.get(id)  # 404 before the headers go out
        if condition not in ("not-running", "next-exit", "removed"):
            raise BadParameter(f"invalid condition: {condition!r}")
        result = asyncio.ensure_future(svc.wait(id, condition))
        try:
            out = await req.stream(200, "application/json")  # flushed now: docker run waits for it
            if c.State.Status == "created" and req.can_hand_over:
                attachments.share_wait(c, req.share())
            await out.write_json(await result)
            await out.close()
        except ConnectionError:
            pass
        finally:
            result.cancel()

    async def remove(req, id: str) -> None:
        if req.arg_bool("link"):
            svc.get(id)
            raise ServerError("Conflict, cannot remove the default link name of the container")
        await svc.remove(id, force=req.arg_bool("force"), volumes=req.arg_bool("v"))

    async def remove_link(req, id: str, alias: str) -> None:
        """DELETE /containers/PARENT/ALIAS: ?link=1 drops the legacy link, else removes the linked container."""
        if req.arg_bool("link"):
            await svc.remove_link(id, alias)
        else:
            await svc.remove(svc.linked(id, alias).ID, force=req.arg_bool("force"), volumes=req.arg_bool("v"))

    async def attach(req, id: str) -> None:
        await attach_stream(req, attachments, svc.get(id))

    async def logs(req, id: str) -> None:
        await log_stream(req, svc, svc.get(id))

    async def attach_ws(req, id: str) -> None:
        await attach_websocket(req, attachments, svc.get(id))

    router.add("POST", "/containers/create", create)
    router.add("GET", "/containers/json", list_)
    router.add("GET", "/containers/{id}/json", inspect)
    router.add("POST", "/containers/{id}/start", start)
    router.add("POST", "/containers/{id}/stop", stop)
    router.add("POST", "/containers/{id}/restart", restart)
    router.add("POST", "/containers/{id}/kill", kill)
    router.add("POST", "/containers/{id}/update", update)
    router.add("POST", "/containers/{id}/wait", wait)
    router.add("POST", "/containers/{id}/attach", attach)
    router.add("GET", "/containers/{id}/attach/ws", attach_ws)
    from pyd.daemon.api.exec import resize_container
    router.add("POST", "/containers/{id}/resize", lambda req, id: resize_container(req, svc.store, id))
    router.add("GET", "/containers/{id}/logs", logs)
    router.add("DELETE", "/containers/{id}", remove)
    router.add("DELETE", "/containers/{id}/{alias}", remove_link)

    async def rename(req, id: str) -> None:
        await svc.rename(id, req.arg("name") or "")

    async def prune(req) -> dict:
        return await svc.prune(filters_arg(req))

    router.add("POST", "/containers/{id}/rename", rename)
    router.add("POST", "/containers/prune", prune)


# ---------------------------------------------------------------- attach and logs

async def attach_stream(req: Request, attachments: Attachments, c: Container) -> None:
    opts = AttachOptions(stdin=req.arg_bool("stdin"), stdout=req.arg_bool("stdout"), stderr=req.arg_bool("stderr"),
                         stream=req.arg_bool("stream"), logs=req.arg_bool("logs"), raw=c.tty,
                         detach_keys=req.arg("detachKeys"))
    if not (opts.stream or opts.logs):
        raise BadParameter("Bad parameters: you must choose at least one stream")
    if attachments.can_hand_over(c, opts) and req.can_hand_over:
        await hijack(req, stream_type(req, c))
        try:
            fd = await req.hand_over()
        except ConnectionError:
            return
        attachments.hand_over(c, fd, opts)
        return
    session = attachments.open(c, opts)
    try:
        reader, writer = await hijack(req, stream_type(req, c))
        await session.run(reader, writer)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        session.close()


async def attach_websocket(req: Request, attachments: Attachments, c: Container) -> None:
    """GET /containers/{id}/attach/ws: the container's streams over a WebSocket, never multiplexed (each
    piece of output one frame: binary since 1.28, text before). stdin, stdout and stderr pick the streams
    since 1.42; before, all three are attached."""
    from pyd.http import websocket
    key = req.headers.get("sec-websocket-key")
    if not key or (req.headers.get("upgrade") or "").lower() != "websocket":
        raise BadParameter("websocket: the client is not using the websocket protocol")
    picked = api_at_least(req, "1.42")
    opts = AttachOptions(stdin=req.arg_bool("stdin") if picked else True,
                         stdout=req.arg_bool("stdout") if picked else True,
                         stderr=req.arg_bool("stderr") if picked else True,
                         stream=req.arg_bool("stream"), logs=req.arg_bool("logs"), raw=True,
                         detach_keys=req.arg("detachKeys"))
    session = attachments.open(c, opts)
    try:
        reader, writer = await req.hijack(None, protocol="websocket",
                                          headers=[("Sec-WebSocket-Accept", websocket.accept_key(key))])
        await writer.wait_peer_read()
        out = websocket.WebSocketWriter(writer, websocket.BINARY if api_at_least(req, "1.28") else websocket.TEXT)
        await session.run(websocket.WebSocketReader(reader, out), out)
        out.close()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        session.close()


async def log_stream(req: Request, svc: ContainerService, c: Container) -> None:
    stdout, stderr = req.arg_bool("stdout"), req.arg_bool("stderr")
    if not (stdout or stderr):
        raise BadParameter("Bad parameters: you must choose at least one stream")
    follow, timestamps = req.arg_bool("follow"), req.arg_bool("timestamps")
    since = parse_time_arg(req.arg("since"), "since")
    until = parse_time_arg(req.arg("until"), "until")
    tail = req.arg("tail") or "all"
    if not tail.isdigit():
        tail = "all"        # dockerd: a tail that is not a number >= 0 means every line
    opts = LogOptions(stdout=stdout, stderr=stderr, follow=follow, timestamps=timestamps, since=since, until=until,
                      tail=tail, details=req.arg_bool("details"), raw=c.tty)
    stream = LogStream(svc, c, opts)
    try:
        out = await req.stream(200, stream_type(req, c))
        await stream.pump(out.write)
        await out.close()
    except ConnectionError:
        pass
    finally:
        stream.close()


# ---------------------------------------------------------------- shapes of list and inspect

def _network_settings(c: Container) -> dict[str, Any]:
    mode = c.HostConfig.get("NetworkMode", "none")
    endpoint = {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "NetworkID": "",
                "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DriverOpts": None, "DNSNames": None}
    if c.NetworkSettings.get("Networks") is not None:      # recorded by network.configure_container
        return {"Networks": c.NetworkSettings["Networks"]}
    return {"Networks": {mode: endpoint}}


def list_entry(c: Container, networks: NetworkController) -> dict[str, Any]:
    return {
        "Id": c.ID, "Names": [c.Name], "Image": c.Config.get("Image") or c.Image, "ImageID": c.Image,
        "Command": c.command_line(), "Created": int(rfc3339.parse(c.Created)),
        "Ports": networks.ports_of(c),
        "Labels": c.Config.get("Labels") or {}, "State": c.State.Status, "Status": c.status_text(),
        "HostConfig": {"NetworkMode": c.HostConfig.get("NetworkMode", "default")},
        "NetworkSettings": _network_settings(c), "Mounts": mounts.inspect_mounts(c),
    }


def container_sizes(graph: Graph, container_id: str, image_id: str) -> dict[str, int]:
    """SizeRw (the container's own files) and SizeRootFs (those and its image's), as `ps -s` shows them."""
    try:
        top = graph.rw_dir(container_id)
        rw = tree_size(top) - initlayer.entries_size(top)     # dockerd's init layer is not the container's
    except (NotFound, OSError):      # no layer (yet): nothing of its own
        rw = 0
    image = graph.find_image(image_id) if image_id else None
    return {"SizeRw": rw, "SizeRootFs": rw + (image.size if image else 0)}


def inspect_entry(c: Container, svc: ContainerService, graph: Graph) -> dict[str, Any]:
    graph_data: dict[str, str] | None = {}
    try:
        graph_data = graph.rw_metadata(c.ID)
    except Exception:  # the driver data is informative only
        graph_data = {}
    settings = {"Bridge": "", "SandboxID": "", "SandboxKey": "", "Ports": {}, "HairpinMode": False,
                "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": None,
                "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
                **_network_settings(c), **c.NetworkSettings}
    ran = c.State.StartedAt != ZERO_TIME       # dockerd names the /etc files from the first start on
    return {
        "Id": c.ID, "Created": c.Created, "Path": c.Path, "Args": c.Args, "State": c.State.to_json(),
        "Image": c.Image, "ResolvConfPath": c.path("resolv.conf") if ran else "",
        "HostnamePath": c.path("hostname") if ran else "", "HostsPath": c.path("hosts") if ran else "",
        "LogPath": c.log_path, "Name": c.Name, "RestartCount": c.RestartCount,
        "Driver": c.Driver, "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
        "ExecIDs": svc.execs.ids_for(c), "HostConfig": c.HostConfig,
        "GraphDriver": {"Name": c.Driver, "Data": graph_data}, "Mounts": mounts.inspect_mounts(c), "Config": c.Config,
        "NetworkSettings": settings,
    }
