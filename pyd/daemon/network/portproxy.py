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
        out[key] = [(port, proto, ((b or {}).get("HostIp") or "").strip("[]"), int((b or {}).get("HostPort") or 0))
                    for b in binds or [{}]]
    for key in exposed or {}:
        port, proto = _split_key(key)
        key = f"{port}/{proto}"
        if key not in out:
            out[key] = [(port, proto, "", 0)] if publish_all else []
    return out


WILDCARDS = ("0.0.0.0", "::")


def _socket(proto: str, host_ip: str, port: int) -> socket.socket:
    """A bound socket (listening for TCP); IPv6 ones are IPv6 only, beside their IPv4 twin."""
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host_ip, port))
        if proto == "tcp":
            sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _no_ipv6(e: OSError) -> bool:
    """The host (or its namespace) has no IPv6: dockerd then publishes on IPv4 only."""
    return e.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT)


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


class _Retry(Exception):
    """The random port of a wildcard binding is taken on the other family: pick another."""


class PortProxy:
    def __init__(self) -> None:
        self.by_container: dict[str, list[Any]] = {}
        self.allocated: dict[str, list[tuple[str, str, int]]] = {}   # container -> (proto, host IP, port)
        self.conns: set[asyncio.Task] = set()

    def _taken(self, proto: str, host_ip: str, port: int) -> bool:
        """Whether a container holds the port already: dockerd's port allocator refuses it, in its words."""
        def clash(held_ip: str) -> bool:   # dockerd's allocator: only 0.0.0.0 covers other addresses
            return held_ip == host_ip or ("0.0.0.0" in (held_ip, host_ip) and ":" not in held_ip + host_ip)
        return port != 0 and any(p == proto and n == port and clash(h)
                                 for held in self.allocated.values() for p, h, n in held)

    async def publish(self, cid: str, ip: str, wanted: dict[str, list[Binding]]) -> dict[str, Any]:
        """Listen for every binding; returns NetworkSettings.Ports. All or nothing. A binding without a host
        address listens on 0.0.0.0 and [::] (the same port), as dockerd's does."""
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
                    for bound_ip, bound in await self._listen(ip, cport, proto, host_ip, host_port, handles):
                        ports[key].append({"HostIp": bound_ip, "HostPort": str(bound)})
                        taken.append((proto, bound_ip, bound))
        except OSError:
            for h in handles:
                h.close()
            raise
        self.by_container.setdefault(cid, []).extend(handles)
        self.allocated.setdefault(cid, []).extend(taken)
        return ports

    async def _listen(self, ip: str, cport: int, proto: str, host_ip: str, host_port: int,
                      handles: list[Any]) -> list[tuple[str, int]]:
        """The (host IP, port) pairs bound for one binding; their handles appended to `handles`."""
        if proto not in ("tcp", "udp"):
            raise OSError(0, f"protocol {proto} is not supported by the userland proxy")
        addrs = [host_ip] if host_ip else list(WILDCARDS)
        for attempt in range(8):   # a random IPv4 port may be taken on IPv6: another one for both
            socks: list[socket.socket] = []
            port = host_port
            try:
                for addr in addrs:
                    if self._taken(proto, addr, port):
                        raise OSError(errno.EADDRINUSE, f"Bind for {addr}:{port} failed: port is already allocated")
                    try:
                        socks.append(_socket(proto, addr, port))
                    except OSError as e:
                        if not host_ip and ":" in addr and _no_ipv6(e):
                            continue
                        if e.errno == errno.EADDRINUSE and not host_port and socks and attempt < 7:
                            raise _Retry() from None
                        if e.errno == errno.EADDRINUSE:
                            shown = f"[{addr}]" if ":" in addr else addr
                            raise OSError(e.errno, f"Error starting userland proxy: listen {proto}"
                                                   f"{'6' if ':' in addr else '4'} {shown}:{port}: bind: "
                                                   "address already in use") from None
                        raise
                    port = socks[-1].getsockname()[1]
            except _Retry:
                for sock in socks:
                    sock.close()
                continue
            except BaseException:
                for sock in socks:
                    sock.close()
                raise
            out = []
            for sock in socks:
                handles.append(await self._serve(sock, proto, (ip, cport)))
                out.append((addrs[0] if len(addrs) == 1 else ("::" if sock.family == socket.AF_INET6 else "0.0.0.0"),
                            sock.getsockname()[1]))
            return out
        raise OSError(errno.EADDRINUSE, "no free port for both IPv4 and IPv6")

    async def _serve(self, sock: socket.socket, proto: str, target: tuple[str, int]) -> Any:
        loop = asyncio.get_running_loop()
        if proto == "udp":
            transport, _ = await loop.create_datagram_endpoint(lambda: _UdpFront(target), sock=sock)
            return transport
        return await asyncio.start_server(self._tcp_handler(*target), sock=sock)

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
