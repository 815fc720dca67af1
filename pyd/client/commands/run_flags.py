"""run/create's networking, port, DNS, healthcheck, restart, logging and stop flags, turned into the
create request as docker 28's CLI builds it (cli/command/container/opts.go, go-connections/nat).

Errors found while parsing a flag's value are ValueError from the validators (shown by the parser as
`invalid argument "X" for "--flag" flag: ...`); errors found when the request is assembled are ValueError
from apply_run_flags (shown as `pyd: MESSAGE` with a hint to --help, exit 125), as in docker.
"""
from __future__ import annotations

import ipaddress
import re

TYPE_CHECKING = False     # typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

from pyd.client.flags import BOOL, INT, LIST, STRING, Flag, Options
from pyd.formats.units import parse_duration

_NOT_USER_DEFINED = ("default", "bridge", "host", "none")


def is_user_defined(mode: str) -> bool:
    return mode not in _NOT_USER_DEFINED and not mode.startswith("container:")


# ---------------------------------------------------------------- flag value validators


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Go's net.ParseIP: an IPv4 or IPv6 address (no zone, no brackets), or None."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _go_ip_string(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)       # Go prints ::ffff:a.b.c.d as a.b.c.d
    return str(ip)


def validate_ip_address(raw: str) -> str:
    """opts.ValidateIPAddress: the address in canonical form."""
    ip = _parse_ip(raw.strip())
    if ip is None:
        raise ValueError(f"IP address is not correctly formatted: {raw}")
    return _go_ip_string(ip)


_DOMAIN_RE = re.compile(r"^(:?(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9]))"
                        r"(:?\.(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])))*)\.?\s*$")


def validate_dns_search(raw: str) -> str:
    """opts.ValidateDNSSearch: a domain name, or "." for none."""
    val = raw.strip(" ")
    if val == ".":
        return val
    m = _DOMAIN_RE.match(val)
    if not re.search("[a-zA-Z]", val) or not m or len(m.group(1)) >= 255:
        raise ValueError(f"{val} is not a valid domain")
    return m.group(1)


def validate_extra_host(raw: str) -> str:
    """opts.ValidateExtraHost: name:ip or name=ip (ip may be [bracketed]); sent as name:ip."""
    key, sep, value = raw.partition("=")
    if not sep:
        key, sep, value = raw.partition(":")
    if not sep or not key or ":" in key:
        raise ValueError(f"bad format for add-host: {_go_quote(raw)}")
    if value != "host-gateway":
        if len(value) > 2 and value[0] == "[" and value[-1] == "]":
            value = value[1:-1]
        if _parse_ip(value.strip()) is None:
            raise ValueError(f"invalid IP address in add-host: {_go_quote(value)}")
    return f"{key}:{value}"


def _go_quote(text: str) -> str:
    import json
    return json.dumps(text, ensure_ascii=False)


def parse_network_opt(raw: str) -> dict[str, Any]:
    """opts.NetworkOpt: a network name, or the long form name=N,alias=A,ip=...,mac-address=...."""
    opt: dict[str, Any] = {"target": raw, "aliases": [], "ipv4": "", "ipv6": "", "mac": "", "driver_opts": {},
                           "link_local_ips": [], "long": False}
    if not re.search(r"\w+=\w+(,\w+=\w+)*", raw):
        return opt
    import csv
    try:
        fields = next(csv.reader([raw]))
    except (csv.Error, StopIteration):
        raise ValueError(f"parse error on {raw}") from None
    opt.update(target="", long=True)
    for field in fields:
        key, sep, value = field.lower().partition("=")
        if not sep or not key:
            raise ValueError(f"invalid field {field}")
        key, value = key.strip(), value.strip()
        if key == "name":
            opt["target"] = value
        elif key == "alias":
            opt["aliases"].append(value)
        elif key == "ip":
            opt["ipv4"] = value
        elif key == "ip6":
            opt["ipv6"] = value
        elif key == "mac-address":
            opt["mac"] = value
        elif key == "link-local-ip":
            opt["link_local_ips"].append(value)
        elif key == "driver-opt":
            k, eq, v = value.partition("=")
            if not eq:
                raise ValueError("invalid key value pair format in driver options")
            opt["driver_opts"][k.strip()] = v.strip()
        else:
            raise ValueError("invalid field key " + key)
    if not opt["target"]:
        raise ValueError("network name/id is not specified")
    return opt


def run_flags() -> list[Flag]:
    """The flags this module adds to run and create (docker 28's names, help and value types)."""
    duration = "duration"
    return [
        Flag("add-host", "", LIST, help="Add a custom host-to-IP mapping (host:ip)", validate=validate_extra_host),
        Flag("dns", "", LIST, help="Set custom DNS servers", validate=validate_ip_address),
        Flag("dns-option", "", LIST, help="Set DNS options", aliases=("dns-opt",)),
        Flag("dns-search", "", LIST, help="Set custom DNS search domains", validate=validate_dns_search),
        Flag("domainname", "", STRING, help="Container NIS domain name"),
        Flag("expose", "", LIST, help="Expose a port or a range of ports"),
        Flag("health-cmd", "", STRING, help="Command to run to check health"),
        Flag("health-interval", "", STRING, metavar=duration, validate=parse_duration,
             help="Time between running the check (ms|s|m|h) (default 0s)"),
        Flag("health-retries", "", INT, 0, help="Consecutive failures needed to report unhealthy"),
        Flag("health-start-interval", "", STRING, metavar=duration, validate=parse_duration,
             help="Time between running the check during the start period (ms|s|m|h) (default 0s)"),
        Flag("health-start-period", "", STRING, metavar=duration, validate=parse_duration,
             help="Start period for the container to initialize before starting health-retries countdown "
                  "(ms|s|m|h) (default 0s)"),
        Flag("health-timeout", "", STRING, metavar=duration, validate=parse_duration,
             help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)"),
        Flag("ip", "", STRING, help="IPv4 address (e.g., 172.30.100.104)"),
        Flag("ip6", "", STRING, help="IPv6 address (e.g., 2001:db8::33)"),
        Flag("log-driver", "", STRING, help="Logging driver for the container"),
        Flag("log-opt", "", LIST, help="Log driver options"),
        Flag("mac-address", "", STRING, help="Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
        Flag("network", "", LIST, metavar="network", help="Connect a container to a network",
             validate=parse_network_opt, aliases=("net",)),
        Flag("network-alias", "", LIST, help="Add network-scoped alias for the container", aliases=("net-alias",)),
        Flag("no-healthcheck", "", BOOL, help="Disable any container-specified HEALTHCHECK"),
        Flag("publish", "p", LIST, help="Publish a container's port(s) to the host"),
        Flag("publish-all", "P", BOOL, help="Publish all exposed ports to random ports"),
        Flag("restart", "", STRING, "no", help="Restart policy to apply when a container exits"),
        Flag("stop-signal", "", STRING, help="Signal to stop the container"),
        Flag("stop-timeout", "", INT, help="Timeout (in seconds) to stop a container"),
    ]


# ---------------------------------------------------------------- ports (go-connections/nat)


def _parse_port_range(text: str) -> tuple[int, int]:
    """nat.ParsePortRange: "80" or "8000-9000" (uint16 each), raising ValueError."""
    if text == "":
        raise ValueError("empty string specified for ports")
    if "-" not in text:
        start = _uint16(text)
        return start, start
    parts = text.split("-")
    start, end = _uint16(parts[0]), _uint16(parts[1])
    if end < start:
        raise ValueError(f"invalid range specified for port: {text}")
    return start, end


def _uint16(text: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise ValueError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    value = int(text)
    if value > 65535:
        raise ValueError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


def split_proto_port(raw: str) -> tuple[str, str]:
    """nat.SplitProtoPort: "80/udp" -> ("udp", "80"); the protocol defaults to tcp."""
    parts = raw.split("/")
    if not raw or not parts[0]:
        return "", ""
    if len(parts) == 1 or not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


def _split_parts(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    n = len(parts)
    if n == 1:
        return "", "", parts[0]
    if n == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:n - 2]), parts[n - 2], parts[n - 1]


def parse_port_spec(raw: str) -> list[tuple[str, dict[str, str]]]:
    """nat.ParsePortSpec: [ip:][hostPort:]containerPort[/proto], ranges included, into
    (port key "80/tcp", {"HostIp", "HostPort"}) pairs."""
    ip, host_port, container_port = _split_parts(raw)
    proto, container_port = split_proto_port(container_port)
    if ip.startswith("["):
        if not ip.endswith("]"):
            raise ValueError(f"invalid IP address {ip}: address {ip}:: missing ']' in address")
        ip = ip[1:-1]
    if ip and _parse_ip(ip) is None:
        raise ValueError(f"invalid IP address: {ip}")
    if container_port == "":
        raise ValueError(f"no port specified: {raw}<empty>")
    try:
        start, end = _parse_port_range(container_port)
    except ValueError:
        raise ValueError(f"invalid containerPort: {container_port}") from None
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = _parse_port_range(host_port)
        except ValueError:
            raise ValueError(f"invalid hostPort: {host_port}") from None
        if end - start != host_end - host_start and end != start:
            raise ValueError(f"invalid ranges specified for container and host Ports: {container_port} and {host_port}")
    if proto.lower() not in ("tcp", "udp", "sctp"):
        raise ValueError(f"invalid proto: {proto}")
    out = []
    for i in range(end - start + 1):
        hp = str(host_start + i) if host_port else ""
        if start == end and host_start != host_end:
            hp = f"{hp}-{host_end}"      # one container port, a host range to pick from
        out.append((f"{start + i}/{proto.lower()}", {"HostIp": ip, "HostPort": hp}))
    return out


def _standard_notation(raw: str) -> str:
    """-p's long form published=8080,target=80,protocol=udp in the short notation."""
    if "=" not in raw:
        return raw
    params = {"protocol": "tcp"}
    for param in raw.split(","):
        key, sep, value = param.partition("=")
        if not sep or not key:
            raise ValueError(f"invalid publish opts format (should be name=value but got '{param}')")
        params[key] = value
    return f"{params.get('published', '')}:{params.get('target', '')}/{params['protocol']}"


def ports_from_flags(publish: list[str], expose: list[str]) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """ExposedPorts and PortBindings for -p and --expose."""
    exposed: dict[str, dict] = {}
    bindings: dict[str, list[dict]] = {}
    for raw in publish:
        for key, binding in parse_port_spec(_standard_notation(raw)):
            exposed.setdefault(key, {})
            bindings.setdefault(key, []).append(binding)
    for raw in expose:
        if ":" in raw:
            raise ValueError(f"invalid port format for --expose: {raw}")
        proto, port = split_proto_port(raw)
        try:
            start, end = _parse_port_range(port)
        except ValueError as exc:
            raise ValueError(f"invalid range format for --expose: {raw}, error: {exc}") from None
        for p in range(start, end + 1):
            exposed.setdefault(f"{p}/{proto}", {})
    return exposed, bindings


# ---------------------------------------------------------------- restart, logging, healthcheck


def parse_restart_policy(policy: str) -> dict[str, Any]:
    """opts.ParseRestartPolicy: NAME[:MAX]; the daemon validates the name."""
    if policy == "":
        return {}
    name, sep, count = policy.partition(":")
    if sep and not name:
        raise ValueError("invalid restart policy format: no policy provided before colon")
    retries = 0
    if count:
        try:
            retries = int(count)
        except ValueError:
            raise ValueError("invalid restart policy format: maximum retry count must be an integer") from None
    return {"Name": name, "MaximumRetryCount": retries}


def _kv_map(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _healthcheck(opts: Options) -> dict[str, Any] | None:
    durations = (("health_interval", "Interval", "--health-interval"),
                 ("health_timeout", "Timeout", "--health-timeout"),
                 ("health_start_period", "StartPeriod", "--health-start-period"),
                 ("health_start_interval", "StartInterval", "--health-start-interval"))
    have = bool(opts.health_cmd) or bool(opts.health_retries) or any(getattr(opts, d) for d, _, _ in durations)
    if opts.no_healthcheck:
        if have:
            raise ValueError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not have:
        return None
    for dest, _, name in durations[:2]:
        if (getattr(opts, dest) or 0) < 0:
            raise ValueError(f"{name} cannot be negative")
    if opts.health_retries < 0:
        raise ValueError("--health-retries cannot be negative")
    for dest, _, name in durations[2:]:
        if (getattr(opts, dest) or 0) < 0:
            raise ValueError(f"{name} cannot be negative")
    health: dict[str, Any] = {}
    if opts.health_cmd:
        health["Test"] = ["CMD-SHELL", opts.health_cmd]
    for dest, key, _ in durations:
        if getattr(opts, dest):
            health[key] = getattr(opts, dest)
    if opts.health_retries:
        health["Retries"] = opts.health_retries
    return health


# ---------------------------------------------------------------- networks


def _is_mac(text: str) -> bool:
    """Go's net.ParseMAC for the 6-byte forms docker uses (aa:bb:..., aa-bb-..., aabb.ccdd.eeff)."""
    t = text.strip()
    return bool(re.fullmatch(r"[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}", t)
                or re.fullmatch(r"[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}", t))


def _endpoint(opt: dict[str, Any]) -> dict[str, Any] | None:
    """parseNetworkAttachmentOpt: one EndpointSettings, None when it carries nothing."""
    if not opt["target"].strip():
        raise ValueError("no name set for network")
    if not is_user_defined(opt["target"]) and opt["aliases"]:
        raise ValueError("network-scoped aliases are only supported for user-defined networks")
    ep: dict[str, Any] = {}
    if opt["aliases"] or opt["long"]:
        ep["Aliases"] = list(opt["aliases"])
    if opt["driver_opts"]:
        ep["DriverOpts"] = dict(opt["driver_opts"])
    if opt["ipv4"] or opt["ipv6"] or opt["link_local_ips"]:
        ipam: dict[str, Any] = {}
        for key, value in (("IPv4Address", opt["ipv4"]), ("IPv6Address", opt["ipv6"]),
                           ("LinkLocalIPs", opt["link_local_ips"])):
            if value:
                ipam[key] = value
        ep["IPAMConfig"] = ipam
    if opt["mac"]:
        if not _is_mac(opt["mac"]):
            raise ValueError(f"{opt['mac']} is not a valid mac address")
        ep["MacAddress"] = opt["mac"]
    return ep or None


def _endpoints(opts: Options) -> tuple[str, dict[str, Any]]:
    """parseNetworkOpts: NetworkMode and EndpointsConfig; --ip, --ip6, --mac-address and --network-alias
    apply to the first network (or to "default" when no --network was given)."""
    networks = [dict(n, aliases=list(n["aliases"]), link_local_ips=list(n["link_local_ips"]))
                for n in opts.network]
    no_network = not networks
    if no_network:
        networks = [parse_network_opt("default")]
    first = networks[0]
    for given, theirs, what in ((opts.network_alias, first["aliases"], "--network-alias and per-network alias"),
                                (opts.ip, first["ipv4"], "--ip and per-network IPv4 address"),
                                (opts.ip6, first["ipv6"], "--ip6 and per-network IPv6 address"),
                                (opts.mac_address, first["mac"], "--mac-address and per-network MAC address")):
        if given and theirs:
            raise ValueError(f"conflicting options: cannot specify both {what}")
    if opts.network_alias:
        first["aliases"] = list(opts.network_alias)
    first["ipv4"] = opts.ip or first["ipv4"]
    first["ipv6"] = opts.ip6 or first["ipv6"]
    first["mac"] = opts.mac_address or first["mac"]
    endpoints: dict[str, Any] = {}
    kinds = set()
    for i, n in enumerate(networks):
        if not no_network:
            kinds.add(is_user_defined(n["target"]))
        ep = _endpoint(n)
        if n["target"] in endpoints:
            raise ValueError(f'network "{n["target"]}" is specified multiple times')
        if not no_network and i == 0 and len(networks) == 1 and ep is None:
            continue      # a lone network without options: the daemon makes its endpoint
        endpoints[n["target"]] = ep or {}
    if len(kinds) == 2:
        raise ValueError("conflicting options: cannot attach both user-defined and non-user-defined network-modes")
    return first["target"], endpoints


def apply_run_flags(opts: Options, body: dict[str, Any]) -> None:
    """Fill the create request's Config, HostConfig and NetworkingConfig from this module's flags."""
    if opts.mac_address and not _is_mac(opts.mac_address):
        raise ValueError(f"{opts.mac_address} is not a valid mac address")
    exposed, bindings = ports_from_flags(opts.publish, opts.expose)
    restart = parse_restart_policy(opts.restart)
    if opts.log_driver == "none" and opts.log_opt:
        raise ValueError(f"invalid logging opts for driver {opts.log_driver}")
    health = _healthcheck(opts)
    hc = body["HostConfig"]
    if hc.get("AutoRemove") and restart and restart["Name"] not in ("", "no"):
        raise ValueError("conflicting options: cannot specify both --restart and --rm")
    mode, endpoints = _endpoints(opts)
    body["Domainname"] = opts.domainname or ""
    if exposed:
        body["ExposedPorts"] = exposed
    if health is not None:
        body["Healthcheck"] = health
    if opts.stop_signal:
        body["StopSignal"] = opts.stop_signal
    if opts.given("stop_timeout"):
        body["StopTimeout"] = opts.stop_timeout
    hc.update({
        "NetworkMode": mode,
        "PortBindings": bindings,
        "PublishAllPorts": opts.publish_all,
        "Dns": list(opts.dns), "DnsSearch": list(opts.dns_search), "DnsOptions": list(opts.dns_option),
        "ExtraHosts": list(opts.add_host) or None,
        "LogConfig": {"Type": opts.log_driver or "", "Config": _kv_map(opts.log_opt)},
    })
    if restart:
        hc["RestartPolicy"] = restart
    body["NetworkingConfig"] = {"EndpointsConfig": endpoints}
