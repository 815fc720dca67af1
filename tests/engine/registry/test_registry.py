"""Pull and push against Debian's docker-registry in the daemon's network namespace, through the docker CLI,
docker-py and pyd: round trips, layer reuse, digests, manifest lists, errors, auth, resumed downloads."""
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import images
from pyd.daemon.images import registry as reg
from pyd.formats.platforms import Platform


def _blob_put(daemon, registry, repo: str, data: bytes) -> str:
    """Upload a blob with curl-free plain HTTP from inside the daemon's netns; its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, headers, _ = _http(daemon, registry, "POST", f"/v2/{repo}/blobs/uploads/")
    assert status == 202, status
    location = headers["location"]
    path = location.split(str(registry), 1)[-1] if "://" in location else location
    sep = "&" if "?" in path else "?"
    status, _, body = _http(daemon, registry, "PUT", f"{path}{sep}digest={digest}", data,
                            {"Content-Type": "application/octet-stream"})
    assert status == 201, body
    return digest


def _http(daemon, registry, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=10)
    sock = daemon.netns.socket()
    sock.settimeout(10)
    sock.connect(("127.0.0.1", registry.port))
    conn.sock = sock
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def test_insecure_rules_match_dockerd():
    assert reg.is_insecure("127.0.0.1:5000") and reg.is_insecure("127.1.2.3") and reg.is_insecure("[::1]:5000")
    assert reg.is_insecure("localhost:5000")
    assert not reg.is_insecure("10.0.0.5:5000") and not reg.is_insecure("registry.example.com")
    assert reg.is_insecure("10.0.0.5:5000", ["10.0.0.0/8"])
    assert reg.is_insecure("registry.example.com", ["registry.example.com"])
    assert reg.endpoint_for("docker.io") == "https://registry-1.docker.io"
    assert reg.endpoint_for("127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_platform_choice_and_auth_header():
    index = {"manifests": [{"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
                           {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}}]}
    amd64 = Platform("linux", "amd64")
    assert reg.pick_manifest(index, reg.wanted_platform("", amd64))["digest"] == "sha256:amd"
    assert reg.pick_manifest(index, reg.wanted_platform("linux/arm/v7", amd64))["digest"] == "sha256:arm"
    with pytest.raises(Exception, match="no matching manifest for linux/s390x"):
        reg.pick_manifest(index, reg.wanted_platform("linux/s390x", amd64))
    header = base64.urlsafe_b64encode(json.dumps({"username": "u", "password": "p"}).encode()).decode().rstrip("=")
    auth = reg.decode_auth_header(header)
    assert (auth.username, auth.password) == ("u", "p")
    assert reg.decode_auth_header("not base64!").empty and reg.decode_auth_header("e30=").empty
    scheme, params = reg._parse_challenge('Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"')
    assert scheme == "bearer" and params == {"realm": "https://auth/token", "service": "reg",
                                             "scope": "repository:a:pull"}
    assert reg.progress_bar(50, 100).startswith("[" + "=" * 25 + ">")


@pytest.fixture(scope="module")
def pushed(daemon, registry, busybox):
    """busybox pushed by the docker CLI as REGISTRY/team/bb:v1."""
    name = f"{registry}/team/bb:v1"
    daemon.docker("tag", busybox, name, check=True)
    r = daemon.docker("push", name, timeout=120)
    assert r.returncode == 0, r.describe()
    assert f"The push refers to repository [{registry}/team/bb]" in r.stdout
    assert ": Pushed" in r.stdout and "v1: digest: sha256:" in r.stdout, r.stdout
    return name


def test_docker_push_then_pull_round_trip_and_run(daemon, registry, pushed):
    assert registry.status("/v2/team/bb/manifests/v1") == 200
    again = daemon.docker("push", pushed)
    assert again.returncode == 0, again.describe()
    assert "Layer already exists" in again.stdout
    assert "v1: digest: sha256:" in again.stdout
    digest = again.stdout.split("v1: digest: ", 1)[1].split()[0]

    daemon.docker("rmi", pushed, check=True)
    pulled = daemon.docker("pull", pushed, timeout=120)
    assert pulled.returncode == 0, pulled.describe()
    assert "v1: Pulling from team/bb" in pulled.stdout
    assert f"Digest: {digest}" in pulled.stdout
    assert f"Status: Downloaded newer image for {pushed}" in pulled.stdout
    up = daemon.docker("pull", pushed)
    assert f"Status: Image is up to date for {pushed}" in up.stdout
    inspect = json.loads(daemon.docker("image", "inspect", pushed, check=True).stdout)[0]
    assert f"{registry}/team/bb@{digest}" in inspect["RepoDigests"]
    run = daemon.docker("run", "--rm", "--network", "none", pushed, "echo", "pulled-ok")
    assert run.returncode == 0 and run.stdout == "pulled-ok\n", run.describe()
    digests = daemon.docker("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}").stdout
    assert f"{registry}/team/bb v1 {digest}" in digests
    remote = daemon.api.images.get_registry_data(pushed)
    assert remote.id == digest and remote.has_platform("linux/amd64")


def test_pyd_push_pull_and_pull_by_digest(daemon, registry, busybox):
    name = f"{registry}/pyd/bb:p1"
    daemon.pyd("tag", busybox, name, check=True)
    r = daemon.pyd("push", name, timeout=120)
    assert r.returncode == 0, r.describe()
    assert "p1: digest: sha256:" in r.stdout
    assert "Pushed" in r.stdout or "Mounted from" in r.stdout or "Layer already exists" in r.stdout
    digest = r.stdout.split("p1: digest: ", 1)[1].split()[0]
    daemon.pyd("rmi", name, check=True)
    by_digest = f"{registry}/pyd/bb@{digest}"
    p = daemon.pyd("pull", by_digest, timeout=120)
    assert p.returncode == 0, p.describe()
    assert f"Digest: {digest}" in p.stdout
    assert p.stdout.rstrip().endswith(by_digest)
    run = daemon.pyd("run", "--rm", "--network", "none", by_digest, "echo", "by-digest")
    assert run.stdout == "by-digest\n", run.describe()
    via_py = daemon.api.images.pull(f"{registry}/pyd/bb", tag="p1")
    assert via_py.id.startswith("sha256:")


def test_cross_repository_push_mounts_the_blob(daemon, registry, pushed):
    other = f"{registry}/team/copy:v1"
    daemon.docker("tag", pushed, other, check=True)
    r = daemon.docker("push", other)
    assert r.returncode == 0, r.describe()
    assert "Mounted from team/bb" in r.stdout or "Mounted from pyd/bb" in r.stdout, r.stdout


def test_run_pulls_a_missing_image(daemon, registry, pushed):
    name = f"{registry}/team/runme:r1"
    daemon.docker("tag", pushed, name, check=True)
    daemon.docker("push", name, check=True)
    daemon.docker("rmi", name, check=True)
    r = daemon.pyd("run", "--rm", "--network", "none", name, "echo", "auto-pulled")
    assert r.returncode == 0, r.describe()
    assert r.stdout == "auto-pulled\n"
    assert f"Unable to find image '{name}' locally" in r.stderr
    daemon.docker("rmi", name, check=True)
    d = daemon.docker("run", "--rm", "--network", "none", name, "echo", "docker-pulled")
    assert d.returncode == 0 and d.stdout == "docker-pulled\n", d.describe()


def test_pull_errors_are_dockers(daemon, registry):
    r = daemon.docker("pull", f"{registry}/nope/missing:1")
    assert r.returncode == 1
    assert "Error response from daemon:" in r.stderr
    assert "not found" in r.stderr and "unknown" in r.stderr
    p = daemon.pyd("pull", f"{registry}/nope/missing:1")
    assert p.returncode == 1 and "not found" in p.stderr
    refused = daemon.docker("pull", "127.0.0.1:1/x/y:1")
    assert refused.returncode == 1
    assert "connect: connection refused" in refused.stderr
    offline = daemon.docker("pull", "busybox:offline")   # the daemon's namespace has no way out
    assert offline.returncode == 1 and 'Get "https://registry-1.docker.io/v2/": dial tcp' in offline.stderr


def test_manifest_list_pulls_the_amd64_entry(daemon, registry, pushed):
    repo = "team/bb"
    status, headers, manifest = _http(daemon, registry, "GET", f"/v2/{repo}/manifests/v1",
                                      headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert status == 200
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    bogus_config = json.dumps({"architecture": "arm64", "os": "linux",
                               "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    arm_cfg = _blob_put(daemon, registry, repo, bogus_config)
    arm_manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": arm_cfg, "size": len(bogus_config)}, "layers": []}).encode()
    status, _, body = _http(daemon, registry, "PUT", f"/v2/{repo}/manifests/arm-only", arm_manifest,
                            {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 201, body
    arm_digest = "sha256:" + hashlib.sha256(arm_manifest).hexdigest()
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm_digest,
         "size": len(arm_manifest), "platform": {"architecture": "arm64", "os": "linux"}},
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": digest,
         "size": len(manifest), "platform": {"architecture": "amd64", "os": "linux"}},
    ]}).encode()
    status, _, body = _http(daemon, registry, "PUT", f"/v2/{repo}/manifests/multi", index,
                            {"Content-Type": "application/vnd.oci.image.index.v1+json"})
    assert status == 201, body
    index_digest = "sha256:" + hashlib.sha256(index).hexdigest()
    r = daemon.docker("pull", f"{registry}/{repo}:multi")
    assert r.returncode == 0, r.describe()
    assert f"Digest: {index_digest}" in r.stdout
    amd = json.loads(daemon.docker("image", "inspect", f"{registry}/{repo}:multi", check=True).stdout)[0]
    assert amd["Architecture"] == "amd64"
    assert f"{registry}/{repo}@{index_digest}" in amd["RepoDigests"]
    wrong = daemon.docker("pull", "--platform", "linux/s390x", f"{registry}/{repo}:multi")
    assert wrong.returncode == 1 and "no matching manifest for linux/s390x" in wrong.stderr


def _push_arm64_only(daemon, registry, repo: str, tag: str) -> None:
    """An image whose one manifest's config says linux/arm64/v8 (one busybox layer: it only has to store)."""
    layer = images.busybox_rootfs()
    config = json.dumps(images.image_config([layer], cmd=["sh"], architecture="arm64")).encode()
    config_digest, layer_digest = _blob_put(daemon, registry, repo, config), _blob_put(daemon, registry, repo, layer)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": config_digest, "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                       "digest": layer_digest, "size": len(layer)}]}).encode()
    status, _, body = _http(daemon, registry, "PUT", f"/v2/{repo}/manifests/{tag}", manifest,
                            {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 201, body


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the wanted platform below is an x86_64 host's")
def test_an_image_for_another_platform_is_refused_or_pulled_by_platform(daemon, registry):
    name = f"{registry}/team/armonly:1"
    _push_arm64_only(daemon, registry, "team/armonly", "1")
    refused = daemon.docker("pull", name)
    assert refused.returncode == 1
    assert (f"image with reference {name} was found but does not match the specified platform: wanted "
            "linux/amd64, actual: linux/arm64/v8") in refused.stderr
    pulled = daemon.docker("pull", "--platform", "linux/arm64", name)
    assert pulled.returncode == 0, pulled.describe()
    shown = daemon.docker("image", "inspect", "-f", "{{.Architecture}} {{.Variant}}", name, check=True).stdout
    assert shown.split() == ["arm64", "v8"]
    created = daemon.docker("create", "--pull", "never", name, "true")
    assert created.returncode == 0, created.describe()
    assert ("WARNING: The requested image's platform (linux/arm64/v8) does not match the detected host platform "
            "(linux/amd64) and no specific platform was requested") in created.stderr
    wrong = daemon.docker("create", "--pull", "never", "--platform", "linux/amd64", name, "true")
    assert wrong.returncode != 0
    assert (f"image with reference {name} was found but does not match the specified platform: wanted "
            "linux/amd64, actual: linux/arm64/v8") in wrong.stderr


# ---------------------------------------------------------------------------------------------------------
# proxies on loopback in the daemon's namespace: a token-auth front and a connection cutter

class _Proxy:
    """A threaded HTTP server in the daemon's netns forwarding to the registry; handler decides."""

    def __init__(self, daemon, registry, handler_cls):
        sock = daemon.netns.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        self.port = sock.getsockname()[1]
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), handler_cls, bind_and_activate=False)
        self.server.socket.close()
        self.server.socket = sock
        self.server.daemon_threads = True
        self.server.ctx = {"daemon": daemon, "registry": registry, "port": self.port, "cut": set(), "log": []}
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def __str__(self):
        return f"127.0.0.1:{self.port}"


class _Forwarding(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self, extra_check=None):
        ctx = self.server.ctx
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization")}
        status, rh, data = _http(ctx["daemon"], ctx["registry"], self.command, self.path, body, headers)
        ctx["log"].append((self.command, self.path, self.headers.get("Range")))
        if extra_check and extra_check(status, rh, data):
            return
        self.send_response(status)
        for k, v in rh.items():
            if k in ("content-type", "docker-content-digest", "location", "range", "docker-upload-uuid"):
                if k == "location":
                    v = v.replace(str(ctx["registry"]), f"127.0.0.1:{ctx['port']}")
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = lambda self: self.forward()


TOKEN = "tok-" + "x" * 20


class _TokenAuth(_Forwarding):
    """/v2/* needs "Bearer TOKEN"; /token gives it to basic auth alice:secret."""

    def gate(self):
        if self.path.startswith("/token"):
            good = "Basic " + base64.b64encode(b"alice:secret").decode()
            if self.headers.get("Authorization") != good:
                self.reply(401, b'{"details":"bad credentials"}')
            else:
                assert "service=test-registry" in self.path
                self.reply(200, json.dumps({"token": TOKEN}).encode())
            return
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            port = self.server.ctx["port"]
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Bearer realm="http://127.0.0.1:{port}/token",'
                                                 'service="test-registry",scope="repository:x:pull"')
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.forward()

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = lambda self: self.gate()


def test_login_and_bearer_token_pull(daemon, registry, pushed):
    proxy = _Proxy(daemon, registry, _TokenAuth)
    try:
        name = f"{proxy}/team/bb:v1"
        anon = daemon.docker("pull", name)
        assert anon.returncode == 1
        assert "pull access denied" in anon.stderr or "unauthorized" in anon.stderr, anon.describe()
        bad = daemon.docker("login", "-u", "alice", "--password-stdin", str(proxy), input="wrong\n")
        assert bad.returncode == 1, bad.describe()
        ok = daemon.docker("login", "-u", "alice", "--password-stdin", str(proxy), input="secret\n")
        assert ok.returncode == 0 and "Login Succeeded" in ok.stdout, ok.describe()
        pulled = daemon.docker("pull", name, timeout=120)
        assert pulled.returncode == 0, pulled.describe()
        assert f"Status: Downloaded newer image for {name}" in pulled.stdout
        env = {"DOCKER_CONFIG": str(daemon.docker_config)}
        daemon.docker("rmi", name, check=True)
        mine = daemon.pyd("pull", name, env=env, timeout=120)
        assert mine.returncode == 0, mine.describe()
        assert daemon.docker("logout", str(proxy)).returncode == 0
    finally:
        proxy.close()


class _Cutter(_Forwarding):
    """Cuts the first full GET of each layer blob halfway; Range requests are served."""

    def do_GET(self):
        ctx = self.server.ctx
        if "/blobs/" not in self.path or self.path in ctx["cut"] or self.headers.get("Range"):
            return self.forward()
        status, rh, data = _http(ctx["daemon"], ctx["registry"], "GET", self.path)
        if status != 200 or len(data) < 4096:
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        ctx["cut"].add(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(data[:len(data) // 2])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


class _Tamper(_Forwarding):
    """Serves every big blob with one byte changed near its end (same length): its digest no longer holds."""

    def do_GET(self):
        ctx = self.server.ctx
        if "/blobs/" not in self.path:
            return self.forward()
        status, rh, data = _http(ctx["daemon"], ctx["registry"], "GET", self.path)
        if status == 200 and len(data) > 1 << 20:
            at = len(data) - 4096
            data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _push_unique_image(daemon, registry, tmp_path, repo: str, size: int) -> None:
    """busybox plus a layer of `size` random bytes, pushed as REGISTRY/repo and removed locally."""
    import os
    base = images.busybox_rootfs()
    layers = [base, images.tar_bytes([images.file("data/blob.bin", os.urandom(size))])]
    config = images.image_config(layers, cmd=["sh"])
    archive = tmp_path / "unique.tar"
    archive.write_bytes(images.docker_archive(layers, config, [f"{registry}/{repo}"]))
    daemon.pyd("load", "-i", str(archive), check=True, timeout=120)
    archive.unlink()
    push = daemon.pyd("push", f"{registry}/{repo}", timeout=120)
    assert push.returncode == 0, push.describe()
    daemon.pyd("rmi", f"{registry}/{repo}", check=True)


def test_interrupted_layer_download_resumes_with_range(daemon, registry, tmp_path):
    _push_unique_image(daemon, registry, tmp_path, "team/resume:1", 3 << 20)
    proxy = _Proxy(daemon, registry, _Cutter)
    try:
        name = f"{proxy}/team/resume:1"
        r = daemon.docker("pull", name, timeout=120)
        assert r.returncode == 0, r.describe()
        ranges = [rng for method, path, rng in proxy.server.ctx["log"] if rng]
        assert ranges and ranges[0].startswith("bytes=") and not ranges[0].startswith("bytes=0-"), \
            proxy.server.ctx["log"]
        run = daemon.docker("run", "--rm", "--network", "none", name, "sh", "-c", "wc -c < /data/blob.bin")
        assert run.stdout.strip() == str(3 << 20), run.describe()
    finally:
        proxy.close()


def test_tampered_layer_fails_the_pull_and_leaves_nothing(daemon, registry, tmp_path):
    """The extraction follows the download: a blob whose bytes do not match its digest fails the pull with
    Docker's words, and neither the image nor a layer nor a temp file stays behind."""
    _push_unique_image(daemon, registry, tmp_path, "team/tamper:1", 3 << 20)
    proxy = _Proxy(daemon, registry, _Tamper)
    try:
        name = f"{proxy}/team/tamper:1"
        r = daemon.docker("pull", name, timeout=120)
        assert r.returncode != 0, r.describe()
        assert "filesystem layer verification failed for digest sha256:" in r.stdout + r.stderr, r.describe()
        assert daemon.docker("image", "inspect", name).returncode != 0
    finally:
        proxy.close()
    tmp = daemon.data_root / "tmp"
    assert not [p for p in tmp.rglob("blob-*")], list(tmp.rglob("*"))
    layers = list((daemon.data_root / "image" / "overlay2" / "layerdb" / "sha256").iterdir())
    r = daemon.docker("pull", f"{registry}/team/tamper:1", timeout=120)   # straight from the registry: fine
    assert r.returncode == 0, r.describe()
    assert len(list((daemon.data_root / "image" / "overlay2" / "layerdb" / "sha256").iterdir())) > len(layers)


def test_pull_of_a_big_image_is_timed(daemon, registry, busybox, tmp_path):
    """~200 MB of incompressible data in 4 layers: push it, drop it, pull it, report the time."""
    import os
    layers = [images.tar_bytes([images.file(f"big/{i}.bin", os.urandom(50 << 20))]) for i in range(4)]
    base = images.busybox_rootfs()
    config = images.image_config([base] + layers, cmd=["sh"])
    archive = tmp_path / "big.tar"
    archive.write_bytes(images.docker_archive([base] + layers, config, [f"{registry}/bench/big:1"]))
    del layers
    daemon.pyd("load", "-i", str(archive), check=True, timeout=120)
    archive.unlink()
    t0 = time.monotonic()
    push = daemon.pyd("push", f"{registry}/bench/big:1", timeout=300)
    push_time = time.monotonic() - t0
    assert push.returncode == 0, push.describe()
    daemon.pyd("rmi", f"{registry}/bench/big:1", check=True)
    t0 = time.monotonic()
    pull = daemon.docker("pull", f"{registry}/bench/big:1", timeout=300)
    elapsed = time.monotonic() - t0
    assert pull.returncode == 0, pull.describe()
    assert pull.stdout.count("Pull complete") == 4, pull.stdout
    print(f"\nBENCH push of ~200 MB (5 layers, gzip -1) to the loopback registry: {push_time:.2f} s")
    print(f"BENCH pull of ~200 MB (5 layers) from the loopback registry: {elapsed:.2f} s")
    for line in daemon.log_text().splitlines():
        if "downloaded in" in line or "applied in" in line:
            print("   ", line.split("msg=", 1)[-1])
    daemon.pyd("rmi", f"{registry}/bench/big:1", check=True)


class _BasicAuth(_Forwarding):
    """A registry front that wants HTTP basic auth bob:hunter2 (as docker-registry with htpasswd does)."""

    def gate(self):
        if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"bob:hunter2").decode():
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="pyd-test"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.forward()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = lambda self: self.gate()


def test_basic_auth_push_and_pull_with_pyd_login(daemon, registry, tmp_path):
    _push_unique_image(daemon, registry, tmp_path, "team/basic:1", 64 << 10)
    proxy = _Proxy(daemon, registry, _BasicAuth)
    env = {"DOCKER_CONFIG": str(tmp_path / "pyd-config")}
    try:
        name = f"{proxy}/team/basic:1"
        denied = daemon.pyd("pull", name, env=env)
        assert denied.returncode == 1 and "pull access denied" in denied.stderr, denied.describe()
        bad = daemon.pyd("login", "-u", "bob", "-p", "nope", str(proxy), env=env)
        assert bad.returncode == 1 and "401 Unauthorized" in bad.stderr, bad.describe()
        ok = daemon.pyd("login", "-u", "bob", "--password-stdin", str(proxy), input="hunter2\n", env=env)
        assert ok.returncode == 0 and "Login Succeeded" in ok.stdout, ok.describe()
        stored = json.loads((tmp_path / "pyd-config" / "config.json").read_text())
        assert str(proxy) in stored["auths"]
        pulled = daemon.pyd("pull", name, env=env, timeout=120)
        assert pulled.returncode == 0, pulled.describe()
        daemon.pyd("tag", name, f"{proxy}/team/basic-copy:2", check=True)
        pushed = daemon.pyd("push", f"{proxy}/team/basic-copy:2", env=env, timeout=120)
        assert pushed.returncode == 0 and "2: digest: sha256:" in pushed.stdout, pushed.describe()
        out = daemon.pyd("logout", str(proxy), env=env)
        assert out.returncode == 0 and f"Removing login credentials for {proxy}" in out.stdout
    finally:
        proxy.close()


def test_whiteouts_round_trip_with_identical_diff_ids(daemon, registry, tmp_path):
    base = images.busybox_rootfs()
    l2 = images.tar_bytes([images.directory("d"), images.file("d/a", "a"), images.file("d/b", "b"),
                           images.directory("d2"), images.file("d2/old", "old")])
    l3 = images.tar_bytes([images.directory("d"), images.whiteout("d/a"), images.directory("d2"),
                           images.opaque_dir("d2"), images.file("d2/new", "new")])
    config = images.image_config([base, l2, l3], cmd=["sh"])
    name = f"{registry}/team/wh:1"
    archive = tmp_path / "wh.tar"
    archive.write_bytes(images.docker_archive([base, l2, l3], config, [name]))
    daemon.pyd("load", "-i", str(archive), check=True)
    before = json.loads(daemon.pyd("image", "inspect", name, check=True).stdout)[0]["RootFS"]["Layers"]
    assert daemon.pyd("push", name, timeout=120).returncode == 0
    daemon.pyd("rmi", name, check=True)
    assert daemon.pyd("pull", name, timeout=120).returncode == 0
    after = json.loads(daemon.pyd("image", "inspect", name, check=True).stdout)[0]["RootFS"]["Layers"]
    assert after == before
    ls = daemon.pyd("run", "--rm", "--network", "none", name, "ls", "/d", "/d2")
    assert ls.stdout == "/d:\nb\n\n/d2:\nnew\n", ls.describe()
    saved = tmp_path / "wh-saved.tar"
    daemon.pyd("save", "-o", str(saved), name, check=True)
    daemon.pyd("rmi", name, check=True)
    daemon.pyd("load", "-i", str(saved), check=True)
    again = json.loads(daemon.pyd("image", "inspect", name, check=True).stdout)[0]["RootFS"]["Layers"]
    assert again == before


def _openssl(*args, cwd):
    import subprocess
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def test_tls_registry_with_ca_from_certs_dir(make_daemon, busybox_rootfs_tar, tmp_path):
    """A registry on a non-loopback address speaks TLS only; its CA comes from certs.d/<host:port>/ca.crt."""
    import shutil
    import subprocess
    from conftest import DOCKER_REGISTRY
    certs = tmp_path / "certs.d"
    d = make_daemon("--registry-certs-dir", str(certs), "--max-concurrent-downloads", "1",
                    "--insecure-registry", "10.98.0.0/16")
    d.netns_run("ip", "addr", "add", "10.99.0.1/32", "dev", "lo", check=True)
    port = d.netns.free_port()
    host = f"10.99.0.1:{port}"
    pki = tmp_path / "pki"
    pki.mkdir()
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=pyd-test-ca", cwd=pki)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "srv.key",
             "-out", "srv.csr", "-subj", "/CN=10.99.0.1", cwd=pki)
    (pki / "ext.cnf").write_text("subjectAltName=IP:10.99.0.1\n")
    _openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "srv.crt", "-days", "2", "-extfile", "ext.cnf", cwd=pki)
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'storage'}\n"
        f"http:\n  addr: {host}\n  tls:\n    certificate: {pki / 'srv.crt'}\n    key: {pki / 'srv.key'}\n")
    proc = subprocess.Popen(d.netns.enter_argv() + [DOCKER_REGISTRY, "serve", str(config)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            with d.netns.socket() as s:
                if s.connect_ex(("10.99.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline and proc.poll() is None, "TLS registry did not start"
            time.sleep(0.05)
        info = json.loads(d.docker("info", "--format", "{{json .RegistryConfig}}", check=True).stdout)
        assert "10.98.0.0/16" in info["InsecureRegistryCIDRs"]
        image = d.import_image(busybox_rootfs_tar, f"{host}/tls/bb:1")
        no_ca = d.docker("push", image)
        assert no_ca.returncode == 1 and "certificate signed by unknown authority" in no_ca.stderr, no_ca.describe()
        (certs / host).mkdir(parents=True)
        shutil.copy(pki / "ca.crt", certs / host / "ca.crt")
        pushed = d.docker("push", image, timeout=120)
        assert pushed.returncode == 0 and ": Pushed" in pushed.stdout, pushed.describe()
        d.docker("rmi", image, check=True)
        pulled = d.docker("pull", image, timeout=120)
        assert pulled.returncode == 0, pulled.describe()
        run = d.docker("run", "--rm", "--network", "none", image, "echo", "over-tls")
        assert run.stdout == "over-tls\n", run.describe()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_all_tags_push_and_pull(daemon, registry, busybox):
    repo = f"{registry}/team/many"
    for tag in ("a", "b"):
        daemon.docker("tag", busybox, f"{repo}:{tag}", check=True)
    pushed = daemon.docker("push", "--all-tags", repo, timeout=120)
    assert pushed.returncode == 0, pushed.describe()
    assert "a: digest: sha256:" in pushed.stdout and "b: digest: sha256:" in pushed.stdout
    for tag in ("a", "b"):
        daemon.docker("rmi", f"{repo}:{tag}", check=True)
    pulled = daemon.pyd("pull", "--all-tags", repo, timeout=120)
    assert pulled.returncode == 0, pulled.describe()
    assert f"Status: Downloaded newer image for {repo}" in pulled.stdout
    tags = daemon.docker("images", "--format", "{{.Tag}}", repo).stdout.split()
    assert sorted(tags) == ["a", "b"]
    stream = daemon.api.images.push(repo, tag="a", stream=True, decode=True)
    messages = list(stream)
    assert any(m.get("status") == "Layer already exists" for m in messages), messages
    assert any((m.get("aux") or {}).get("Tag") == "a" for m in messages)


# ---------------------------------------------------------------------------------------------------------
# chunked uploads, registry mirrors, htpasswd over TLS, FROM pulls in the builder

class _FlakyChunks(_Forwarding):
    """Answers 503 to the 2nd PATCH without passing it on (the registry never saw it: the client resumes
    from the registry's Range), and loses the answer to the 4th after passing it on (the registry then
    refuses the stale session: the client starts the upload over)."""

    def do_PATCH(self):
        ctx = self.server.ctx
        ctx["patches"] = n = ctx.get("patches", 0) + 1
        ctx["log"].append(("CHUNK", self.path, self.headers.get("Content-Range")))
        if n == 2:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if n == 4:
            return self.forward(extra_check=lambda status, headers, data: self._lost())
        self.forward()

    def _lost(self):
        self.send_response(502)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return True


def test_chunked_push_resumes_from_the_registry_range(make_daemon, make_registry, tmp_path):
    import os
    chunk = 64 << 10
    d = make_daemon("--upload-chunk-size", str(chunk))
    reg_ = make_registry(d)
    payload = os.urandom(300 << 10)   # incompressible: its gzip blob is ~5 chunks
    layer = images.tar_bytes([images.file("data/blob.bin", payload)])
    config = images.image_config([layer], cmd=["/nothing"])
    archive = tmp_path / "chunky.tar"
    archive.write_bytes(images.docker_archive([layer], config, ["chunky:1"]))
    d.pyd("load", "-i", str(archive), check=True)
    proxy = _Proxy(d, reg_, _FlakyChunks)
    try:
        name = f"{proxy}/team/chunky:1"
        d.docker("tag", "chunky:1", name, check=True)
        r = d.docker("push", name, timeout=60)
        assert r.returncode == 0 and ": Pushed" in r.stdout, r.describe()
        log = proxy.server.ctx["log"]
        patches = [(path, rng) for method, path, rng in log if method == "CHUNK"]
        assert len(patches) >= 6 and all(rng and "-" in rng for _, rng in patches), log
        failed_start = patches[1][1].split("-")[0]
        assert patches[2][1].split("-")[0] == failed_start != "0", patches   # resumed where the registry was
        status_queries = [p for m, p, _ in log if m == "GET" and "/blobs/uploads/" in p]
        assert len(status_queries) >= 2, log   # one resume, one refused (stale) session
        assert sum(1 for m, p, _ in log if m == "POST" and "/blobs/uploads/" in p) >= 2, log   # started over
        assert patches[4][1].startswith("0-"), patches
    finally:
        proxy.close()
    d.docker("rmi", name, "chunky:1", check=True)
    pulled = d.docker("pull", f"{reg_}/team/chunky:1", timeout=60)
    assert pulled.returncode == 0, pulled.describe()
    d.docker("create", "--name", "chunky", f"{reg_}/team/chunky:1", check=True)
    out = d.docker("cp", "chunky:/data/blob.bin", str(tmp_path / "out"))
    assert out.returncode == 0, out.describe()
    assert (tmp_path / "out" / "blob.bin" if (tmp_path / "out").is_dir() else tmp_path / "out").read_bytes() == payload


def test_registry_mirror_serves_docker_hub_names(make_daemon, make_registry, busybox_rootfs_tar):
    """A dead mirror, then a live one: `docker pull mirrored` comes from the second. The daemon's namespace has
    no route out, so Docker Hub is never reached (the live mirror has to serve the pull)."""
    d = make_daemon(start=False)
    mirror = make_registry(d)
    d.config_file.write_text(json.dumps({"registry-mirrors": ["http://127.0.0.1:1", f"http://{mirror}/"]}))
    d.start()
    info = json.loads(d.docker("info", "--format", "{{json .RegistryConfig}}", check=True).stdout)
    assert info["Mirrors"] == ["http://127.0.0.1:1/", f"http://{mirror}/"]
    image = d.import_image(busybox_rootfs_tar, f"{mirror}/library/mirrored:latest")
    d.docker("push", image, check=True, timeout=60)
    d.docker("rmi", image, check=True)
    r = d.docker("pull", "mirrored", timeout=60)
    assert r.returncode == 0, r.describe()
    assert "latest: Pulling from library/mirrored" in r.stdout
    assert "Status: Downloaded newer image for mirrored:latest" in r.stdout
    assert "docker.io/library/mirrored:latest" in r.stdout
    run = d.docker("run", "--rm", "--network", "none", "mirrored", "echo", "from-the-mirror")
    assert run.stdout == "from-the-mirror\n", run.describe()
    bad = make_daemon("--registry-mirror", "ftp://mirror.example", start=False)
    with pytest.raises(BaseException):
        bad.start(timeout=5)
    assert 'invalid mirror: unsupported scheme "ftp"' in bad.log_text()


def test_build_pulls_a_missing_base_image(daemon, registry, busybox):
    base = f"{registry}/team/base:b1"
    daemon.docker("tag", busybox, base, check=True)
    daemon.docker("push", base, check=True, timeout=60)
    daemon.docker("rmi", base, check=True)
    dockerfile = f"FROM {base}\nLABEL pulled=yes\n"
    r = daemon.docker("build", "-t", "from-pulled:1", "-", input=dockerfile, timeout=60)
    assert r.returncode == 0, r.describe()
    assert f"Step 1/2 : FROM {base}" in r.stdout
    assert "b1: Pulling from team/base" in r.stdout and f"Status: Downloaded newer image for {base}" in r.stdout
    assert "Successfully tagged from-pulled:1" in r.stdout
    labels = json.loads(daemon.docker("image", "inspect", "from-pulled:1", check=True).stdout)[0]["Config"]["Labels"]
    assert labels == {"pulled": "yes"}
    assert daemon.docker("image", "inspect", base).returncode == 0
    missing = daemon.docker("build", "-", input=f"FROM {registry}/team/absent:1\n", timeout=60)
    assert missing.returncode == 1 and "manifest for" in missing.stderr and "not found" in missing.stderr, \
        missing.describe()


class _Relay:
    """A TCP relay: accepts on addr in one network namespace, connects to addr in another (TLS passes through
    untouched), so a second daemon reaches a registry that lives in the first daemon's namespace."""

    def __init__(self, listen_ns, target_ns, addr):
        self.target_ns, self.addr, self.stopped, self.socks = target_ns, addr, False, []
        self.lsock = listen_ns.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(addr)
        self.lsock.listen(16)
        self.lsock.settimeout(0.1)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.lsock.accept()
            except (socket.timeout, OSError):
                continue
            up = self.target_ns.socket()
            up.settimeout(30)
            up.connect(self.addr)
            self.socks += [conn, up]
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self):
        self.stopped = True
        self.thread.join(5)
        for s in [self.lsock, *self.socks]:
            s.close()


def test_htpasswd_registry_over_tls_push_then_pull_into_a_fresh_daemon(make_daemon, busybox_rootfs_tar, tmp_path):
    """Debian's docker-registry with `auth: htpasswd` (bcrypt, made by htpasswd -B) behind TLS from a CA made
    here; the CA is in the daemons' certs.d/<host:port>/. docker login, push from one daemon, pull into a
    fresh one (its own data-root and namespace, reaching the registry through a TCP relay), run."""
    import shutil
    import subprocess
    from conftest import DOCKER_REGISTRY
    if not shutil.which("htpasswd"):
        pytest.fail("this test needs htpasswd (apt-get install apache2-utils)", pytrace=False)
    certs = tmp_path / "certs.d"
    d = make_daemon("--registry-certs-dir", str(certs))
    fresh = make_daemon("--registry-certs-dir", str(certs), start=False)
    ip = "10.99.0.2"
    for x in (d, fresh):
        x.netns_run("ip", "addr", "add", f"{ip}/32", "dev", "lo", check=True)
    port = d.netns.free_port()
    host = f"{ip}:{port}"
    pki = tmp_path / "pki"
    pki.mkdir()
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=pyd-test-ca", cwd=pki)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "srv.key",
             "-out", "srv.csr", "-subj", f"/CN={ip}", cwd=pki)
    (pki / "ext.cnf").write_text(f"subjectAltName=IP:{ip}\n")
    _openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "srv.crt", "-days", "2", "-extfile", "ext.cnf", cwd=pki)
    (certs / host).mkdir(parents=True)
    shutil.copy(pki / "ca.crt", certs / host / "ca.crt")
    htpasswd = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(htpasswd), "carol", "s3cret"], check=True, capture_output=True,
                   timeout=30)
    assert htpasswd.read_text().startswith("carol:$2")
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'storage'}\n"
        f"auth:\n  htpasswd:\n    realm: pyd-test\n    path: {htpasswd}\n"
        f"http:\n  addr: {host}\n  tls:\n    certificate: {pki / 'srv.crt'}\n    key: {pki / 'srv.key'}\n")
    proc = subprocess.Popen(d.netns.enter_argv() + [DOCKER_REGISTRY, "serve", str(config)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    relay = None
    try:
        deadline = time.monotonic() + 20
        while True:
            with d.netns.socket() as s:
                if s.connect_ex((ip, port)) == 0:
                    break
            assert time.monotonic() < deadline and proc.poll() is None, "htpasswd registry did not start"
            time.sleep(0.05)
        image = d.import_image(busybox_rootfs_tar, f"{host}/secure/bb:1")
        anon = d.docker("push", image)
        assert anon.returncode == 1 and "authentication required" in anon.stderr, anon.describe()
        bad = d.docker("login", "-u", "carol", "--password-stdin", host, input="wrong\n")
        assert bad.returncode == 1 and "401 Unauthorized" in bad.stderr, bad.describe()
        ok = d.docker("login", "-u", "carol", "--password-stdin", host, input="s3cret\n")
        assert ok.returncode == 0 and "Login Succeeded" in ok.stdout, ok.describe()
        pushed = d.docker("push", image, timeout=60)
        assert pushed.returncode == 0 and ": Pushed" in pushed.stdout, pushed.describe()

        relay = _Relay(fresh.netns, d.netns, (ip, port))
        fresh.start()
        denied = fresh.docker("pull", image)
        assert denied.returncode == 1 and "pull access denied" in denied.stderr, denied.describe()
        assert fresh.docker("login", "-u", "carol", "--password-stdin", host, input="s3cret\n").returncode == 0
        pulled = fresh.docker("pull", image, timeout=60)
        assert pulled.returncode == 0 and f"Downloaded newer image for {image}" in pulled.stdout, pulled.describe()
        run = fresh.docker("run", "--rm", "--network", "none", image, "echo", "htpasswd-over-tls")
        assert run.stdout == "htpasswd-over-tls\n", run.describe()
    finally:
        if relay:
            relay.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
