"""What each Engine API version changes, 1.24 to 1.47 (moby's api/docs/CHANGELOG.md, "version history"):
pure functions over request bodies and response documents, called by the handlers with the version the
client asked for (api_version(req)). A field a version did not know is dropped from its requests (dockerd
ignores it) and a field it still had is put back in its responses.

Behaviours that are one condition in one handler live there, named by the version that brought them:
the Content-Type of attach/logs/exec (1.42), stop and restart's `signal` (1.42), wait's `condition`
(1.30), stats' `one-shot` (1.41), volume prune taking named volumes (before 1.42), `system df`'s `type`
(1.42), `BuilderSize` (before 1.42) and `VirtualSize` (before 1.44).

Left as dockerd 20.10 shows it: a user-defined network's Aliases are those given at every version (current
dockerd adds the short ID and hostname below 1.45; dockerd 20.10, and docker-py's suite at 1.41, do not).
"""
from __future__ import annotations

from typing import Any

from pyd.daemon.api.version import version_tuple
from pyd.daemon.errors import BadParameter


def before(version: str, introduced: str) -> bool:
    """Whether a client of `version` predates the API version `introduced`."""
    return version_tuple(version) < version_tuple(introduced)


def create_body(version: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /containers/create: drop what the client's version did not have (dockerd ignores it there)."""
    host = body.get("HostConfig")
    if not isinstance(host, dict):
        host = {}
    mounts = [m for m in host.get("Mounts") or [] if isinstance(m, dict)]
    if before(version, "1.40"):
        for m in mounts:
            if isinstance(m.get("BindOptions"), dict):
                m["BindOptions"].pop("NonRecursive", None)
    if before(version, "1.41"):
        if body.get("HostConfig") is None:
            body["HostConfig"] = host
        host.setdefault("CgroupnsMode", "host")    # older clients expect the host's namespace on any host
    if before(version, "1.42"):
        host.pop("ConsoleSize", None)
        for m in mounts:
            if isinstance(m.get("BindOptions"), dict):
                m["BindOptions"].pop("CreateMountpoint", None)
    else:
        host.pop("KernelMemory", None)      # removed in 1.42: ignored whatever its value
    if before(version, "1.43"):
        host.pop("Annotations", None)
    if before(version, "1.44"):
        health = body.get("Healthcheck")
        if isinstance(health, dict):
            health.pop("StartInterval", None)
        endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig")
        if isinstance(endpoints, dict) and not body.get("MacAddress"):
            for ep in endpoints.values():
                if isinstance(ep, dict):
                    ep.pop("MacAddress", None)     # the old API had only the container-wide one
    if before(version, "1.45"):
        for m in mounts:
            if isinstance(m.get("VolumeOptions"), dict) and m["VolumeOptions"].get("Subpath"):
                raise BadParameter("VolumeOptions.Subpath needs API v1.45 or newer")
    return body


def update_body(version: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /containers/{id}/update: PidsLimit came in 1.40; KernelMemory went in 1.42."""
    if before(version, "1.40"):
        body.pop("PidsLimit", None)
    if not before(version, "1.42"):
        body.pop("KernelMemory", None)
    return body


def exec_body(version: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /containers/{id}/exec and /exec/{id}/start: ConsoleSize came in 1.42."""
    if before(version, "1.42"):
        body.pop("ConsoleSize", None)
    return body


def image_inspect(version: str, doc: dict[str, Any]) -> dict[str, Any]:
    """GET /images/{name}/json: VirtualSize until 1.43, Container and ContainerConfig until 1.44."""
    if before(version, "1.44"):
        doc["VirtualSize"] = doc.get("Size", 0)
        doc.setdefault("Created", "0001-01-01T00:00:00Z")
    if before(version, "1.45"):
        doc.setdefault("Container", "")
        doc.setdefault("ContainerConfig", dict(_EMPTY_CONTAINER_CONFIG))
    return doc


def image_list(version: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """GET /images/json: `<none>:<none>` for an untagged image until 1.42, VirtualSize until 1.43."""
    for e in entries:
        if before(version, "1.43") and not e.get("RepoTags") and not e.get("RepoDigests"):
            e["RepoTags"], e["RepoDigests"] = ["<none>:<none>"], ["<none>@<none>"]
        if before(version, "1.44"):
            e["VirtualSize"] = e.get("Size", 0)
    return entries


def image_list_filters(version: str, filters: dict[str, list[str]], legacy_filter: str | None) -> None:
    """GET /images/json?filter=: the repository glob of API 1.40 and older, a `reference` filter since."""
    if legacy_filter and before(version, "1.41") and not filters.get("reference"):
        filters["reference"] = [legacy_filter]


def info(version: str, doc: dict[str, Any]) -> dict[str, Any]:
    """GET /info: Containerd came in 1.46."""
    if before(version, "1.46"):
        doc.pop("Containerd", None)
    return doc


_EMPTY_CONTAINER_CONFIG = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None,
    "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}
