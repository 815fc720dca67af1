"""docker cp and export: files in and out of a container's file system, never outside it.

Every path is resolved by the kernel inside the container's root (openat2 RESOLVE_IN_ROOT), and the tree
below it is walked by file descriptor (each entry opened O_PATH|O_NOFOLLOW relative to its parent's fd),
so a container that swaps directories and symlinks while we work can make a copy fail, never make it read
or write a host file. A path under a volume or bind mount resolves inside that mount's source instead.
"""
from __future__ import annotations

import base64
import errno
import json
import os
import posixpath
import shutil
import stat
import tarfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator

from pyd.daemon.runtime import native
from pyd.daemon.storage.archive import TAR_END, XATTR_PAX_PREFIX, clean_member_name, tar_header, tar_padding
from pyd.daemon.errors import BadParameter, NotFound, ServerError
from pyd.daemon.containers.etcfiles import ETC_FILES
from pyd.formats import rfc3339
from pyd.formats.rfc3339 import ZERO_TIME

if TYPE_CHECKING:
    from pyd.daemon.containers.model import Container

CHUNK = 1 << 16
RESOLVE = native.RESOLVE_IN_ROOT | native.RESOLVE_NO_MAGICLINKS
MAX_DEFERRED_DIRS = 4096
CAP_XATTR = "security.capability"

# Go's os.FileMode type bits, as the X-Docker-Container-Path-Stat header carries them
GO_DIR, GO_SYMLINK, GO_DEVICE, GO_PIPE, GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
GO_SETUID, GO_SETGID, GO_CHARDEV, GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


class PathNotFound(Exception):
    """The path is not in the container (the API turns it into Docker's 404)."""


def go_file_mode(mode: int) -> int:
    out = stat.S_IMODE(mode) & 0o777
    fmt = stat.S_IFMT(mode)
    out |= {stat.S_IFDIR: GO_DIR, stat.S_IFLNK: GO_SYMLINK, stat.S_IFBLK: GO_DEVICE,
            stat.S_IFCHR: GO_DEVICE | GO_CHARDEV, stat.S_IFIFO: GO_PIPE, stat.S_IFSOCK: GO_SOCKET}.get(fmt, 0)
    if mode & stat.S_ISUID:
        out |= GO_SETUID
    if mode & stat.S_ISGID:
        out |= GO_SETGID
    if mode & stat.S_ISVTX:
        out |= GO_STICKY
    return out


def open_in_root(root_fd: int, rel: str, flags: int = os.O_PATH) -> int:
    """openat2 with RESOLVE_IN_ROOT: symlinks and '..' never leave root_fd's tree."""
    return native.openat2(root_fd, rel or ".", flags, 0, RESOLVE)


def _reopen(fd: int, flags: int) -> int:
    """A real fd for the inode an O_PATH fd holds (no path lookup: the inode cannot be swapped)."""
    return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)


# ---------------------------------------------------------------- where a container path lives

@dataclass
class Located:
    """A container path mapped onto a host tree: resolve `rel` inside `root`."""
    root: str           # host dir acting as "/" for the resolution (rootfs, volume _data, bind source)
    rel: str            # path inside root, "" for root itself
    prefix: str         # the container path of root ("/" for the rootfs, the mount destination otherwise)
    rw: bool = True


def live_root(c: "Container", rootfs: str) -> int | None:
    """An O_PATH fd of a running container's "/" as its own mount namespace shows it, so that its tmpfs
    mounts and mounts nested below others are where the container sees them (dockerd does cp inside the
    container's mount namespace); None when the container is not running. The fd is checked to be the
    container's root file system, so a reused pid cannot hand us another process's root."""
    pid = c.State.Pid if c.State.Running else 0
    if not pid:
        return None
    try:
        fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st, want = os.fstat(fd), os.stat(rootfs)
        if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def locate(c: "Container", rootfs: str, path: str, live: int | None = None) -> Located:
    """Where `path` is: in the container's live root (fd `live`, every mount there), else in the host tree
    of the mount holding it (the rootfs, a volume's _data or a bind source)."""
    clean = posixpath.normpath("/" + path)
    if clean.startswith("//"):
        clean = clean[1:]
    if live is not None:
        return Located(f"/proc/self/fd/{live}", clean.lstrip("/"), "/", _writable(c, clean))
    best = None
    for dest, mp in _mounts_of(c).items():
        if mp.get("Type") not in ("volume", "bind") or not mp.get("Source"):
            continue
        if clean == dest or clean.startswith(dest.rstrip("/") + "/"):
            if best is None or len(dest) > len(best[0]):
                best = (dest, mp)
    if best is None:
        return Located(rootfs, clean.lstrip("/"), "/", not c.HostConfig.get("ReadonlyRootfs"))
    dest, mp = best
    source, rest = mp["Source"], clean[len(dest):].lstrip("/")
    if not os.path.isdir(source):       # a bind-mounted file: resolve its name in its folder
        return Located(os.path.dirname(source), os.path.basename(source) if not rest else "\0",
                       posixpath.dirname(dest), bool(mp.get("RW", True)))
    return Located(source, rest, dest, bool(mp.get("RW", True)))


def _mounts_of(c: "Container") -> dict[str, dict]:
    """The user's mount points, and the /etc files of a container that has run: dockerd mounts those for
    a copy (one that never ran has only its init layer's empty files)."""
    etc: dict[str, dict] = {}
    state = getattr(c, "State", None)
    if state is not None and state.StartedAt != ZERO_TIME:
        etc = {f"/etc/{n}": {"Type": "bind", "Source": c.path(n), "RW": True} for n in ETC_FILES}
    return {**etc, **(getattr(c, "MountPoints", None) or {})}


def _mount_point_of(c: "Container", clean: str) -> dict | None:
    """The innermost mount point (any type) holding the container path `clean`."""
    best = None
    for dest, mp in (getattr(c, "MountPoints", None) or {}).items():
        if clean == dest or clean.startswith(dest.rstrip("/") + "/"):
            if best is None or len(dest) > len(best[0]):
                best = (dest, mp)
    return best[1] if best else None


def _writable(c: "Container", clean: str) -> bool:
    """dockerd's rule: the innermost mount point holding the path decides, else the rootfs."""
    mp = _mount_point_of(c, clean)
    return not c.HostConfig.get("ReadonlyRootfs") if mp is None else bool(mp.get("RW", True))


def _container_path(loc: Located, host_path: str) -> str:
    rel = os.path.relpath(host_path, loc.root)
    rel = "" if rel == "." else rel
    return posixpath.normpath(posixpath.join(loc.prefix, rel))


def _split_follow(path: str) -> tuple[str, bool]:
    """Docker: the last element is not followed unless the path ends with '/' or '/.'."""
    return path, path.endswith("/") or path.endswith("/.") or path in ("", ".", "/")


# ---------------------------------------------------------------- stat

def stat_path(c: "Container", rootfs: str, path: str, live: int | None = None
              ) -> tuple[dict[str, Any], int, str]:
    """(Docker's ContainerPathStat, an O_PATH fd of the entry, its tar name). The caller closes the fd."""
    abs_path = "/" + path.lstrip("/") if not path.startswith("/") else path
    _, follow = _split_follow(abs_path)
    loc = locate(c, rootfs, abs_path, live)
    root_fd = os.open(loc.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = _open_entry(root_fd, loc.rel, follow)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            raise PathNotFound(abs_path) from None
        raise
    finally:
        os.close(root_fd)
    st = os.fstat(fd)
    name = posixpath.basename(abs_path.rstrip("/")) if not abs_path.endswith("/.") else "."
    if abs_path.rstrip("/") == "":
        name = "/"
    link_target = ""
    if stat.S_ISLNK(st.st_mode):
        from pyd.daemon.storage.rootpath import resolve_in_root
        link_target = _container_path(loc, resolve_in_root(loc.root, loc.rel))
    info = {"name": name, "size": st.st_size, "mode": go_file_mode(st.st_mode),
            "mtime": rfc3339.format_ns(st.st_mtime_ns), "linkTarget": link_target}
    return info, fd, name


def _open_entry(root_fd: int, rel: str, follow: bool) -> int:
    if follow or not rel:
        return open_in_root(root_fd, rel)
    parent, base = posixpath.split(rel)
    if base in ("", ".", ".."):
        return open_in_root(root_fd, rel)
    pfd = open_in_root(root_fd, parent, os.O_PATH | os.O_DIRECTORY)
    try:
        return os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
    finally:
        os.close(pfd)


def stat_header(info: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(info).encode()).decode()


# ---------------------------------------------------------------- tar out (by fd)

def _header(info: tarfile.TarInfo, st_mode: int) -> bytes:
    """The member's header with the file type bits in its mode field, as dockerd's archive writes it
    (Go 1.8's FileInfoHeader; tarfile keeps only the permission bits): the last block is the member's own."""
    buf = bytearray(tar_header(info))
    block = len(buf) - tarfile.BLOCKSIZE
    buf[block + 100:block + 108] = b"%07o\0" % (st_mode & 0o7777777)
    buf[block + 148:block + 156] = b" " * 8
    buf[block + 148:block + 156] = b"%06o\0 " % sum(buf[block:block + tarfile.BLOCKSIZE])
    return bytes(buf)


def tar_entry(fd: int, arcname: str, inodes: dict | None = None) -> Iterator[bytes]:
    """Tar members for the entry held by O_PATH `fd` (recursively for a directory), named `arcname`."""
    inodes = {} if inodes is None else inodes
    st = os.fstat(fd)
    mode = st.st_mode
    info = tarfile.TarInfo(arcname)
    info.mode, info.uid, info.gid = stat.S_IMODE(mode), st.st_uid, st.st_gid
    info.mtime = st.st_mtime_ns // 1_000_000_000
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
        _record_xattrs(fd, info)
    if stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
        info.name = arcname.rstrip("/") + "/" if arcname not in ("", ".") else "./"
        yield _header(info, mode)
        dfd = _reopen(fd, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for child in sorted(os.listdir(dfd)):
                try:
                    cfd = os.open(child, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
                except OSError:
                    continue          # vanished meanwhile
                try:
                    yield from tar_entry(cfd, posixpath.join(arcname, child) if arcname not in ("", ".")
                                         else child, inodes)
                finally:
                    os.close(cfd)
        finally:
            os.close(dfd)
    elif stat.S_ISLNK(mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink("", dir_fd=fd)
        yield _header(info, mode)
    elif stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in inodes:
            info.type, info.linkname = tarfile.LNKTYPE, inodes[key]
            yield _header(info, mode)
            return
        if st.st_nlink > 1:
            inodes[key] = arcname
        yield from _file_member(fd, info, st.st_size, mode)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
        info.type = (tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE if stat.S_ISBLK(mode)
                     else tarfile.FIFOTYPE)
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        yield _header(info, mode)


def _record_xattrs(fd: int, info: tarfile.TarInfo) -> None:
    """What dockerd's archiver records of the xattrs: security.capability (file capabilities)."""
    try:
        cap = os.getxattr(f"/proc/self/fd/{fd}", CAP_XATTR)
    except OSError:
        return
    info.pax_headers[XATTR_PAX_PREFIX + CAP_XATTR] = cap.decode("utf-8", "surrogateescape")


def _apply_xattrs(via: str, m: tarfile.TarInfo) -> None:
    """The member's SCHILY.xattr.* records, as dockerd applies them (a file system without xattrs, or one
    refusing a name, is not an error); overlayfs's own attributes are never taken from a tar."""
    for key, value in m.pax_headers.items():
        if not key.startswith(XATTR_PAX_PREFIX) or key.startswith(XATTR_PAX_PREFIX + "trusted.overlay."):
            continue
        try:
            os.setxattr(via, key[len(XATTR_PAX_PREFIX):], value.encode("utf-8", "surrogateescape"))
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EINVAL, errno.ERANGE):
                raise


def _file_member(fd: int, info: tarfile.TarInfo, size: int, st_mode: int) -> Iterator[bytes]:
    info.type, info.size = tarfile.REGTYPE, size
    yield _header(info, st_mode)
    rfd = _reopen(fd, os.O_RDONLY | os.O_NONBLOCK)
    try:
        remaining = size
        while remaining:
            data = os.read(rfd, min(CHUNK, remaining))
            if not data:               # shrank under us: the header's size still rules
                data = b"\0" * min(CHUNK, remaining)
            remaining -= len(data)
            yield data
    finally:
        os.close(rfd)
    yield tar_padding(size)


def archive_stream(fd: int, name: str) -> Iterator[bytes]:
    """GET /containers/{id}/archive: the entry as a tar whose top member is `name`; closes fd."""
    try:
        buf = bytearray()
        for piece in tar_entry(fd, name):
            buf += piece
            if len(buf) >= CHUNK:
                yield bytes(buf)
                buf.clear()
        buf += TAR_END
        yield bytes(buf)
    finally:
        os.close(fd)


def export_stream(rootfs: str) -> Iterator[bytes]:
    """GET /containers/{id}/export: the whole root file system, members relative to it."""
    fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    dfd = _reopen(fd, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buf = bytearray()
        inodes: dict = {}
        for child in sorted(os.listdir(dfd)):
            try:
                cfd = os.open(child, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            except OSError:
                continue
            try:
                for piece in tar_entry(cfd, child, inodes):
                    buf += piece
                    if len(buf) >= CHUNK:
                        yield bytes(buf)
                        buf.clear()
            finally:
                os.close(cfd)
        buf += TAR_END
        yield bytes(buf)
    finally:
        os.close(dfd)
        os.close(fd)


# ---------------------------------------------------------------- tar in (by fd)

class ExtractError(Exception):
    """A member conflicts with what is there (noOverwriteDirNonDir)."""


def _mkdir_p(root_fd: int, rel: str) -> int:
    """mkdir -p of rel inside root (every step resolved in root); an O_PATH fd of the result."""
    try:
        return open_in_root(root_fd, rel, os.O_PATH | os.O_DIRECTORY)
    except FileNotFoundError:
        pass
    fd = open_in_root(root_fd, "", os.O_PATH | os.O_DIRECTORY)
    done = ""
    for part in [p for p in rel.split("/") if p and p != "."]:
        done = posixpath.join(done, part)
        try:
            nfd = open_in_root(root_fd, done, os.O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            if part == "..":
                raise
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            nfd = open_in_root(root_fd, done, os.O_PATH | os.O_DIRECTORY)
        os.close(fd)
        fd = nfd
    return fd


def extract(reader: BinaryIO, root: str, rel: str, no_overwrite_dir_non_dir: bool = False,
            chown: tuple[int, int] | None = None) -> None:
    """Unpack a tar into the directory `rel` of the tree at `root` (resolved inside root)."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    deferred: list[tuple[int, int]] = []       # (O_PATH dir fd, mtime ns): set once their children are in
    try:
        with tarfile.open(fileobj=reader, mode="r|*") as tar:
            for member in tar:
                _extract_member(tar, member, root_fd, rel, no_overwrite_dir_non_dir, chown, deferred)
        for fd, mtime in reversed(deferred):
            try:
                os.utime(f"/proc/self/fd/{fd}", ns=(mtime, mtime))
            except OSError:
                pass
    finally:
        for fd, _ in deferred:
            os.close(fd)
        os.close(root_fd)


def _extract_member(tar: tarfile.TarFile, m: tarfile.TarInfo, root_fd: int, dest: str, no_overwrite: bool,
                    chown: tuple[int, int] | None, deferred: list) -> None:
    try:
        name = clean_member_name(m.name)
    except ValueError:
        return      # a member that climbs out: skipped, as dockerd's breakout check refuses it
    if not name:
        return
    parent_rel, base = posixpath.split(posixpath.join(dest, name))
    pfd = _mkdir_p(root_fd, parent_rel)
    try:
        try:
            existing = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            is_dir = stat.S_ISDIR(existing.st_mode)
            if no_overwrite and is_dir and not m.isdir():
                raise ExtractError(f'cannot overwrite directory "/{posixpath.join(dest, name)}" with '
                                   f'non-directory "/{posixpath.join(dest, name)}"')
            if no_overwrite and not is_dir and m.isdir():
                raise ExtractError(f'cannot overwrite non-directory "/{posixpath.join(dest, name)}" with '
                                   f'directory "/{posixpath.join(dest, name)}"')
            if not (is_dir and m.isdir()):
                if is_dir:
                    shutil.rmtree(base, dir_fd=pfd)
                else:
                    os.unlink(base, dir_fd=pfd)
        uid, gid = chown if chown else (m.uid, m.gid)
        if m.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                os.mkdir(base, 0o700, dir_fd=pfd)
        elif m.isreg():
            fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=pfd)
            try:
                src = tar.extractfile(m)
                while src is not None:
                    data = src.read(CHUNK)
                    if not data:
                        break
                    os.write(fd, data)
            finally:
                os.close(fd)
        elif m.issym():
            os.symlink(m.linkname, base, dir_fd=pfd)
            os.chown(base, uid, gid, dir_fd=pfd, follow_symlinks=False)
            os.utime(base, ns=(int(m.mtime * 1e9),) * 2, dir_fd=pfd, follow_symlinks=False)
            return
        elif m.islnk():
            target = posixpath.join(dest, clean_member_name(m.linkname))
            tparent, tbase = posixpath.split(target)
            tfd = open_in_root(root_fd, tparent, os.O_PATH | os.O_DIRECTORY)
            try:
                os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            finally:
                os.close(tfd)
            return
        elif m.ischr() or m.isblk() or m.isfifo():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
            os.mknod(base, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
        else:
            return
        efd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        keep = False
        try:
            via = f"/proc/self/fd/{efd}"
            os.chown(via, uid, gid)
            os.chmod(via, m.mode & 0o7777)
            _apply_xattrs(via, m)          # after chown, which drops security.capability
            mtime = int(m.mtime * 1e9)
            if m.isdir() and len(deferred) < MAX_DEFERRED_DIRS:
                deferred.append((efd, mtime))
                keep = True
            else:
                os.utime(via, ns=(mtime, mtime))
        finally:
            if not keep:
                os.close(efd)
    finally:
        os.close(pfd)


def copy_tree_in_root(rootfs: str, container_path: str, dest_dir: str) -> None:
    """Copy-up: what the image has at container_path (resolved in rootfs) into the empty dest_dir, with
    ownership and modes, and the directory's own ownership and mode."""
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = open_in_root(root_fd, container_path.lstrip("/"))
        except (FileNotFoundError, NotADirectoryError):
            return
    finally:
        os.close(root_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISDIR(st.st_mode):
            return
        from pyd.daemon.storage.archive import as_reader
        stream = archive_stream(os.dup(fd), ".")
        extract(as_reader(stream), dest_dir, "")
        os.chown(dest_dir, st.st_uid, st.st_gid)
        os.chmod(dest_dir, stat.S_IMODE(st.st_mode))
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the daemon's operations

def _lookup_owner(rootfs: str, user: str) -> tuple[int, int] | None:
    if not user:
        return None
    from pyd.daemon.containers import etcfiles
    u = etcfiles.lookup_user(rootfs, user, None)
    return u.uid, u.gid


def put_archive(c: "Container", rootfs: str, path: str, reader: BinaryIO, no_overwrite_dir_non_dir: bool,
                copy_uid_gid: bool, live: int | None = None) -> None:
    """PUT /containers/{id}/archive: `path` must be a directory (symlinks followed, inside the root)."""
    loc = locate(c, rootfs, path, live)
    root_fd = os.open(loc.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = open_in_root(root_fd, loc.rel)
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFound(path) from None
        try:
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                raise BadParameter("extraction point is not a directory")
            # the directory as the kernel found it, relative to the root we extract in
            real = os.readlink(f"/proc/self/fd/{fd}")
            rel = os.path.relpath(real, os.readlink(f"/proc/self/fd/{root_fd}"))
        finally:
            os.close(fd)
    finally:
        os.close(root_fd)
    if rel.startswith(".."):
        raise ServerError("extraction point resolved outside of the container")
    # in the live root the kernel resolved the path: its real place decides (dockerd checks the resolved path)
    checked = posixpath.normpath("/" + (rel if live is not None else path))
    if not (_writable(c, checked) if live is not None else loc.rw):
        in_mount = _mount_point_of(c, checked) is not None
        raise BadParameter("mounted volume is marked read-only" if in_mount
                           else "container rootfs is marked read-only")
    chown = _lookup_owner(rootfs, c.Config.get("User") or "") if copy_uid_gid else None
    try:
        extract(reader, loc.root, "" if rel == "." else rel, no_overwrite_dir_non_dir, chown)
    except ExtractError as e:
        raise ServerError(str(e)) from None
    except tarfile.TarError as e:
        raise BadParameter(f"Error processing tar file: {e}") from None


def not_found(path: str, container: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {container}")
