"""Network commands: network create/ls/inspect/rm/connect/disconnect/prune, and `port`."""
from __future__ import annotations

import json

from pyd.client.common import (Cli, StatusError, api_error_message, encode_filters, for_each, is_not_found,
                            validate_filter)
from pyd.client.flags import BOOL, LIST, STRING, Flag, Options, Spec
from pyd.client.gotemplate import FormatContext
from pyd.client import formatting as fmt


def _is_api_error(exc: BaseException) -> bool:
    from pyd.client.api import APIError
    return isinstance(exc, APIError)


def _csv(raw: str) -> list[str]:
    """pflag's StringSlice: one flag may carry several comma-separated (CSV-quoted) values."""
    import csv
    if raw == "":
        return []
    try:
        return next(csv.reader([raw]))
    except csv.Error as exc:
        raise ValueError(str(exc)) from None


def _key_value(raw: str) -> str:
    """opts.MapOpts without a validator: KEY=VALUE kept as given (a bare KEY maps to "")."""
    return raw


def _flat(lists: list[list[str]]) -> list[str]:
    return [v for values in lists for v in values]


SPECS = {
    "network_create": Spec("[OPTIONS] NETWORK", "Create a network", [
        Flag("attachable", "", BOOL, help="Enable manual container attachment"),
        Flag("aux-address", "", LIST, metavar="map", help="Auxiliary IPv4 or IPv6 addresses used by Network driver",
             validate=_key_value),
        Flag("driver", "d", STRING, "bridge", help="Driver to manage the Network"),
        Flag("gateway", "", LIST, metavar="strings", help="IPv4 or IPv6 Gateway for the master subnet",
             validate=_csv),
        Flag("internal", "", BOOL, help="Restrict external access to the network"),
        Flag("ip-range", "", LIST, metavar="strings", help="Allocate container ip from a sub-range", validate=_csv),
        Flag("ipam-driver", "", STRING, "default", help="IP Address Management Driver"),
        Flag("ipam-opt", "", LIST, metavar="map", help="Set IPAM driver specific options", validate=_key_value),
        Flag("ipv6", "", BOOL, help="Enable or disable IPv6 networking"),
        Flag("label", "", LIST, help="Set metadata on a network"),
        Flag("opt", "o", LIST, metavar="map", help="Set driver specific options", validate=_key_value),
        Flag("scope", "", STRING, help="Control the network's scope"),
        Flag("subnet", "", LIST, metavar="strings", help="Subnet in CIDR format that represents a network segment",
             validate=_csv),
    ], min_args=1, max_args=1),
    "network_ls": Spec("[OPTIONS]", "List networks", [
        Flag("filter", "f", LIST, help="Provide filter values (e.g. \"driver=bridge\")", validate=validate_filter),
        Flag("format", "", STRING, help="Format output using a custom template"),
        Flag("no-trunc", "", BOOL, help="Do not truncate the output"),
        Flag("quiet", "q", BOOL, help="Only display network IDs"),
    ], max_args=0, aliases=("list",)),
    "network_inspect": Spec("[OPTIONS] NETWORK [NETWORK...]", "Display detailed information on one or more networks", [
        Flag("format", "f", STRING, help="Format output using a custom template"),
        Flag("verbose", "v", BOOL, help="Verbose output for diagnostics"),
    ], min_args=1),
    "network_rm": Spec("NETWORK [NETWORK...]", "Remove one or more networks", [
        Flag("force", "f", BOOL, help="Do not error if the network does not exist"),
    ], min_args=1, aliases=("remove",)),
    "network_connect": Spec("[OPTIONS] NETWORK CONTAINER", "Connect a container to a network", [
        Flag("alias", "", LIST, metavar="strings", help="Add network-scoped alias for the container", validate=_csv),
        Flag("driver-opt", "", LIST, metavar="strings", help="driver options for the network", validate=_csv),
        Flag("ip", "", STRING, help="IPv4 address (e.g., \"172.30.100.104\")"),
        Flag("ip6", "", STRING, help="IPv6 address (e.g., \"2001:db8::33\")"),
    ], min_args=2, max_args=2),
    "network_disconnect": Spec("[OPTIONS] NETWORK CONTAINER", "Disconnect a container from a network", [
        Flag("force", "f", BOOL, help="Force the container to disconnect from a network"),
    ], min_args=2, max_args=2),
    "network_prune": Spec("[OPTIONS]", "Remove all unused networks", [
        Flag("filter", "", LIST, help="Provide filter values (e.g. \"until=<timestamp>\")", validate=validate_filter),
        Flag("force", "f", BOOL, help="Do not prompt for confirmation"),
    ], max_args=0),
    "port": Spec("CONTAINER [PRIVATE_PORT[/PROTO]]", "List port mappings or a specific mapping for the container",
                 [], min_args=1, max_args=2),
}


def cmd_network_create(cli: Cli, opts: Options, args: list[str]) -> int:
    try:
        ipam = ipam_config(_flat(opts.subnet), _flat(opts.ip_range), _flat(opts.gateway),
                           dict(a.partition("=")[::2] for a in opts.aux_address))
    except ValueError as exc:
        raise StatusError(1, str(exc)) from None
    body = {"Name": args[0], "Driver": opts.driver, "Scope": opts.scope or "", "Internal": opts.internal,
            "Attachable": opts.attachable, **({"EnableIPv6": True} if opts.ipv6 else {}),
            "IPAM": {"Driver": opts.ipam_driver, "Config": ipam,
                     "Options": dict(o.partition("=")[::2] for o in opts.ipam_opt)},
            "Options": dict(o.partition("=")[::2] for o in opts.opt),
            "Labels": dict(label.partition("=")[::2] for label in opts.label)}
    result = cli.client().request("POST", "/networks/create", body=body).json()
    cli.out(result["Id"] + "\n")
    return 0


def ipam_config(subnets: list[str], ranges: list[str], gateways: list[str],
                aux: dict[str, str]) -> list[dict]:
    """docker's createIPAMConfig: each ip-range, gateway and aux-address goes with the subnet holding it."""
    import ipaddress
    if len(subnets) < len(ranges) or len(subnets) < len(gateways):
        raise ValueError("every ip-range or gateway must have a corresponding subnet")

    def net(cidr: str):
        try:
            return ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ValueError(f"invalid subnet: invalid CIDR address: {cidr}") from None

    def contains(subnet: str, data: str) -> bool:
        try:
            ip = (ipaddress.ip_interface(data).ip if "/" in data else ipaddress.ip_address(data))
        except ValueError:
            if "/" in data:
                raise ValueError(f"invalid CIDR address: {data}") from None
            return False
        return ip in net(subnet)

    configs: dict[str, dict] = {}
    for s in subnets:
        for other in configs:
            if net(s).overlaps(net(other)):
                raise ValueError("multiple overlapping subnet configuration is not supported")
        configs[s] = {"Subnet": s}
    for field, values, what, plural in (("IPRange", ranges, "range", "ranges"),
                                        ("Gateway", gateways, "gateway", "gateways")):
        for value in values:
            match = False
            for s in subnets:
                if not contains(s, value):
                    continue
                if configs[s].get(field):
                    on = "on the same subnet" if field == "IPRange" else "for the same subnet"
                    raise ValueError(f"cannot configure multiple {plural} ({value}, {configs[s][field]}) {on} ({s})")
                configs[s][field] = value
                match = True
            if not match:
                raise ValueError(f"no matching subnet for {what} {value}")
    for key, value in aux.items():
        holders = [s for s in subnets if contains(s, value)]
        if not holders:
            raise ValueError(f"no matching subnet for aux-address {value}")
        for s in holders:
            configs[s].setdefault("AuxiliaryAddresses", {})[key] = value
    return list(configs.values())


class _NetworkRow(FormatContext):
    go_type = "*formatter.networkContext"

    def __init__(self, n: dict, trunc: bool) -> None:
        self.n, self.trunc = n, trunc

    def field_ID(self) -> str:
        return self.n["Id"][:12] if self.trunc else self.n["Id"]

    def field_Name(self) -> str:
        return self.n["Name"]

    def field_Driver(self) -> str:
        return self.n["Driver"]

    def field_Scope(self) -> str:
        return self.n.get("Scope", "local")

    def field_IPv6(self) -> str:
        return str(bool(self.n.get("EnableIPv6"))).lower()

    def field_Internal(self) -> str:
        return str(bool(self.n.get("Internal"))).lower()

    def field_CreatedAt(self) -> str:
        return self.n.get("Created", "")

    def field_Labels(self) -> str:
        return fmt.labels_text(self.n.get("Labels"))

    def field_Label(self, name: str) -> str:
        return (self.n.get("Labels") or {}).get(name, "")


NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
                   "Internal": "INTERNAL", "CreatedAt": "CREATED AT", "Labels": "LABELS"}
NETWORK_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"


def cmd_network_ls(cli: Cli, opts: Options, args: list[str]) -> int:
    query = {}
    encoded = encode_filters(opts.filter)
    if encoded:
        query["filters"] = encoded
    nets = cli.client().request("GET", "/networks", query=query).json() or []
    nets.sort(key=lambda n: n["Name"])
    template = "{{.ID}}" if opts.quiet else (opts.format if opts.format and opts.format != "table" else NETWORK_TABLE)
    try:
        cli.out(fmt.render(template, [_NetworkRow(n, not opts.no_trunc) for n in nets], NETWORK_HEADERS))
    except fmt.FormatError as exc:
        raise StatusError(1, str(exc)) from None
    return 0


def cmd_network_inspect(cli: Cli, opts: Options, args: list[str]) -> int:
    from pyd.client.gotemplate import Template
    found, errors = [], []
    for name in args:
        try:
            found.append(cli.client().request("GET", f"/networks/{name}").json())
        except Exception as exc:
            if not _is_api_error(exc):
                raise
            errors.append(api_error_message(exc))
    if opts.format:
        tpl = Template(opts.format)
        for n in found:
            cli.out(tpl.execute(n) + "\n")
    else:
        cli.out(json.dumps(found, indent=4) + "\n")
    if errors:
        raise StatusError(1, "\n".join(errors))
    return 0


def cmd_network_rm(cli: Cli, opts: Options, args: list[str]) -> int:
    for_each(cli, args, lambda name: cli.client().request("DELETE", f"/networks/{name}"),
             tolerate=lambda exc: opts.force and is_not_found(exc))
    return 0


def cmd_network_connect(cli: Cli, opts: Options, args: list[str]) -> int:
    ipam = {k: v for k, v in (("IPv4Address", opts.ip), ("IPv6Address", opts.ip6)) if v}
    conf: dict = {"IPAMConfig": ipam, "Aliases": _flat(opts.alias),
                  "DriverOpts": dict(o.partition("=")[::2] for o in _flat(opts.driver_opt))}
    cli.client().request("POST", f"/networks/{args[0]}/connect", body={"Container": args[1], "EndpointConfig": conf})
    return 0


def cmd_network_disconnect(cli: Cli, opts: Options, args: list[str]) -> int:
    cli.client().request("POST", f"/networks/{args[0]}/disconnect", body={"Container": args[1], "Force": opts.force})
    return 0


def cmd_network_prune(cli: Cli, opts: Options, args: list[str]) -> int:
    if not opts.force:
        cli.out("WARNING! This will remove all custom networks not used by at least one container.\n"
                "Are you sure you want to continue? [y/N] ")
        cli.stdout.flush()
        import sys
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    query = {}
    encoded = encode_filters(opts.filter)
    if encoded:
        query["filters"] = encoded
    result = cli.client().request("POST", "/networks/prune", query=query).json() or {}
    gone = result.get("NetworksDeleted") or []
    if gone:
        cli.out("Deleted Networks:\n" + "".join(n + "\n" for n in gone))
    return 0


def cmd_port(cli: Cli, opts: Options, args: list[str]) -> int:
    """`docker port`: from the container's NetworkSettings.Ports, naturally sorted, as the docker CLI does."""
    c = cli.client().request("GET", f"/containers/{args[0]}/json").json()
    ports = (c.get("NetworkSettings") or {}).get("Ports") or {}
    out = []
    if len(args) == 2:
        port, _, proto = args[1].partition("/")
        if not port.isdigit() or not port.isascii() or int(port) > 65535:
            why = "value out of range" if port.isdigit() and port.isascii() else "invalid syntax"
            raise StatusError(1, f'Error: invalid port ({port}): strconv.ParseUint: parsing "{port}": {why}')
        binds = ports.get(f"{port}/{proto or 'tcp'}")
        if not binds:
            raise StatusError(1, f"Error: No public port '{args[1]}' published for {args[0]}")
        out = [_join_host_port(b.get("HostIp", ""), b.get("HostPort", "")) for b in binds]
    else:
        out = [f"{key} -> {_join_host_port(b.get('HostIp', ''), b.get('HostPort', ''))}"
               for key, binds in ports.items() for b in binds or []]
    if out:
        cli.out("\n".join(sorted(out, key=_natural_key)) + "\n")
    return 0


def _join_host_port(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _natural_key(text: str) -> list:
    """sortorder.NaturalLess: digit runs compare as numbers, the rest as text."""
    import re
    return [(0, int(chunk), "") if chunk.isdigit() else (1, 0, chunk) for chunk in re.findall(r"\d+|\D+", text)]
