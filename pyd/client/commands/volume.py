"""Volume commands: volume create/ls/rm/prune (volume inspect is system's inspect --type volume)."""
from __future__ import annotations

TYPE_CHECKING = False     # typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

from pyd.client.common import (PROG, Cli, StatusError, encode_filters, for_each, validate_filter)
from pyd.client.flags import BOOL, LIST, STRING, Flag, Options, Spec
from pyd.client import formatting as fmt
from pyd.client.gotemplate import FormatContext

_FORMAT_HELP = ("Format output using a custom template: 'table': Print output in table format with column "
                "headers (default) 'table TEMPLATE': Print output in table format using the given Go "
                "template 'json': Print in JSON format 'TEMPLATE': Print output using the given Go template.")


def _validate_opt(raw: str) -> str:
    if "=" not in raw:
        raise ValueError("invalid key value pair format in driver options")
    return raw


SPECS: dict[str, Spec] = {
    "volume_create": Spec("[OPTIONS] [VOLUME]", "Create a volume", [
        Flag("driver", "d", STRING, "local", help="Specify volume driver name"),
        Flag("label", "", LIST, help="Set metadata for a volume"),
        Flag("name", "", STRING, help="Specify volume name", hidden=True),
        Flag("opt", "o", LIST, help="Set driver specific options", validate=_validate_opt),
    ], max_args=1, aliases=(f"{PROG} volume create",)),
    "volume_ls": Spec("[OPTIONS]", "List volumes", [
        Flag("cluster", "", BOOL, help="Display only cluster volumes, and use cluster volume list formatting",
             hidden=True),
        Flag("filter", "f", LIST, metavar="filter", help="Provide filter values (e.g. \"dangling=true\")",
             validate=validate_filter),
        Flag("format", "", STRING, help=_FORMAT_HELP),
        Flag("quiet", "q", BOOL, help="Only display volume names"),
    ], max_args=0, aliases=(f"{PROG} volume ls", f"{PROG} volume list")),
    "volume_rm": Spec("[OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes", [
        Flag("force", "f", BOOL, help="Force the removal of one or more volumes"),
    ], min_args=1, aliases=(f"{PROG} volume rm", f"{PROG} volume remove")),
    "volume_prune": Spec("[OPTIONS]", "Remove unused local volumes", [
        Flag("all", "a", BOOL, help="Remove all unused volumes, not just anonymous ones"),
        Flag("filter", "", LIST, metavar="filter", help="Provide filter values (e.g. \"label=<label>\")",
             validate=validate_filter),
        Flag("force", "f", BOOL, help="Do not prompt for confirmation"),
    ], max_args=0, aliases=(f"{PROG} volume prune",)),
}

VOLUME_HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Scope": "SCOPE",
                  "Labels": "LABELS", "CreatedAt": "CREATED", "Size": "SIZE", "Links": "LINKS"}
VOLUME_TABLE = "table {{.Driver}}\t{{.Name}}"


class VolumeRow(FormatContext):
    go_type = "*formatter.volumeContext"

    def __init__(self, v: dict[str, Any]) -> None:
        self.v = v

    def field_Name(self) -> str:
        return self.v.get("Name", "")

    def field_Driver(self) -> str:
        return self.v.get("Driver", "")

    def field_Scope(self) -> str:
        return self.v.get("Scope", "")

    def field_Mountpoint(self) -> str:
        return self.v.get("Mountpoint", "")

    def field_CreatedAt(self) -> str:
        return self.v.get("CreatedAt", "")

    def field_Labels(self) -> str:
        return fmt.labels_text(self.v.get("Labels"))

    def field_Label(self, name: str) -> str:
        return (self.v.get("Labels") or {}).get(name, "")

    def field_Size(self) -> str:
        return "N/A"

    def field_Links(self) -> str:
        return "N/A"


def cmd_volume_create(cli: Cli, opts: Options, args: list[str]) -> int:
    name = args[0] if args else (opts.name or "")
    if args and opts.name and opts.name != args[0]:
        raise StatusError(1, "conflicting options: cannot specify a volume-name through both --name and as a "
                             "positional arg")
    body = {"Name": name, "Driver": opts.driver,
            "DriverOpts": dict(o.split("=", 1) for o in opts.opt),
            "Labels": dict((lbl.split("=", 1) + [""])[:2] for lbl in opts.label)}
    v = cli.client().request("POST", "/volumes/create", body=body).json()
    cli.out(v["Name"] + "\n")
    return 0


def cmd_volume_ls(cli: Cli, opts: Options, args: list[str]) -> int:
    query = {}
    filters = encode_filters(opts.filter)
    if filters:
        query["filters"] = filters
    resp = cli.client().request("GET", "/volumes", query=query or None).json() or {}
    volumes = sorted(resp.get("Volumes") or [], key=lambda v: v.get("Name", ""))
    template = "{{.Name}}" if opts.quiet else (opts.format or VOLUME_TABLE)
    if template == "table":
        template = VOLUME_TABLE
    try:
        cli.out(fmt.render(template, [VolumeRow(v) for v in volumes], VOLUME_HEADERS))
    except fmt.FormatError as exc:
        raise StatusError(1, str(exc)) from None
    return 0


def cmd_volume_rm(cli: Cli, opts: Options, args: list[str]) -> int:
    query = {"force": "1"} if opts.force else None
    for_each(cli, args, lambda n: cli.client().request("DELETE", f"/volumes/{n}", query=query))
    return 0


def cmd_volume_prune(cli: Cli, opts: Options, args: list[str]) -> int:
    if not opts.force:
        warning = ("WARNING! This will remove all local volumes not used by at least one container.\n" if opts.all
                   else "WARNING! This will remove anonymous local volumes not used by at least one container.\n")
        cli.out(warning + "Are you sure you want to continue? [y/N] ")
        cli.stdout.flush()
        answer = cli.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise StatusError(0, "")
    items = list(opts.filter) + (["all=true"] if opts.all else [])
    filters = encode_filters(items)
    resp = cli.client().request("POST", "/volumes/prune", query={"filters": filters} if filters else None).json()
    deleted = resp.get("VolumesDeleted") or []
    if deleted:
        cli.out("Deleted Volumes:\n" + "".join(n + "\n" for n in deleted) + "\n")
    cli.out(f"Total reclaimed space: {fmt.human_size(resp.get('SpaceReclaimed') or 0)}\n")
    return 0
