"""Network commands: network create/ls/inspect/rm/connect/disconnect/prune, and `port`."""
from __future__ import annotations

import json

from pyd.cli.common import Cli, StatusError, api_error_message, encode_filters, validate_filter
from pyd.cli.flags import BOOL, LIST, STRING, Flag, Options, Spec
from pyd.cli.template import FormatContext
from pyd.cli import formatting as fmt


def _is_api_error(exc: BaseException) -> bool:
    from pyd import proto
    return isinstance(exc, proto.APIError)


SPECS = {
    "network_create": Spec("[OPTIONS] NETWORK", "Create a network", [
        Flag("attachable", "", BOOL, help="Enable manual container attachment"),
        Flag("driver", "d", STRING, "bridge", help="Driver to manage the Network"),
        Flag("gateway", "", LIST, help="IPv4 or IPv6 Gateway for the master subnet"),
        Flag("internal", "", BOOL, help="Restrict external access to the network"),
        Flag("ip-range", "", LIST, help="Allocate container ip from a sub-range"),
        Flag("label", "", LIST, help="Set metadata on a network"),
        Flag("opt", "o", LIST, help="Set driver specific options"),
        Flag("subnet", "", LIST, help="Subnet in CIDR format that represents a network segment"),
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
        Flag("alias", "", LIST, help="Add network-scoped alias for the container"),
        Flag("ip", "", STRING, help="IPv4 address (e.g., \"172.30.100.104\")"),
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
    ipam = []
    for i, subnet in enumerate(opts.subnet):
        entry = {"Subnet": subnet}
        if i < len(opts.gateway):
            entry["Gateway"] = opts.gateway[i]
        if i < len(opts.ip_range):
            entry["IPRange"] = opts.ip_range[i]
        ipam.append(entry)
    if not opts.subnet and (opts.gateway or opts.ip_range):
        raise StatusError(1, "every ip-range or gateway must have a corresponding subnet")
    body = {"Name": args[0], "Driver": opts.driver, "Internal": opts.internal, "Attachable": opts.attachable,
            "IPAM": {"Driver": "default", "Config": ipam, "Options": {}},
            "Options": dict(o.partition("=")[::2] for o in opts.opt),
            "Labels": dict(l.partition("=")[::2] for l in opts.label)}
    result = cli.client().request("POST", "/networks/create", body=body).json()
    cli.out(result["Id"] + "\n")
    return 0


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
        return ",".join(f"{k}={v}" for k, v in sorted((self.n.get("Labels") or {}).items()))

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
    from pyd.cli.template import Template
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
    errors = []
    for name in args:
        try:
            cli.client().request("DELETE", f"/networks/{name}")
        except Exception as exc:
            if not _is_api_error(exc):
                raise
            if opts.force and getattr(exc, "status", 0) == 404:
                continue
            errors.append(api_error_message(exc))
            continue
        cli.out(name + "\n")
    if errors:
        raise StatusError(1, "\n".join(errors))
    return 0


def cmd_network_connect(cli: Cli, opts: Options, args: list[str]) -> int:
    conf: dict = {"Aliases": opts.alias or None}
    if opts.ip:
        conf["IPAMConfig"] = {"IPv4Address": opts.ip}
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
    """`docker port`: from the container's NetworkSettings.Ports, as the docker CLI does."""
    c = cli.client().request("GET", f"/containers/{args[0]}/json").json()
    ports = (c.get("NetworkSettings") or {}).get("Ports") or {}
    if len(args) == 2:
        port, _, proto = args[1].partition("/")
        key = f"{port}/{proto or 'tcp'}"
        binds = ports.get(key)
        if not binds:
            raise StatusError(1, f"Error: No public port '{key}' published for {args[0]}")
        for b in binds:
            cli.out(f"{b['HostIp']}:{b['HostPort']}\n")
        return 0
    lines = []
    for key, binds in ports.items():
        for b in binds or []:
            lines.append((int(key.split("/")[0]), key, f"{key} -> {b['HostIp']}:{b['HostPort']}"))
    cli.out("".join(line + "\n" for _, _, line in sorted(lines)))
    return 0
