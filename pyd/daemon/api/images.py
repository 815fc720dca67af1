"""/images/...: list, inspect, tag, remove, load, import, save, pull, push, history, prune; /commit, /auth,
/distribution."""
from __future__ import annotations

import errno
import logging
import os
from typing import TYPE_CHECKING, Any

from pyd.daemon.api import compat
from pyd.daemon.api.version import api_version
from pyd.daemon.api.util import check_filter_keys, filters_arg, releasing_memory, spool_body
from pyd.daemon.api.validate import no_space_message
from pyd.daemon.errors import BadParameter
from pyd.daemon.images.service import split_refs
from pyd.daemon.errors import HTTPError
from pyd.http.server import Response
from pyd.formats.reference import Reference, parse_reference, validate_tag

if TYPE_CHECKING:
    from pyd.daemon.images.registry import AuthConfig
    from pyd.daemon.images.service import ImageService
    from pyd.daemon.storage.graph import Graph, Image
    from pyd.http.server import Request, Router, StreamWriter

LIST_FILTERS = {"dangling", "label", "reference", "before", "since", "until"}


def _registry_auth(req: Request) -> AuthConfig:
    from pyd.daemon.images import registry   # the registry client stays out of an idle daemon
    return registry.decode_auth_header(req.headers.get("x-registry-auth"))


def register(router: Router, images: ImageService, graph: Graph, tmp_dir: str) -> None:
    """tmp_dir: where uploads (load, import) are spooled."""

    async def list_(req) -> list:
        filters = filters_arg(req)
        check_filter_keys(filters, LIST_FILTERS)
        dangling = filters.get("dangling") or []
        if dangling and "true" not in dangling and "false" not in dangling:
            raise BadParameter(f"Invalid filter 'dangling=[{' '.join(dangling)}]'")     # dockerd's ExactMatch
        compat.image_list_filters(api_version(req), filters, req.arg("filter"))
        return compat.image_list(api_version(req), images.summaries(filters, req.arg_bool("all")))

    async def inspect(req, name: str) -> dict:
        return compat.image_inspect(api_version(req), image_inspect(graph, graph.resolve_image(name)))

    async def tag(req, name: str) -> Response:
        graph.resolve_image(name)
        repo = req.arg("repo") or ""
        if not repo:
            raise BadParameter("repository name must have at least one component")
        ref = f"{repo}:{req.arg('tag')}" if req.arg("tag") else repo
        await images.tag(name, ref)
        return Response(201, b"")

    async def remove(req, name: str) -> list:
        return await images.remove(name, req.arg_bool("force"))

    async def load(req) -> None:
        # quiet only changes progress output, which load does not produce
        path = await spool_body(req, tmp_dir)
        # dockerd answers 200 at once: a bad archive is an error message in the stream (docker-py's
        # ImageLoadError, the CLI's exit 1)
        out = _LazyStream(req)
        await out.start()

        async def load_and_report() -> None:
            try:
                messages = await images.load(path)
            finally:
                os.unlink(path)
            for msg in messages:
                await out.emit({"stream": msg + "\n"})
        await out.run(load_and_report())

    async def create(req) -> None:
        if req.arg("fromImage"):
            await pull(req)
            return
        if req.arg("fromSrc") != "-":
            raise BadParameter("fromSrc must be \"-\" (import from the request body); URLs are not supported")
        repo, tag_ = req.arg("repo") or "", req.arg("tag") or ""
        ref = (f"{repo}:{tag_}" if tag_ else repo) or None
        changes = req.query.get("changes", [])
        path = await spool_body(req, tmp_dir)
        try:
            image_id = await images.import_tar(path, ref, changes, req.arg("message") or "")
        finally:
            os.unlink(path)
        out = await req.stream(200, "application/json")
        await out.write_json({"status": image_id})
        await out.close()

    async def pull(req) -> None:
        ref = _pull_reference(req.arg("fromImage") or "", req.arg("tag") or "")
        auth = _registry_auth(req)
        out = _LazyStream(req)
        await out.run(images.pull(ref, auth, out.emit, req.arg("platform") or ""))

    async def push(req, name: str) -> None:
        ref = parse_reference(name, default_tag=False)
        if ref.digest:
            raise BadParameter("cannot push a digest reference")
        tags = images.push_tags(ref, req.arg("tag") or ref.tag or "")
        auth = _registry_auth(req)
        out = _LazyStream(req)
        await out.run(images.push(ref, tags, auth, out.emit))

    async def auth(req) -> dict:
        from pyd.daemon.images import registry
        body = await req.json() or {}
        if not isinstance(body, dict):
            raise BadParameter("invalid auth configuration")
        await images.login(registry.auth_from_json(body))
        return {"Status": "Login Succeeded", "IdentityToken": ""}

    async def distribution(req, name: str) -> dict:
        return await images.distribution(parse_reference(name), _registry_auth(req))

    async def history(req, name: str) -> list:
        return images.history(name)

    async def prune(req) -> dict:
        filters = filters_arg(req)
        check_filter_keys(filters, {"dangling", "until", "label", "label!"})
        return await images.prune(filters)

    async def commit(req) -> Response:
        c = images.container(req.arg("container") or "")
        overrides = await req.json() if int(req.headers.get("content-length") or 0) else None
        repo, tag_ = req.arg("repo") or "", req.arg("tag") or ""
        ref = None
        if repo:
            ref = parse_reference(f"{repo}:{tag_}" if tag_ else repo)
            if ref.digest:
                raise BadParameter("refusing to create a tag with a digest reference")
        image_id = await images.commit(c, ref, changes=req.query.get("changes", []),
                                       comment=req.arg("comment") or "", author=req.arg("author") or "",
                                       overrides=overrides if isinstance(overrides, dict) else None,
                                       pause=req.arg_bool("pause", True))
        return Response(201, {"Id": image_id})

    async def save(req, name: str | None = None) -> None:
        names = [name] if name else req.query.get("names", [])
        images.check_saveable(names)
        out = await req.stream(200, "application/x-tar")
        async for chunk in images.save(names):
            await out.write(chunk)
        await out.close()

    router.add("GET", "/images/json", list_)
    router.add("POST", "/images/prune", prune)
    router.add("POST", "/commit", releasing_memory(commit))
    router.add("POST", "/auth", auth)
    router.add("GET", "/distribution/{name:path}/json", distribution)
    router.add("GET", "/images/{name:path}/history", history)
    router.add("POST", "/images/{name:path}/push", releasing_memory(push))
    router.add("POST", "/images/load", releasing_memory(load))
    router.add("POST", "/images/create", releasing_memory(create))
    router.add("GET", "/images/get", releasing_memory(save))
    router.add("GET", "/images/{name:path}/json", inspect)
    router.add("GET", "/images/{name:path}/get", releasing_memory(save))
    router.add("POST", "/images/{name:path}/tag", tag)
    router.add("DELETE", "/images/{name:path}", remove)


def image_inspect(graph: Graph, img: Image) -> dict[str, Any]:
    tags, digests = split_refs(graph.image_refs(img.id))
    cfg = img.config
    return {
        "Id": img.id, "RepoTags": tags, "RepoDigests": digests, "Parent": img.parent or "",
        "Comment": cfg.get("comment", ""),
        "Created": img.created, "DockerVersion": cfg.get("docker_version", ""), "Author": cfg.get("author", ""),
        "Config": img.container_config(), "Architecture": cfg.get("architecture", "amd64"),
        **({"Variant": cfg["variant"]} if cfg.get("variant") else {}),      # omitempty, as dockerd's
        "Os": cfg.get("os", "linux"), "Size": img.size,
        "GraphDriver": graph.graph_driver(image_id=img.id),
        "RootFS": {"Type": "layers", **({"Layers": img.diff_ids()} if img.diff_ids() else {})},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }


log = logging.getLogger("pyd.api.images")


class _LazyStream:
    """A JSON-message stream whose head is sent with the first message: an error before it is a plain HTTP
    error (docker shows "Error response from daemon: ..."), an error after it an errorDetail message."""

    def __init__(self, req: Request) -> None:
        self.req = req
        self.out: StreamWriter | None = None

    async def start(self) -> None:
        """Send the head now: what fails from here on is an errorDetail message."""
        if self.out is None:
            self.out = await self.req.stream(200, "application/json")

    async def emit(self, msg: dict) -> None:
        await self.start()
        assert self.out is not None
        await self.out.write_json(msg)

    async def run(self, coro: Any) -> None:
        try:
            await coro
        except Exception as exc:
            if self.out is None:
                raise
            message = getattr(exc, "message", "") or str(exc) or type(exc).__name__
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                message = no_space_message(exc)
            if isinstance(exc, (HTTPError, OSError)):
                log.info("stream failed: %s", message)
            else:   # a fault of the engine: its traceback in the log, its message still to the client
                log.error("stream failed: %s", message, exc_info=True)
            await self.out.write_json({"errorDetail": {"message": message}, "error": message})
        if self.out is None:
            self.out = await self.req.stream(200, "application/json")
        await self.out.close()


def _pull_reference(from_image: str, tag: str) -> Reference:
    """fromImage (which may carry a tag or digest) and the tag parameter (a tag or a digest) as one reference;
    no tag at all means every tag (docker pull --all-tags)."""
    if not from_image:
        raise BadParameter("image name is required")
    try:
        ref = parse_reference(from_image, default_tag=False)
    except BadParameter as exc:
        raise BadParameter(f"invalid reference format: {exc.message}" if exc.message != "invalid reference format"
                           else "invalid reference format") from None
    if tag.startswith("sha256:"):
        ref = Reference(ref.domain, ref.path, None, tag)
    elif tag:
        try:
            validate_tag(tag)
        except BadParameter:
            raise BadParameter(f"invalid tag format: {tag}") from None
        ref = Reference(ref.domain, ref.path, tag, None)
    return ref
