"""Image commands: images, import, load, save, tag, rmi, pull, push, history, commit, image prune, login,
logout."""
from __future__ import annotations

import os
import re
import sys
import time

TYPE_CHECKING = False     # typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

from pyd.client import formatting as fmt
from pyd.client.common import Cli, StatusError, encode_filters, for_each, isatty, read_stream_messages, \
    validate_filter, PROG
from pyd.client.flags import BOOL, LIST, STRING, Flag, Options, Spec
from pyd.client.gotemplate import FormatContext

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
    "pull": Spec("[OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry", [
        Flag("all-tags", "a", BOOL, help="Download all tagged images in the repository"),
        Flag("disable-content-trust", "", BOOL, default=True, help="Skip image verification"),
        Flag("platform", "", STRING, help="Set platform if server is multi-platform capable"),
        Flag("quiet", "q", BOOL, help="Suppress verbose output"),
    ], min_args=1, max_args=1, aliases=(f"{PROG} image pull", f"{PROG} pull")),
    "push": Spec("[OPTIONS] NAME[:TAG]", "Upload an image to a registry", [
        Flag("all-tags", "a", BOOL, help="Push all tags of an image to the repository"),
        Flag("disable-content-trust", "", BOOL, default=True, help="Skip image signing"),
        Flag("platform", "", STRING, help="Push a platform-specific manifest as a single-platform image"),
        Flag("quiet", "q", BOOL, help="Suppress verbose output"),
    ], min_args=1, max_args=1, aliases=(f"{PROG} image push", f"{PROG} push")),
    "history": Spec("[OPTIONS] IMAGE", "Show the history of an image", [
        Flag("format", "", STRING, help="Format output using a custom template"),
        Flag("human", "H", BOOL, default=True, help="Print sizes and dates in human readable format"),
        Flag("no-trunc", "", BOOL, help="Don't truncate output"),
        Flag("quiet", "q", BOOL, help="Only show image IDs"),
    ], min_args=1, max_args=1, aliases=(f"{PROG} image history", f"{PROG} history")),
    "commit": Spec("[OPTIONS] CONTAINER [REPOSITORY[:TAG]]", "Create a new image from a container's changes", [
        Flag("author", "a", STRING, help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")'),
        Flag("change", "c", LIST, help="Apply Dockerfile instruction to the created image"),
        Flag("message", "m", STRING, help="Commit message"),
        Flag("pause", "p", BOOL, default=True, help="Pause container during commit"),
    ], min_args=1, max_args=2, aliases=(f"{PROG} container commit", f"{PROG} commit")),
    "image_prune": Spec("[OPTIONS]", "Remove unused images", [
        Flag("all", "a", BOOL, help="Remove all unused images, not just dangling ones"),
        Flag("filter", "", LIST, metavar="filter", help='Provide filter values (e.g. "until=<timestamp>")',
             validate=validate_filter),
        Flag("force", "f", BOOL, help="Do not prompt for confirmation"),
    ], max_args=0, aliases=(f"{PROG} image prune",)),
    "login": Spec("[OPTIONS] [SERVER]", "Authenticate to a registry", [
        Flag("password", "p", STRING, help="Password"),
        Flag("password-stdin", "", BOOL, help="Take the password from stdin"),
        Flag("username", "u", STRING, help="Username"),
    ], max_args=1, aliases=(f"{PROG} login",)),
    "logout": Spec("[SERVER]", "Log out from a registry", [], max_args=1, aliases=(f"{PROG} logout",)),
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
    template = fmt.listing_template(cli, opts, IMAGES_TABLE_DIGESTS if opts.digests else IMAGES_TABLE)
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
        if isatty(sys.stdin):
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


def cmd_save(cli: Cli, opts: Options, args: list[str]) -> int:
    if not opts.output and isatty(cli.stdout):
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

    def report(_name: str, deleted: list) -> None:
        for item in deleted:
            if item.get("Untagged"):
                cli.out(f"Untagged: {item['Untagged']}\n")
            if item.get("Deleted"):
                cli.out(f"Deleted: {item['Deleted']}\n")

    for_each(cli, args, lambda n: cli.client().request("DELETE", f"/images/{n}", query=query or None).json() or [],
             report=report)
    return 0


# ---------------------------------------------------------------- registry credentials (~/.docker/config.json)

INDEX_SERVER = "https://index.docker.io/v1/"


def _docker_config_path() -> str:
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(base, "config.json")


def _read_docker_config() -> dict:
    import json
    try:
        with open(_docker_config_path()) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_docker_config(data: dict) -> None:
    import json
    path = _docker_config_path()
    os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        json.dump(data, f, indent="\t")
    os.replace(tmp, path)


def _registry_key(domain: str) -> str:
    return INDEX_SERVER if domain in ("docker.io", "index.docker.io", "registry-1.docker.io") else domain


def _domain_of(name: str) -> str:
    first = name.split("/", 1)[0] if "/" in name else ""
    if first and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def registry_auth_header(domain: str) -> dict[str, str]:
    """X-Registry-Auth for the credentials `login` stored for this registry (as the docker CLI sends it)."""
    import base64
    import json
    entry = (_read_docker_config().get("auths") or {}).get(_registry_key(domain)) or {}
    creds: dict[str, str] = {}
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            creds = {"username": user, "password": password}
        except ValueError:
            creds = {}
    if entry.get("identitytoken"):
        creds["identitytoken"] = entry["identitytoken"]
    if creds:
        creds["serveraddress"] = _registry_key(domain)
    raw = json.dumps(creds, separators=(",", ":")).encode()
    return {"X-Registry-Auth": base64.urlsafe_b64encode(raw).decode()}


def cmd_login(cli: Cli, opts: Options, args: list[str]) -> int:
    import base64
    server = args[0] if args else INDEX_SERVER
    domain = server.split("://", 1)[-1].split("/", 1)[0] if "://" in server else server.split("/", 1)[0]
    key = _registry_key(domain) if server != INDEX_SERVER else INDEX_SERVER
    password = opts.password or ""
    if opts.password_stdin:
        if opts.password:
            raise StatusError(1, "--password and --password-stdin are mutually exclusive")
        if not opts.username:
            raise StatusError(1, "Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    if opts.password and not opts.password_stdin:
        cli.err("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
    username = opts.username or ""
    if not username or not password:
        raise StatusError(1, "Error: Cannot perform an interactive login from a non TTY device")
    body = {"username": username, "password": password, "serveraddress": key}
    resp = cli.client().request("POST", "/auth", body=body).json() or {}
    config = _read_docker_config()
    entry = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    if resp.get("IdentityToken"):
        entry = {"auth": "", "identitytoken": resp["IdentityToken"]}
    config.setdefault("auths", {})[key] = entry
    _write_docker_config(config)
    cli.out(f"{resp.get('Status') or 'Login Succeeded'}\n")
    return 0


def cmd_logout(cli: Cli, opts: Options, args: list[str]) -> int:
    server = args[0] if args else INDEX_SERVER
    key = INDEX_SERVER if server == INDEX_SERVER else _registry_key(server.split("://", 1)[-1].split("/", 1)[0])
    config = _read_docker_config()
    auths = config.get("auths") or {}
    if key not in auths:
        cli.out(f"Not logged in to {key}\n")
        return 0
    cli.out(f"Removing login credentials for {key}\n")
    del auths[key]
    _write_docker_config(config)
    return 0


# ---------------------------------------------------------------- pull, push: progress streams

def display_progress(cli: Cli, resp: Any, quiet: bool = False) -> dict:
    """docker's DisplayJSONMessagesStream: on a terminal one line per layer redrawn in place; otherwise
    status lines without the progress updates. Returns the last aux message; an error raises StatusError."""
    tty = isatty(cli.stdout) and not quiet
    lines: dict[str, int] = {}
    aux: dict = {}
    out = cli.stdout
    for msg in resp.iter_json():
        if not isinstance(msg, dict):
            continue
        error = msg.get("errorDetail") or ({"message": msg["error"]} if msg.get("error") else None)
        if error:
            out.flush()
            raise StatusError(1, str(error.get("message", "")))
        if isinstance(msg.get("aux"), dict):
            aux = msg["aux"]
            continue
        if quiet:
            continue
        status = msg.get("status") or ""
        lid = msg.get("id") or ""
        detail = msg.get("progressDetail") or {}
        if not tty:
            if detail.get("current") is not None:
                continue
            out.write(f"{lid}: {status}\n" if lid else f"{status}\n")
            continue
        text = (f"{lid}: " if lid else "") + status + (f" {msg['progress']}" if msg.get("progress") else "")
        if lid and lid in lines:
            up = len(lines) - lines[lid]
            out.write(f"\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B")
        elif lid:
            lines[lid] = len(lines)
            out.write(text + "\n")
        else:
            lines.clear()
            out.write(text + "\n")
        out.flush()
    out.flush()
    return aux


def pull_image(cli: Cli, image: str, platform: str = "", quiet: bool = False, out: Any = None,
               all_tags: bool = False) -> None:
    """POST /images/create?fromImage=...: what `pull` and `run` of a missing image do."""
    try:
        name, tag, digest = split_reference(image)
    except ValueError as exc:
        raise StatusError(1, str(exc)) from None
    query: dict[str, str] = {"fromImage": name, "tag": "" if all_tags else (digest or tag or "latest")}
    if platform:
        query["platform"] = platform
    resp = cli.client().request("POST", "/images/create", query=query, headers=registry_auth_header(_domain_of(name)))
    if out is not None:
        saved, cli.stdout = cli.stdout, out
        try:
            display_progress(cli, resp, quiet)
        finally:
            cli.stdout = saved
    else:
        display_progress(cli, resp, quiet)


def _full_name(name: str, tag: str, digest: str) -> str:
    domain = _domain_of(name)
    path = name if domain == "docker.io" and not name.startswith("docker.io/") else name.split("/", 1)[1]
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    return f"{domain}/{path}" + (f"@{digest}" if digest else f":{tag or 'latest'}")


def cmd_pull(cli: Cli, opts: Options, args: list[str]) -> int:
    image = args[0]
    try:
        name, tag, digest = split_reference(image)
    except ValueError as exc:
        raise StatusError(1, str(exc)) from None
    if opts.all_tags and (tag or digest):
        raise StatusError(1, "tag can't be used with --all-tags/-a")
    if not tag and not digest and not opts.all_tags:
        cli.out("Using default tag: latest\n")
    pull_image(cli, image, opts.platform or "", opts.quiet, all_tags=opts.all_tags)
    full = _full_name(name, tag, digest)
    cli.out((full.rsplit(":", 1)[0] if opts.all_tags else full) + "\n")
    return 0


def cmd_push(cli: Cli, opts: Options, args: list[str]) -> int:
    image = args[0]
    try:
        name, tag, digest = split_reference(image)
    except ValueError as exc:
        raise StatusError(1, str(exc)) from None
    if opts.all_tags and tag:
        raise StatusError(1, "tag can't be used with --all-tags/-a")
    if not tag and not opts.all_tags:
        cli.out("Using default tag: latest\n")
        tag = "latest"
    query = {"tag": tag} if tag else None
    resp = cli.client().request("POST", f"/images/{name}/push", query=query,
                                headers=registry_auth_header(_domain_of(name)))
    display_progress(cli, resp, opts.quiet)
    if opts.quiet:
        cli.out(f"{_full_name(name, tag, '')}\n")
    return 0


# ---------------------------------------------------------------- history, commit, prune

HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


class HistoryRow(FormatContext):
    go_type = "*formatter.historyContext"

    def __init__(self, h: dict, trunc: bool, human: bool, now: float) -> None:
        self.h, self.trunc, self.human, self.now = h, trunc, human, now

    def field_ID(self) -> str:
        i = self.h.get("Id", "")
        return fmt.truncate_id(i) if self.trunc and i.startswith("sha256:") else i

    def field_CreatedSince(self) -> str:
        if not self.human:
            return fmt.go_time_string(self.h.get("Created", 0))
        return fmt.human_duration(self.now - self.h.get("Created", 0)) + " ago"

    def field_CreatedAt(self) -> str:
        return fmt.go_time_string(self.h.get("Created", 0))

    def field_CreatedBy(self) -> str:
        text = (self.h.get("CreatedBy") or "").replace("\t", " ")
        return fmt.ellipsis(text, 45) if self.trunc else text

    def field_Size(self) -> str:
        return fmt.human_size(self.h.get("Size") or 0) if self.human else str(self.h.get("Size") or 0)

    def field_Comment(self) -> str:
        return self.h.get("Comment") or ""

    def field_Tags(self) -> str:
        return ", ".join(self.h.get("Tags") or [])


def cmd_history(cli: Cli, opts: Options, args: list[str]) -> int:
    rows = cli.client().request("GET", f"/images/{args[0]}/history").json() or []
    template = opts.format or HISTORY_TABLE
    if opts.quiet:
        template = "{{.ID}}"
    now = time.time()
    try:
        cli.out(fmt.render(template, [HistoryRow(r, not opts.no_trunc, opts.human, now) for r in rows],
                           HISTORY_HEADERS))
    except fmt.FormatError as exc:
        raise StatusError(1, str(exc)) from None
    return 0


def cmd_commit(cli: Cli, opts: Options, args: list[str]) -> int:
    query: dict[str, Any] = {"container": args[0], "pause": "1" if opts.pause else "0"}
    if len(args) > 1:
        try:
            name, tag, digest = split_reference(args[1])
        except ValueError as exc:
            raise StatusError(1, f"invalid reference format: {exc}") from None
        if digest:
            raise StatusError(1, "refusing to create a tag with a digest reference")
        query["repo"] = name
        if tag:
            query["tag"] = tag
    if opts.message:
        query["comment"] = opts.message
    if opts.author:
        query["author"] = opts.author
    if opts.change:
        query["changes"] = list(opts.change)
    resp = cli.client().request("POST", "/commit", query=query, body={}).json() or {}
    cli.out(f"{resp.get('Id', '')}\n")
    return 0


def cmd_image_prune(cli: Cli, opts: Options, args: list[str]) -> int:
    filters = list(opts.filter)
    filters.append("dangling=false" if opts.all else "dangling=true")
    if not opts.force:
        warning = ("WARNING! This will remove all images without at least one container associated to them."
                   if opts.all else "WARNING! This will remove all dangling images.")
        cli.out(warning + "\nAre you sure you want to continue? [y/N] ")
        cli.stdout.flush()
        answer = (cli.stdin.readline() or "").strip().lower()
        if answer not in ("y", "yes"):
            cli.out("\n")
            return 0
    resp = cli.client().request("POST", "/images/prune", query={"filters": encode_filters(filters)}).json() or {}
    deleted = resp.get("ImagesDeleted") or []
    if deleted:
        cli.out("Deleted Images:\n")
        for item in deleted:
            if item.get("Untagged"):
                cli.out(f"untagged: {item['Untagged']}\n")
            if item.get("Deleted"):
                cli.out(f"deleted: {item['Deleted']}\n")
        cli.out("\n")
    cli.out(f"Total reclaimed space: {fmt.human_size(resp.get('SpaceReclaimed') or 0)}\n")
    return 0
