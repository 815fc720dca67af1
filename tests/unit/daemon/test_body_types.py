"""Request bodies are checked against the Engine API description's types, with the words dockerd's Go
decoder uses (each expected message below is what dockerd 20.10 answered to the same body; the daemon
answers 400 where dockerd answered 500 for some)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from pyd.daemon.api.validate import check_body, check_depth
from pyd.daemon.errors import BadParameter

REPO = Path(__file__).resolve().parents[3]
SPEC = REPO.parent / "shared" / "reference" / "docker-engine-api.yaml"
CREATE = "POST /containers/create"

DOCKERD_SAID = [
    (CREATE, {"Image": "x", "HostConfig": {"Memory": "1"}},
     "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64"),
    (CREATE, {"Image": 5}, "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type string"),
    (CREATE, {"Image": "x", "HostConfig": {"Devices": "a"}},
     "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Devices of type []container.DeviceMapping"),
    (CREATE, {"Image": "x", "NetworkingConfig": {"EndpointsConfig": []}},
     "json: cannot unmarshal array into Go struct field NetworkingConfig.NetworkingConfig.EndpointsConfig of type "
     "map[string]*network.EndpointSettings"),
    (CREATE, {"Image": "x", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 5}]}}},
     "json: cannot unmarshal number into Go struct field PortBinding.HostConfig.PortBindings.HostPort of type string"),
    (CREATE, {"Image": "x", "HostConfig": {"Memory": 1.5}},
     "json: cannot unmarshal number 1.5 into Go struct field HostConfig.HostConfig.Memory of type int64"),
    (CREATE, {"Image": "x", "HostConfig": {"Memory": 99999999999999999999999}},
     "json: cannot unmarshal number 99999999999999999999999 into Go struct field HostConfig.HostConfig.Memory of "
     "type int64"),
    (CREATE, [1], "json: cannot unmarshal array into Go value of type runconfig.ContainerConfigWrapper"),
    (CREATE, "s", "json: cannot unmarshal string into Go value of type runconfig.ContainerConfigWrapper"),
    ("POST /networks/create", {"Name": 5},
     "json: cannot unmarshal number into Go struct field NetworkCreateRequest.Name of type string"),
    ("POST /networks/create", {"Name": "n", "IPAM": {"Config": "x"}},
     "json: cannot unmarshal string into Go struct field IPAM.IPAM.Config of type []network.IPAMConfig"),
    ("POST /volumes/create", {"Name": ["a"]},
     "json: cannot unmarshal array into Go struct field VolumeCreateBody.Name of type string"),
    ("POST /auth", {"username": 5}, "json: cannot unmarshal number into Go struct field AuthConfig.username of type string"),
    ("POST /auth", ["x"], "json: cannot unmarshal array into Go value of type types.AuthConfig"),
    ("POST /networks/{id}/disconnect", {"Container": 5, "Force": "yes"},
     "json: cannot unmarshal number into Go struct field NetworkDisconnect.Container of type string"),
    ("POST /containers/{id}/update", {"RestartPolicy": {"MaximumRetryCount": "x"}},
     "json: cannot unmarshal string into Go struct field RestartPolicy.RestartPolicy.MaximumRetryCount of type int"),
    ("POST /commit", {"Env": "x"},
     "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.Env of type []string"),
    ("POST /exec/{id}/start", {"Detach": "x"},
     "json: cannot unmarshal string into Go struct field ExecStartCheck.Detach of type bool"),
    ("POST /volumes/create", {"Labels": {"a": 1}},
     "json: cannot unmarshal number into Go struct field VolumeCreateBody.Labels of type string"),
    ("POST /swarm/init", {"ListenAddr": 5},
     "json: cannot unmarshal number into Go struct field InitRequest.ListenAddr of type string"),
    ("POST /swarm/unlock", {"UnlockKey": 1},
     "json: cannot unmarshal number into Go struct field UnlockRequest.UnlockKey of type string"),
    ("POST /services/create", {"TaskTemplate": {"ContainerSpec": {"Args": "x"}}},
     "json: cannot unmarshal string into Go struct field ContainerSpec.TaskTemplate.ContainerSpec.Args of type "
     "[]string"),
    ("POST /secrets/create", {"Data": 5}, "json: cannot unmarshal number into Go struct field SecretSpec.Data of type []uint8"),
    ("POST /nodes/{id}/update", {"Role": 1},
     "json: cannot unmarshal number into Go struct field NodeSpec.Role of type swarm.NodeRole"),
    ("POST /plugins/{name}/set", [5], "json: cannot unmarshal number into Go value of type string"),
    ("POST /plugins/{name}/set", {"a": 1}, "json: cannot unmarshal object into Go value of type []string"),
    ("POST /plugins/pull", [5], "json: cannot unmarshal number into Go value of type types.PluginPrivilege"),
    ("POST /plugins/pull", [{"Name": 5}],
     "json: cannot unmarshal number into Go struct field PluginPrivilege.Name of type string"),
]


@pytest.mark.parametrize("route,body,said", DOCKERD_SAID)
def test_wrong_types_get_dockerds_words(route, body, said):
    with pytest.raises(BadParameter) as e:
        check_body(route, body)
    assert e.value.status == 400 and e.value.message == said


@pytest.mark.parametrize("route,body,said", [
    ("POST /containers/{id}/update", {"CpusetCpus": 5},
     "json: cannot unmarshal number into Go struct field UpdateConfig.CpusetCpus of type string"),
    ("POST /containers/{id}/update", {"BlkioWeight": 70000},
     "json: cannot unmarshal number 70000 into Go struct field UpdateConfig.BlkioWeight of type uint16"),
    ("POST /containers/{id}/update", {"memory": "1g"},     # Go matches field names case-insensitively
     "json: cannot unmarshal string into Go struct field UpdateConfig.Memory of type int64"),
    ("POST /containers/{id}/exec", {"Cmd": 5},
     "json: cannot unmarshal number into Go struct field ExecConfig.Cmd of type []string"),
    ("POST /containers/{id}/exec", {"WorkingDir": ["/"]},
     "json: cannot unmarshal array into Go struct field ExecConfig.WorkingDir of type string"),
    ("POST /networks/{id}/connect", {"Container": ["a"]},
     "json: cannot unmarshal array into Go struct field NetworkConnect.Container of type string"),
    ("POST /networks/{id}/connect", "c1", "json: cannot unmarshal string into Go value of type types.NetworkConnect"),
    (CREATE, {"Env": ["A=1", 5]}, "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Env of type string"),
    (CREATE, {"Cmd": 5}, "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Cmd of type string"),
])
def test_other_bodies(route, body, said):
    with pytest.raises(BadParameter) as e:
        check_body(route, body)
    assert e.value.message == said


@pytest.mark.parametrize("body", [
    None, {}, {"Image": "busybox", "Cmd": "sh", "Entrypoint": ["a", "b"], "Unknown": {"x": [1]}},
    {"Image": "busybox", "HostConfig": {"Memory": 1 << 30, "PortBindings": {"80/tcp": [{"HostPort": "8080"}]},
                                        "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
                                        "Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 2}], "Binds": None},
     "NetworkingConfig": {"EndpointsConfig": {"n": {"Aliases": ["a"]}}}, "Labels": {"a": "b"}},
])
def test_well_formed_bodies_pass(body):
    check_body(CREATE, body)


def test_nesting_deeper_than_go_decodes_is_refused_without_recursion():
    check_depth(b"[" * 10000 + b"]" * 10000)
    with pytest.raises(BadParameter, match=r"^invalid character '\[' exceeded max depth$"):
        check_depth(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(BadParameter, match=r"^invalid character '\{' exceeded max depth$"):
        check_depth(b'{"a":' * 20_000 + b"1" + b"}" * 20_000)
    check_depth(json.dumps({"Image": "[" * 20_000}).encode())     # brackets inside strings do not nest


@pytest.mark.skipif(not SPEC.exists(), reason="the Engine API description is not beside this checkout")
def test_the_generated_schema_matches_the_api_description(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("gen_api_schema", REPO / "scripts" / "gen_api_schema.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    monkeypatch.setattr(gen, "OUTPUT", tmp_path / "body_schema.py")
    monkeypatch.setattr("sys.argv", ["gen_api_schema.py", str(SPEC)])
    gen.main()
    assert (tmp_path / "body_schema.py").read_text() == (REPO / "pyd/daemon/api/body_schema.py").read_text()


def test_field_names_take_the_structs_spelling():
    """docker-py sends HostConfig.CPURealtimePeriod; Go decodes it into CpuRealtimePeriod (the later of two
    spellings wins), and maps keep their keys."""
    body = {"Image": "x", "hostconfig": {"CPURealtimePeriod": 1000, "CpuRealtimeRuntime": 1, "cpurealtimeruntime": 500,
                                         "Unknown": 1},
            "Labels": {"CPURealtimePeriod": "kept"}}
    check_body(CREATE, body)
    assert body == {"Image": "x", "HostConfig": {"CpuRealtimePeriod": 1000, "CpuRealtimeRuntime": 500, "Unknown": 1},
                    "Labels": {"CPURealtimePeriod": "kept"}}
