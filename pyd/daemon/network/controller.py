"""Networks: the bridge driver, IPAM, and each container's sandbox (network namespace + veths + DNS + ports).

Shape of the work:
- A network is a JSON file under data-root/network/ (config, IPAM cursor, endpoints of running
  containers); every change is written atomically, so a daemon killed at any instant never hands out an
  address twice after it restarts.
- A container gets its sandbox when it starts: a helper thread unshares a new network namespace,
  bind-mounts it at <exec-root>/netns/<id> (execd joins it), creates each veth pair over rtnetlink with
  the peer born inside that namespace as ethN, and sets addresses and the default route there. On user
  networks the same thread opens the embedded DNS socket, 127.0.0.11:53 inside the namespace (a socket
  keeps the namespace it was made in), which the daemon's event loop then serves: no iptables needed.
- When the container exits the daemon unmounts the namespace file and frees the addresses; the veths die
  with the namespace once its last process is gone, at no cost on the caller's path.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import re
import secrets
import socket
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

from pyd.daemon.errors import BadParameter, Conflict, Forbidden, NotFound
from pyd.daemon.fsutil import atomic_write
from pyd.daemon.network import ipv6, links
from pyd.daemon.network.ipv6 import Subnet6
from pyd.formats import rfc3339

if TYPE_CHECKING:
    from pyd.daemon.containers.model import Container
    from pyd.daemon.events import EventBus

log = logging.getLogger("pyd")

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MNT_DETACH = 2
DNS_ADDR = "127.0.0.11"
PREDEFINED = ("bridge", "host", "none")
MTU_OPTION = "com.docker.network.driver.mtu"
DEFAULT_POOLS = [("172.17.0.0/16", 16), ("172.18.0.0/15", 16), ("172.20.0.0/14", 16), ("172.24.0.0/13", 16),
                 ("192.168.0.0/16", 20)]


class ContainerLookup(Protocol):
    """The containers networks are configured for (container:<id> modes, DNS names, prune, reconcile)."""
    def get(self, ref: str) -> "Container": ...
    def find(self, cid: str) -> "Container | None": ...
    def all(self) -> "list[Container]": ...


@dataclass(frozen=True)
class NetworkOptions:
    """The daemon flags networking reads."""
    data_root: str
    exec_root: str
    bridge: str = "pyd0"
    bip: str = ""
    default_address_pools: list[Any] = field(default_factory=list)
    mtu: int = 1500
    ip_forward: bool = True
    iptables: bool = True


def parse_address_pool(text: str) -> tuple[str, int]:
    """--default-address-pool base=10.10.0.0/16,size=24"""
    opts = dict(kv.split("=", 1) for kv in text.split(",") if "=" in kv)
    try:
        base = ipaddress.IPv4Network(opts["base"], strict=False)
        size = int(opts.get("size", "24"))
    except (KeyError, ValueError):
        raise ValueError(f"invalid default address pool {text!r}: want base=CIDR,size=N") from None
    if size < base.prefixlen or size > 30:
        raise ValueError(f"invalid default address pool {text!r}: size must be between /{base.prefixlen} and /30")
    return str(base), size


# ---------------------------------------------------------------- running code inside a namespace

async def run_in_netns(path: str | None, fn: Callable[[], Any]) -> Any:
    """fn() in a fresh thread that first enters the namespace at `path` (a new one when None). The thread
    then ends, so no pool thread is ever left in a container's namespace."""
    from pyd.daemon.runtime import native

    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def body() -> None:
        try:
            if path is None:
                native.unshare(CLONE_NEWNET)
            else:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    native.setns(fd, CLONE_NEWNET)
                finally:
                    os.close(fd)
            result: Any = fn()
        except BaseException as e:  # handed to the awaiting coroutine
            loop.call_soon_threadsafe(_settle, fut, None, e)
        else:
            loop.call_soon_threadsafe(_settle, fut, result, None)

    threading.Thread(target=body, name="netns", daemon=True).start()
    return await fut


def _settle(fut: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")


def mac_for(ip: str) -> str:
    """Docker's MAC: 02:42 followed by the IPv4 address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


# ---------------------------------------------------------------- a network and its IPAM

@dataclass
class Network:
    Name: str
    Id: str
    Driver: str = "bridge"
    Created: str = ""
    Internal: bool = False
    Attachable: bool = False
    Labels: dict[str, str] = field(default_factory=dict)
    Options: dict[str, str] = field(default_factory=dict)
    subnet: str = ""            # "172.18.0.0/16"
    gateway: str = ""
    ip_range: str = ""
    user_subnet: bool = False   # the user gave --subnet (so --ip is allowed)
    bridge: str = ""            # interface name
    cursor: str = ""            # last address handed out (sequential allocation, no quick reuse)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)   # container id -> endpoint
    ipam_options: dict[str, str] | None = None   # IPAM.Options as given (null when none was)
    aux_addresses: dict[str, str] = field(default_factory=dict)   # --aux-address: reserved, never handed out
    EnableIPv6: bool = False
    v6: Subnet6 | None = None   # the IPv6 subnet (handed out from only with EnableIPv6)

    FIELDS = ("Name", "Id", "Driver", "Created", "Internal", "Attachable", "Labels", "Options", "subnet",
              "gateway", "ip_range", "user_subnet", "bridge", "cursor", "endpoints", "ipam_options",
              "aux_addresses", "EnableIPv6", "v6")

    def to_disk(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.FIELDS}
        out["v6"] = self.v6.to_disk() if self.v6 else None
        return out

    @classmethod
    def from_disk(cls, data: dict[str, Any]) -> "Network":
        net = cls(**{k: v for k, v in data.items() if k in cls.FIELDS and k != "v6"})
        net.v6 = Subnet6.from_disk(data.get("v6"))
        return net

    @property
    def ipv6(self) -> Subnet6 | None:
        """The IPv6 subnet containers get addresses from (None: IPv4 only)."""
        return self.v6 if self.EnableIPv6 and self.v6 and self.v6.gateway else None

    def used6(self) -> set[str]:
        return {ep["IPv6Address"] for ep in self.endpoints.values() if ep.get("IPv6Address")}

    @property
    def is_bridge(self) -> bool:
        return self.Driver == "bridge"

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv4Network(self.subnet).prefixlen

    def used(self) -> set[str]:
        return ({ep["IPAddress"] for ep in self.endpoints.values() if ep.get("IPAddress")}
                | set(self.aux_addresses.values()))

    def allocate(self, requested: str = "") -> str:
        net = ipaddress.IPv4Network(self.subnet)
        used = self.used() | {self.gateway}
        if requested:
            addr = ipaddress.IPv4Address(requested)
            if addr not in net:
                raise BadParameter(f"Invalid address {requested}: It does not belong to any of this network's subnets")
            if requested in used or addr in (net.network_address, net.broadcast_address):
                raise Forbidden("Address already in use")
            return requested
        pool = ipaddress.IPv4Network(self.ip_range) if self.ip_range else net
        first, last = int(pool.network_address) + 1, int(pool.broadcast_address) - 1
        if pool.prefixlen >= 31:
            first, last = int(pool.network_address), int(pool.broadcast_address)
        start = int(ipaddress.IPv4Address(self.cursor)) + 1 if self.cursor else first
        size = last - first + 1
        for i in range(size):
            cand = first + (start - first + i) % size
            text = str(ipaddress.IPv4Address(cand))
            if text not in used and ipaddress.IPv4Address(cand) not in (net.network_address, net.broadcast_address):
                self.cursor = text
                return text
        raise Forbidden(f"no available IPv4 addresses on this network's address pools: {self.Name} ({self.Id})")

    def inspect(self) -> dict[str, Any]:
        cfg: list[dict[str, str]] = []
        if self.subnet:
            entry = {"Subnet": self.subnet, "Gateway": self.gateway}
            if self.ip_range:
                entry["IPRange"] = self.ip_range
            if self.aux_addresses:
                entry["AuxiliaryAddresses"] = dict(self.aux_addresses)
            cfg.append(entry)
        if self.v6:
            cfg.append(self.v6.ipam_entry())
        containers = {}
        for cid, ep in self.endpoints.items():
            v6 = ep.get("IPv6Address")
            containers[cid] = {"Name": ep.get("Name", ""), "EndpointID": ep.get("EndpointID", ""),
                               "MacAddress": ep.get("MacAddress", ""),
                               "IPv4Address": f"{ep['IPAddress']}/{self.prefixlen}" if ep.get("IPAddress") else "",
                               "IPv6Address": f"{v6}/{self.v6.prefixlen}" if v6 and self.v6 else ""}
        return {"Name": self.Name, "Id": self.Id, "Created": self.Created, "Scope": "local",
                "Driver": self.Driver, "EnableIPv4": True, "EnableIPv6": self.EnableIPv6,
                "IPAM": {"Driver": "default", "Options": self.ipam_options, "Config": cfg},
                "Internal": self.Internal, "Attachable": self.Attachable, "Ingress": False,
                "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": containers,
                "Options": self.Options, "Labels": self.Labels}


# ---------------------------------------------------------------- the controller

@dataclass
class Sandbox:
    """A running container's network state that lives only in the daemon's memory."""
    path: str
    dns_socks: list[socket.socket] = field(default_factory=list)


class NetworkController:
    """Owns the networks, the sandboxes of running containers, the DNS server and the port proxy."""

    def __init__(self, options: NetworkOptions, containers: ContainerLookup, events: "EventBus") -> None:
        from pyd.daemon.network.dns import DnsServer
        from pyd.daemon.network.nat import Firewall
        from pyd.daemon.network.netlink import Netlink
        from pyd.daemon.network.portproxy import PortProxy

        self.options = options
        self.containers = containers
        self.events = events
        cfg = options
        self.root = os.path.join(cfg.data_root, "network", "networks")
        self.netns_dir = os.path.join(cfg.exec_root, "netns")
        self.networks: dict[str, Network] = {}
        self.sandboxes: dict[str, Sandbox] = {}
        self.nl = Netlink()
        self.dns = DnsServer(self)
        self.proxy = PortProxy()
        self.firewall = Firewall(cfg.iptables)
        self.mtu = int(cfg.mtu or 1500)
        self.warnings: list[str] = []
        self.lock = asyncio.Lock()
        # network files: states are serialized on the loop in order (a generation each) and written in any
        # thread; a state older than one already on disk is not written (writes may finish out of order)
        self._gen = 0
        self._written_gen: dict[str, int] = {}
        self._latest: dict[str, tuple[str, bytes, int]] = {}   # network ID -> newest snapshot
        self._write_lock = threading.Lock()

    # ---- start-up
    async def init(self) -> None:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        os.makedirs(self.netns_dir, mode=0o700, exist_ok=True)
        for entry in os.listdir(self.root):
            if not entry.endswith(".json"):
                continue
            try:
                import json
                with open(os.path.join(self.root, entry), "rb") as f:
                    net = Network.from_disk(json.load(f))
            except (OSError, ValueError, TypeError) as e:
                log.warning("repair: skipping network file %s: %s", entry, e)
                continue
            self.networks[net.Id] = net
        for name, driver in (("host", "host"), ("none", "null")):
            if not self._by_name(name):
                self._save(Network(Name=name, Id=secrets.token_hex(32), Driver=driver, Created=rfc3339.now()))
        await self._init_default_bridge()
        for net in list(self.networks.values()):
            if net.is_bridge:
                await asyncio.to_thread(self._ensure_bridge, net)
        if self.options.ip_forward:
            try:
                with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
                    f.write("1")
            except OSError as e:
                log.warning("could not enable IP forwarding: %s", e)
        if not self.firewall.available:
            msg = ("WARNING: neither iptables nor nft found (or --iptables=false): no outbound NAT for "
                   "containers and no isolation of forwarded traffic between bridge networks; published "
                   "ports work through the userland proxy")
            self.warnings.append(msg)
            log.warning(msg)
        await self.dns.start()

    async def _init_default_bridge(self) -> None:
        name = self.options.bridge or "pyd0"
        bip = self.options.bip or ""
        current = self._by_name("bridge")
        if bip:
            iface = ipaddress.IPv4Interface(bip)
            subnet, gateway = str(iface.network), str(iface.ip)
        elif current and current.subnet:
            subnet, gateway = current.subnet, current.gateway
        else:
            subnet = self._free_subnet()
            gateway = str(next(ipaddress.IPv4Network(subnet).hosts()))
        options = {"com.docker.network.bridge.default_bridge": "true",
                   "com.docker.network.bridge.enable_icc": "true",
                   "com.docker.network.bridge.enable_ip_masquerade": "true",
                   "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                   "com.docker.network.bridge.name": name,
                   MTU_OPTION: str(self.mtu)}
        if current and (current.subnet != subnet or current.bridge != name):
            log.info("default bridge changed (%s %s -> %s %s)", current.bridge, current.subnet, name, subnet)
            current.endpoints.clear()
            current.cursor = ""
        net = current or Network(Name="bridge", Id=secrets.token_hex(32), Created=rfc3339.now())
        net.subnet, net.gateway, net.bridge, net.Options = subnet, gateway, name, options
        self._save(net)

    def _pools(self) -> list[tuple[str, int]]:
        pools = self.options.default_address_pools or []
        texts = [p if isinstance(p, str) else f"base={p.get('base', '')},size={p.get('size', 24)}" for p in pools]
        return [parse_address_pool(t) for t in texts] or DEFAULT_POOLS

    def _free_subnet(self) -> str:
        """The first pool subnet that overlaps no route of the daemon's namespace and no other network."""
        from pyd.daemon.network.netlink import ipv4_routes

        taken = ipv4_routes() + [ipaddress.IPv4Network(n.subnet) for n in self.networks.values() if n.subnet]
        for base, size in self._pools():
            for cand in ipaddress.IPv4Network(base).subnets(new_prefix=size):
                if not any(cand.overlaps(t) for t in taken):
                    return str(cand)
        raise Forbidden("could not find an available, non-overlapping IPv4 address pool among the defaults "
                        "to assign to the network")

    def _ensure_bridge(self, net: Network) -> None:
        """Create the bridge (or adopt the one left by the previous daemon), its address, firewall rules."""
        index = self.nl.link_index(net.bridge)
        if not index:
            index = self.nl.add_bridge(net.bridge, self._mtu(net))
        else:
            self.nl.set_up(net.bridge)
        self.nl.add_address(index, f"{net.gateway}/{net.prefixlen}")
        if net.ipv6:
            self.nl.add_address(index, f"{net.ipv6.gateway}/{net.ipv6.prefixlen}")
        self.firewall.add_network(net.bridge, net.subnet, net.Internal)

    def _mtu(self, net: Network) -> int:
        """The network's com.docker.network.driver.mtu, else the daemon's --mtu."""
        return int(net.Options.get(MTU_OPTION) or self.mtu)

    # ---- persistence and lookup
    def _save(self, net: Network) -> None:
        self._write(self._snapshot(net))

    def _snapshot(self, net: Network) -> tuple[str, bytes, int]:
        """net's state now, for _write (on the loop, where networks change)."""
        self.networks[net.Id] = net
        self._gen += 1
        snapshot = net.Id, json.dumps(net.to_disk(), separators=(",", ":")).encode(), self._gen
        self._latest[net.Id] = snapshot
        return snapshot

    def _write(self, snapshot: tuple[str, bytes, int]) -> None:
        """snapshot's state or a newer one on disk, from any thread. States are whole, so the newest covers
        every older one: writers queued behind the lock find their state written already (group commit)."""
        net_id, _, gen = snapshot
        with self._write_lock:
            if gen <= self._written_gen.get(net_id, 0):
                return
            _, data, newest = max(snapshot, self._latest.get(net_id, snapshot), key=lambda s: s[2])
            atomic_write(os.path.join(self.root, net_id + ".json"), data)
            self._written_gen[net_id] = newest

    def _by_name(self, name: str) -> Network | None:
        return next((n for n in self.networks.values() if n.Name == name), None)

    def get(self, ref: str) -> Network:
        """Docker's order: full ID, exact name, then a unique ID prefix."""
        if ref in self.networks:
            return self.networks[ref]
        net = self._by_name(ref)
        if net:
            return net
        matches = [n for i, n in self.networks.items() if ref and i.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise BadParameter(f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    def all(self) -> list[Network]:
        return list(self.networks.values())

    # ---- user networks
    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("Name") or ""
        if not name:
            raise BadParameter("network name cannot be empty")
        driver = body.get("Driver") or "bridge"
        if driver != "bridge":
            if driver in ("host", "null"):
                raise Forbidden(f"only one instance of \"{driver}\" network is allowed")
            raise NotFound(f"plugin \"{driver}\" not found")
        if self._by_name(name):
            raise Conflict(f"network with name {name} already exists")
        ipam_cfg = ((body.get("IPAM") or {}).get("Config") or [])
        async with self.lock:
            net = Network(Name=name, Id=secrets.token_hex(32), Created=rfc3339.now(),
                          Internal=bool(body.get("Internal")), Attachable=bool(body.get("Attachable")),
                          Labels=dict(body.get("Labels") or {}),
                          Options=dict(body.get("Options") or {}), EnableIPv6=bool(body.get("EnableIPv6")))
            mtu = net.Options.get(MTU_OPTION)
            if mtu is not None:
                try:
                    int(mtu)
                except ValueError:
                    raise BadParameter(f"failed to parse {MTU_OPTION} value: {mtu} (strconv.Atoi: parsing "
                                       f"\"{mtu}\": invalid syntax)") from None
            ipam_options = (body.get("IPAM") or {}).get("Options")
            net.ipam_options = dict(ipam_options) if isinstance(ipam_options, dict) else None
            self._configure_ipam(net, [c for c in ipam_cfg if ":" not in (c.get("Subnet") or "")])
            net.v6 = ipv6.configure([c for c in ipam_cfg if ":" in (c.get("Subnet") or "")], net.EnableIPv6,
                                    [n.v6 for n in self.networks.values() if n.v6])
            net.bridge = net.Options.get("com.docker.network.bridge.name") or "br-" + net.Id[:12]
            if len(net.bridge) > 15:
                raise BadParameter(f"bridge name {net.bridge!r} is longer than 15 characters")
            if self.nl.link_index(net.bridge):
                raise Conflict(f"bridge {net.bridge} already exists on the host")
            await asyncio.to_thread(self._ensure_bridge, net)
            self._save(net)
        self.events.publish("network", "create", net.Id, {"name": name, "type": "bridge"})
        return {"Id": net.Id, "Warning": ""}

    def _configure_ipam(self, net: Network, v4: list[dict[str, Any]]) -> None:
        if len(v4) > 1:
            raise BadParameter("pyd supports one IPv4 subnet per network")
        conf = v4[0] if v4 else {}
        try:
            if conf.get("Subnet"):
                subnet = ipaddress.IPv4Network(conf["Subnet"], strict=False)
                if str(subnet) != conf["Subnet"].strip() and "/" in conf["Subnet"]:
                    subnet = ipaddress.IPv4Network(conf["Subnet"], strict=False)
                for other in self.networks.values():
                    if other.subnet and subnet.overlaps(ipaddress.IPv4Network(other.subnet)):
                        raise Forbidden("invalid pool request: Pool overlaps with other one on this address space")
                net.subnet, net.user_subnet = str(subnet), True
            elif conf.get("IPRange") or conf.get("Gateway"):
                raise BadParameter("ip-range and gateway need a subnet (--subnet)")
            else:
                net.subnet = self._free_subnet()
            subnet = ipaddress.IPv4Network(net.subnet)
            if conf.get("IPRange"):
                rng = ipaddress.IPv4Network(conf["IPRange"], strict=False)
                if not rng.subnet_of(subnet):
                    raise BadParameter(f"invalid ip-range {conf['IPRange']}: it is not within subnet {net.subnet}")
                net.ip_range = str(rng)
            for host, addr in (conf.get("AuxiliaryAddresses") or {}).items():
                if ipaddress.IPv4Address(addr) not in subnet:
                    raise BadParameter(f"invalid auxiliary address {host}={addr}: it is not within subnet "
                                       f"{net.subnet}")
                net.aux_addresses[str(host)] = str(ipaddress.IPv4Address(addr))
            if conf.get("Gateway"):
                gw = ipaddress.IPv4Address(conf["Gateway"])
                if gw not in subnet:
                    raise BadParameter(f"invalid gateway {gw}: it is not within subnet {net.subnet}")
                net.gateway = str(gw)
            else:
                net.gateway = str(next(subnet.hosts()))
        except ValueError as e:
            raise BadParameter(f"invalid IPAM configuration: {e}") from None

    async def remove(self, ref: str) -> None:
        net = self.get(ref)
        if net.Name in PREDEFINED:
            raise Forbidden(f"{net.Name} is a pre-defined network and cannot be removed")
        if net.endpoints:
            names = ", ".join(f'name:"{ep.get("Name", "")}" id:"{cid[:12]}"' for cid, ep in net.endpoints.items())
            # Docker answers 403 (libnetwork's ActiveEndpointsError is a Forbidden error)
            raise Forbidden(f"error while removing network: network {net.Name} has active endpoints ({names})")
        await asyncio.to_thread(self._delete_bridge, net)
        with self._write_lock:
            self._written_gen[net.Id] = 1 << 62   # no straggling write brings the file back
            self._latest.pop(net.Id, None)
            try:
                os.unlink(os.path.join(self.root, net.Id + ".json"))
            except FileNotFoundError:
                pass
        self.networks.pop(net.Id, None)
        self.events.publish("network", "destroy", net.Id, {"name": net.Name, "type": "bridge"})

    def _delete_bridge(self, net: Network) -> None:
        self.firewall.remove_network(net.bridge, net.subnet, net.Internal)
        self.nl.delete_link(net.bridge)

    async def prune(self, labels: list[str] | None = None, until: float | None = None) -> list[str]:
        """until: only networks created before it (unix seconds)."""
        gone = []
        for net in list(self.networks.values()):
            if net.Name in PREDEFINED or net.endpoints or self.referenced(net):
                continue
            if until is not None and net.Created and rfc3339.parse(net.Created) >= until:
                continue
            if labels and not all(label_match(net.Labels, lab) for lab in labels):
                continue
            await self.remove(net.Id)
            gone.append(net.Name)
        return gone

    def referenced(self, net: Network) -> bool:
        """Docker's prune keeps networks that containers (even stopped ones) are configured for."""
        return any(net.Name in (c.NetworkSettings.get("Networks") or {}) for c in self.containers.all())

    # ---- container configuration (create time)
    def configure_container(self, c: "Container", networking: dict[str, Any] | None) -> None:
        """Validate NetworkMode and EndpointsConfig; record the endpoints' settings (no address yet)."""
        hc = c.HostConfig
        mode = hc.get("NetworkMode") or "bridge"
        endpoints_cfg = {("bridge" if k == "default" else k): v
                         for k, v in ((networking or {}).get("EndpointsConfig") or {}).items()}
        c.NetworkSettings = {"Networks": {}}
        if mode.startswith("container:"):
            check_container_mode(c)
            other = self.containers.get(mode.split(":", 1)[1])
            if other.ID == c.ID:
                raise BadParameter("cannot join own network namespace")
            hc["NetworkMode"] = "container:" + other.ID
            return
        if mode in ("host", "none"):
            if endpoints_cfg and set(endpoints_cfg) - {mode}:
                raise BadParameter("container cannot be disconnected from host network or connected to host network")
            c.NetworkSettings["Networks"][mode] = self._endpoint_settings(self.get(mode), c, {})
            return
        if hc.get("Links") and mode in ("bridge", "default"):
            hc["Links"] = links.normalize(hc["Links"], c, self.containers)
        # Like dockerd, an unknown network is no error at create: start fails with "network X not found"
        primary = self._lookup(mode)
        if primary and primary.Driver != "bridge":
            raise BadParameter(f"network mode {mode} is not valid")
        names = [mode] + [n for n in endpoints_cfg if n != mode and not (primary and self._lookup(n) is primary)]
        for name in names:
            net = self._lookup(name)
            conf = (endpoints_cfg.get(name) or (endpoints_cfg.get(net.Id) if net else None)
                    or (endpoints_cfg.get(mode) if name == mode else None) or {})
            if name == mode and c.Config.get("MacAddress") and not conf.get("MacAddress"):
                # the container-wide MacAddress (deprecated in 1.44) is the primary endpoint's
                conf = {**conf, "MacAddress": c.Config["MacAddress"]}
            c.NetworkSettings["Networks"][net.Name if net else name] = self._endpoint_settings(net, c, conf)
        if hc.get("PublishAllPorts") or hc.get("PortBindings"):
            from pyd.daemon.network.portproxy import check_bindings
            check_bindings(hc.get("PortBindings") or {})

    def _lookup(self, ref: str) -> Network | None:
        try:
            return self.get(ref)
        except NotFound:
            return None

    def _endpoint_settings(self, net: Network | None, c: "Container", conf: dict[str, Any]) -> dict[str, Any]:
        ipam = conf.get("IPAMConfig") or None
        if net is None:
            pass
        elif ipam and ipam.get("IPv4Address"):
            if net.Name == "bridge" or not net.user_subnet:
                raise BadParameter("user specified IP address is supported only when connecting to networks "
                                   "with user configured subnets")
            try:
                if ipaddress.IPv4Address(ipam["IPv4Address"]) not in ipaddress.IPv4Network(net.subnet):
                    raise BadParameter(f"Invalid address {ipam['IPv4Address']}: It does not belong to any of "
                                       "this network's subnets")
            except ValueError:
                raise BadParameter(f"invalid IPv4 address: {ipam['IPv4Address']}") from None
        if net is not None and ipam and ipam.get("IPv6Address"):
            if net.ipv6 is None:
                raise BadParameter("user specified IP address is supported only when connecting to networks "
                                   "with user configured subnets")
            net.ipv6.check(ipam["IPv6Address"])
        mac = conf.get("MacAddress") or ""
        if mac and not MAC_RE.match(mac):
            raise BadParameter(f"{mac} is not a valid mac address")
        aliases = list(conf.get("Aliases") or []) or None
        if aliases and net and net.Name == "bridge":
            raise BadParameter("network-scoped alias is supported only for containers in user defined networks")
        return {"IPAMConfig": ipam, "Links": conf.get("Links"), "Aliases": aliases,
                "MacAddress": mac.lower(), "DriverOpts": conf.get("DriverOpts"),
                "NetworkID": net.Id if net else "", "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}

    # ---- container start / exit
    def join_for(self, c: "Container") -> dict[str, str]:
        """join_namespaces for execd: the sandbox, or the other container's namespace."""
        mode = c.HostConfig.get("NetworkMode") or ""
        if mode.startswith("container:"):
            other = self.containers.get(mode.split(":", 1)[1])
            if not other.State.Running or not other.State.Pid:
                raise Conflict(f"cannot join network namespace of a non running container: {other.ID}")
            sb = self.sandboxes.get(other.ID)
            return {"net": sb.path if sb else f"/proc/{other.State.Pid}/ns/net"}
        sb = self.sandboxes.get(c.ID)
        return {"net": sb.path} if sb else {}

    def etc_file(self, c: "Container", name: str) -> str:
        """The host file bound at /etc/<name>: the other container's one in container:<id> mode."""
        mode = c.HostConfig.get("NetworkMode") or ""
        if mode.startswith("container:"):
            other = self.containers.find(mode.split(":", 1)[1])
            if other is not None:
                return other.path(name)
        return c.path(name)

    async def setup(self, c: "Container") -> None:
        """Before execd starts: addresses, the namespace with its veths, DNS, /etc files, published ports.
        Errors carry Docker 28's prefix (and keep their status)."""
        from pyd.daemon.errors import HTTPError
        on_bridge = "bridge" in (c.NetworkSettings.get("Networks") or {})
        children = links.running_children(c, self.containers) if on_bridge else []   # unprefixed errors
        try:
            await self._setup(c, children)
        except HTTPError as e:
            if not e.message.startswith(NETWORKING_FAILED):
                e.message = f"{NETWORKING_FAILED}: {e.message}"
                e.args = (e.message,)
            raise

    async def _setup(self, c: "Container", children: list[tuple[str, "Container"]]) -> None:
        from pyd.daemon.containers import etcfiles

        mode = c.HostConfig.get("NetworkMode") or "bridge"
        if mode in ("host", "none") or mode.startswith("container:"):
            if mode.startswith("container:"):
                self.join_for(c)   # fails early when the other container is not running
                other = self.containers.get(mode.split(":", 1)[1])
                # dockerd: the other container's hostname, and its hostname/hosts/resolv.conf (etc_file)
                c.Config["Hostname"] = other.Config.get("Hostname") or c.Config["Hostname"]
                c.Config["Domainname"] = other.Config.get("Domainname") or ""
            return
        attached = [(self.networks[ep["NetworkID"]] if ep.get("NetworkID") in self.networks else self.get(name), ep)
                    for name, ep in (c.NetworkSettings.get("Networks") or {}).items()]
        async with self.lock:
            for net, ep in attached:
                self._attach(net, ep, c, save=False)
            snapshots = [self._snapshot(net) for net, _ in attached]
        user = any(net.Name != "bridge" for net, _ in attached)
        path = os.path.join(self.netns_dir, c.ID)
        try:   # the addresses go to disk while the sandbox is built; both before execd joins it
            saved, built = await asyncio.gather(
                asyncio.to_thread(lambda: [self._write(s) for s in snapshots]),
                run_in_netns(None, lambda: self._build_sandbox(path, attached, user)), return_exceptions=True)
            if isinstance(saved, BaseException):
                if not isinstance(built, BaseException):
                    for sock in built:
                        sock.close()
                    _drop_netns_file(path)
                raise saved
            if isinstance(built, BaseException):
                raise built
            socks = built
        except BaseException:
            self._detach_all(c)
            raise
        self.sandboxes[c.ID] = Sandbox(path=path, dns_socks=socks)
        self.dns.serve(c.ID, socks)
        c.NetworkSettings.update({"SandboxID": secrets.token_hex(32), "SandboxKey": path})
        self._set_summary(c)
        hc = c.HostConfig
        extra = [tuple(h.split(":", 1)[::-1]) for h in hc.get("ExtraHosts") or [] if ":" in h]
        first = attached[0][1] if attached else None
        extra = [(attached[0][0].gateway if ip == "host-gateway" and first else ip, n) for ip, n in extra]
        extra += [links.hosts_line(link_name, child) for link_name, child in children]
        if first:
            names = etcfiles.hosts_names(c.Config["Hostname"], c.Config.get("Domainname"))
            extra.append((first["IPAddress"], names))
            if first.get("GlobalIPv6Address"):
                extra.append((first["GlobalIPv6Address"], names))
        etcfiles.write_hosts(c.path("hosts"), extra)  # type: ignore[arg-type]
        if user:
            etcfiles.write_resolv_conf(c.path("resolv.conf"), dns=[DNS_ADDR], search=hc.get("DnsSearch"),
                                       options=["ndots:0", *(hc.get("DnsOptions") or [])])
        if first:
            await self._publish(c, first["IPAddress"])
        for net, _ in attached:    # dockerd connects a starting container to each of its networks
            self._connect_event("connect", net, c)

    def _attach(self, net: Network, ep: dict[str, Any], c: "Container", save: bool = True) -> None:
        requested = (ep.get("IPAMConfig") or {}).get("IPv4Address") or ""
        ip = net.allocate(requested)
        name = c.Name.lstrip("/")
        user_mac = bool(ep.get("MacAddress"))
        ip6 = net.ipv6.allocate(net.used6(), (ep.get("IPAMConfig") or {}).get("IPv6Address") or "") \
            if net.ipv6 else ""
        ep.update({"NetworkID": net.Id, "EndpointID": secrets.token_hex(32), "Gateway": net.gateway,
                   "IPAddress": ip, "IPPrefixLen": net.prefixlen, "MacAddress": ep.get("MacAddress") or mac_for(ip),
                   "IPv6Gateway": net.ipv6.gateway if net.ipv6 else "", "GlobalIPv6Address": ip6,
                   "GlobalIPv6PrefixLen": net.ipv6.prefixlen if net.ipv6 else 0})
        if net.Name != "bridge":
            ep["DNSNames"] = [name, c.ID[:12], *(a for a in ep.get("Aliases") or [] if a not in (name, c.ID[:12]))]
        taken = {n.endpoints[c.ID]["ifname"] for n in self._nets_of(c.ID)}
        ifname = next(f"eth{i}" for i in range(len(taken) + 1) if f"eth{i}" not in taken)
        net.endpoints[c.ID] = {"Name": name, "EndpointID": ep["EndpointID"], "MacAddress": ep["MacAddress"],
                               "IPAddress": ip, "IPv6Address": ip6, "ifname": ifname, "user_mac": user_mac}
        if save:
            self._save(net)

    def _nets_of(self, cid: str) -> list[Network]:
        return [n for n in self.networks.values() if cid in n.endpoints]

    def _build_sandbox(self, path: str, attached: list[tuple[Network, dict[str, Any]]],
                       dns: bool) -> list[socket.socket]:
        """In a thread that just unshared a new namespace: pin it to `path`, plug the veths, open DNS."""
        from pyd.daemon.runtime import native
        from pyd.daemon.network.netlink import Netlink

        with open(path, "w"):
            pass
        native.mount("/proc/thread-self/ns/net", path, None, MS_BIND)
        try:
            fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                with Netlink() as inner:
                    inner.set_up("lo")
                    for i, (net, ep) in enumerate(attached):
                        self._plug(inner, fd, net, ep, i == 0)
            finally:
                os.close(fd)
            return _dns_sockets() if dns else []
        except BaseException:
            _drop_netns_file(path)
            raise

    def _plug(self, inner: Any, fd: int, net: Network, ep: dict[str, Any], default_route: bool) -> None:
        ifname = next(e["ifname"] for e in net.endpoints.values() if e["EndpointID"] == ep["EndpointID"])
        host = "veth" + secrets.token_hex(4)[:7]
        master = self.nl.link_index(net.bridge)
        if not master:
            self._ensure_bridge(net)
            master = self.nl.link_index(net.bridge)
        self.nl.add_veth(host, master, self._mtu(net), ifname, fd, bytes.fromhex(ep["MacAddress"].replace(":", "")))
        inner.set_up(ifname)
        index = inner.link_index(ifname)
        inner.add_address(index, f"{ep['IPAddress']}/{net.prefixlen}")
        if ep.get("GlobalIPv6Address") and net.ipv6:
            inner.add_address(index, f"{ep['GlobalIPv6Address']}/{net.ipv6.prefixlen}")
        if default_route and not net.Internal:
            inner.add_default_route(net.gateway, index)
            if ep.get("GlobalIPv6Address") and net.ipv6:
                inner.add_default_route(net.ipv6.gateway, index)

    def _set_summary(self, c: "Container") -> None:
        """The top-level IPAddress/Gateway/MacAddress fields mirror the default bridge endpoint."""
        ns = c.NetworkSettings
        ep = (ns.get("Networks") or {}).get("bridge") or {}
        ns.update({"IPAddress": ep.get("IPAddress", ""), "IPPrefixLen": ep.get("IPPrefixLen", 0),
                   "Gateway": ep.get("Gateway", ""), "MacAddress": ep.get("MacAddress", ""),
                   "EndpointID": ep.get("EndpointID", ""),
                   "Bridge": self._by_name("bridge").bridge if ep.get("IPAddress") else ""})  # type: ignore[union-attr]

    async def _publish(self, c: "Container", ip: str) -> None:
        from pyd.daemon.network.portproxy import wanted_bindings

        hc = c.HostConfig
        wanted = wanted_bindings(hc.get("PortBindings") or {}, c.Config.get("ExposedPorts") or {},
                                 bool(hc.get("PublishAllPorts")))
        try:
            c.NetworkSettings["Ports"] = await self.proxy.publish(c.ID, ip, wanted)
        except OSError as e:
            self.release(c)
            raise Forbidden(f"driver failed programming external connectivity on endpoint {c.Name.lstrip('/')} "
                            f"({c.ID[:12]}): {e.strerror or e}") from None

    def release(self, c: "Container") -> list[Network]:
        """After the container exited (or failed to start): drop its sandbox, free its addresses; the
        networks it was connected to (for their disconnect events, which dockerd sends after `die`)."""
        self.proxy.unpublish(c.ID)
        sb = self.sandboxes.pop(c.ID, None)
        self.dns.forget(c.ID)
        if sb:
            for s in sb.dns_socks:
                s.close()
        _drop_netns_file(os.path.join(self.netns_dir, c.ID))
        left = self._nets_of(c.ID) if sb is not None else []
        self._detach_all(c)
        ns = c.NetworkSettings
        ports = ns.get("Ports")
        if ports:
            ns["Ports"] = {}
        for key in ("SandboxID", "SandboxKey"):
            ns[key] = ""
        return left

    def announce_disconnect(self, c: "Container", nets: list[Network]) -> None:
        for net in nets:
            self._connect_event("disconnect", net, c)

    def _connect_event(self, action: str, net: Network, c: "Container") -> None:
        self.events.publish("network", action, net.Id, {"container": c.ID, "name": net.Name, "type": "bridge"})

    def _detach_all(self, c: "Container") -> None:
        user_macs = set()
        for net in self._nets_of(c.ID):
            if net.endpoints.pop(c.ID, {}).get("user_mac"):
                user_macs.add(net.Name)
            self._save(net)
        for name, ep in (c.NetworkSettings.get("Networks") or {}).items():
            ep.update({"EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "DNSNames": None,
                       "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0})
            if name not in user_macs:
                ep["MacAddress"] = ""
        if c.NetworkSettings.get("Networks"):
            self._set_summary(c)

    # ---- connect / disconnect
    async def connect(self, ref: str, container: str, conf: dict[str, Any]) -> None:
        net = self.get(ref)
        c = self.containers.get(container)
        mode = c.HostConfig.get("NetworkMode") or ""
        if mode in ("host", "none") or mode.startswith("container:"):
            raise Forbidden("container sharing network namespace with another container or host cannot be "
                            "connected to any other network")
        if net.Driver != "bridge":
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        nets = c.NetworkSettings.setdefault("Networks", {})
        if net.Name in nets:
            raise Forbidden(f"endpoint with name {c.Name.lstrip('/')} already exists in network {net.Name}")
        ep = self._endpoint_settings(net, c, conf or {})
        nets[net.Name] = ep
        if c.State.Running and c.ID in self.sandboxes:
            async with self.lock:
                self._attach(net, ep, c)
            path = self.sandboxes[c.ID].path
            try:
                await run_in_netns(path, lambda: self._plug_here(net, ep))
            except BaseException:
                net.endpoints.pop(c.ID, None)
                self._save(net)
                nets.pop(net.Name, None)
                raise
            if net.Name != "bridge" and not self.sandboxes[c.ID].dns_socks:
                socks = await run_in_netns(path, _dns_sockets)
                self.sandboxes[c.ID].dns_socks = socks
                self.dns.serve(c.ID, socks)
        c.save()
        self._connect_event("connect", net, c)

    def _plug_here(self, net: Network, ep: dict[str, Any]) -> None:
        from pyd.daemon.network.netlink import Netlink
        fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            with Netlink() as inner:
                self._plug(inner, fd, net, ep, False)
        finally:
            os.close(fd)

    async def disconnect(self, ref: str, container: str, force: bool = False) -> None:
        net = self.get(ref)
        c = self.containers.get(container)
        nets = c.NetworkSettings.get("Networks") or {}
        if net.Name not in nets:
            raise Forbidden(f"container {c.ID} is not connected to network {net.Name}")
        if net.Driver != "bridge":
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        endpoint = net.endpoints.pop(c.ID, None)
        if endpoint and c.ID in self.sandboxes:
            from pyd.daemon.network.netlink import Netlink

            def unplug() -> None:
                with Netlink() as inner:
                    inner.delete_link(endpoint["ifname"])
            await run_in_netns(self.sandboxes[c.ID].path, unplug)
        self._save(net)
        nets.pop(net.Name, None)
        self._set_summary(c)
        c.save()
        self._connect_event("disconnect", net, c)

    def linked_env(self, c: "Container") -> list[str]:
        """The ALIAS_* variables of c's legacy links (default bridge only)."""
        return links.linked_env(c, self.containers)

    # ---- name resolution for the DNS server
    def resolve(self, cid: str, name: str) -> list[str] | None:
        """Addresses of `name` on the user networks container `cid` is attached to; None: not ours.
        On each network, a link alias of cid's endpoint there stands for the container it names."""
        asked = name.rstrip(".").lower()
        found: list[str] = []
        containers = self.containers
        me = containers.find(cid)
        for net in self._nets_of(cid):
            if net.Name == "bridge":
                continue
            mine = ((me.NetworkSettings.get("Networks") or {}).get(net.Name) or {}) if me else {}
            name = links.endpoint_aliases(mine.get("Links")).get(asked, asked)
            for other_id, ep in net.endpoints.items():
                other = containers.find(other_id)
                settings = ((other.NetworkSettings.get("Networks") or {}).get(net.Name) or {}) if other else {}
                names = [n.lower() for n in settings.get("DNSNames") or [ep.get("Name", ""), other_id[:12]]]
                if name in names:
                    found += [a for a in (ep.get("IPAddress"), ep.get("IPv6Address")) if a and a not in found]
        return found or None

    def ndots_set(self, cid: str) -> bool:
        """Whether the user gave ndots in --dns-opt (Docker's own ndots:0 does not count)."""
        c = self.containers.find(cid)
        return any(o.startswith("ndots:") for o in ((c.HostConfig.get("DnsOptions") if c else None) or []))

    def upstream_servers(self, cid: str) -> list[str]:
        c = self.containers.find(cid)
        dns = (c.HostConfig.get("Dns") if c else None) or []
        if dns:
            return list(dns)
        servers = []
        try:
            with open("/etc/resolv.conf") as f:
                for line in f:
                    words = line.split()
                    if len(words) > 1 and words[0] == "nameserver":
                        servers.append(words[1])
        except OSError:
            pass
        return servers

    # ---- restart and shutdown
    async def reconcile(self) -> None:
        """After the containers were restored: free the addresses of containers that are gone or stopped;
        give running ones their DNS sockets and published ports back."""
        containers = self.containers
        for net in list(self.networks.values()):
            stale = [cid for cid in net.endpoints
                     if (c := containers.find(cid)) is None or not c.State.Running]
            for cid in stale:
                net.endpoints.pop(cid, None)
            if stale:
                self._save(net)
        known = set()
        for c in containers.all():
            if not c.State.Running:
                continue
            path = os.path.join(self.netns_dir, c.ID)
            if not os.path.exists(path) or not self._nets_of(c.ID):
                continue
            known.add(c.ID)
            socks = []
            if any(n.Name != "bridge" for n in self._nets_of(c.ID)):
                try:
                    socks = await run_in_netns(path, _dns_sockets)
                except OSError as e:
                    log.warning("could not restore DNS for %s: %s", c.short_id, e)
            self.sandboxes[c.ID] = Sandbox(path=path, dns_socks=socks)
            self.dns.serve(c.ID, socks)
            ep = next(iter(self._nets_of(c.ID))).endpoints[c.ID]
            try:
                await self._publish(c, ep["IPAddress"])
            except Exception as e:  # a port taken meanwhile must not stop the daemon
                log.warning("could not restore published ports of %s: %s", c.short_id, e)
        for entry in os.listdir(self.netns_dir):
            if entry not in known:
                _drop_netns_file(os.path.join(self.netns_dir, entry))

    async def shutdown(self) -> None:
        self.proxy.close()
        self.dns.close()
        for sb in self.sandboxes.values():
            for s in sb.dns_socks:
                s.close()

    def ports_of(self, c: "Container") -> list[dict[str, Any]]:
        """The `Ports` list of GET /containers/json."""
        out = []
        for key, binds in (c.NetworkSettings.get("Ports") or {}).items():
            port, _, proto = key.partition("/")
            if not binds:
                out.append({"PrivatePort": int(port), "Type": proto})
                continue
            for b in binds:
                out.append({"IP": b["HostIp"], "PrivatePort": int(port), "PublicPort": int(b["HostPort"]),
                            "Type": proto})
        return out


def _dns_sockets() -> list[socket.socket]:
    """UDP and TCP sockets on 127.0.0.11:53 in the calling thread's namespace (lo must be up)."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        udp.bind((DNS_ADDR, 53))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((DNS_ADDR, 53))
        tcp.listen(16)
    except BaseException:
        udp.close()
        tcp.close()
        raise
    udp.setblocking(False)
    tcp.setblocking(False)
    return [udp, tcp]


def _drop_netns_file(path: str) -> None:
    from pyd.daemon.runtime import native
    try:
        native.umount2(path, MNT_DETACH)
    except OSError:
        pass
    try:
        os.unlink(path)
    except OSError:
        pass


def label_match(labels: dict[str, str], spec: str) -> bool:
    key, eq, value = spec.partition("=")
    return key in labels and (not eq or labels[key] == value)


NETWORKING_FAILED = "failed to set up container networking"


def check_container_mode(c: "Container") -> None:
    """dockerd's validateNetContainerMode: what container:<id> mode cannot be combined with."""
    hc, name = c.HostConfig, (c.HostConfig.get("NetworkMode") or "").split(":", 1)[1]
    if not name:
        raise BadParameter("Invalid network mode: invalid container format container:<name|id>")
    if c.Config.get("Hostname") and c.Config["Hostname"] != c.ID[:12]:   # create sets the ID's as default
        raise BadParameter("conflicting options: hostname and the network mode")
    if hc.get("Links"):
        raise BadParameter("conflicting options: container type network can't be used with links. "
                           "This would result in undefined behavior")
    if hc.get("Dns"):
        raise BadParameter("conflicting options: dns and the network mode")
    if hc.get("ExtraHosts"):
        raise BadParameter("conflicting options: custom host-to-IP mapping and the network mode")
    if hc.get("PortBindings") or hc.get("PublishAllPorts"):
        raise BadParameter("conflicting options: port publishing and the container type network mode")
