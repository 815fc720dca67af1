"""The graph-driver contract (pyd.daemon.storage.drivers.base.GraphDriver), run over every driver of the
picker: what the graph and the containers rely on, whatever the driver does underneath."""
from __future__ import annotations

import io
import os
import tarfile

import pytest

from pyd.daemon.storage import archive
from pyd.daemon.storage.drivers import GraphDriverError, pick_driver

from .tarkit import add_dir, add_file, add_link, files_under, make_tar, mounts_under

BASE_ID, CHILD_ID, RW_ID = "a" * 64, "b" * 64, "c" * 64


def _apply(driver, cache_id: str, tar: bytes) -> archive.ExtractResult:
    return archive.extract_layer(tar, driver.diff_dir(cache_id), driver.whiteouts)


def _base(t: tarfile.TarFile) -> None:
    add_dir(t, "etc")
    add_file(t, "etc/motd", b"hello\n")
    add_file(t, "etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
    add_dir(t, "data")
    add_file(t, "data/a", b"a")
    add_dir(t, "data/sub")
    add_file(t, "data/sub/b", b"bb")
    add_dir(t, "keep")
    add_file(t, "keep/x", b"x")


def _with_base(driver) -> str:
    driver.create(BASE_ID, None)
    _apply(driver, BASE_ID, make_tar(_base))
    return BASE_ID


def _tree(root: str) -> list[str]:
    return files_under(root)


def test_create_mount_unmount_remove(driver, data_root):
    base = _with_base(driver)
    assert driver.exists(base)
    root = driver.mount(base)
    assert open(os.path.join(root, "etc/motd")).read() == "hello\n"
    assert driver.mount(base) == root, "mounting again gives the same tree"
    driver.unmount(base)
    driver.unmount(base)   # not mounted: a no-op
    driver.remove(base)
    assert not driver.exists(base)
    assert files_under(driver.home) == [], "nothing of the layer is left in the driver's home"
    assert not mounts_under(data_root)


def test_child_sees_its_parents_files_and_writes_only_its_own(driver):
    base = _with_base(driver)
    driver.create(CHILD_ID, base)
    _apply(driver, CHILD_ID, make_tar(lambda t: add_file(t, "etc/child", b"c")))
    driver.create_rw(RW_ID, CHILD_ID)
    root = driver.mount(RW_ID)
    try:
        assert {"etc/motd", "etc/child", "data/sub/b"} <= set(_tree(root))
        with open(os.path.join(root, "etc/motd"), "w") as f:
            f.write("changed\n")
        open(os.path.join(root, "new"), "w").close()
    finally:
        driver.unmount(RW_ID)
    for layer in (base, CHILD_ID):
        below = driver.mount(layer)
        assert open(os.path.join(below, "etc/motd")).read() == "hello\n", layer
        assert not os.path.exists(os.path.join(below, "new")), layer
        driver.unmount(layer)
    assert not os.path.exists(os.path.join(driver.mount(base), "etc/child"))


def test_whiteouts_and_opaque_dirs_hide_lower_files(driver):
    base = _with_base(driver)

    def top(t):
        add_file(t, "etc/.wh.motd")
        add_file(t, "data/.wh..wh..opq")
        add_file(t, "data/c", b"c")
        add_file(t, ".wh.keep")
    driver.create(CHILD_ID, base)
    _apply(driver, CHILD_ID, make_tar(top))
    root = driver.mount(CHILD_ID)
    try:
        assert not os.path.lexists(os.path.join(root, "etc/motd"))
        assert os.path.exists(os.path.join(root, "etc/passwd"))
        assert sorted(os.listdir(os.path.join(root, "data"))) == ["c"]
        assert not os.path.lexists(os.path.join(root, "keep"))
    finally:
        driver.unmount(CHILD_ID)


def test_diff_of_a_layer_has_its_changes_and_whiteouts(driver):
    base = _with_base(driver)
    driver.create_rw(RW_ID, base)
    assert b"".join(driver.diff(RW_ID, base)) == archive.TAR_END, "nothing changed: an empty tar"
    root = driver.mount(RW_ID)
    try:
        with open(os.path.join(root, "etc/motd"), "w") as f:
            f.write("changed\n")
        os.makedirs(os.path.join(root, "srv/www"))
        open(os.path.join(root, "srv/www/index.html"), "w").close()
        os.unlink(os.path.join(root, "data/a"))
    finally:
        driver.unmount(RW_ID)
    data = b"".join(driver.diff(RW_ID, base))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile(members["etc/motd"]).read() == b"changed\n"
    assert {"etc/motd", "srv", "srv/www", "srv/www/index.html", "data/.wh.a"} <= set(members)
    assert not {"etc/passwd", "keep", "keep/x", "data/sub/b"} & set(members), "unchanged files stay out"
    # the diff applied on the parent gives the layer's tree again
    driver.create(CHILD_ID, base)
    _apply(driver, CHILD_ID, data)
    assert _tree(driver.mount(CHILD_ID)) == _tree(driver.mount(RW_ID))


def test_size_counts_the_layers_own_bytes(driver):
    driver.create(BASE_ID, None)
    result = _apply(driver, BASE_ID, make_tar(lambda t: (add_file(t, "f", b"x" * 1000),
                                                         add_file(t, "d/g", b"y" * 24))))
    assert result.size == 1024
    assert driver.size(BASE_ID) == 1024


def test_remove_of_a_mounted_layer_unmounts_it(driver, data_root):
    base = _with_base(driver)
    driver.create_rw(RW_ID, base)
    root = driver.mount(RW_ID)
    open(os.path.join(root, "busy"), "w").close()
    driver.remove(RW_ID)
    assert not driver.exists(RW_ID)
    assert not mounts_under(data_root)
    assert driver.exists(base) and open(os.path.join(driver.mount(base), "etc/motd")).read() == "hello\n"


def test_layers_mount_again_after_a_restart(make_driver, data_root):
    first = make_driver()
    base = _with_base(first)
    first.create_rw(RW_ID, base)
    root = first.mount(RW_ID)
    open(os.path.join(root, "mine"), "w").close()
    first.unmount(RW_ID)
    again = make_driver()   # the daemon after a restart: a new driver object over the same home
    again.repair(RW_ID, base)
    assert again.exists(base) and again.exists(RW_ID)
    root = again.mount(RW_ID)
    try:
        assert {"mine", "etc/motd"} <= set(_tree(root))
    finally:
        again.unmount(RW_ID)
    again.remove(RW_ID)
    again.remove(base)
    assert files_under(again.home) == []


def test_hard_links_devices_setuid_owners_and_xattrs(driver):
    def build(t):
        add_file(t, "bin/su", b"#!", 0o4755, uid=0, gid=0)
        add_link(t, "bin/su2", "bin/su", tarfile.LNKTYPE)
        add_file(t, "home/u/file", b"u", 0o640, uid=1000, gid=1001)
        info = tarfile.TarInfo("dev/null")
        info.type, info.mode, info.devmajor, info.devminor = tarfile.CHRTYPE, 0o666, 1, 3
        t.addfile(info)
        info = tarfile.TarInfo("bin/ping")
        info.size, info.mode = 1, 0o755
        info.pax_headers = {"SCHILY.xattr.user.test": "value"}
        t.addfile(info, io.BytesIO(b"p"))
    driver.create(BASE_ID, None)
    result = _apply(driver, BASE_ID, make_tar(build))
    d = driver.mount(BASE_ID)
    su = os.stat(os.path.join(d, "bin/su"))
    assert su.st_mode & 0o7777 == 0o4755 and su.st_nlink == 2
    assert os.stat(os.path.join(d, "bin/su2")).st_ino == su.st_ino
    st = os.stat(os.path.join(d, "home/u/file"))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1000, 1001, 0o640)
    assert st.st_mtime == 1_700_000_000
    dev = os.lstat(os.path.join(d, "dev/null"))
    assert os.major(dev.st_rdev) == 1 and os.minor(dev.st_rdev) == 3
    assert os.getxattr(os.path.join(d, "bin/ping"), "user.test") == b"value"
    assert result.size == 4   # "#!" + "u" + "p": the hard link counts once


def test_picker_builds_the_named_driver(driver_name, data_root):
    picked = pick_driver(data_root, driver_name)
    assert picked.name == driver_name
    assert picked.home == os.path.join(data_root, driver_name)


def test_picker_refuses_an_unknown_driver(data_root):
    with pytest.raises(GraphDriverError, match=r"graph driver 'aufs' is not supported \(choose one of: "):
        pick_driver(data_root, "aufs")
