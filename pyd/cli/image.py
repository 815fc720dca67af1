"""Image commands: images, import, load, save, tag, rmi."""
from __future__ import annotations

import os
import re
import sys
import time

TYPE_CHECKING = False     # typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

from pyd.cli import formatting as fmt
from pyd.cli.common import Cli, StatusError, api_error_message, encode_filters, read_stream_messages, \
    validate_filter, PROG
from pyd.cli.flags import BOOL, LIST, STRING, Flag, Options, Spec
from pyd.cli.template import FormatContext

SPECS: dict[str, Spec] = {
    "images": Spec("[OPTIONS] [REPOSITORY[:TAG]]", "List images", [
        Flag("all", "a", BOOL, help="Show all images (default hides intermediate images)"),
        Flag("digests", "", BOOL, help="Show digests"),
        Flag("filter", "f", LIST, metavar="filter", help="Filter output based on conditions provided",
             validate=validate_filter),
        Flag("format", "", STRING, help="Format output using a custom template: 'table': Print output in "
             "table format with column headers (default) 'table TEMPLATE': Print output in table format "
             "using the given Go template 'json': Print in JSON format 'TEMPLATE': Print output using the "
             "given Go template."),
        Flag("no-trunc", "", BOOL, help="Don't truncate output"),
        Flag("quiet", "q", BOOL, help="Only show image IDs"),
    ], max_args=1, aliases=(f"{PROG} image ls", f"{PROG} image list", f"{PROG} images")),
    "import": Spec("[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
                   "Import the contents from a tarball to create a filesystem image", [
        Flag("change", "c", LIST, help="Apply Dockerfile instruction to the created image"),
        Flag("message", "m", STRING, help="Set commit message for imported image"),
        Flag("platform", "", STRING, help="Set platform if server is multi-platform capable"),
    ], min_args=1, max_args=2, aliases=(f"{PROG} image import", f"{PROG} import")),
    "load": Spec("[OPTIONS]", "Load an image from a tar archive or STDIN", [
        Flag("input", "i", STRING, help="Read from tar archive file, instead of STDIN"),
        Flag("quiet", "q", BOOL, help="Suppress the load output"),
    ], max_args=0, aliases=(f"{PROG} image load", f"{PROG} load")),
    "save": Spec("[OPTIONS] IMAGE [IMAGE...]",
                 "Save one or more images to a tar archive (streamed to STDOUT by default)", [
        Flag("output", "o", STRING, help="Write to a file, instead of STDOUT"),
    ], min_args=1, aliases=(f"{PROG} image save", f"{PROG} save")),
    "tag": Spec("SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
                [], min_args=2, max_args=2, aliases=(f"{PROG} image tag", f"{PROG} tag")),
    "rmi": Spec("[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", [
        Flag("force", "f", BOOL, help="Force removal of the image"),
        Flag("no-prune", "", BOOL, help="Do not delete untagged parents"),
    ], min_args=1, aliases=(f"{PROG} image rm", f"{PROG} image remove", f"{PROG} rmi")),
}

# ---------------------------------------------------------------- references (pure)

_NAME_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_REFERENCE = re.compile(rf"^(?:({_DOMAIN})/)?({_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*)"
                        r"(?::([\w][\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$")


def split_reference(ref: str) -> tuple[str, str, str]:
    """'host:5000/a/b:tag@sha256:...' -> (name, tag, digest); raises ValueError like docker's reference
    package ("invalid reference format", "... must be lowercase")."""
    m = _REFERENCE.match(ref)
    if not m:
        lowered = ref.lower()
        if ref != lowered and _REFERENCE.match(lowered):
            name = ref.split("@", 1)[0]
            last = name.rsplit("/", 1)
            if ":" in last[-1]:
                name = name[:name.rindex(":")]
            raise ValueError(f"invalid reference format: repository name ({_normalized_path(name)}) must be lowercase")
        raise ValueError("invalid reference format")
    domain, path, tag, digest = m.group(1), m.group(2), m.group(3) or "", m.group(4) or ""
    name = f"{domain}/{path}" if domain else path
    if len(name) > 255:
        raise ValueError("invalid reference format: repository name must not be more than 255 characters")
    return name, tag, digest


def _normalized_path(name: str) -> str:
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name.split("/", 1)[1]
    return name if "/" in name else f"library/{name}"


def familiar_name(name: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


# ---------------------------------------------------------------- images

IMAGE_HEADERS = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
    "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
    "VirtualSize": "VIRTUAL SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
}
IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_TABLE_DIGESTS = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"


class ImageRow(FormatContext):
    """One row of `images`: docker's imageContext (an image shown once per repository/tag)."""

    go_type = "*formatter.imageContext"

    def __init__(self, img: dict[str, Any], repo: str, tag: str, digest: str, trunc: bool = True,
                 now: float | None = None) -> None:
        self.i, self.repo, self.tag, self.digest, self.trunc = img, repo, tag, digest, trunc
        self.now = time.time() if now is None else now

    def field_ID(self) -> str:
        return fmt.truncate_id(self.i.get("Id", "")) if self.trunc else self.i.get("Id", "")

    def field_Repository(self) -> str:
        return self.repo

    def field_Tag(self) -> str:
        return self.tag

    def field_Digest(self) -> str:
        return self.digest

    def field_CreatedSince(self) -> str:
        return fmt.human_duration(self.now - self.i.get("Created", 0)) + " ago"

    def field_CreatedAt(self) -> str:
        return fmt.go_time_string(self.i.get("Created", 0))

    def field_Size(self) -> str:
        return fmt.human_size(self.i.get("Size") or 0)

    def field_VirtualSize(self) -> str:
        return fmt.human_size(self.i.get("VirtualSize") or self.i.get("Size") or 0, 4)

    def field_Containers(self) -> str:
        n = self.i.get("Containers", -1)
        return "N/A" if n is None or n == -1 else str(n)

    def field_SharedSize(self) -> str:
        n = self.i.get("SharedSize", -1)
        return "N/A" if n is None or n == -1 else fmt.human_size(n)

    def field_UniqueSize(self) -> str:
        shared = self.i.get("SharedSize", -1)
        if shared is None or shared == -1:
            return "N/A"
        return fmt.human_size((self.i.get("Size") or 0) - shared)


def _is_dangling(img: dict[str, Any]) -> bool:
    tags, digests = img.get("RepoTags") or [], img.get("RepoDigests") or []
    return (not tags and not digests) or (tags == ["<none>:<none>"] and digests == ["<none>@<none>"])


def image_rows(images: list[dict[str, Any]], trunc: bool, show_digests: bool,
               now: float | None = None) -> list[ImageRow]:
    """Expand images into rows as docker does: a row per repository:tag (per digest with --digests),
    digest-only references as '<none>' tags, dangling images as '<none> <none>'."""
    rows: list[ImageRow] = []
    for img in images:
        if _is_dangling(img):
            rows.append(ImageRow(img, "<none>", "<none>", "<none>", trunc, now))
            continue
        tags: dict[str, list[str]] = {}
        digests: dict[str, list[str]] = {}
        for ref in img.get("RepoTags") or []:
            try:
                name, tag, _ = split_reference(ref)
            except ValueError:
                continue
            if tag:
                tags.setdefault(familiar_name(name), []).append(tag)
        for ref in img.get("RepoDigests") or []:
            try:
                name, _, digest = split_reference(ref)
            except ValueError:
                continue
            if digest:
                digests.setdefault(familiar_name(name), []).append(digest)
        for repo in sorted(tags):
            repo_digests = digests.pop(repo, [])      # a tagged repo's digests never get rows of their own
            if not show_digests:
                repo_digests = []
            for tag in tags[repo]:
                for digest in repo_digests or ["<none>"]:
                    rows.append(ImageRow(img, repo, tag, digest, trunc, now))
        for repo in sorted(digests):
            if show_digests:
                rows += [ImageRow(img, repo, "<none>", d, trunc, now) for d in digests[repo]]
            else:
                rows.append(ImageRow(img, repo, "<none>", "", trunc, now))
    return rows


def cmd_images(cli: Cli, opts: Options, args: list[str]) -> int:
    query: dict[str, str] = {}
    if opts.all:
        query["all"] = "1"
    filters = list(opts.filter) + ([f"reference={args[0]}"] if args else [])
    encoded = encode_filters(filters)
    if encoded:
        query["filters"] = encoded
    images = cli.client().request("GET", "/images/json", query=query).json() or []
    template = opts.format
    if opts.quiet and template and template != "table":
        cli.err("WARNING: Ignoring custom format, because both --format and --quiet are set.\n")
    if opts.quiet:
        template = "{{.ID}}"
    elif not template or template == "table":
        template = IMAGES_TABLE_DIGESTS if opts.digests else IMAGES_TABLE
    rows = image_rows(images, trunc=not opts.no_trunc, show_digests=opts.digests or "{{.Digest}}" in template)
    try:
        cli.out(fmt.render(template, rows, IMAGE_HEADERS))
    except fmt.FormatError as exc:
        raise StatusError(1, str(exc)) from None
    return 0


# ---------------------------------------------------------------- import, load, save


def _open_input(path: str) -> Any:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise StatusError(1, f"open {path}: {os.strerror(exc.errno).lower() if exc.errno else exc}") from None


def _file_chunks(f: Any, size: int = 1 << 16):
    while True:
        data = f.read(size)
        if not data:
            return
        yield data


def cmd_import(cli: Cli, opts: Options, args: list[str]) -> int:
    source = args[0]
    ref = args[1] if len(args) > 1 else ""
    if ref:
        try:
            split_reference(ref)
        except ValueError as exc:
            raise StatusError(1, str(exc)) from None
    query: dict[str, Any] = {"fromSrc": "-", "repo": ref or None}
    if opts.message:
        query["message"] = opts.message
    if opts.change:
        query["changes"] = list(opts.change)
    if opts.platform:
        query["platform"] = opts.platform
    body: Any
    if source == "-":
        body = _file_chunks(sys.stdin.buffer)
    elif "://" in source:
        query["fromSrc"], body = source, None
    else:
        body = _file_chunks(_open_input(source))
    resp = cli.client().request("POST", "/images/create", query=query, body=body,
                                headers={"Content-Type": "application/x-tar"} if body is not None else None)
    read_stream_messages(cli, resp)
    return 0


def cmd_load(cli: Cli, opts: Options, args: list[str]) -> int:
    if opts.input:
        body = _file_chunks(_open_input(opts.input))
    else:
        if _isatty(sys.stdin):
            raise StatusError(1, "requested load from stdin, but stdin is empty")
        body = _file_chunks(sys.stdin.buffer)
    query = {"quiet": "1"} if opts.quiet else None
    resp = cli.client().request("POST", "/images/load", query=query, body=body,
                                headers={"Content-Type": "application/x-tar"})
    content_type = (resp.headers.get("Content-Type") or "") if resp.headers is not None else ""
    if "json" in content_type or not content_type:
        read_stream_messages(cli, resp)
    else:
        cli.out_bytes(resp.read())
    return 0


def _isatty(stream: Any) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def cmd_save(cli: Cli, opts: Options, args: list[str]) -> int:
    if not opts.output and _isatty(cli.stdout):
        raise StatusError(1, "cowardly refusing to save to a terminal. Use the -o flag or redirect")
    resp = cli.client().request("GET", "/images/get", query={"names": list(args)})
    if not opts.output:
        for chunk in resp.iter_chunks():
            cli.out_bytes(chunk)
        return 0
    # write next to the target and rename, so a failed save leaves no half file (as docker)
    target = opts.output
    tmp = f"{target}.pyd-save-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            for chunk in resp.iter_chunks():
                f.write(chunk)
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise StatusError(1, f"failed to save image: {exc}") from None
    return 0


# ---------------------------------------------------------------- tag, rmi


def cmd_tag(cli: Cli, opts: Options, args: list[str]) -> int:
    source, target = args
    try:
        name, tag, digest = split_reference(target)
    except ValueError as exc:
        raise StatusError(1, f'Error parsing reference: "{target}" is not a valid repository/tag: {exc}') from None
    if digest:
        raise StatusError(1, "refusing to create a tag with a digest reference")
    query = {"repo": familiar_name(name), "tag": tag} if tag else {"repo": familiar_name(name)}
    cli.client().request("POST", f"/images/{source}/tag", query=query)
    return 0


def cmd_rmi(cli: Cli, opts: Options, args: list[str]) -> int:
    query = {k: "1" for k, on in (("force", opts.force), ("noprune", opts.no_prune)) if on}
    errors = []
    for name in args:
        try:
            deleted = cli.client().request("DELETE", f"/images/{name}", query=query or None).json() or []
        except Exception as exc:
            from pyd import proto
            if not isinstance(exc, (proto.APIError, proto.DaemonUnreachable)):
                raise
            errors.append(api_error_message(exc))
            continue
        for item in deleted:
            if item.get("Untagged"):
                cli.out(f"Untagged: {item['Untagged']}\n")
            if item.get("Deleted"):
                cli.out(f"Deleted: {item['Deleted']}\n")
    if errors:
        raise StatusError(1, "\n".join(errors))
    return 0
