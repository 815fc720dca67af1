"""Published ports through a userland proxy on the daemon's event loop: no process per port, no firewall.

For every published port the daemon listens on the host side (in its own network namespace) and relays
to the container's address: TCP connections as byte pipes, UDP datagrams per client flow. Random host
ports come from the kernel's ephemeral range (bind to port 0), as Docker's do.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from typing import Any

from pyd.daemon.errors import BadParameter

log = logging.getLogger("pyd")

CONNECT_TIMEOUT = 5.0
UDP_IDLE = 60.0
MAX_UDP_FLOWS = 1024
PIPE_CHUNK = 64 * 1024

Binding = tuple[int, str, str, int]      # container port, proto, host ip, host port (0: random)


def _split_key(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    proto = proto or "tcp"
    if not port.isdigit() or not 0 < int(port) < 65536 or proto not in ("tcp", "udp", "sctp"):
        raise BadParameter(f"invalid port specification: \"{key}\"")
    return int(port), proto


def check_bindings(bindings: dict[str, Any]) -> None:
    for key, binds in bindings.items():
        _split_key(key)
        for b in binds or []:
            hp = str((b or {}).get("HostPort") or "")
            if hp and (not hp.isdigit() or not 0 <= int(hp) < 65536):
                raise BadParameter(f"invalid port specification: \"{hp}\"")
            ip = (b or {}).get("HostIp") or ""
            if ip:
                try:
                    socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip.strip("[]"))
                except OSError:
                    raise BadParameter(f"invalid IP address: {ip}") from None


def wanted_bindings(bindings: dict[str, Any], exposed: dict[str, Any], publish_all: bool) -> dict[str, list[Binding]]:
    """Port key -> bindings to make (-p entries, then -P for the exposed ports without one)."""
    out: dict[str, list[Binding]] = {}
    for key, binds in bindings.items():
        port, proto = _split_key(key)
        key = f"{port}/{proto}"
        out[key] = [(port, proto, (b or {}).get("HostIp") or "0.0.0.0", int((b or {}).get("HostPort") or 0))
                    for b in binds or [{}]]
    for key in exposed or {}:
        port, proto = _split_key(key)
        key = f"{port}/{proto}"
        if key not in out:
            out[key] = [(port, proto, "0.0.0.0", 0)] if publish_all else []
    return out


class _UdpFront(asyncio.DatagramProtocol):
    """The host-side UDP socket: one back-end socket per client address."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.transport: asyncio.DatagramTransport | None = None
        self.flows: dict[Any, tuple[Any, float]] = {}

    def connection_made(self, transport: Any) -> None:   # uvloop's transports are not asyncio's classes
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        flow = self.flows.get(addr)
        if flow is not None:
            flow[0].sendto(data)
            self.flows[addr] = (flow[0], time.monotonic())
            return
        asyncio.ensure_future(self._open(data, addr))

    async def _open(self, data: bytes, addr: Any) -> None:
        self._expire()
        loop = asyncio.get_running_loop()
        front = self

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, reply: bytes, _addr: Any) -> None:
                if front.transport and not front.transport.is_closing():
                    front.transport.sendto(reply, addr)

        try:
            back, _ = await loop.create_datagram_endpoint(Back, remote_addr=self.target)
        except OSError as e:
            log.debug("udp proxy to %s: %s", self.target, e)
            return
        self.flows[addr] = (back, time.monotonic())
        back.sendto(data)

    def _expire(self) -> None:
        now = time.monotonic()
        for addr, (back, seen) in list(self.flows.items()):
            if now - seen > UDP_IDLE or len(self.flows) > MAX_UDP_FLOWS:
                back.close()
                del self.flows[addr]

    def close(self) -> None:
        for back, _ in self.flows.values():
            back.close()
        self.flows.clear()
        if self.transport:
            self.transport.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(PIPE_CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


class PortProxy:
    def __init__(self) -> None:
        self.by_container: dict[str, list[Any]] = {}
        self.allocated: dict[str, list[tuple[str, str, int]]] = {}   # container -> (proto, host IP, port)
        self.conns: set[asyncio.Task] = set()

    def _taken(self, proto: str, host_ip: str, port: int) -> bool:
        """Whether a container holds the port already: dockerd's port allocator refuses it, in its words."""
        return port != 0 and any(p == proto and n == port and ("0.0.0.0" in (h, host_ip) or h == host_ip)
                                 for held in self.allocated.values() for p, h, n in held)

    async def publish(self, cid: str, ip: str, wanted: dict[str, list[Binding]]) -> dict[str, Any]:
        """Listen for every binding; returns NetworkSettings.Ports. All or nothing."""
        loop = asyncio.get_running_loop()
        handles: list[Any] = []
        ports: dict[str, Any] = {}
        taken: list[tuple[str, str, int]] = []
        try:
            for key, binds in wanted.items():
                if not binds:
                    ports[key] = None
                    continue
                ports[key] = []
                for cport, proto, host_ip, host_port in binds:
                    if self._taken(proto, host_ip, host_port):
                        raise OSError(errno.EADDRINUSE, f"Bind for {host_ip}:{host_port} failed: port is already "
                                                        "allocated")
                    if proto == "udp":
                        transport, _ = await loop.create_datagram_endpoint(
                            lambda t=(ip, cport): _UdpFront(t), local_addr=(host_ip, host_port))
                        handles.append(transport)
                        bound = transport.get_extra_info("sockname")[1]
                    elif proto == "tcp":
                        server = await asyncio.start_server(self._tcp_handler(ip, cport), host_ip, host_port,
                                                            reuse_address=True)
                        handles.append(server)
                        bound = server.sockets[0].getsockname()[1]
                    else:
                        raise OSError(0, f"protocol {proto} is not supported by the userland proxy")
                    ports[key].append({"HostIp": host_ip, "HostPort": str(bound)})
                    taken.append((proto, host_ip, bound))
        except OSError as e:
            for h in handles:
                h.close()
            if e.errno == errno.EADDRINUSE and "allocated" not in str(e.strerror):   # not a container's: another program's
                raise OSError(e.errno, f"Error starting userland proxy: listen {proto}4 {host_ip}:{host_port}: bind: "
                                       "address already in use") from None
            raise
        self.by_container.setdefault(cid, []).extend(handles)
        self.allocated.setdefault(cid, []).extend(taken)
        return ports

    def _tcp_handler(self, ip: str, port: int):
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task:
                self.conns.add(task)
            try:
                r2, w2 = await asyncio.wait_for(asyncio.open_connection(ip, port), CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError):
                writer.close()
                if task:
                    self.conns.discard(task)
                return
            try:
                await asyncio.gather(_pipe(reader, w2), _pipe(r2, writer))
            finally:
                writer.close()
                w2.close()
                if task:
                    self.conns.discard(task)
        return handle

    def unpublish(self, cid: str) -> None:
        for h in self.by_container.pop(cid, []):
            h.close()
        self.allocated.pop(cid, None)

    def close(self) -> None:
        for cid in list(self.by_container):
            self.unpublish(cid)
