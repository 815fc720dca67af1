"""Hostile layers and archives, over every graph driver and through `docker load` / `pyd load`.

Each hostile layer is refused with a 400 that names the member (the deep chain and the names that resolve
inside the layer are extracted), and afterwards every other image and container root filesystem is
intact, nothing outside the data-root was touched, and the refused layer left nothing in the driver's
dirs or the layer store's scratch dir."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile

import pytest

from pyd.daemon.errors import BadParameter
from pyd.daemon.storage.drivers import DRIVERS
from pyd.daemon.storage.graph import Graph

from .tarkit import add_dir, add_file, add_link, busybox_entries, chunks, docker_archive, make_tar

DEEP = 1000


def _snapshot(top: str) -> dict[str, tuple]:
    """Every path under `top` with its type, size, link count and (but for folders, whose entries come and
    go) its mtime; mounts included."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[p] = (st.st_mode, st.st_size, st.st_nlink, 0 if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns)
    return out


@pytest.fixture
def canary(tmp_path) -> str:
    """A directory outside the data-root that no layer may touch."""
    d = tmp_path / "canary"
    d.mkdir()
    (d / "secret").write_text("canary\n")
    return str(d)


@pytest.fixture
def world(graph: Graph, canary: str):
    """An image and a mounted container on it, and a snapshot of everything a layer must not change."""
    image = graph.import_tar(chunks(make_tar(busybox_entries)), "busybox:latest", [], "")
    graph.create_rw("victim", image)
    root = graph.mount_rw("victim")
    with open(os.path.join(root, "container-data"), "w") as f:
        f.write("mine\n")
    parent = graph.resolve_image(image).chain_ids()[-1]
    before = {**_snapshot(graph.driver.home), **_snapshot(canary)}
    yield parent, before
    graph.remove_rw("victim")


def _assert_intact(graph: Graph, canary: str, before: dict) -> None:
    assert {**_snapshot(graph.driver.home), **_snapshot(canary)} == before, "something changed outside"
    assert os.listdir(os.path.join(graph.meta, "layerdb", "tmp")) == [], "scratch files left behind"
    assert open(os.path.join(graph.mount_rw("victim"), "container-data")).read() == "mine\n"
    graph.unmount_rw("victim")
    assert graph.image_refs(graph.resolve_image("busybox").id) == ["busybox:latest"]


REFUSED = {
    "whiteout-dot": (lambda t: add_file(t, ".wh.."), "invalid whiteout '.wh..'"),
    "whiteout-dotdot": (lambda t: add_file(t, ".wh..."), "invalid whiteout '.wh...'"),
    "whiteout-dotdot-in-sub": (lambda t: (add_dir(t, "sub"), add_file(t, "sub/.wh...")),
                               "invalid whiteout 'sub/.wh...'"),
    "whiteout-dotdot-in-etc": (lambda t: add_file(t, "etc/.wh..."), "invalid whiteout 'etc/.wh...'"),
    "whiteout-empty": (lambda t: add_file(t, ".wh."), "invalid whiteout '.wh.'"),
    "dotdot": (lambda t: add_file(t, "../x", b"evil"), "invalid member '../x'"),
    "dotdot-inner": (lambda t: add_file(t, "a/../../x", b"evil"), "invalid member 'a/../../x'"),
    "dotdot-staying-inside": (lambda t: add_file(t, "a/../x", b"x"), "invalid member 'a/../x'"),
    "dotdot-deep": (lambda t: add_file(t, "../" * 30 + "tmp/evil", b"evil"), "would leave the layer"),
    "hardlink-dotdot": (lambda t: add_link(t, "shadow", "../../etc/passwd", tarfile.LNKTYPE),
                        "'../../etc/passwd'"),
    "hardlink-abs-outside": (lambda t: add_link(t, "shadow", "/etc/shadow", tarfile.LNKTYPE),
                             "target not in layer"),
    "hardlink-via-symlink": (lambda t: (add_link(t, "lnk", "/etc"), add_link(t, "x", "lnk/shadow", tarfile.LNKTYPE)),
                             "target not in layer"),
    "whiteout-through-symlink": (lambda t: (add_link(t, "s", "/"), add_file(t, "s/.wh.etc")),
                                 "reached through the symbolic link 's'"),
    "whiteout-through-relative-symlink": (lambda t: (add_link(t, "s", "etc"), add_file(t, "s/.wh.passwd")),
                                          "reached through the symbolic link 's'"),
    "opaque-through-symlink": (lambda t: (add_link(t, "s", "/"), add_file(t, "s/.wh..wh..opq")),
                               "reached through the symbolic link 's'"),
    "name-300-chars": (lambda t: add_file(t, "n" * 300, b"x"), "File name too long"),
    "file-as-parent": (lambda t: (add_file(t, "f", b"x"), add_file(t, "f/g", b"y")), "Not a directory"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_hostile_layer_is_refused_and_leaves_everything_intact(graph, world, canary, case):
    parent, before = world
    build, message = REFUSED[case]
    with pytest.raises(BadParameter) as exc:
        graph.register_layer(make_tar(build), parent)
    assert exc.value.status == 400
    assert message in str(exc.value)
    _assert_intact(graph, canary, before)


CONTAINED = {
    "absolute-name": (lambda t: add_file(t, "/abs/x", b"x"), "abs/x"),
    "symlink-to-root-then-through-it": (lambda t: (add_link(t, "s", "/"), add_file(t, "s/etc/x", b"x")), "etc/x"),
    "symlink-dotdot-then-through-it": (lambda t: (add_link(t, "up", "../../../../.."), add_file(t, "up/y", b"y")), "y"),
    "symlink-chain": (lambda t: (add_link(t, "a", "b"), add_link(t, "b", "/"), add_file(t, "a/z", b"z")), "z"),
}


@pytest.mark.parametrize("case", list(CONTAINED))
def test_names_that_resolve_inside_the_layer_land_inside_it(graph, world, canary, case):
    parent, before = world
    build, lands_at = CONTAINED[case]
    layer = graph.register_layer(make_tar(build), parent)
    assert os.path.isfile(os.path.join(graph.driver.diff_dir(layer.cache_id), lands_at))
    assert _snapshot(canary) == {p: v for p, v in before.items() if p.startswith(canary)}


def _deep_chain(with_dirs: bool):
    def build(t):
        path = ""
        for _ in range(DEEP):
            path = f"{path}d/" if path else "d/"
            if with_dirs:
                add_dir(t, path.rstrip("/"))
        add_file(t, path + "bottom", b"deep")
    return build


@pytest.mark.parametrize("with_dirs", [True, False], ids=["every-dir", "only-the-file"])
def test_a_1000_deep_chain_is_extracted_mounted_and_removed(graph, world, canary, with_dirs):
    parent, before = world
    layer = graph.register_layer(make_tar(_deep_chain(with_dirs)), parent)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [*graph.resolve_image("busybox").diff_ids(),
                                                                   layer.diff_id]}}).encode()
    image = graph.store_image(config)
    graph.tag(image.id, "deep:1")
    graph.create_rw("deep", image.id)
    root = graph.mount_rw("deep")
    assert open(os.path.join(root, "d/" * DEEP + "bottom")).read() == "deep"
    graph.remove_rw("deep")
    graph.delete_image("deep:1")
    _assert_intact(graph, canary, before)


# ---------------------------------------------------------------------------------------------------
# archives whose manifest or index names hostile paths or has the wrong types

def _archive(files: dict[str, bytes]) -> bytes:
    return make_tar(lambda t: [add_file(t, name, data) for name, data in files.items()])


def _layer_and_config() -> tuple[bytes, bytes]:
    layer = make_tar(lambda t: add_file(t, "hello", b"hi"))
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {
        "type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
    return layer, config


def _manifest(entries) -> bytes:
    layer, config = _layer_and_config()
    return _archive({"c.json": config, "l/layer.tar": layer, "manifest.json": json.dumps(entries).encode()})


def _index(index, manifest=None) -> bytes:
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": json.dumps(index).encode()}
    if manifest is not None:
        files["blobs/sha256/" + "a" * 64] = json.dumps(manifest).encode()
    return _archive(files)


def _fifo_manifest() -> bytes:
    def build(t):
        info = tarfile.TarInfo("manifest.json")
        info.type = tarfile.FIFOTYPE
        t.addfile(info)
    return make_tar(build)


BAD_ARCHIVES = {
    "manifest-of-junk": (lambda: _manifest([1, "x", None]), "manifest.json[0] is not a JSON object"),
    "manifest-not-a-list": (lambda: _manifest({"Config": "c.json"}), "manifest.json is not a JSON array"),
    "config-a-number": (lambda: _manifest([{"Config": 5, "Layers": ["l/layer.tar"]}]),
                        "manifest.json[0].Config must be a path"),
    "config-absolute": (lambda: _manifest([{"Config": "/etc/passwd", "Layers": ["l/layer.tar"]}]),
                        "'/etc/passwd' is not a path inside the archive"),
    "layer-absolute": (lambda: _manifest([{"Config": "c.json", "Layers": ["/etc/passwd"]}]),
                       "'/etc/passwd' is not a path inside the archive"),
    "layer-dotdot": (lambda: _manifest([{"Config": "c.json", "Layers": ["../../l/layer.tar"]}]),
                     "'../../l/layer.tar' is not a path inside the archive"),
    "layers-a-string": (lambda: _manifest([{"Config": "c.json", "Layers": "l/layer.tar"}]),
                        "Layers must be a list of strings"),
    "repotags-a-number": (lambda: _manifest([{"Config": "c.json", "Layers": ["l/layer.tar"], "RepoTags": 7}]),
                          "RepoTags must be a list of strings"),
    "layer-is-a-dir": (lambda: _manifest([{"Config": "c.json", "Layers": ["l"]}]), "l is not a regular file"),
    "manifest-a-fifo": (_fifo_manifest, "manifest.json is not a regular file"),
    "index-blob-dotdot": (lambda: _index({"manifests": [{"digest": "sha256:../../manifest.json"}]}),
                          "invalid digest 'sha256:../../manifest.json'"),
    "index-digest-a-list": (lambda: _index({"manifests": [{"digest": ["x"]}]}), "invalid digest ['x']"),
    "index-manifests-a-string": (lambda: _index({"manifests": "x"}), "must be a list of objects"),
    "index-nested-into-itself": (lambda: _index({"manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + "a" * 64}]},
        {"manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
                        "digest": "sha256:" + "a" * 64}]}), "nested more than"),
    "oci-manifest-config-a-string": (lambda: _index({"manifests": [{"digest": "sha256:" + "a" * 64}]},
                                                    {"config": "x", "layers": []}), "config is not a descriptor"),
}


@pytest.mark.parametrize("case", list(BAD_ARCHIVES))
def test_malformed_archive_is_a_400(graph, world, canary, case):
    _parent, before = world
    make, message = BAD_ARCHIVES[case]
    with pytest.raises(BadParameter) as exc:
        graph.load(make())
    assert message in str(exc.value)
    _assert_intact(graph, canary, before)
    assert os.listdir(graph.tmp) == []


def test_hostile_layer_in_a_loaded_archive_is_refused(graph, world, canary):
    _parent, before = world
    good = make_tar(lambda t: add_file(t, "ok", b"ok"))
    bad = make_tar(lambda t: (add_dir(t, "sub"), add_file(t, "sub/.wh...")))
    with pytest.raises(BadParameter, match=r"invalid whiteout 'sub/\.wh\.\.\.'"):
        graph.load(docker_archive([good, bad], ["hostile:1"], gzip_layers=frozenset({1})))
    assert [graph.image_refs(i.id) for i in graph.images()] == [["busybox:latest"]]


# ---------------------------------------------------------------------------------------------------
# end to end: `docker load` and `pyd load` against a daemon on each driver

def _layer_dirs(data_root, driver: str) -> set[str]:
    home = data_root / driver
    if driver == "vfs":
        home = home / "dir"
    return {p.name for p in home.iterdir() if p.name != "l"}


E2E = {
    "whiteout-dotdot": (lambda t: add_file(t, ".wh..."), "invalid whiteout '.wh...'"),
    "whiteout-dotdot-in-sub": (lambda t: (add_dir(t, "sub"), add_file(t, "sub/.wh...")),
                               "invalid whiteout 'sub/.wh...'"),
    "whiteout-dot": (lambda t: add_file(t, ".wh.."), "invalid whiteout '.wh..'"),
    "dotdot": (lambda t: add_file(t, "a/../../x", b"evil"), "invalid member 'a/../../x'"),
    "hardlink-dotdot": (lambda t: add_link(t, "shadow", "../../etc/passwd", tarfile.LNKTYPE), "../../etc/passwd"),
}


@pytest.mark.parametrize("storage_driver", list(DRIVERS))
def test_docker_and_pyd_load_refuse_hostile_layers(make_daemon, busybox_rootfs_tar, tmp_path, storage_driver):
    why = DRIVERS[storage_driver].unusable(str(tmp_path))
    if why:
        pytest.skip(f"{storage_driver} cannot run here: {why}")
    d = make_daemon("--storage-driver", storage_driver)
    busybox = d.import_image(busybox_rootfs_tar, "busybox")
    d.pyd("run", "-d", "--name", "keep", busybox, "sleep", "1000", check=True)
    d.pyd("exec", "keep", "sh", "-c", "echo mine > /data", check=True)
    layers_before = _layer_dirs(d.data_root, storage_driver)
    for i, (case, (build, message)) in enumerate(E2E.items()):
        path = tmp_path / f"{case}.tar"
        path.write_bytes(docker_archive([make_tar(build)], [f"hostile:{case}"]))
        client = d.docker if i % 2 == 0 else d.pyd
        r = client("load", "-i", str(path))
        assert r.returncode != 0, f"{case}: {r.describe()}"
        assert message in r.stderr and "500" not in r.stderr, f"{case}: {r.describe()}"
    rootfs = tmp_path / "hostile-rootfs.tar"
    rootfs.write_bytes(make_tar(lambda t: (add_dir(t, "sub"), add_file(t, "sub/.wh..."))))
    for client in (d.docker, d.pyd):
        r = client("import", str(rootfs), "hostile:import")
        assert r.returncode != 0 and "invalid whiteout 'sub/.wh...'" in r.stderr, r.describe()
    assert d.pyd("exec", "keep", "cat", "/data", check=True).stdout == "mine\n"
    assert d.pyd("run", "--rm", busybox, "cat", "/etc/passwd", check=True).stdout.startswith("root:")
    assert d.pyd("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout.split() == [busybox]
    assert _layer_dirs(d.data_root, storage_driver) == layers_before, "a refused layer left its directory"
    assert "Traceback" not in d.log_text()
    d.pyd("rm", "-f", "keep", check=True)
