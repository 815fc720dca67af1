"""Behaviours docker-py's own integration suite checks, as dockerd has them: kill, restart policies, Env
entries without a value, log drivers, the runtime, exec framing."""
from __future__ import annotations

import docker
import pytest


@pytest.mark.parametrize("policy", ["always", "unless-stopped"])
def test_kill_of_a_container_with_a_restart_policy_is_a_stop(daemon, busybox, policy):
    api = daemon.api.api
    c = api.create_container(busybox, ["sleep", "300"], host_config=api.create_host_config(
        restart_policy={"Name": policy}))
    try:
        api.start(c)
        api.kill(c)
        state = api.inspect_container(c)["State"]          # kill returns once the container is down
        assert (state["Running"], state["Status"], state["ExitCode"]) == (False, "exited", 137)
        assert api.inspect_container(c)["RestartCount"] == 0
    finally:
        api.remove_container(c, force=True)


def test_restart_policy_always_keeps_a_finished_container_up(daemon, busybox):
    api = daemon.api.api
    c = api.create_container(busybox, ["sleep", "1"], host_config=api.create_host_config(
        restart_policy={"Name": "always", "MaximumRetryCount": 0}, network_mode="none"))
    try:
        api.start(c)
        assert api.wait(c, timeout=30)["StatusCode"] == 0
        with pytest.raises(docker.errors.APIError) as info:
            api.remove_container(c)
        assert "stop the container before" in info.value.explanation.lower()
    finally:
        api.remove_container(c, force=True)


def test_env_without_a_value_is_kept_in_config_and_unset_in_the_process(daemon, busybox):
    api = daemon.api.api
    c = api.create_container(busybox, ["sh", "-c", "echo ${Foo-unset} $Other"],
                             environment=["Foo", "Other=one", "Blank="])
    try:
        env = api.inspect_container(c)["Config"]["Env"]
        assert env[:3] == ["Foo", "Other=one", "Blank="]
        api.start(c)
        api.wait(c)
        assert api.logs(c) == b"unset one\n"
    finally:
        api.remove_container(c, force=True)


def test_log_driver_defaults_and_unknown_driver(daemon, busybox):
    api = daemon.api.api
    c = api.create_container(busybox, ["true"], host_config=api.create_host_config(
        log_config=docker.types.LogConfig(type="", config={"max-file": "100"})))
    try:
        log_config = api.inspect_container(c)["HostConfig"]["LogConfig"]
        assert log_config == {"Type": "json-file", "Config": {"max-file": "100"}}
    finally:
        api.remove_container(c, force=True)
    with pytest.raises(docker.errors.APIError) as info:
        api.create_container(busybox, ["true"], host_config=api.create_host_config(
            log_config=docker.types.LogConfig(type="asdf")))
    assert info.value.explanation == 'error looking up logging plugin asdf: plugin "asdf" not found'


def test_runtime_is_reported_and_unknown_ones_refused(daemon, busybox):
    api = daemon.api.api
    c = api.create_container(busybox, ["true"], runtime="runc")
    try:
        assert api.inspect_container(c)["HostConfig"]["Runtime"] == "runc"
    finally:
        api.remove_container(c, force=True)
    with pytest.raises(docker.errors.APIError) as info:
        api.create_container(busybox, ["true"], host_config=api.create_host_config(runtime="nope"))
    assert info.value.explanation == "Unknown runtime specified nope"


def test_exec_framing_follows_the_start_request(daemon, busybox):
    """dockerd frames by the start request's Tty: docker-py's exec_start(tty=False) of a TTY exec gets
    stdout frames; exec_start(tty=True) the raw terminal."""
    api = daemon.api.api
    c = api.create_container(busybox, ["cat"], stdin_open=True)
    try:
        api.start(c)
        script = "echo hello out; sleep 0.3; echo hello err >&2"
        assert api.exec_start(api.exec_create(c, ["sh", "-c", script], tty=True)) == b"hello out\r\nhello err\r\n"
        assert api.exec_start(api.exec_create(c, ["sh", "-c", script], tty=True), demux=True) == \
            (b"hello out\r\nhello err\r\n", None)
        raw = api.exec_start(api.exec_create(c, ["sh", "-c", script], tty=True), tty=True)
        assert raw == b"hello out\r\nhello err\r\n"
        sock = api.exec_start(api.exec_create(c, ["printf", "yay"], tty=True), socket=True)
        try:
            from docker.utils.socket import next_frame_header, read_exactly
            assert next_frame_header(sock) == (1, 3)
            assert read_exactly(sock, 3) == b"yay"
        finally:
            sock.close()
    finally:
        api.remove_container(c, force=True)


def test_load_of_a_bad_archive_is_an_error_in_the_stream(daemon, tmp_path):
    with pytest.raises(docker.errors.ImageLoadError):
        daemon.api.images.load(b"abc")
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"abc")
    r = daemon.docker("load", "-i", str(bad))
    assert r.returncode == 1 and "Error processing tar file(exit status 1): unexpected EOF" in r.stderr, r.stderr
    bad.write_bytes(bytes(range(256)) * 8)
    r = daemon.docker("load", "-i", str(bad))
    assert "Error processing tar file(exit status 1): archive/tar: invalid tar header" in r.stderr, r.stderr


def test_network_names_and_ipam_options_as_given(daemon, busybox):
    api = daemon.api.api
    net = api.create_network("test 01", ipam=docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="172.28.0.0/16", iprange="172.28.5.0/24",
                                            gateway="172.28.5.254", aux_addresses={"a": "172.28.5.1"})]))
    try:
        ipam = api.inspect_network("test 01")["IPAM"]
        assert ipam["Options"] is None and ipam["Driver"] == "default"
        assert ipam["Config"] == [{"Subnet": "172.28.0.0/16", "IPRange": "172.28.5.0/24", "Gateway": "172.28.5.254",
                                   "AuxiliaryAddresses": {"a": "172.28.5.1"}}]
        c = api.create_container(busybox, ["sleep", "30"], host_config=api.create_host_config(network_mode="test 01"))
        try:
            api.start(c)
            ip = api.inspect_container(c)["NetworkSettings"]["Networks"]["test 01"]["IPAddress"]
            assert ip.startswith("172.28.5.") and ip != "172.28.5.1"      # an auxiliary address is reserved
        finally:
            api.remove_container(c, force=True)
    finally:
        api.remove_network(net["Id"])
    r = daemon.docker("network", "create", "--ipam-opt", "k=v", "nx-opts", check=True)
    try:
        assert daemon.api.api.inspect_network("nx-opts")["IPAM"]["Options"] == {"k": "v"}
    finally:
        daemon.docker("network", "rm", "nx-opts")
    assert r.returncode == 0


def test_container_wide_mac_address_is_the_primary_endpoints(daemon, busybox):
    api = daemon.api.api
    c = api.create_container(busybox, ["cat", "/sys/class/net/eth0/address"], mac_address="02:42:ac:11:00:0a")
    try:
        api.start(c)
        assert api.inspect_container(c)["NetworkSettings"]["MacAddress"] == "02:42:ac:11:00:0a"
        api.wait(c)
        assert api.logs(c) == b"02:42:ac:11:00:0a\n"
    finally:
        api.remove_container(c, force=True)
    with pytest.raises(docker.errors.APIError) as info:
        api.create_container(busybox, ["true"], mac_address="nope")
    assert info.value.explanation == "nope is not a valid mac address"


def test_field_names_in_another_case_reach_the_config(daemon, busybox):
    """docker-py spells HostConfig.CpuRealtimePeriod as CPURealtimePeriod; dockerd's Go decoder takes it."""
    api = daemon.api.api
    c = api.create_container(busybox, "true", host_config=api.create_host_config(cpu_rt_period=1000,
                                                                                 cpu_rt_runtime=500))
    try:
        hc = api.inspect_container(c)["HostConfig"]
        assert (hc["CpuRealtimePeriod"], hc["CpuRealtimeRuntime"]) == (1000, 500)
        assert "CPURealtimePeriod" not in hc
    finally:
        api.remove_container(c, force=True)


def test_image_inspect_keys_as_dockerds(daemon, busybox):
    info = daemon.api.api.inspect_image(busybox)
    # an empty Variant is left out (omitempty); the Config keeps every key, empty ones too
    assert "Variant" not in info and {"Architecture", "Os", "RootFS", "Metadata"} <= set(info)
    assert {"Hostname", "User", "Env", "Cmd", "Entrypoint", "Labels", "OnBuild", "Volumes"} <= set(info["Config"])
