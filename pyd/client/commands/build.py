"""`pyd build`: send a build context to the classic builder (POST /build) and show its progress stream.

The context is streamed as a tar made on the fly (never whole in memory), leaving out what .dockerignore
excludes, as the docker CLI does; `-` reads a tar or a bare Dockerfile from stdin.
"""
from __future__ import annotations

import json
import os
import stat
import sys

TYPE_CHECKING = False     # typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Iterator

from pyd.client.common import PROG, Cli, StatusError
from pyd.client.flags import BOOL, LIST, STRING, Flag, Options, Spec

SPECS: dict[str, Spec] = {
    "build": Spec("[OPTIONS] PATH | URL | -", "Build an image from a Dockerfile", [
        Flag("build-arg", "", LIST, help="Set build-time variables"),
        Flag("file", "f", STRING, help="Name of the Dockerfile (Default is 'PATH/Dockerfile')"),
        Flag("label", "", LIST, help="Set metadata for an image"),
        Flag("network", "", STRING, help="Set the networking mode for the RUN instructions during build"),
        Flag("no-cache", "", BOOL, help="Do not use cache when building the image"),
        Flag("quiet", "q", BOOL, help="Suppress the build output and print image ID on success"),
        Flag("rm", "", BOOL, default=True, help="Remove intermediate containers after a successful build"),
        Flag("force-rm", "", BOOL, help="Always remove intermediate containers"),
        Flag("tag", "t", LIST, help="Name and optionally a tag in the \"name:tag\" format"),
        Flag("target", "", STRING, help="Set the target build stage to build."),
        Flag("add-host", "", LIST, help="Add a custom host-to-IP mapping (\"host:ip\")"),
        Flag("pull", "", BOOL, help="Always attempt to pull a newer version of the image"),
        Flag("iidfile", "", STRING, help="Write the image ID to the file"),
        Flag("platform", "", STRING, help="Set platform if server is multi-platform capable"),
    ], min_args=1, max_args=1, aliases=(f"{PROG} image build", f"{PROG} build", f"{PROG} builder build")),
}

_CHUNK = 1 << 16


def _tar_header(name: str, st: os.stat_result, link: str = "") -> bytes:
    import tarfile
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, link
    else:
        info.size = st.st_size
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _file_entry(name: str, path: str, st: os.stat_result) -> Iterator[bytes]:
    yield _tar_header(name, st)
    remaining = st.st_size
    with open(path, "rb") as f:
        while remaining > 0:
            data = f.read(min(_CHUNK, remaining))
            if not data:
                data = b"\0" * remaining
            remaining -= len(data)
            yield data
    yield b"\0" * (-st.st_size % 512)


def context_tar(root: str, dockerfile_rel: str, extra: tuple[str, bytes] | None = None) -> Iterator[bytes]:
    """The context folder as a tar stream, .dockerignore applied (the Dockerfile and .dockerignore kept)."""
    from pyd.formats import dockerignore
    matcher = dockerignore.load(root)
    for rel in dockerignore.walk(root, matcher, keep=(dockerfile_rel, ".dockerignore")):
        path = os.path.join(root, rel)
        try:
            st = os.lstat(path)
        except OSError as exc:
            raise StatusError(1, f"error checking context: {exc.strerror}: {rel}") from None
        if stat.S_ISREG(st.st_mode):
            if not os.access(path, os.R_OK):
                raise StatusError(1, f"error checking context: can't stat '{path}'")
            yield from _file_entry(rel, path, st)
        elif stat.S_ISDIR(st.st_mode):
            yield _tar_header(rel + "/", st)
        elif stat.S_ISLNK(st.st_mode):
            yield _tar_header(rel, st, os.readlink(path))
    if extra is not None:
        name, data = extra
        import tarfile
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + data + b"\0" * (-len(data) % 512)
    yield b"\0" * 1024


def _stdin_context(dockerfile_name: str) -> tuple[Iterator[bytes], str]:
    """stdin is a tar (maybe compressed), sent as it is, or a Dockerfile, sent in a one-file tar."""
    stream = sys.stdin.buffer
    head = stream.read(512)
    is_archive = head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")) or (len(head) >= 262 and
                                                                              head[257:262] == b"ustar")
    if is_archive:
        def chunks() -> Iterator[bytes]:
            yield head
            while data := stream.read(_CHUNK):
                yield data
        return chunks(), dockerfile_name or "Dockerfile"
    data = head + stream.read()
    import tarfile
    info = tarfile.TarInfo("Dockerfile")
    info.size, info.mode = len(data), 0o644
    tar = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + data + b"\0" * (-len(data) % 512)
    return iter([tar + b"\0" * 1024]), "Dockerfile"


def cmd_build(cli: Cli, opts: Options, args: list[str]) -> int:
    source = args[0]
    query: dict[str, Any] = {"t": list(opts.tag) or None, "q": "1" if opts.quiet else None,
                             "nocache": "1" if opts.no_cache else None, "rm": "1" if opts.rm else "0",
                             "forcerm": "1" if opts.force_rm else None, "target": opts.target or None,
                             "networkmode": opts.network or None, "pull": "1" if opts.pull else None,
                             "platform": opts.platform or None}
    buildargs: dict[str, str | None] = {}
    for item in opts.build_arg:
        key, eq, value = item.partition("=")
        buildargs[key] = value if eq else os.environ.get(key)
    if buildargs:
        query["buildargs"] = json.dumps(buildargs)
    if opts.label:
        query["labels"] = json.dumps({k: v for k, _, v in (item.partition("=") for item in opts.label)})
    if opts.add_host:
        query["extrahosts"] = list(opts.add_host)
    if source == "-":
        body, dockerfile = _stdin_context(opts.file or "")
    elif "://" in source or source.startswith("git@"):
        raise StatusError(1, f"unable to prepare context: remote contexts ({source}) are not supported")
    else:
        if not os.path.isdir(source):
            raise StatusError(1, f'unable to prepare context: path "{source}" not found')
        dockerfile_path = opts.file or os.path.join(source, "Dockerfile")
        if opts.file == "-":
            raise StatusError(1, "reading the Dockerfile from stdin (-f -) is not supported yet")
        if not os.path.isabs(dockerfile_path) and opts.file:
            dockerfile_path = os.path.abspath(dockerfile_path)
        if not os.path.isfile(dockerfile_path):
            raise StatusError(1, f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                                 f"lstat {dockerfile_path}: no such file or directory")
        root = os.path.abspath(source)
        rel = os.path.relpath(os.path.abspath(dockerfile_path), root)
        extra = None
        if rel.startswith(".." + os.sep) or rel == "..":   # outside the context: sent beside it
            with open(dockerfile_path, "rb") as f:
                data = f.read()
            rel = f".dockerfile.{os.urandom(10).hex()}"
            extra = (rel, data)
        body, dockerfile = context_tar(root, rel.replace(os.sep, "/"), extra), rel.replace(os.sep, "/")
    query["dockerfile"] = dockerfile
    resp = cli.client().request("POST", "/build", query={k: v for k, v in query.items() if v is not None},
                                body=body, headers={"Content-Type": "application/x-tar"})
    image_id = ""
    for msg in resp.iter_json():
        if not isinstance(msg, dict):
            continue
        error = msg.get("errorDetail") or ({"message": msg["error"]} if msg.get("error") else None)
        if error:
            raise StatusError(int(error.get("code") or 1), str(error.get("message", "")))
        if isinstance(msg.get("aux"), dict) and msg["aux"].get("ID"):
            image_id = msg["aux"]["ID"]
        if msg.get("stream"):
            cli.out(msg["stream"])
            cli.stdout.flush()
    if opts.iidfile and image_id:
        with open(opts.iidfile, "w") as f:
            f.write(image_id)
    return 0
