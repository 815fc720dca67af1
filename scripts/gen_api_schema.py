#!/usr/bin/env python3
"""Write pyd/daemon/api/body_schema.py: the field types of the Engine API's JSON request bodies, read off
the API's Swagger description (docker-engine-api.yaml, v1.47), in the shape pyd's validator walks.

    python3 scripts/gen_api_schema.py [PATH/TO/docker-engine-api.yaml]

The Swagger file says what JSON type each field has; dockerd's errors name Go types (the messages of Go's
encoding/json), which the Swagger file does not carry: GO_TYPES and FIELD_GO_TYPES below add them, as
dockerd 20.10 names them (the version the tests compare with).
"""
from __future__ import annotations

import pprint
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = REPO.parent / "shared" / "reference" / "docker-engine-api.yaml"
OUTPUT = REPO / "pyd" / "daemon" / "api" / "body_schema.py"

# request bodies: (method, path) -> (Go struct name in messages, Go value type for a body of the wrong
# kind, the Swagger schema: a definition name or the route's inline schema)
ROUTES = {
    ("POST", "/containers/create"): ("ContainerConfigWrapper", "runconfig.ContainerConfigWrapper", None),
    ("POST", "/containers/{id}/update"): ("UpdateConfig", "container.UpdateConfig", None),
    ("POST", "/containers/{id}/exec"): ("ExecConfig", "types.ExecConfig", None),
    ("POST", "/exec/{id}/start"): ("ExecStartCheck", "types.ExecStartCheck", None),
    ("POST", "/commit"): ("ContainerConfigWrapper", "runconfig.ContainerConfigWrapper", "ContainerConfig"),
    ("POST", "/auth"): ("AuthConfig", "types.AuthConfig", "AuthConfig"),
    ("POST", "/volumes/create"): ("VolumeCreateBody", "volume.VolumeCreateBody", "VolumeCreateOptions"),
    ("POST", "/networks/create"): ("NetworkCreateRequest", "types.NetworkCreateRequest", None),
    ("POST", "/networks/{id}/connect"): ("NetworkConnect", "types.NetworkConnect", None),
    ("POST", "/networks/{id}/disconnect"): ("NetworkDisconnect", "types.NetworkDisconnect", None),
    ("PUT", "/volumes/{name}"): ("UpdateOptions", "volume.UpdateOptions", None),
    ("POST", "/plugins/pull"): (None, "types.PluginPrivileges", None),
    ("POST", "/plugins/{name}/upgrade"): (None, "types.PluginPrivileges", None),
    ("POST", "/plugins/{name}/set"): (None, "[]string", None),
    ("POST", "/nodes/{id}/update"): ("NodeSpec", "swarm.NodeSpec", "NodeSpec"),
    ("POST", "/swarm/init"): ("InitRequest", "swarm.InitRequest", None),
    ("POST", "/swarm/join"): ("JoinRequest", "swarm.JoinRequest", None),
    ("POST", "/swarm/update"): ("Spec", "swarm.Spec", "SwarmSpec"),
    ("POST", "/swarm/unlock"): ("UnlockRequest", "swarm.UnlockRequest", None),
    ("POST", "/services/create"): ("ServiceSpec", "swarm.ServiceSpec", None),
    ("POST", "/services/{id}/update"): ("ServiceSpec", "swarm.ServiceSpec", None),
    ("POST", "/secrets/create"): ("SecretSpec", "swarm.SecretSpec", None),
    ("POST", "/secrets/{id}/update"): ("SecretSpec", "swarm.SecretSpec", "SecretSpec"),
    ("POST", "/configs/create"): ("ConfigSpec", "swarm.ConfigSpec", None),
    ("POST", "/configs/{id}/update"): ("ConfigSpec", "swarm.ConfigSpec", "ConfigSpec"),
}

# Swagger definition -> (Go struct name, Go type as a field of that type prints)
GO_TYPES = {
    "ContainerConfig": ("Config", "container.Config"),
    "HostConfig": ("HostConfig", "container.HostConfig"),
    "NetworkingConfig": ("NetworkingConfig", "network.NetworkingConfig"),
    "EndpointSettings": ("EndpointSettings", "network.EndpointSettings"),
    "EndpointIPAMConfig": ("EndpointIPAMConfig", "network.EndpointIPAMConfig"),
    "IPAM": ("IPAM", "network.IPAM"),
    "IPAMConfig": ("IPAMConfig", "network.IPAMConfig"),
    "RestartPolicy": ("RestartPolicy", "container.RestartPolicy"),
    "DeviceMapping": ("DeviceMapping", "container.DeviceMapping"),
    "DeviceRequest": ("DeviceRequest", "container.DeviceRequest"),
    "ThrottleDevice": ("ThrottleDevice", "blkiodev.ThrottleDevice"),
    "Mount": ("Mount", "mount.Mount"),
    "PortBinding": ("PortBinding", "nat.PortBinding"),
    "HealthConfig": ("HealthConfig", "container.HealthConfig"),
    "AuthConfig": ("AuthConfig", "types.AuthConfig"),
    "ConfigReference": ("ConfigReference", "network.ConfigReference"),
    "ClusterVolumeSpec": ("ClusterVolumeSpec", "volume.ClusterVolumeSpec"),
    "PluginPrivilege": ("PluginPrivilege", "types.PluginPrivilege"),
    "ServiceSpec": ("ServiceSpec", "swarm.ServiceSpec"),
    "TaskSpec": ("TaskSpec", "swarm.TaskSpec"),
    "EndpointSpec": ("EndpointSpec", "swarm.EndpointSpec"),
    "EndpointPortConfig": ("PortConfig", "swarm.PortConfig"),
    "SwarmSpec": ("Spec", "swarm.Spec"),
    "NodeSpec": ("NodeSpec", "swarm.NodeSpec"),
    "SecretSpec": ("SecretSpec", "swarm.SecretSpec"),
    "ConfigSpec": ("ConfigSpec", "swarm.ConfigSpec"),
    "Driver": ("Driver", "swarm.Driver"),
    "Limit": ("Limit", "swarm.Limit"),
    "ResourceObject": ("Resources", "swarm.Resources"),
    "NetworkAttachmentConfig": ("NetworkAttachmentConfig", "swarm.NetworkAttachmentConfig"),
}

# fields whose Go type the rules below would not print as dockerd does
FIELD_GO_TYPES = {
    "ExposedPorts": "nat.PortSet",
    "PortBindings": "nat.PortMap", "EndpointsConfig": "map[string]*network.EndpointSettings",
    "Ulimits": "[]*units.Ulimit", "BlkioWeight": "uint16", "StopTimeout": "int", "ConsoleSize": "[2]uint",
    "Healthcheck": "container.HealthConfig", "Volumes": "map[string]struct {}", "IPPrefixLen": "int",
    "BlkioWeightDevice": "[]*blkiodev.WeightDevice", "Mounts": "[]mount.Mount", "ConsoleSize[]": "uint",
    "MaximumRetryCount": "int",
}
# the same, for a field of one struct: Go's named string types (enums), []byte fields (base64 in JSON)
STRUCT_FIELD_GO_TYPES = {
    ("NodeSpec", "Role"): "swarm.NodeRole", ("NodeSpec", "Availability"): "swarm.NodeAvailability",
    ("SecretSpec", "Data"): "[]uint8", ("ConfigSpec", "Data"): "[]uint8",
}
# inline objects of the Swagger file -> (Go struct name, Go type)
INLINE_STRUCTS = {"Ulimits[]": ("Ulimit", "units.Ulimit"), "LogConfig": ("LogConfig", "container.LogConfig"),
                  "BlkioWeightDevice[]": ("WeightDevice", "blkiodev.WeightDevice")}
# a string or a list of strings (Docker's strslice) in a container's config; dockerd's error names "string"
STRSLICE_FIELDS = {("Config", "Cmd"), ("Config", "Entrypoint"), ("ContainerConfigWrapper", "Cmd"),
                   ("ContainerConfigWrapper", "Entrypoint")}
INT_RANGES = {"uint16": (0, 65535), "int": (-(1 << 63), (1 << 63) - 1), "int64": (-(1 << 63), (1 << 63) - 1),
              "uint": (0, (1 << 64) - 1), "uint64": (0, (1 << 64) - 1), "int32": (-(1 << 31), (1 << 31) - 1),
              "uint32": (0, (1 << 32) - 1)}


class Generator:
    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.defs: dict[str, tuple[str, str, dict]] = {}

    def definition(self, name: str) -> str:
        """Add a definition (and what it refers to) once; its key in DEFS."""
        if name not in self.defs:
            struct, go = GO_TYPES.get(name, (name, name))
            self.defs[name] = (struct, go, {})
            self.defs[name] = (struct, go, self.fields(self.spec["definitions"][name], struct))
        return name

    def inline(self, key: str, struct: str, go: str, schema: dict) -> str:
        if key not in self.defs:
            self.defs[key] = (struct, go, {})
            self.defs[key] = (struct, go, self.fields(schema, struct))
        return key

    def fields(self, schema: dict, struct: str) -> dict:
        out: dict = {}
        for part in schema.get("allOf", []):
            if "$ref" in part:
                ref = part["$ref"].rsplit("/", 1)[1]
                out.update(self.fields(self.spec["definitions"][ref], struct))   # embedded: promoted fields
            else:
                out.update(self.fields(part, struct))
        for name, prop in (schema.get("properties") or {}).items():
            out[name] = self.type_of(name, prop, struct)
        return out

    def type_of(self, field: str, prop: dict, struct: str) -> tuple:
        go = STRUCT_FIELD_GO_TYPES.get((struct, field)) or FIELD_GO_TYPES.get(field)
        if (struct, field) in STRSLICE_FIELDS:
            return ("ss", "string")
        if "$ref" in prop:
            name = prop["$ref"].rsplit("/", 1)[1]
            target = self.spec["definitions"][name]
            if "properties" not in target and "allOf" not in target:
                mapped = self.type_of(field, target, struct)   # a named map (PortMap), scalar (MountType) or list
                return (*mapped[:-1], go or mapped[-1]) if mapped[0] in ("m", "a") else mapped
            ref = self.definition(name)
            return ("o", ref, go or self.defs[ref][1])
        if "allOf" in prop and len(prop["allOf"]) == 1 and "$ref" in prop["allOf"][0]:
            return self.type_of(field, prop["allOf"][0], struct)
        kind = prop.get("type")
        if kind == "string":
            return ("s", go or "string")
        if kind == "boolean":
            return ("b", go or "bool")
        if kind == "number":
            return ("f", go or "float64")
        if kind == "integer":
            go = go or {"int32": "int32", "uint64": "uint64", "uint32": "uint32"}.get(prop.get("format"), "int64")
            lo, hi = INT_RANGES.get(go, INT_RANGES["int64"])
            return ("i", go, lo, hi)
        if kind == "array":
            items = prop.get("items") or {}
            elem = self.type_of(field + "[]", items, struct) if items else ("any",)
            return ("a", elem, go or "[]" + _go_name(elem))
        if kind == "object" or kind is None and "properties" in prop:
            if "properties" in prop:
                name, go_type = INLINE_STRUCTS.get(field, (field.rstrip("[]{}"), f"container.{field}"))
                key = self.inline(f"{struct}.{field}", name, go_type, prop)
                return ("o", key, go or go_type)
            extra = prop.get("additionalProperties")
            if isinstance(extra, dict) and extra:
                elem = self.type_of(field + "{}", extra, struct)
                return ("m", elem, go or "map[string]" + _go_name(elem))
            return ("m", ("any",), go) if go and go.startswith("map[") else ("any",)
        return ("any",)

    def route_schema(self, method: str, path: str) -> dict:
        op = self.spec["paths"][path][method.lower()]
        return next(p for p in op["parameters"] if p.get("in") == "body")["schema"]

    def run(self) -> tuple[dict, dict]:
        routes: dict[str, tuple] = {}
        for (method, path), (struct, go, ref) in ROUTES.items():
            key = f"body {method} {path}"
            schema = self.route_schema(method, path)
            if struct is None:        # a JSON array: its items' type
                routes[f"{method} {path}"] = ("a", self.type_of("[]", schema.get("items") or {}, ""), go)
                continue
            if ref:
                self.definition(ref)
                self.defs[key] = (struct, go, self.defs[ref][2])
            else:
                self.inline(key, struct, go, schema)
            routes[f"{method} {path}"] = ("o", key, go)
        return self.defs, routes


def _go_name(td: tuple) -> str:
    kind = td[0]
    if kind in ("s", "b", "f", "ss"):
        return td[1] or "string"
    if kind == "i":
        return td[1]
    if kind in ("a", "m", "o"):
        return td[-1]
    return "interface {}"


def main() -> None:
    spec_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SPEC
    spec = yaml.safe_load(spec_path.read_text())
    defs, routes = Generator(spec).run()
    text = (f'"""Generated by scripts/gen_api_schema.py from the Engine API description v{spec["info"]["version"]}:'
            " do not edit.\n\nDEFS: name -> (Go struct name, Go type, {json field: type}); a type is (\"s\", go),"
            " (\"b\", go),\n(\"f\", go), (\"i\", go, min, max), (\"ss\", go) a string or strings, (\"a\", item, go),"
            " (\"m\", value, go),\n(\"o\", DEFS name, go) or (\"any\",). ROUTES: \"METHOD /path\" -> the body's type"
            ' (an object\'s or an array\'s).\n"""\n# flake8: noqa\n'
            f"DEFS = {pprint.pformat(defs, width=118, compact=True)}\n\nROUTES = {pprint.pformat(routes, width=118)}\n")
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT} ({len(defs)} definitions, {len(routes)} routes)")


if __name__ == "__main__":
    main()
