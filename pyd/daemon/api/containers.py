"""/containers/...: create, list, inspect, start, stop, kill, wait, attach, logs, remove."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from pyd.daemon.containers import mounts
from pyd.daemon.api.util import check_filter_keys, filters_arg, parse_time_arg
from pyd.daemon.containers.model import Container, parse_rfc3339
from pyd.daemon.errors import BadParameter
from pyd.daemon.runtime.execdriver import ATTACH_RAW, ATTACH_STDERR, ATTACH_STDOUT
from pyd.daemon.containers.logs import LogReader, detail_prefix, fixed_time, in_window
from pyd.daemon.api.hijack import hijack
from pyd.daemon.api.version import api_version
from pyd.formats.stdcopy import stdcopy_frame
from pyd.http.server import Response

if TYPE_CHECKING:
    from pyd.daemon.main import Daemon

log = logging.getLogger("pyd")

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"
LIST_FILTERS = {"id", "name", "label", "status", "exited", "ancestor", "before", "since", "network",
                "health", "is-task", "volume", "expose", "publish"}


def stream_type(req: Any, c: Container) -> str:
    if c.tty:
        return RAW
    return MULTIPLEXED if _api_at_least(api_version(req), "1.42") else RAW


def _api_at_least(version: str, minimum: str) -> bool:
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split(".") if p.isdigit())
    return key(version) >= key(minimum)


def register(router: Any, daemon: "Daemon") -> None:
    svc = daemon.containers

    async def create(req) -> Response:
        body = await req.json()
        result = await svc.create(req.arg("name"), body)
        return Response(201, result)

    async def list_(req) -> list:
        filters = filters_arg(req)
        check_filter_keys(filters, LIST_FILTERS)
        show_all = req.arg_bool("all")
        limit = req.arg_int("limit", -1) or -1
        items = sorted(svc.all(), key=lambda c: c.Created, reverse=True)
        items = [c for c in items if (show_all or c.State.Running or filters.get("status") or filters.get("exited"))]
        items = filter_containers(items, filters, daemon)
        if limit > 0:
            items = items[:limit]
        return [list_entry(c, daemon) for c in items]

    async def inspect(req, id: str) -> dict:
        return inspect_entry(svc.get(id), daemon)

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
        svc._event(c, "restart")      # dockerd's last event of a restart

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
        await attach_stream(req, svc, svc.get(id))

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
    router.add("POST", "/containers/{id}/resize", lambda req, id: resize_container(req, svc, id))
    router.add("GET", "/containers/{id}/logs", logs)
    router.add("DELETE", "/containers/{id}", remove)

    async def rename(req, id: str) -> None:
        await svc.rename(id, req.arg("name") or "")

    async def prune(req) -> dict:
        return await svc.prune(filters_arg(req))

    router.add("POST", "/containers/{id}/rename", rename)
    router.add("POST", "/containers/prune", prune)


# ---------------------------------------------------------------- attach and logs

async def attach_stream(req: Any, svc: Any, c: Container) -> None:
    want_stdin, want_stdout, want_stderr = (req.arg_bool(n) for n in ("stdin", "stdout", "stderr"))
    stream, with_logs = req.arg_bool("stream"), req.arg_bool("logs")
    if not (stream or with_logs):
        raise BadParameter("Bad parameters: you must choose at least one stream")
    wants = {1: want_stdout, 2: want_stderr}
    raw = stream_type(req, c) == RAW
    if (stream and not with_logs and c.State.Status == "created" and (want_stdout or want_stderr)
            and not (want_stdin and c.Config.get("OpenStdin")) and req.can_hand_over):
        # `docker run`'s attach: execd writes the output to this connection itself from the start on
        await hijack(req, stream_type(req, c))
        try:
            fd = await req.hand_over()
        except ConnectionError:
            return
        flags = ((ATTACH_STDOUT if want_stdout else 0) | (ATTACH_STDERR if want_stderr else 0)
                 | (ATTACH_RAW if raw else 0))
        svc.add_attach_sink(c, fd, flags)
        return
    queue: asyncio.Queue = asyncio.Queue()
    if stream:
        svc.subscribe(c, queue)  # before any await: no output may slip between here and the loop
    from pyd.daemon.containers.execs import DetachScanner, detach_keys_arg
    scanner = DetachScanner(detach_keys_arg(req.arg("detachKeys"))) if c.tty else None  # Docker: tty only
    pump = None
    try:
        reader, writer = await hijack(req, stream_type(req, c))
        if with_logs:
            for entry in LogReader(c.log_path).read_new():
                if wants.get(entry.stream):
                    writer.write(entry.data if raw else stdcopy_frame(entry.stream, entry.data))
            await writer.drain()
        if not stream or (not c.State.Running and c.State.Status != "created"):
            return
        if want_stdin and c.Config.get("OpenStdin"):
            pump = asyncio.ensure_future(_pump_stdin(reader, c, scanner, queue))
        ended = False
        while not ended:
            items = [await queue.get()]
            while not queue.empty():   # whatever piled up goes out in one write
                items.append(queue.get_nowait())
            out = []
            for item in items:
                if item is None:
                    ended = True
                    break
                if item is False:  # the detach keys: the session ends, the container goes on
                    svc._event(c, "detach")
                    ended = True
                    break
                stream_id, data = item
                if wants.get(stream_id):
                    out.append(data if raw else stdcopy_frame(stream_id, data))
            if out:
                writer.write(out[0] if len(out) == 1 else b"".join(out))
                await writer.drain()  # returns at once below the high-water mark: flow control only
        await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        svc.unsubscribe(c, queue)
        if pump:
            pump.cancel()


async def _pump_stdin(reader: Any, c: Container, scanner: Any = None, queue: Any = None) -> None:
    """Client stdin → container stdin; EOF closes the container's stdin when StdinOnce (docker run -i).
    With a tty the detach keys end the session: False goes into the output queue."""
    while True:
        data = await reader.read(1 << 16)
        if scanner is not None and data:
            data, detached = scanner.feed(data)
            if detached:
                if data and c.execd is not None:
                    c.execd.write_stdin(data)
                queue.put_nowait(False)
                return
            if not data:
                continue
        deadline = time.monotonic() + 30
        while c.execd is None and c.State.Status == "created" and time.monotonic() < deadline:
            await asyncio.sleep(0.005)  # attached before start: hold stdin until the process exists
        if c.execd is None:
            return
        if not data:
            if c.Config.get("StdinOnce"):
                c.execd.close_stdin()
            return
        c.execd.write_stdin(data)


async def log_stream(req: Any, svc: Any, c: Container) -> None:
    want = {1: req.arg_bool("stdout"), 2: req.arg_bool("stderr")}
    if not (want[1] or want[2]):
        raise BadParameter("Bad parameters: you must choose at least one stream")
    follow, timestamps = req.arg_bool("follow"), req.arg_bool("timestamps")
    since = parse_time_arg(req.arg("since"), "since")
    until = parse_time_arg(req.arg("until"), "until")
    tail = req.arg("tail") or "all"
    if tail != "all" and not tail.lstrip("-").isdigit():
        raise BadParameter(f"invalid value for tail: {tail}")
    if (c.HostConfig.get("LogConfig") or {}).get("Type") == "none":
        raise BadParameter('configured logging driver does not support reading')
    raw = stream_type(req, c) == RAW
    details = detail_prefix(c) if req.arg_bool("details") else b""
    reader = LogReader(c.log_path)
    if tail != "all":
        reader.skip_to_tail(max(int(tail), 0))
    if follow:
        svc.follow(c, True)
    try:
        out = await req.stream(200, stream_type(req, c))
        while True:
            wake = svc.wakeup_event(c) if follow else None
            batch = bytearray()
            for entry in reader.read_new():
                if not want.get(entry.stream) or not in_window(entry, since, until):
                    continue
                data = details + entry.data
                if timestamps:
                    data = fixed_time(entry.time) + b" " + data
                batch += data if raw else stdcopy_frame(entry.stream, data)
                if len(batch) >= 1 << 16:
                    await out.write(bytes(batch))
                    batch.clear()
            if batch:
                await out.write(bytes(batch))
            if not follow or not c.State.Running or (until and time.time() > until):
                break
            try:
                await asyncio.wait_for(wake.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
        await out.close()
    except ConnectionError:
        pass
    finally:
        if follow:
            svc.follow(c, False)


# ---------------------------------------------------------------- shapes of list and inspect

def filter_containers(items: list[Container], filters: dict[str, list[str]], daemon: "Daemon") -> list[Container]:
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
            if key == "ancestor" and not any(_is_ancestor(c, v, daemon) for v in values):
                return False
            if key in ("before", "since"):
                ref = daemon.containers.get(values[0])
                if key == "before" and not c.Created < ref.Created:
                    return False
                if key == "since" and not c.Created > ref.Created:
                    return False
        return True
    return [c for c in items if ok(c)]


def _is_ancestor(c: Container, ref: str, daemon: "Daemon") -> bool:
    try:
        return daemon.graph.resolve_image(ref).id == c.Image
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


def list_entry(c: Container, daemon: "Daemon") -> dict[str, Any]:
    return {
        "Id": c.ID, "Names": [c.Name], "Image": c.Config.get("Image") or c.Image, "ImageID": c.Image,
        "Command": c.command_line(), "Created": int(parse_rfc3339(c.Created)),
        "Ports": daemon.networks.ports_of(c) if daemon.networks else [],
        "Labels": c.Config.get("Labels") or {}, "State": c.State.Status, "Status": c.status_text(),
        "HostConfig": {"NetworkMode": c.HostConfig.get("NetworkMode", "default")},
        "NetworkSettings": _network_settings(c), "Mounts": mounts.inspect_mounts(c),
    }


def inspect_entry(c: Container, daemon: "Daemon") -> dict[str, Any]:
    graph_data = {}
    try:
        graph_data = daemon.graph.rw_metadata(c.ID) if hasattr(daemon.graph, "rw_metadata") else {}
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
        "ExecIDs": daemon.containers.execs.ids_for(c), "HostConfig": c.HostConfig,
        "GraphDriver": {"Name": c.Driver, "Data": graph_data}, "Mounts": mounts.inspect_mounts(c), "Config": c.Config,
        "NetworkSettings": settings,
    }
