"""Volume commands (volume create/ls/inspect/rm/prune) and run/create's mount flags
(-v, --mount, --tmpfs, --volumes-from), turned into the API's Binds/Mounts/Tmpfs/VolumesFrom as docker's CLI does."""
from __future__ import annotations

import os

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


# ---------------------------------------------------------------- run/create mount flags

def mount_flags() -> list[Flag]:
    return [
        Flag("volume", "v", LIST, help="Bind mount a volume"),
        Flag("mount", "", LIST, metavar="mount", help="Attach a filesystem mount to the container",
             validate=parse_mount_flag),
        Flag("tmpfs", "", LIST, help="Mount a tmpfs directory"),
        Flag("volumes-from", "", LIST, help="Mount volumes from the specified container(s)"),
    ]


def ram_in_bytes(value: str) -> int:
    """docker's units.RAMInBytes: "64m" -> 67108864 (binary units)."""
    v = value.strip().lower()
    for suffix in ("ib", "b"):
        if v.endswith(suffix) and len(v) > len(suffix) and not v[:-len(suffix)][-1:].isdigit():
            v = v[:-len(suffix)]
            break
    else:
        if v.endswith("b"):
            v = v[:-1]
    mult = 1
    if v and v[-1] in "kmgtp":
        mult = 1024 ** ("kmgtp".index(v[-1]) + 1)
        v = v[:-1]
    try:
        number = float(v)
    except ValueError:
        raise ValueError(f"invalid size: '{value}'") from None
    if number < 0:
        raise ValueError(f"invalid size: '{value}'")
    return int(number * mult)


def _truthy(key: str, value: str | None) -> bool:
    if value is None:
        return True
    if value.lower() in ("1", "true"):
        return True
    if value.lower() in ("0", "false"):
        return False
    raise ValueError(f"invalid value for {key}: {value}")


def parse_mount_flag(raw: str) -> dict[str, Any]:
    """--mount type=bind,src=/a,dst=/b,readonly -> an API Mount object."""
    m: dict[str, Any] = {"Type": "volume"}
    bind: dict[str, Any] = {}
    vol: dict[str, Any] = {}
    tmpfs: dict[str, Any] = {}
    for field in [f for f in raw.split(",") if f]:
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        val = value if eq else None
        if key == "type":
            m["Type"] = value
        elif key in ("source", "src"):
            m["Source"] = value
        elif key in ("target", "dst", "destination"):
            m["Target"] = value
        elif key in ("readonly", "ro"):
            m["ReadOnly"] = _truthy(key, val)
        elif key == "consistency":
            m["Consistency"] = value
        elif key == "bind-propagation":
            bind["Propagation"] = value
        elif key == "bind-nonrecursive":
            bind["NonRecursive"] = _truthy(key, val)
        elif key == "bind-create-mountpoint":
            bind["CreateMountpoint"] = _truthy(key, val)
        elif key == "volume-nocopy":
            vol["NoCopy"] = _truthy(key, val)
        elif key == "volume-label":
            k, _, v = value.partition("=")
            vol.setdefault("Labels", {})[k] = v
        elif key == "volume-driver":
            vol.setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            k, _, v = value.partition("=")
            vol.setdefault("DriverConfig", {}).setdefault("Options", {})[k] = v
        elif key == "tmpfs-size":
            tmpfs["SizeBytes"] = ram_in_bytes(value)
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(value, 8)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {value}") from None
        else:
            raise ValueError(f"unexpected key '{key}' in '{field}'")
    if m["Type"] not in ("bind", "volume", "tmpfs", "npipe", "cluster", "image"):
        raise ValueError(f"invalid value for type: {m['Type']}")
    if not m.get("Target"):
        raise ValueError("target is required")
    if bind:
        m["BindOptions"] = bind
    if vol:
        m["VolumeOptions"] = vol
    if tmpfs:
        m["TmpfsOptions"] = tmpfs
    return m


def apply_mount_flags(opts: Options, body: dict[str, Any]) -> None:
    """-v, --mount, --tmpfs, --volumes-from into the create request, as docker's CLI splits them: a -v with
    a source is a Bind (relative host paths made absolute), a bare path an anonymous volume."""
    binds, volumes = [], {}
    for spec in opts.volume:
        parts = spec.split(":")
        if len(parts) == 1 or (len(parts) == 2 and parts[0].startswith("/") and not parts[1].startswith("/")):
            volumes[parts[0]] = {}
            continue
        if parts[0].startswith("."):
            parts[0] = os.path.abspath(parts[0])
        binds.append(":".join(parts))
    hc = body["HostConfig"]
    if binds:
        hc["Binds"] = binds
    if volumes:
        body["Volumes"] = volumes
    if opts.mount:
        hc["Mounts"] = list(opts.mount)
    if opts.tmpfs:
        tmpfs = {}
        for item in opts.tmpfs:
            dest, _, options = item.partition(":")
            tmpfs[dest] = options
        hc["Tmpfs"] = tmpfs
    if opts.volumes_from:
        hc["VolumesFrom"] = list(opts.volumes_from)
