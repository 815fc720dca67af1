"""/containers/...: create, list, inspect, start, stop, kill, wait, attach, logs, remove."""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from pyd.daemon.containers import mounts
from pyd.daemon.api.util import check_filter_keys, filters_arg, parse_time_arg
from pyd.daemon.containers.attach import AttachOptions, Attachments
from pyd.daemon.containers.logstream import LogOptions, LogStream
from pyd.daemon.containers.model import Container
from pyd.formats import rfc3339
from pyd.daemon.errors import BadParameter
from pyd.http.server import Response
from pyd.daemon.api.hijack import hijack
from pyd.daemon.api.version import api_version

if TYPE_CHECKING:
    from pyd.daemon.containers.service import ContainerService
    from pyd.daemon.network.controller import NetworkController
    from pyd.daemon.storage.graph import Graph
    from pyd.http.server import Request, Router

log = logging.getLogger("pyd")

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"
LIST_FILTERS = {"id", "name", "label", "status", "exited", "ancestor", "before", "since", "network",
                "health", "is-task", "volume", "expose", "publish"}


def stream_type(req: Request, c: Container) -> str:
    """The Content-Type dockerd names the stream with: before API 1.42 always raw-stream, though without a
    tty the bytes are stdcopy frames all the same (docker 20.10's CLI reads them so)."""
    if c.tty:
        return RAW
    return MULTIPLEXED if _api_at_least(api_version(req), "1.42") else RAW


def _api_at_least(version: str, minimum: str) -> bool:
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split(".") if p.isdigit())
    return key(version) >= key(minimum)


def register(router: Router, svc: ContainerService, networks: NetworkController, graph: Graph) -> None:
    attachments = Attachments(svc)

    async def create(req) -> Response:
        body = await req.json()
        result = await svc.create(req.arg("name"), body, req.arg("platform") or "")
        return Response(201, result)

    async def list_(req) -> list:
        filters = filters_arg(req)
        check_filter_keys(filters, LIST_FILTERS)
        show_all = req.arg_bool("all")
        limit = req.arg_int("limit", -1) or -1
        items = sorted(svc.all(), key=lambda c: c.Created, reverse=True)
        items = [c for c in items if (show_all or c.State.Running or filters.get("status") or filters.get("exited"))]
        items = filter_containers(items, filters, svc, graph)
        if limit > 0:
            items = items[:limit]
        return [list_entry(c, networks) for c in items]

    async def inspect(req, id: str) -> dict:
        return inspect_entry(svc.get(id), svc, graph)

    async def start(req, id: str) -> None:
        await svc.start(id)

    async def stop(req, id: str) -> None:
        t = req.arg_int("t", None)
        await svc.stop(id, t, req.arg("signal"))

    async def restart(req, id: str) -> None:
        c = svc.get(id)
        if c.State.Running:
            await svc.stop(id, req.arg_int("t", None), req.arg("signal"))
        await svc.start(id)
        svc.publish_event(c, "restart")      # dockerd's last event of a restart

    async def update(req, id: str) -> dict:
        return await svc.update(id, await req.json())

    async def kill(req, id: str) -> None:
        await svc.kill(id, req.arg("signal") or "KILL")

    async def wait(req, id: str) -> None:
        condition = req.arg("condition") or "not-running"
        svc.get(id)  # 404 before the headers go out
        if condition not in ("not-running", "next-exit", "removed"):
            raise BadParameter(f"invalid condition: {condition!r}")
        result = asyncio.ensure_future(svc.wait(id, condition))
        try:
            out = await req.stream(200, "application/json")  # flushed now: docker run waits for it
            await out.write_json(await result)
            await out.close()
        except ConnectionError:
            pass
        finally:
            result.cancel()

    async def remove(req, id: str) -> None:
        await svc.remove(id, force=req.arg_bool("force"), volumes=req.arg_bool("v"))

    async def attach(req, id: str) -> None:
        await attach_stream(req, attachments, svc.get(id))

    async def logs(req, id: str) -> None:
        await log_stream(req, svc, svc.get(id))

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
    from pyd.daemon.api.exec import resize_container
    router.add("POST", "/containers/{id}/resize", lambda req, id: resize_container(req, svc.store, id))
    router.add("GET", "/containers/{id}/logs", logs)
    router.add("DELETE", "/containers/{id}", remove)

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


async def log_stream(req: Request, svc: ContainerService, c: Container) -> None:
    stdout, stderr = req.arg_bool("stdout"), req.arg_bool("stderr")
    if not (stdout or stderr):
        raise BadParameter("Bad parameters: you must choose at least one stream")
    follow, timestamps = req.arg_bool("follow"), req.arg_bool("timestamps")
    since = parse_time_arg(req.arg("since"), "since")
    until = parse_time_arg(req.arg("until"), "until")
    tail = req.arg("tail") or "all"
    if tail != "all" and not tail.lstrip("-").isdigit():
        raise BadParameter(f"invalid value for tail: {tail}")
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

def filter_containers(items: list[Container], filters: dict[str, list[str]], svc: ContainerService,
                      graph: Graph) -> list[Container]:
    def ok(c: Container) -> bool:
        for key, values in filters.items():
            if not values:
                continue
            if key == "id" and not any(c.ID.startswith(v) for v in values):
                return False
            if key == "name" and not any(v.lstrip("/") in c.Name.lstrip("/") for v in values):
                return False
            if key == "status" and c.State.Status not in values:
                return False
            if key == "exited" and (c.State.Running or c.State.Status == "created"
                                    or str(c.State.ExitCode) not in values):
                return False
            if key == "label":
                labels = c.Config.get("Labels") or {}
                for v in values:
                    k, eq, val = v.partition("=")
                    if k not in labels or (eq and labels[k] != val):
                        return False
            if key == "ancestor" and not any(_is_ancestor(c, v, graph) for v in values):
                return False
            if key in ("before", "since"):
                ref = svc.get(values[0])
                if key == "before" and not c.Created < ref.Created:
                    return False
                if key == "since" and not c.Created > ref.Created:
                    return False
        return True
    return [c for c in items if ok(c)]


def _is_ancestor(c: Container, ref: str, graph: Graph) -> bool:
    try:
        return graph.resolve_image(ref).id == c.Image
    except Exception:
        return c.Config.get("Image") == ref


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
    return {
        "Id": c.ID, "Created": c.Created, "Path": c.Path, "Args": c.Args, "State": c.State.to_json(),
        "Image": c.Image, "ResolvConfPath": c.path("resolv.conf"), "HostnamePath": c.path("hostname"),
        "HostsPath": c.path("hosts"), "LogPath": c.log_path, "Name": c.Name, "RestartCount": c.RestartCount,
        "Driver": c.Driver, "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
        "ExecIDs": svc.execs.ids_for(c), "HostConfig": c.HostConfig,
        "GraphDriver": {"Name": c.Driver, "Data": graph_data}, "Mounts": mounts.inspect_mounts(c), "Config": c.Config,
        "NetworkSettings": settings,
    }
