"""The embedded DNS server of user-defined networks, served by the daemon's event loop.

Each container on a user network has a UDP and a TCP socket bound to 127.0.0.11:53 *inside its own
network namespace* (made there by network.py; a socket keeps its namespace), so its resolv.conf points at
127.0.0.11 with no DNAT rule. The socket tells us who asks: names are looked up among the networks of
that container (container names, network aliases, short IDs); anything else is forwarded to the
container's --dns servers or the host's resolvers, from the daemon's namespace.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Any, Protocol

log = logging.getLogger("pyd")

HEADER = struct.Struct(">HHHHHH")
TYPE_A, TYPE_AAAA, CLASS_IN = 1, 28, 1
RCODE_SERVFAIL, RCODE_NXDOMAIN = 2, 3
TTL = 600
FORWARD_TIMEOUT = 2.0
MAX_TCP_QUERY = 65535


def parse_question(msg: bytes) -> tuple[int, str, int, int, int]:
    """(id, name, qtype, flags, end of the question) of a query; ValueError when malformed."""
    if len(msg) < HEADER.size:
        raise ValueError("short message")
    qid, flags, qdcount, _an, _ns, _ar = HEADER.unpack_from(msg)
    if qdcount != 1 or flags & 0x8000:
        raise ValueError("not a single-question query")
    pos, labels = HEADER.size, []
    while True:
        if pos >= len(msg):
            raise ValueError("truncated name")
        length = msg[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0 or pos + length > len(msg):
            raise ValueError("bad label")
        labels.append(msg[pos:pos + length].decode("ascii", "replace"))
        pos += length
    if pos + 4 > len(msg):
        raise ValueError("truncated question")
    qtype, _qclass = struct.unpack_from(">HH", msg, pos)
    return qid, ".".join(labels), qtype, flags, pos + 4


def answer(msg: bytes, end: int, flags: int, addresses: list[str], rcode: int = 0) -> bytes:
    """A response to the query `msg` (question up to `end`) with A (or AAAA, for IPv6 ones) records for
    `addresses`."""
    qid = HEADER.unpack_from(msg)[0]
    out_flags = 0x8000 | (flags & 0x7900) | 0x0080 | rcode     # QR, opcode+RD kept, RA
    head = HEADER.pack(qid, out_flags, 1, len(addresses), 0, 0)
    records = b"".join(struct.pack(">HHHIH", 0xC00C, TYPE_AAAA, CLASS_IN, TTL, 16) + socket.inet_pton(socket.AF_INET6, a)
                       if ":" in a else struct.pack(">HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4) + socket.inet_aton(a)
                       for a in addresses)
    return head + msg[HEADER.size:end] + records


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: "DnsServer", cid: str) -> None:
        self.server, self.cid = server, cid
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:   # uvloop's transports are not asyncio's classes
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.server.spawn(self._reply(data, addr))

    async def _reply(self, data: bytes, addr: Any) -> None:
        reply = await self.server.handle(self.cid, data)
        if reply and self.transport and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


class NameResolver(Protocol):
    """What the server asks the network controller about the container behind a socket."""
    def resolve(self, cid: str, name: str) -> list[str] | None: ...
    def ndots_set(self, cid: str) -> bool: ...
    def upstream_servers(self, cid: str) -> list[str]: ...


class DnsServer:
    def __init__(self, controller: NameResolver) -> None:
        self.controller = controller
        self.serving: dict[str, list[Any]] = {}     # container id -> transports/servers
        self.tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        pass

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def serve(self, cid: str, socks: list[socket.socket]) -> None:
        """Answer queries arriving on the container's sockets (UDP first, then TCP)."""
        if not socks:
            return
        self.spawn(self._serve(cid, socks))

    async def _serve(self, cid: str, socks: list[socket.socket]) -> None:
        loop = asyncio.get_running_loop()
        udp, tcp = socks
        handles: list[Any] = []
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self, cid), sock=udp)
        handles.append(transport)

        async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                for _ in range(100):
                    size = struct.unpack(">H", await reader.readexactly(2))[0]
                    reply = await self.handle(cid, await reader.readexactly(size), tcp=True)
                    if not reply:
                        break
                    writer.write(struct.pack(">H", len(reply)) + reply)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        handles.append(await asyncio.start_server(on_tcp, sock=tcp))
        if cid in self.serving:
            self.serving[cid].extend(handles)
        else:
            self.serving[cid] = handles

    def forget(self, cid: str) -> None:
        for h in self.serving.pop(cid, []):
            h.close()

    def close(self) -> None:
        for cid in list(self.serving):
            self.forget(cid)

    async def handle(self, cid: str, msg: bytes, tcp: bool = False) -> bytes | None:
        try:
            _qid, name, qtype, flags, end = parse_question(msg)
        except ValueError:
            return None
        local = self.controller.resolve(cid, name)
        if local is not None:
            wanted = [a for a in local if (":" in a) == (qtype == TYPE_AAAA)] if qtype in (TYPE_A, TYPE_AAAA) else []
            return answer(msg, end, flags, wanted)
        if "." not in name.rstrip(".") and qtype in (TYPE_A, TYPE_AAAA) and self.controller.ndots_set(cid):
            # Docker forwards single-label names unless the user set ndots: then an empty answer lets the
            # client retry with its search domains
            return answer(msg, end, flags, [])
        reply = await self._forward(cid, msg)
        return reply if reply is not None else answer(msg, end, flags, [], RCODE_SERVFAIL)

    async def _forward(self, cid: str, msg: bytes) -> bytes | None:
        loop = asyncio.get_running_loop()
        for server in self.controller.upstream_servers(cid)[:3]:
            family = socket.AF_INET6 if ":" in server else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK) as s:
                try:
                    await loop.sock_connect(s, (server, 53))
                    await loop.sock_sendall(s, msg)
                    reply = await asyncio.wait_for(loop.sock_recv(s, 65535), FORWARD_TIMEOUT)
                except (OSError, asyncio.TimeoutError) as e:
                    log.debug("DNS forward to %s failed: %s", server, e)
                    continue
                if reply[:2] == msg[:2]:
                    return reply
        return None
