"""A bridge network's IPv6 side (`--ipv6 --subnet fd00::/64`), as dockerd 20.10 keeps it: one user-given
subnet (there is no default IPv6 pool), a gateway on the bridge, and addresses handed out in order from the
range, the container's IPv4 address alongside.
"""
from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass
from typing import Any

from pyd.daemon.errors import BadParameter, Forbidden, NotFound

NO_POOL = ("could not find an available, non-overlapping IPv6 address pool among the defaults to assign "
           "to the network")


@dataclass
class Subnet6:
    subnet: str
    gateway: str = ""         # empty when IPv6 is not enabled: the subnet is only recorded
    ip_range: str = ""
    cursor: str = ""          # last address handed out

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv6Network(self.subnet).prefixlen

    def to_disk(self) -> dict[str, str]:
        return {"subnet": self.subnet, "gateway": self.gateway, "ip_range": self.ip_range, "cursor": self.cursor}

    @classmethod
    def from_disk(cls, data: dict[str, Any] | None) -> "Subnet6 | None":
        return cls(**{k: str(v) for k, v in data.items() if k in ("subnet", "gateway", "ip_range", "cursor")}) \
            if data else None

    def ipam_entry(self) -> dict[str, str]:
        entry = {"Subnet": self.subnet}
        if self.ip_range:
            entry["IPRange"] = self.ip_range
        if self.gateway:
            entry["Gateway"] = self.gateway
        return entry

    def check(self, requested: str) -> None:
        """An IPAMConfig.IPv6Address must lie in the subnet."""
        try:
            inside = ipaddress.IPv6Address(requested) in ipaddress.IPv6Network(self.subnet)
        except ValueError:
            raise BadParameter(f"invalid IPv6 address: {requested}") from None
        if not inside:
            raise BadParameter(f"Invalid address {requested}: It does not belong to any of this network's subnets")

    def allocate(self, used: set[str], requested: str = "") -> str:
        net = ipaddress.IPv6Network(self.subnet)
        taken = used | {self.gateway}
        if requested:
            self.check(requested)
            addr = str(ipaddress.IPv6Address(requested))
            if addr in taken or ipaddress.IPv6Address(addr) == net.network_address:
                raise Forbidden("Address already in use")
            return addr
        pool = ipaddress.IPv6Network(self.ip_range) if self.ip_range else net
        first, last = int(pool.network_address), int(pool.broadcast_address)
        start = int(ipaddress.IPv6Address(self.cursor)) + 1 if self.cursor else first
        if not first <= start <= last:
            start = first
        for cand in itertools.chain(range(start, last + 1), range(first, start)):
            addr = ipaddress.IPv6Address(cand)
            if addr != net.network_address and str(addr) not in taken:
                self.cursor = str(addr)
                return str(addr)
        raise Forbidden("no available IPv6 addresses on this network's address pools")


def configure(configs: list[dict[str, Any]], enabled: bool, others: list[Subnet6]) -> Subnet6 | None:
    """The IPv6 side from IPAM.Config's IPv6 entries; None when there is none."""
    if len(configs) > 1:
        raise Forbidden("bridge driver doesn't support multiple subnets")
    if not configs:
        if enabled:
            raise NotFound(NO_POOL)   # dockerd's status too
        return None
    conf = configs[0]
    try:
        subnet = ipaddress.IPv6Network(conf["Subnet"], strict=False)
        for other in others:
            if subnet.overlaps(ipaddress.IPv6Network(other.subnet)):
                raise Forbidden("Pool overlaps with other one on this address space")
        out = Subnet6(subnet=str(subnet))
        if conf.get("IPRange"):
            rng = ipaddress.IPv6Network(conf["IPRange"], strict=False)
            if not rng.subnet_of(subnet):
                raise BadParameter(f"invalid ip-range {conf['IPRange']}: it is not within subnet {subnet}")
            out.ip_range = str(rng)
        if conf.get("Gateway"):
            gw = ipaddress.IPv6Address(conf["Gateway"])
            if gw not in subnet:
                raise BadParameter(f"invalid gateway {gw}: it is not within subnet {subnet}")
            out.gateway = str(gw)
        elif enabled:
            out.gateway = str(subnet.network_address + 1)
    except ValueError as e:
        raise BadParameter(f"invalid IPAM configuration: {e}") from None
    return out   # without --ipv6 dockerd only records it (inspect shows it) and hands nothing out
