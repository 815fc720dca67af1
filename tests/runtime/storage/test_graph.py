"""Storage: layers, images, references, import/load/save, container layers (the driver contract and
the hostile-layer corpus are beside this file).

Runs as root against real overlayfs and real files in tmp data-roots; every mount made under a data-root
is undone in the fixture's finalizer, even when a test fails.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile

import pytest


from pyd.daemon.storage import archive
from pyd.daemon.storage import graph
from pyd.daemon.storage.drivers import DRIVERS, StorageOptions, overlayfs, parse_storage_opts
from pyd.daemon.runtime import native
from pyd.daemon.errors import BadParameter, Conflict, NotFound
from pyd.daemon.storage.graph import Graph, parse_reference
from runtime.storage.tarkit import (BUSYBOX, add_dir, add_file, busybox_entries, make_tar,
                                    mounts_under)



# ---------------------------------------------------------------------------------------------------
# fixtures and builders

def _unmount_all(root: str) -> None:
    for target in sorted(mounts_under(root), key=len, reverse=True):
        try:
            native.umount2(target, native.MNT_DETACH)
        except OSError:
            pass


@pytest.fixture
def data_root():
    root = tempfile.mkdtemp(prefix="pyd-graph-", dir="/tmp")
    yield root
    _unmount_all(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=list(DRIVERS))
def g(request, data_root) -> Graph:
    return Graph(data_root, request.param)


def busybox_rootfs() -> bytes:
    return make_tar(busybox_entries)


def _chunks(data: bytes, size: int = 65536):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def docker_archive(layers: list[bytes], tags: list[str], gzip_layers: set[int] = frozenset(),
                   config_extra: dict | None = None) -> bytes:
    """A `docker save`-style archive (legacy <id>/layer.tar paths) built with tarfile."""
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
              "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    config.update(config_extra or {})
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    paths = []

    def build(tar):
        add_file(tar, config_name, config_bytes)
        for i, layer in enumerate(layers):
            body = layer
            if i in gzip_layers:
                import gzip
                body = gzip.compress(layer)
            d = f"{i:064x}"
            add_dir(tar, d)
            add_file(tar, f"{d}/layer.tar", body)
            paths.append(f"{d}/layer.tar")
        manifest = [{"Config": config_name, "RepoTags": tags, "Layers": paths}]
        add_file(tar, "manifest.json", json.dumps(manifest).encode())
    return make_tar(build)


def layer_dir(g: Graph, chain: str) -> str:
    return g.driver.diff_dir(g.layer(chain).cache_id)


@pytest.fixture
def busybox(g) -> str:
    return g.import_tar(_chunks(busybox_rootfs()), "busybox:latest", ['CMD ["sh"]', "ENV A=1 B=two"], "")


@pytest.fixture
def rootfs(g, busybox):
    """A mounted container root filesystem on the busybox image; unmounted and removed afterwards."""
    g.create_rw("c1", busybox)
    path = g.mount_rw("c1")
    yield path
    g.remove_rw("c1")


# ---------------------------------------------------------------------------------------------------
# references

@pytest.mark.parametrize("given, full, familiar", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("user/app:v1", "docker.io/user/app:v1", "user/app:v1"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("127.0.0.1:5000/a/b:tag", "127.0.0.1:5000/a/b:tag", "127.0.0.1:5000/a/b:tag"),
    ("registry.example.com:443/ns/app", "registry.example.com:443/ns/app:latest",
     "registry.example.com:443/ns/app:latest"),
    ("busybox@sha256:" + "a" * 64, "docker.io/library/busybox@sha256:" + "a" * 64, "busybox@sha256:" + "a" * 64),
    ("busybox:1@sha256:" + "b" * 64, "docker.io/library/busybox:1@sha256:" + "b" * 64,
     "busybox:1@sha256:" + "b" * 64),
])
def test_parse_reference_normalizes_like_docker(given, full, familiar):
    ref = parse_reference(given)
    assert str(ref) == full
    assert ref.familiar() == familiar


@pytest.mark.parametrize("given, message", [
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("user/App:v1", "invalid reference format: repository name (user/App) must be lowercase"),
    ("busybox:", "invalid reference format"),
    ("busy box", "invalid reference format"),
    ("-busybox", "invalid reference format"),
    ("busybox:a:b", "invalid reference format"),
    ("busybox@sha256:123", "invalid reference format"),
    ("a" * 64, "invalid repository name (" + "a" * 64 + "), cannot specify 64-byte hexadecimal strings"),
])
def test_parse_reference_rejects_with_dockers_messages(given, message):
    with pytest.raises(BadParameter) as exc:
        parse_reference(given)
    assert str(exc.value) == message
    assert exc.value.status == 400


def test_parse_reference_without_default_tag():
    assert parse_reference("busybox", default_tag=False).tag is None


# ---------------------------------------------------------------------------------------------------
# drivers and basics

def test_driver_detection_picks_overlay2_on_ext4_and_reports_backing_fs(data_root):
    g = Graph(data_root)
    assert g.driver_name == "overlay2"
    assert g.backing_fs == "extfs"
    assert os.path.isdir(os.path.join(data_root, "overlay2", "l"))
    assert not os.listdir(os.path.join(data_root, "tmp")), "the overlay probe cleans up after itself"
    assert not mounts_under(data_root)


def test_vfs_is_used_where_overlay_cannot_mount(data_root):
    # overlayfs refuses an overlay mount as upper dir: a data-root inside one must fall back to vfs
    outer = os.path.join(data_root, "outer")
    dirs = [os.path.join(outer, n) for n in ("lower", "upper", "work", "merged")]
    for d in dirs:
        os.makedirs(d)
    overlayfs.mount_overlay(dirs[3], [dirs[0]], dirs[1], dirs[2])
    inner = os.path.join(dirs[3], "root")
    os.mkdir(inner)
    if overlayfs.overlay_supported(inner):
        pytest.skip("this kernel accepts overlayfs on overlayfs")
    assert Graph(inner).driver_name == "vfs"
    assert Graph(inner).backing_fs == "overlayfs"
    with pytest.raises(graph.GraphDriverError, match="driver not supported: overlay2"):
        Graph(inner, "overlay2")


def test_unknown_driver_is_an_error(data_root):
    with pytest.raises(graph.GraphDriverError, match="not supported"):
        Graph(data_root, "aufs")


def test_atomic_write_replaces_whole_file(tmp_path):
    from pyd.daemon.fsutil import atomic_write, atomic_write_json
    p = str(tmp_path / "f.json")
    atomic_write_json(p, {"a": 1})
    atomic_write(p, b"new", 0o600)
    assert open(p, "rb").read() == b"new"
    assert os.stat(p).st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["f.json"], "no temp file left behind"


def test_native_errors_name_the_target(tmp_path):
    with pytest.raises(OSError) as exc:
        native.mount(str(tmp_path / "nope"), str(tmp_path / "nowhere"), None, native.MS_BIND)
    assert exc.value.errno == 2
    assert "nowhere" in str(exc.value) and "nope" in str(exc.value)


# ---------------------------------------------------------------------------------------------------
# import, resolve, mount

def test_import_busybox_with_changes(g, busybox):
    image = g.resolve_image("busybox")
    assert image.id == busybox
    cfg = image.container_config()
    assert cfg["Cmd"] == ["sh"]
    assert cfg["Env"] == ["A=1", "B=two"]
    assert image.config["os"] == "linux" and image.config["architecture"] == "amd64"
    assert image.config["history"][0]["comment"] == "Imported from -"
    with open(BUSYBOX, "rb") as f:
        busybox_size = len(f.read())
    assert image.size >= busybox_size
    diff = image.config["rootfs"]["diff_ids"][0]
    assert diff == "sha256:" + hashlib.sha256(busybox_rootfs()).hexdigest()
    stored = os.path.join(g.meta, "imagedb", "content", "sha256", busybox.split(":")[1])
    assert hashlib.sha256(open(stored, "rb").read()).hexdigest() == busybox.split(":")[1]
    layerdb = os.path.join(g.meta, "layerdb", "sha256", diff.split(":")[1])
    assert open(os.path.join(layerdb, "diff")).read() == diff
    assert os.path.isdir(layer_dir(g, diff))


def test_import_change_forms(g):
    image_id = g.import_tar(busybox_rootfs(), None, [
        "CMD echo hi", "ENTRYPOINT [\"/bin/sh\", \"-c\"]", "EXPOSE 80 53/udp", "LABEL a=b \"c d\"=e",
        "USER 1000:1000", "WORKDIR /app", "WORKDIR sub", "VOLUME [\"/data\"]", "STOPSIGNAL SIGINT",
        "ENV PATH /usr/bin:/bin"], "my import")
    image = g.resolve_image(image_id)
    cfg = image.container_config()
    assert cfg["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c"]
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["Labels"] == {"a": "b", "c d": "e"}
    assert cfg["User"] == "1000:1000" and cfg["WorkingDir"] == "/app/sub"
    assert cfg["Volumes"] == {"/data": {}} and cfg["StopSignal"] == "SIGINT"
    assert cfg["Env"] == ["PATH=/usr/bin:/bin"]
    assert image.config["history"][0]["comment"] == "my import"
    assert g.image_refs(image_id) == []
    with pytest.raises(BadParameter, match="run is not a valid change command"):
        g.import_tar(busybox_rootfs(), None, ["RUN true"], "")


def test_resolve_by_name_short_and_full_id(g, busybox):
    hexid = busybox.split(":")[1]
    for form in ("busybox", "busybox:latest", "docker.io/library/busybox:latest", hexid[:12], hexid[:1],
                 hexid, busybox, "sha256:" + hexid[:5]):
        assert g.resolve_image(form).id == busybox, form
    with pytest.raises(NotFound) as exc:
        g.resolve_image("busybox:nope")
    assert str(exc.value) == "No such image: busybox:nope"
    with pytest.raises(NotFound, match="No such image: alpine:latest"):
        g.resolve_image("alpine")
    with pytest.raises(BadParameter, match="must be lowercase"):
        g.resolve_image("BusyBox")


def test_name_wins_over_id_prefix(g, busybox):
    other = g.import_tar(make_tar(lambda t: add_file(t, "x", b"x")), None, [], "")
    prefix = busybox.split(":")[1][:4]   # a hex prefix is also a valid repository name
    g.tag(other, prefix)
    assert g.resolve_image(prefix).id == other
    assert g.resolve_image(busybox.split(":")[1][:12]).id == busybox


def test_mount_rw_shows_busybox_and_keeps_image_layer_intact(g, busybox, rootfs):
    assert os.access(os.path.join(rootfs, "bin/busybox"), os.X_OK)
    assert os.readlink(os.path.join(rootfs, "bin/sh")) == "busybox"
    assert open(os.path.join(rootfs, "etc/passwd")).read().startswith("root:x:0:0")
    assert oct(os.stat(os.path.join(rootfs, "tmp")).st_mode & 0o7777) == oct(0o1777)
    with open(os.path.join(rootfs, "etc/passwd"), "a") as f:
        f.write("user:x:1000:1000::/home/user:/bin/sh\n")
    with open(os.path.join(rootfs, "newfile"), "w") as f:
        f.write("container data\n")
    os.unlink(os.path.join(rootfs, "bin/ls"))
    image_layer = layer_dir(g, g.resolve_image(busybox).chain_ids()[-1])
    assert open(os.path.join(image_layer, "etc/passwd")).read() == "root:x:0:0:root:/root:/bin/sh\n"
    assert not os.path.exists(os.path.join(image_layer, "newfile"))
    assert os.path.islink(os.path.join(image_layer, "bin/ls"))
    if g.driver_name == "overlay2":
        assert os.path.ismount(rootfs)
        upper = g.rw_dir("c1")
        assert open(os.path.join(upper, "newfile")).read() == "container data\n"
        data = g.rw_metadata("c1")
        assert data["MergedDir"] == rootfs and data["UpperDir"] == upper
        assert data["LowerDir"] == image_layer
    else:
        assert g.rw_metadata("c1") is None
    assert g.graph_driver(image_id="busybox")["Name"] == g.driver_name


def test_mount_is_reference_counted_and_remove_cleans_up(g, busybox):
    g.create_rw("c2", busybox)
    p1 = g.mount_rw("c2")
    assert g.mount_rw("c2") == p1
    g.unmount_rw("c2")
    assert os.path.exists(os.path.join(p1, "bin/busybox")), "still mounted for the second user"
    g.unmount_rw("c2")
    if g.driver_name == "overlay2":
        assert not os.path.ismount(p1)
    g.mount_rw("c2")
    mount_id = g._rw["c2"].mount_id
    g.remove_rw("c2")
    assert not mounts_under(g.root)
    assert not g.driver.exists(mount_id)
    assert not os.path.exists(os.path.join(g.meta, "layerdb", "mounts", "c2"))
    with pytest.raises(NotFound):
        g.mount_rw("c2")


def test_interrupted_removals_and_registrations_are_swept_at_load(g, busybox):
    """A crash between a removal's metadata rename and its driver dir removal (or in a registration before
    its metadata landed) leaves a driver dir nothing names; the next load removes it and layerdb/tmp."""
    tmp = os.path.join(g.meta, "layerdb", "tmp")
    g.create_rw("gone", busybox)
    g.create_rw("kept", busybox)
    mount_id, kept_id = g._rw["gone"].mount_id, g._rw["kept"].mount_id
    os.rename(os.path.join(g.meta, "layerdb", "mounts", "gone"), os.path.join(tmp, "remove-mount-gone-0000"))
    orphan = "ab" * 32                                   # a registration that died extracting
    g.driver.create(orphan, None)
    open(os.path.join(tmp, f"{orphan}-tar-split.json.gz"), "wb").close()
    again = Graph(g.root, g.driver_name)
    assert not again.driver.exists(mount_id) and not again.driver.exists(orphan)
    assert again.driver.exists(kept_id) and "kept" in again._rw and "gone" not in again._rw
    assert os.listdir(tmp) == []
    again.remove_rw("kept")


def test_container_layer_survives_losing_its_unsynced_driver_files(data_root):
    """overlay2 container layers are written without fsync: what a machine crash can lose of them
    (link, lower, the l/ symlink, even the whole dir) is re-created from the graph's metadata on load."""
    g = Graph(data_root, "overlay2")
    image = g.import_tar(_chunks(busybox_rootfs()), "busybox:latest", [], "")
    g.create_rw("c1", image)
    g.create_rw("c2", image)
    d1 = os.path.join(g.driver.home, g._rw["c1"].mount_id)
    d2 = os.path.join(g.driver.home, g._rw["c2"].mount_id)
    link = open(os.path.join(d1, "link")).read()
    os.unlink(os.path.join(g.driver.home, "l", link))
    open(os.path.join(d1, "link"), "w").close()
    open(os.path.join(d1, "lower"), "w").close()
    shutil.rmtree(d2)
    g2 = Graph(data_root)
    for cid in ("c1", "c2"):
        rootfs = g2.mount_rw(cid)
        assert os.access(os.path.join(rootfs, "bin/busybox"), os.X_OK), cid
        g2.unmount_rw(cid)
    new_link = open(os.path.join(d1, "link")).read()
    assert os.readlink(os.path.join(g2.driver.home, "l", new_link)) == f"../{os.path.basename(d1)}/diff"


def test_image_without_layers_and_container_without_image(g):
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    image = g.store_image(config)
    assert image.size == 0
    g.create_rw("empty", image.id)
    path = g.mount_rw("empty")
    open(os.path.join(path, "hello"), "w").close()
    assert os.listdir(path) == ["hello"]
    g.unmount_rw("empty")
    g.remove_rw("empty")
    g.create_rw("scratch", None)
    assert os.listdir(g.mount_rw("scratch")) == []
    g.remove_rw("scratch")


def test_empty_tar_imports_as_one_empty_layer(g):
    image_id = g.import_tar(b"\0" * 10240, "empty:1", [], "")
    image = g.resolve_image("empty:1")
    assert image.id == image_id and len(image.diff_ids()) == 1 and image.size == 0
    g.create_rw("e", image_id)
    assert os.listdir(g.mount_rw("e")) == []
    g.remove_rw("e")


def test_same_layer_is_stored_once(g):
    data = busybox_rootfs()
    a = g.import_tar(data, "a:1", [], "first")
    b = g.import_tar(io.BytesIO(data), "b:1", [], "second")
    assert a != b
    assert g.resolve_image(a).chain_ids() == g.resolve_image(b).chain_ids()
    assert len(os.listdir(os.path.join(g.meta, "layerdb", "sha256"))) == 1
    home = g.driver.home if g.driver_name == "overlay2" else os.path.join(g.driver.home, "dir")
    assert len([d for d in os.listdir(home) if d != "l"]) == 1, "the duplicate's extraction is discarded"


# ---------------------------------------------------------------------------------------------------
# load: whiteouts, many layers, OCI, save round trip

def _whiteout_archive() -> bytes:
    def base(tar):
        busybox_entries(tar)
        add_file(tar, "etc/motd", b"hello\n")
        add_dir(tar, "data")
        add_file(tar, "data/a", b"a")
        add_dir(tar, "data/sub")
        add_file(tar, "data/sub/b", b"b")
        add_dir(tar, "keep")
        add_file(tar, "keep/x", b"x")

    def top(tar):
        add_dir(tar, "etc")
        add_file(tar, "etc/.wh.motd")
        add_dir(tar, "data")
        add_file(tar, "data/.wh..wh..opq")
        add_file(tar, "data/c", b"c")
        add_file(tar, ".wh.keep")
    return docker_archive([make_tar(base), make_tar(top)], ["wh:latest"], gzip_layers={1})


def test_load_docker_archive_applies_whiteouts(g):
    assert g.load(_chunks(_whiteout_archive())) == ["Loaded image: wh:latest"]
    image = g.resolve_image("wh")
    assert len(image.chain_ids()) == 2
    top = layer_dir(g, image.chain_ids()[1])
    if g.driver_name == "overlay2":
        st = os.lstat(os.path.join(top, "etc/motd"))
        assert (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == 0, "overlay whiteout is a 0/0 char device"
        assert os.getxattr(os.path.join(top, "data"), "trusted.overlay.opaque") == b"y"
    g.create_rw("w", image.id)
    root = g.mount_rw("w")
    try:
        assert not os.path.exists(os.path.join(root, "etc/motd"))
        assert os.path.exists(os.path.join(root, "etc/passwd"))
        assert sorted(os.listdir(os.path.join(root, "data"))) == ["c"]
        assert not os.path.exists(os.path.join(root, "keep"))
        assert os.path.exists(os.path.join(root, "bin/busybox"))
    finally:
        g.remove_rw("w")


def test_load_rejects_wrong_diff_id(g):
    good = docker_archive([busybox_rootfs()], ["x:1"])
    bad = good.replace(b'"sha256:', b'"sha256:0', 1)   # corrupt the config's diff ID
    with pytest.raises(BadParameter):
        g.load(bad)
    assert g.images() == []


def test_120_layers_mount_on_overlay2(data_root):
    g = Graph(data_root, "overlay2")
    layers = [make_tar(lambda t, i=i: add_file(t, f"f{i:03d}", str(i).encode())) for i in range(120)]
    assert g.load(docker_archive(layers, ["deep:latest"])) == ["Loaded image: deep:latest"]
    g.create_rw("deep", "deep")
    try:
        root = g.mount_rw("deep")
        assert os.path.ismount(root)
        assert sorted(os.listdir(root)) == [f"f{i:03d}" for i in range(120)]
        assert open(os.path.join(root, "f000")).read() == "0"
        lower = open(os.path.join(g.driver.home, g._rw["deep"].mount_id, "lower")).read()
        assert len(lower.split(":")) == 120 and all(p.startswith("l/") and len(p) == 28 for p in lower.split(":"))
    finally:
        g.remove_rw("deep")


def test_120_layers_mount_with_mount2_and_short_links(data_root):
    # kernels before 6.8 (Debian 12: 6.1) take overlay's options only through mount(2): one page of
    # options, so dockerd's relative `l/` names from the driver's home
    g = Graph(data_root, "overlay2", StorageOptions(overlay_mount_api="mount2"))
    assert g.driver.new_api is False
    layers = [make_tar(lambda t, i=i: add_file(t, f"f{i:03d}", str(i).encode())) for i in range(120)]
    assert g.load(docker_archive(layers, ["deep:latest"])) == ["Loaded image: deep:latest"]
    g.create_rw("deep", "deep")
    cwd = os.getcwd()
    try:
        root = g.mount_rw("deep")
        assert os.getcwd() == cwd
        assert os.path.ismount(root)
        assert sorted(os.listdir(root)) == [f"f{i:03d}" for i in range(120)]
        open(os.path.join(root, "f119"), "w").write("changed")
        assert open(os.path.join(g.driver.diff_dir(g._rw["deep"].mount_id), "f119")).read() == "changed"
    finally:
        g.remove_rw("deep")


def test_the_kernel_chooses_the_mount_api_once_at_start(data_root, caplog):
    with caplog.at_level(logging.DEBUG, logger="pyd.graph"):
        g = Graph(data_root, "overlay2")
    chose = [r.getMessage() for r in caplog.records if "mounted with" in r.getMessage()]
    assert len(chose) == 1
    assert ("new mount API" in chose[0]) == g.driver.new_api


def test_layers_that_lost_their_l_links_mount_after_a_restart(data_root):
    g = Graph(data_root, "overlay2", StorageOptions(overlay_mount_api="mount2"))
    layers = [make_tar(lambda t, i=i: add_file(t, f"f{i}", b"x")) for i in range(3)]
    g.load(docker_archive(layers, ["three:latest"]))
    links = os.path.join(g.driver.home, "l")
    for name in os.listdir(links):
        os.unlink(os.path.join(links, name))
    g = Graph(data_root, "overlay2", StorageOptions(overlay_mount_api="mount2"))   # the daemon starts again
    assert len(os.listdir(links)) == 3
    g.create_rw("c", "three")
    try:
        assert sorted(os.listdir(g.mount_rw("c"))) == ["f0", "f1", "f2"]
    finally:
        g.remove_rw("c")


def test_storage_opts_are_checked():
    assert parse_storage_opts(["overlay2.mount_api=mount2"]).overlay_mount_api == "mount2"
    assert parse_storage_opts([]).overlay_mount_api is None
    with pytest.raises(graph.GraphDriverError, match="overlay2: unknown option overlay2.size"):
        parse_storage_opts(["overlay2.size=10G"])
    with pytest.raises(graph.GraphDriverError, match="not one of new, mount2"):
        parse_storage_opts(["overlay2.mount_api=fuse"])


def test_mount2_fallback_with_many_long_lowers(data_root):
    # the pre-6.8 path: too long for one page, mounted from a forked child that chdirs
    base = os.path.join(data_root, "x" * 60)
    lowers = []
    for i in range(100):
        d = os.path.join(base, f"lower-{i:03d}-" + "y" * 20)
        os.makedirs(d)
        open(os.path.join(d, f"f{i}"), "w").close()
        lowers.append(d)
    upper, work, merged = (os.path.join(base, n) for n in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        os.mkdir(d)
    cwd = os.getcwd()
    overlayfs.mount_overlay(merged, lowers, upper, work, new_api=False)
    try:
        assert os.getcwd() == cwd
        assert len(os.listdir(merged)) == 100
    finally:
        overlayfs.unmount(merged)


def _oci_layout(layer: bytes, name: str) -> bytes:
    diff = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode()
    import gzip
    gz = gzip.compress(layer)
    blobs = {}

    def add(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return digest
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": add(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": add(gz), "size": len(gz)}]}).encode()
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": add(manifest),
        "size": len(manifest), "annotations": {"io.containerd.image.name": name,
                                               "org.opencontainers.image.ref.name": "latest"}}]}

    def build(tar):
        add_file(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add_file(tar, "index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            add_file(tar, "blobs/sha256/" + digest.split(":")[1], data)
    return make_tar(build)


def test_load_oci_layout(g):
    out = g.load(_oci_layout(busybox_rootfs(), "docker.io/library/ocibox:latest"))
    assert out == ["Loaded image: ocibox:latest"]
    assert g.resolve_image("ocibox").container_config()["Cmd"] == ["sh"]


def test_save_then_load_gives_the_same_image(g, busybox, data_root):
    g.tag(busybox, "busybox:v2")
    data = b"".join(g.save(["busybox:latest"]))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("manifest.json"))
        index = json.load(tar.extractfile("index.json"))
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= names
    assert manifest[0]["RepoTags"] == ["busybox:latest"]
    assert manifest[0]["Config"] == "blobs/sha256/" + busybox.split(":")[1]
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == "docker.io/library/busybox:latest"
    other_root = tempfile.mkdtemp(prefix="pyd-graph-2-", dir="/tmp")
    try:
        g2 = Graph(other_root, g.driver_name)
        assert g2.load(_chunks(data)) == ["Loaded image: busybox:latest"]
        assert g2.resolve_image("busybox").id == busybox   # same config bytes, same layer diff IDs
        by_repo = b"".join(g.save(["busybox"]))
        with tarfile.open(fileobj=io.BytesIO(by_repo)) as tar:
            assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] == ["busybox:latest", "busybox:v2"]
        by_id = b"".join(g.save([busybox.split(":")[1][:12]]))
        assert g2.load(by_id) == [f"Loaded image ID: {busybox}"]
    finally:
        _unmount_all(other_root)
        shutil.rmtree(other_root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# writing trees (the hostile-layer corpus is test_hostile_layers.py)

def test_write_tar_round_trips_a_tree(g, busybox, tmp_path):
    top = layer_dir(g, g.resolve_image(busybox).chain_ids()[-1])
    data = b"".join(archive.write_tar(top))
    out = tmp_path / "out"
    out.mkdir()
    archive.extract_layer(data, str(out))
    assert open(out / "bin/busybox", "rb").read() == open(BUSYBOX, "rb").read()
    assert os.readlink(out / "bin/sh") == "busybox"


# ---------------------------------------------------------------------------------------------------
# persistence, references, delete

def test_new_graph_on_same_root_sees_everything(g, busybox, caplog):
    g.tag(busybox, "127.0.0.1:5000/team/box:v1")
    g.create_rw("c9", busybox)
    # a crash left a half-written layer behind: a layerdb dir without its diff file
    bogus = os.path.join(g.meta, "layerdb", "sha256", "f" * 64)
    os.makedirs(bogus)
    open(os.path.join(bogus, "cache-id"), "w").write("deadbeef")
    with caplog.at_level(logging.WARNING, logger="pyd.graph"):
        g2 = Graph(g.root)
    assert g2.driver_name == g.driver_name
    assert "skipping layer " + "f" * 64 in caplog.text
    assert g2.resolve_image("busybox").id == busybox
    assert g2.image_refs(busybox) == ["127.0.0.1:5000/team/box:v1", "busybox:latest"]
    assert g2.resolve_image(busybox).size == g.resolve_image(busybox).size
    root = g2.mount_rw("c9")
    try:
        assert os.path.exists(os.path.join(root, "bin/busybox"))
    finally:
        g2.remove_rw("c9")


def test_repositories_json_has_dockerds_shape(g, busybox):
    g.tag(busybox, "busybox:1.36")
    g.tag("busybox", "127.0.0.1:5000/app")
    digest_ref = "busybox@sha256:" + "c" * 64
    g.tag(busybox, digest_ref, allow_digest=True)
    with open(os.path.join(g.meta, "repositories.json")) as f:
        repos = json.load(f)
    assert repos == {"Repositories": {
        "busybox": {"busybox:latest": busybox, "busybox:1.36": busybox, digest_ref: busybox},
        "127.0.0.1:5000/app": {"127.0.0.1:5000/app:latest": busybox}}}
    assert g.resolve_image(digest_ref).id == busybox
    with pytest.raises(BadParameter, match="refusing to create a tag with a digest reference"):
        g.tag(busybox, digest_ref)


def test_delete_by_name_only_untags_while_other_tags_remain(g, busybox):
    g.tag(busybox, "busybox:v2")
    g.tag(busybox, "other:1")
    assert g.delete_image("busybox:v2") == [{"Untagged": "busybox:v2"}]
    assert g.image_refs(busybox) == ["busybox:latest", "other:1"]
    short = busybox.split(":")[1][:12]
    with pytest.raises(Conflict) as exc:
        g.delete_image(short)
    assert str(exc.value) == (f"conflict: unable to delete {short} (must be forced) - "
                              "image is referenced in multiple repositories")
    assert exc.value.status == 409
    chain = g.resolve_image(busybox).chain_ids()[-1]
    cache = g.layer(chain).cache_id
    records = g.delete_image(short, force=True)
    assert records == [{"Untagged": "busybox:latest"}, {"Untagged": "other:1"}, {"Deleted": busybox},
                       {"Deleted": chain}]
    assert g.images() == [] and not g.has_layer(chain) and not g.driver.exists(cache)
    assert json.load(open(os.path.join(g.meta, "repositories.json"))) == {"Repositories": {}}
    with pytest.raises(NotFound, match="No such image: busybox:latest"):
        g.delete_image("busybox")


def test_delete_last_tag_deletes_image(g, busybox):
    chain = g.resolve_image(busybox).chain_ids()[-1]
    assert g.delete_image("busybox") == [{"Untagged": "busybox:latest"}, {"Deleted": busybox},
                                         {"Deleted": chain}]
    assert Graph(g.root).images() == []


def test_delete_image_in_use_by_a_container(g, busybox):
    cid = "0123456789abcdef" * 4
    in_use = lambda image_id: cid if image_id == busybox else None  # noqa: E731
    short = busybox.split(":")[1][:12]
    with pytest.raises(Conflict) as exc:
        g.delete_image("busybox", in_use=in_use)
    assert str(exc.value) == ('conflict: unable to remove repository reference "busybox" (must force) - '
                              f"container 0123456789ab is using its referenced image {short}")
    with pytest.raises(Conflict, match=f"unable to delete {short} \\(must be forced\\) - image is being used "
                                       "by stopped container 0123456789ab"):
        g.delete_image(short, in_use=in_use)
    with pytest.raises(Conflict, match="cannot be forced"):
        g.delete_image(short, force=True, in_use=in_use, running=in_use)
    # the container's layer keeps the image's layers alive after a forced delete
    g.create_rw(cid, busybox)
    chain = g.resolve_image(busybox).chain_ids()[-1]
    assert g.delete_image("busybox", force=True, in_use=in_use) == [{"Untagged": "busybox:latest"},
                                                                     {"Deleted": busybox}]
    assert g.has_layer(chain)
    root = g.mount_rw(cid)
    try:
        assert os.path.exists(os.path.join(root, "bin/busybox"))
    finally:
        g.remove_rw(cid)


def test_a_tar_that_ends_in_its_last_entrys_padding_is_complete(tmp_path):
    """The docker CLI's `build -f - DIR` context ends right after its last file's content (no padding, no
    end blocks); Go's tar reader takes that as the end, so does extract_layer. Cut inside content, it fails."""
    from pyd.daemon.storage import archive
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in (("a.txt", b"first\n"), (".dockerignore", b"x\n" * 20)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    whole = buf.getvalue()
    cut = whole[:512 * 3 + 40]          # a's header and block, the last header, its 40 bytes
    (tmp_path / "ok").mkdir()
    archive.extract_layer(cut, str(tmp_path / "ok"))
    assert (tmp_path / "ok" / ".dockerignore").read_bytes() == b"x\n" * 20
    assert (tmp_path / "ok" / "a.txt").read_bytes() == b"first\n"
    (tmp_path / "short").mkdir()
    with pytest.raises(archive.ArchiveError):
        archive.extract_layer(whole[:512 * 3 + 30], str(tmp_path / "short"))
