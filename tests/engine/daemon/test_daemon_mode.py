"""`pyd daemon` itself: flags, daemon.json, PID file, storage driver, TCP with mutual TLS, READY=1, shutdown."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest


def run_daemon_once(daemon, *extra: str, env: dict | None = None, timeout: float = 20) -> subprocess.CompletedProcess:
    """Run a second `pyd daemon` that is expected to exit by itself (refusals)."""
    argv = daemon.netns.enter_argv() + daemon.command() + list(extra)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env={**daemon.env(), **(env or {})})


def test_second_daemon_refused_by_pid_file(make_daemon):
    first = make_daemon()
    other_sock = first.root / "other.sock"
    argv = first.netns.enter_argv() + [str(first.pyd_bin), "daemon", "--data-root", str(first.root / "d2"),
                                       "--exec-root", str(first.root / "e2"), "--pidfile", str(first.pidfile),
                                       "-H", f"unix://{other_sock}", "--config-file", str(first.config_file)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=20, env=first.env())
    assert r.returncode == 1
    assert f"pid file found, ensure pyd is not running or delete {first.pidfile}" in r.stderr
    assert first.ping() and first.pidfile.read_text().strip() == str(first.pid)


def test_pid_file_removed_on_clean_shutdown(make_daemon):
    d = make_daemon()
    assert d.pidfile.exists()
    assert d.stop() == 0
    assert not d.pidfile.exists()
    assert not Path(d.sock).exists()


def test_storage_driver_flag_and_config_file(make_daemon, busybox_rootfs_tar):
    d = make_daemon("--storage-driver", "vfs")
    assert d.api.info()["Driver"] == "vfs"
    d.import_image(busybox_rootfs_tar, "busybox")
    assert d.docker("run", "--rm", "busybox", "echo", "on vfs", check=True).stdout == "on vfs\n"
    assert (d.data_root / "vfs").is_dir()
    from_file = make_daemon(config={"storage-driver": "vfs"})
    assert from_file.api.info()["Driver"] == "vfs"


def test_config_file_conflicts_and_unknown_keys(make_daemon):
    d = make_daemon(config={"debug": True}, start=False)
    r = run_daemon_once(d)  # command() passes -D and the file says debug: both set
    assert r.returncode == 1
    assert "specified both as a flag and in the configuration file: debug" in r.stderr
    d.config_file.write_text(json.dumps({"no-such-key": 1}))
    r = run_daemon_once(d)
    assert r.returncode == 1 and "don't match any configuration option: no-such-key" in r.stderr


def test_overlay2_through_mount2_runs_containers(make_daemon, busybox_rootfs_tar):
    # the way kernels before 6.8 mount overlay (Debian 12's 6.1): mount(2) with the l/ links, forced here
    d = make_daemon("--storage-driver", "overlay2", "--storage-opt", "overlay2.mount_api=mount2")
    assert d.api.info()["Driver"] == "overlay2"
    assert "overlayfs on" in d.log_text() and "mounted with mount(2)" in d.log_text()
    d.import_image(busybox_rootfs_tar, "busybox")
    cid = d.docker("run", "-d", "busybox", "sleep", "300", check=True).stdout.strip()
    try:
        merged = d.docker("inspect", "-f", "{{.GraphDriver.Data.MergedDir}}", cid, check=True).stdout.strip()
        mounts = [line.split() for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        assert any(m[4] == merged and m[m.index("-") + 1] == "overlay" for m in mounts), merged
        r = d.docker("exec", cid, "sh", "-c", "echo changed > /etc/motd && cat /etc/motd", check=True)
        assert r.stdout == "changed\n"
        upper = d.docker("inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", cid, check=True).stdout.strip()
        assert Path(upper, "etc/motd").read_text() == "changed\n"
    finally:
        d.docker("rm", "-f", cid)
    d.restart()                                  # the choice is made again, the layers still mount
    assert d.docker("run", "--rm", "busybox", "echo", "again", check=True).stdout == "again\n"


def test_unknown_storage_opt_is_a_clear_error(make_daemon):
    d = make_daemon("--storage-opt", "overlay2.size=10G", start=False)
    r = run_daemon_once(d)
    assert r.returncode == 1
    assert "overlay2: unknown option overlay2.size" in r.stderr and "Traceback" not in r.stderr


def test_unknown_storage_driver_is_a_clear_error(make_daemon):
    d = make_daemon("--storage-driver", "zfs-nope", start=False)
    r = run_daemon_once(d)
    assert r.returncode == 1
    assert "zfs-nope" in r.stderr and "Traceback" not in r.stderr


def test_plain_tcp_needs_explicit_tls_false(make_daemon):
    d = make_daemon(start=False)
    port = d.netns.free_port()
    r = run_daemon_once(d, "-H", f"tcp://127.0.0.1:{port}")
    assert r.returncode == 1 and "without TLS" in r.stderr
    d.args += ["-H", f"tcp://127.0.0.1:{port}", "--tls=false"]
    d.start()
    assert "Binding to tcp://127.0.0.1" in d.log_text()
    r = d.netns_run("/usr/local/bin/docker", "-H", f"tcp://127.0.0.1:{port}", "version", "--format",
                    "{{.Server.APIVersion}}", check=True)
    assert r.stdout.strip() == "1.47"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(where: Path) -> Path:
    """A CA, a server cert for 127.0.0.1 and a client cert, as the docker docs' TLS recipe makes them."""
    where.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=pyd test CA", cwd=where)
    (where / "server.ext").write_text("subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n")
    (where / "client.ext").write_text("extendedKeyUsage = clientAuth\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=where)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                 "-CAcreateserial", "-out", f"{name}-cert.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=where)
    return where


def test_tcp_with_mutual_tls(make_daemon, tmp_path):
    certs = make_certs(tmp_path / "certs")
    d = make_daemon(start=False)
    port = d.netns.free_port()
    d.args += ["-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(certs / "ca.pem"),
               "--tlscert", str(certs / "server-cert.pem"), "--tlskey", str(certs / "server-key.pem")]
    d.start()
    host = f"tcp://127.0.0.1:{port}"
    client_tls = ["--tlsverify", "--tlscacert", str(certs / "ca.pem"), "--tlscert", str(certs / "client-cert.pem"),
                  "--tlskey", str(certs / "client-key.pem")]
    r = d.netns_run("/usr/local/bin/docker", "-H", host, *client_tls, "version", "--format",
                    "{{.Server.Platform.Name}}", check=True)
    assert r.stdout.strip() == "pyd"
    r = d.netns_run(str(d.pyd_bin), "-H", host, *client_tls, "version")
    assert r.returncode == 0 and "1.47" in r.stdout
    # without a client certificate the handshake is refused
    r = d.netns_run("/usr/local/bin/docker", "-H", host, "--tls", "--tlscacert", str(certs / "ca.pem"), "version")
    assert r.returncode != 0
    assert d.ping()


def test_ready_notification(make_daemon, tmp_path):
    d = make_daemon(start=False)
    notify_path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(notify_path)
        notify.settimeout(20)
        proc = subprocess.Popen(d.netns.enter_argv() + d.command(), env={**d.env(), "NOTIFY_SOCKET": notify_path},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert notify.recv(100) == b"READY=1"
            assert d.ping()
        finally:
            proc.terminate()
            assert proc.wait(20) == 0


def test_shutdown_stops_running_containers(make_daemon, busybox_rootfs_tar):
    d = make_daemon()
    d.import_image(busybox_rootfs_tar, "busybox")
    cid = d.docker("run", "-d", "busybox", "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done",
                   check=True).stdout.strip()
    pid = d.api.containers.get(cid).attrs["State"]["Pid"]
    assert pid > 0 and os.path.exists(f"/proc/{pid}")
    start = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - start < 15
    assert not os.path.exists(f"/proc/{pid}") or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(d.data_root) not in mounts
    d.start()
    state = d.api.containers.get(cid).attrs["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0


def test_sigint_and_sigquit_also_shut_down(make_daemon):
    import signal
    for sig in (signal.SIGINT, signal.SIGQUIT):
        d = make_daemon()
        d.proc.send_signal(sig)
        assert d.proc.wait(20) == 0
        assert "Processing signal" in d.log_text()


@pytest.mark.parametrize("level", ["bogus"])
def test_bad_log_level(make_daemon, level):
    d = make_daemon("-l", level, start=False)
    r = run_daemon_once(d)
    assert r.returncode != 0 and "log-level" in r.stderr


def test_info_reports_this_hosts_cgroups(daemon):
    # what dockerd's sysinfo would find here: v1 hierarchies (a hybrid host counts as v1) or v2
    info = daemon.api.info()
    v1_memory = Path("/sys/fs/cgroup/memory")
    if v1_memory.is_dir():
        assert info["CgroupVersion"] == "1" and info["CgroupDriver"] == "cgroupfs"
        assert info["MemoryLimit"] is True
        assert info["SwapLimit"] is (v1_memory / "memory.memsw.limit_in_bytes").exists()
        assert info["OomKillDisable"] is (v1_memory / "memory.oom_control").exists()
    else:
        assert info["CgroupVersion"] == "2"
    assert ("WARNING: No swap limit support" in info["Warnings"]) is not info["SwapLimit"]
    assert info["PidsLimit"] is True and info["CPUSet"] is True
