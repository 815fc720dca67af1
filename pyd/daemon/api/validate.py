"""Type checks of API request bodies with the messages Go's encoding/json gives dockerd's clients.

Docker decodes bodies into Go structs, so a field of the wrong type is a 400 such as
`json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type string`.
Unknown fields are ignored, as Go does.
"""
from __future__ import annotations

from typing import Any

from pyd.daemon.errors import BadParameter

STR, INT, BOOL, STRLIST, STRMAP, OBJ, ANY = "string", "int64", "bool", "[]string", "map[string]string", "object", "any"
# StrSlice fields accept a string or a list of strings, as Docker's strslice type does.
STRSLICE = "strslice"

CONFIG_FIELDS: dict[str, str] = {
    "Hostname": STR, "Domainname": STR, "User": STR, "AttachStdin": BOOL, "AttachStdout": BOOL,
    "AttachStderr": BOOL, "ExposedPorts": OBJ, "Tty": BOOL, "OpenStdin": BOOL, "StdinOnce": BOOL,
    "Env": STRLIST, "Cmd": STRSLICE, "Healthcheck": OBJ, "ArgsEscaped": BOOL, "Image": STR, "Volumes": OBJ,
    "WorkingDir": STR, "Entrypoint": STRSLICE, "NetworkDisabled": BOOL, "MacAddress": STR,
    "OnBuild": STRLIST, "Labels": STRMAP, "StopSignal": STR, "StopTimeout": INT, "Shell": STRLIST,
    "HostConfig": OBJ, "NetworkingConfig": OBJ,
}
HOST_CONFIG_FIELDS: dict[str, str] = {
    "Binds": STRLIST, "ContainerIDFile": STR, "LogConfig": OBJ, "NetworkMode": STR, "PortBindings": OBJ,
    "RestartPolicy": OBJ, "AutoRemove": BOOL, "VolumeDriver": STR, "VolumesFrom": STRLIST, "CapAdd": STRLIST,
    "CapDrop": STRLIST, "Dns": STRLIST, "DnsOptions": STRLIST, "DnsSearch": STRLIST, "ExtraHosts": STRLIST,
    "GroupAdd": STRLIST, "IpcMode": STR, "Cgroup": STR, "Links": STRLIST, "OomScoreAdj": INT, "PidMode": STR,
    "Privileged": BOOL, "PublishAllPorts": BOOL, "ReadonlyRootfs": BOOL, "SecurityOpt": STRLIST,
    "UTSMode": STR, "UsernsMode": STR, "ShmSize": INT, "Runtime": STR, "Isolation": STR, "CpuShares": INT,
    "Memory": INT, "NanoCpus": INT, "CgroupParent": STR, "BlkioWeight": INT, "CpuPeriod": INT,
    "CpuQuota": INT, "CpusetCpus": STR, "CpusetMems": STR, "MemoryReservation": INT, "MemorySwap": INT,
    "PidsLimit": INT, "Init": BOOL, "Tmpfs": STRMAP, "Sysctls": STRMAP, "Mounts": ANY, "Devices": ANY,
    "Ulimits": ANY, "ConsoleSize": ANY,
}


def _go_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _fits(value: Any, want: str) -> bool:
    if value is None or want == ANY:
        return True
    if want == STR:
        return isinstance(value, str)
    if want == BOOL:
        return isinstance(value, bool)
    if want == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if want == STRLIST:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if want == STRSLICE:
        return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    if want == STRMAP:
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    return isinstance(value, dict)


def check_fields(body: Any, fields: dict[str, str], struct: str) -> None:
    if body is None:
        return
    if not isinstance(body, dict):
        raise BadParameter(f"json: cannot unmarshal {_go_kind(body)} into Go value of type {struct}")
    for name, want in fields.items():
        if name in body and not _fits(body[name], want):
            go_type = {STRSLICE: "strslice.StrSlice", OBJ: "struct"}.get(want, want)
            raise BadParameter(f"json: cannot unmarshal {_go_kind(body[name])} into Go struct field "
                               f"{struct}.{name} of type {go_type}")


def check_create_body(body: Any) -> None:
    """POST /containers/create: the container config with HostConfig inside."""
    if body is None:
        raise BadParameter("invalid JSON: body is empty")
    check_fields(body, CONFIG_FIELDS, "ContainerConfigWrapper")
    check_fields(body.get("HostConfig"), HOST_CONFIG_FIELDS, "HostConfig")


def strslice(value: Any) -> list[str] | None:
    """Docker's StrSlice: null stays None, a string becomes a one-element list."""
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)
