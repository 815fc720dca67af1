"""cp and export: files between a container and the local file system, as docker's CLI does it
(HEAD to stat the container path, GET/PUT /containers/{id}/archive with tars rebased on the client)."""
from __future__ import annotations

import base64
import json
import os
import posixpath
import sys

TYPE_CHECKING = False     # typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

from pyd.client.common import PROG, Cli, StatusError, is_not_found, isatty
from pyd.client.flags import BOOL, STRING, Flag, Options, Spec

GO_DIR, GO_SYMLINK = 1 << 31, 1 << 27

SPECS: dict[str, Spec] = {
    "cp": Spec("[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tpyd cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
               "Copy files/folders between a container and the local filesystem", [
                   Flag("archive", "a", BOOL, help="Archive mode (copy all uid/gid information)"),
                   Flag("follow-link", "L", BOOL, help="Always follow symbol link in SRC_PATH"),
                   Flag("quiet", "q", BOOL, help="Suppress progress output during copy. Progress output is "
                                                 "automatically suppressed if no terminal is attached"),
               ], min_args=2, max_args=2, aliases=(f"{PROG} container cp", f"{PROG} cp")),
    "export": Spec("[OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive", [
        Flag("output", "o", STRING, help="Write to a file, instead of STDOUT"),
    ], min_args=1, max_args=1, aliases=(f"{PROG} container export", f"{PROG} export")),
}


def split_cp_arg(arg: str) -> tuple[str, str]:
    """docker's splitCpArg: "name:path" -> (name, path); a local path (absolute, or ./...) has no container."""
    if arg.startswith("/") or arg.startswith("."):
        return "", arg
    name, sep, path = arg.partition(":")
    return (name, path) if sep else ("", arg)


def _stat(cli: Cli, container: str, path: str) -> dict[str, Any] | None:
    resp = cli.client().request("HEAD", f"/containers/{container}/archive", query={"path": path}, check=False)
    resp.read()
    if resp.status == 404:
        return None
    if resp.status >= 400:
        raise StatusError(1, f"Error response from daemon: {resp.status}")
    return json.loads(base64.b64decode(resp.headers.get("X-Docker-Container-Path-Stat") or "e30="))


def cmd_cp(cli: Cli, opts: Options, args: list[str]) -> int:
    (src_c, src), (dst_c, dst) = split_cp_arg(args[0]), split_cp_arg(args[1])
    if src_c and dst_c:
        raise StatusError(1, "copying between containers is not supported")
    if not src_c and not dst_c:
        raise StatusError(1, "must specify at least one container source")
    if src_c:
        return _copy_from(cli, opts, src_c, src, dst)
    return _copy_to(cli, opts, src, dst_c, dst)


# ---------------------------------------------------------------- container -> local

def _copy_from(cli: Cli, opts: Options, container: str, src: str, dst: str) -> int:
    rebase = ""
    if opts.follow_link:
        st = _stat(cli, container, src)
        if st and st.get("mode", 0) & GO_SYMLINK:
            target = st["linkTarget"]
            if not target.startswith("/"):
                target = posixpath.join(posixpath.dirname(src), target)
            rebase, src = posixpath.basename(src.rstrip("/")), target
    try:
        resp = cli.client().request("GET", f"/containers/{container}/archive", query={"path": src})
    except Exception as exc:
        if is_not_found(exc):
            raise StatusError(1, f"Error response from daemon: {getattr(exc, 'message', exc)}") from None
        raise
    stat = json.loads(base64.b64decode(resp.headers.get("X-Docker-Container-Path-Stat") or "e30="))
    if dst == "-":
        for chunk in resp.iter_chunks():
            cli.out_bytes(chunk)
        return 0
    import tarfile
    src_is_dir = bool(stat.get("mode", 0) & GO_DIR)
    dst_abs = os.path.abspath(dst)
    if os.path.isdir(dst_abs):
        into, new_top = dst_abs, None
    else:
        if dst.endswith("/") or (os.path.exists(dst_abs) and src_is_dir):
            raise StatusError(1, f"destination \"{dst}\" must be a directory" if dst.endswith("/")
                              else "cannot copy a directory to a file")
        into, new_top = os.path.dirname(dst_abs), os.path.basename(dst_abs)
        if not os.path.isdir(into):
            raise StatusError(1, f"destination directory \"{into}\" must exist")
    size = 0
    with tarfile.open(fileobj=_ChunkReader(resp.iter_chunks()), mode="r|*") as tar:
        for m in tar:
            first, _, rest = m.name.strip("/").partition("/")
            new_first = new_top or rebase or first       # the top entry renamed as the destination asks
            m.name = posixpath.join(new_first, rest) if rest else new_first
            if m.islnk():
                lfirst, _, lrest = m.linkname.strip("/").partition("/")
                m.linkname = posixpath.join(new_first, lrest) if lrest else new_first
            m.uid, m.gid = os.getuid(), os.getgid()    # docker: the invoking user owns what arrives (even with -a)
            if m.isreg():
                size += m.size
            _remove_conflict(into, m)
            tar.extract(m, into, numeric_owner=True)
            _apply_xattrs(os.path.join(into, m.name), m)
    if not opts.quiet and isatty(cli.stderr):
        cli.err(f"Successfully copied {_size(size)} to {dst}\n")
    return 0


XATTR_PAX_PREFIX = "SCHILY.xattr."
CAP_XATTR = "security.capability"


def _apply_xattrs(path: str, m: Any) -> None:
    """The member's xattrs (PAX SCHILY.xattr.*), as docker's untar applies them: a file system or a user
    that cannot set one is not an error."""
    for key, value in m.pax_headers.items():
        if key.startswith(XATTR_PAX_PREFIX) and not m.issym():
            try:
                os.setxattr(path, key[len(XATTR_PAX_PREFIX):], value.encode("utf-8", "surrogateescape"),
                            follow_symlinks=False)
            except OSError:
                pass


def _tar_writer(spool: Any) -> Any:
    """A PAX tar writer recording what docker's archiver does besides tarfile's own hard links: the
    security.capability xattr (file capabilities)."""
    import tarfile

    class XattrTarFile(tarfile.TarFile):
        def gettarinfo(self, name: Any = None, arcname: Any = None, fileobj: Any = None) -> Any:
            info = super().gettarinfo(name, arcname, fileobj)
            if info is not None and name and (info.isreg() or info.isdir()):
                try:
                    cap = os.getxattr(name, CAP_XATTR, follow_symlinks=False)
                except OSError:
                    cap = b""
                if cap:
                    info.pax_headers[XATTR_PAX_PREFIX + CAP_XATTR] = cap.decode("utf-8", "surrogateescape")
            return info

    return XattrTarFile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT)


def _remove_conflict(into: str, m: Any) -> None:
    path = os.path.join(into, m.name)
    if os.path.lexists(path) and not (m.isdir() and os.path.isdir(path)) and not os.path.isdir(path):
        os.unlink(path)


class _ChunkReader:
    """A file-like reader over an iterator of byte chunks (tarfile's stream mode reads from it)."""

    def __init__(self, chunks: Any) -> None:
        self.chunks, self.buf = iter(chunks), b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.buf) < n:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buf += chunk
        if n < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:n], self.buf[n:]
        return out


# ---------------------------------------------------------------- local -> container

def _copy_to(cli: Cli, opts: Options, src: str, container: str, dst: str) -> int:
    import tempfile
    dst_stat = _stat(cli, container, dst)
    dst_path = dst
    if dst_stat and dst_stat.get("mode", 0) & GO_SYMLINK:
        target = dst_stat["linkTarget"]
        dst_path = target if target.startswith("/") else posixpath.join(posixpath.dirname(dst), target)
        dst_stat = _stat(cli, container, dst_path)
    query = {"noOverwriteDirNonDir": "true"}
    if opts.archive:
        query["copyUIDGID"] = "true"
    if src == "-":
        if not dst_stat or not dst_stat.get("mode", 0) & GO_DIR:
            raise StatusError(1, f'destination "{container}:{dst}" must be a directory')
        query["path"] = dst_path
        cli.client().request("PUT", f"/containers/{container}/archive", query=query, body=_stdin_chunks(cli))
        return 0
    src_abs = os.path.abspath(src)
    if opts.follow_link:
        src_abs = os.path.realpath(src_abs)
    if not os.path.lexists(src_abs):
        raise StatusError(1, f"lstat {src_abs}: no such file or directory")
    src_is_dir = os.path.isdir(src_abs) and not os.path.islink(src_abs)
    contents_only = src.endswith("/.")
    if dst_stat and dst_stat.get("mode", 0) & GO_DIR:
        extract_dir, name = dst_path, (None if contents_only else os.path.basename(src_abs.rstrip("/")))
    else:
        if dst_stat and src_is_dir:
            raise StatusError(1, "cannot copy a directory to a file")
        if not dst_stat and dst.endswith("/"):
            raise StatusError(1, f'destination "{container}:{dst}" must be a directory')
        extract_dir, name = posixpath.dirname(dst_path.rstrip("/")) or "/", posixpath.basename(dst_path.rstrip("/"))
    with tempfile.TemporaryFile() as spool:
        with _tar_writer(spool) as tar:
            if name is None:
                for child in sorted(os.listdir(src_abs)):
                    tar.add(os.path.join(src_abs, child), arcname=child)
            else:
                tar.add(src_abs, arcname=name)
        size = spool.tell()
        spool.seek(0)
        query["path"] = extract_dir
        cli.client().request("PUT", f"/containers/{container}/archive", query=query, body=spool)
    if not opts.quiet and isatty(cli.stderr):
        cli.err(f"Successfully copied {_size(size)} to {container}:{dst}\n")
    return 0


def _stdin_chunks(cli: Cli) -> Any:
    fd = cli.stdin.fileno() if hasattr(cli.stdin, "fileno") else sys.stdin.fileno()
    while True:
        data = os.read(fd, 1 << 16)
        if not data:
            return
        yield data


def _size(n: int) -> str:
    from pyd.client import formatting as fmt
    return fmt.human_size(n)


# ---------------------------------------------------------------- export

def cmd_export(cli: Cli, opts: Options, args: list[str]) -> int:
    if not opts.output and isatty(cli.stdout):
        raise StatusError(1, "cowardly refusing to save to a terminal. Use the -o flag or redirect")
    resp = cli.client().request("GET", f"/containers/{args[0]}/export")
    if opts.output:
        with open(opts.output, "wb") as f:
            for chunk in resp.iter_chunks():
                f.write(chunk)
        return 0
    for chunk in resp.iter_chunks():
        cli.out_bytes(chunk)
    return 0
