"""/images/...: list, inspect, tag, remove, load, import, save, pull, push, history, prune; /commit, /auth,
/distribution."""
from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from pyd.daemon.api.util import (LazyModule, check_filter_keys, filters_arg, parse_time_arg, releasing_memory,
                          spool_body)
from pyd.daemon.containers.model import parse_rfc3339
from pyd.daemon.errors import BadParameter, Conflict, NotFound
from pyd.daemon.errors import HTTPError
from pyd.http.server import Response
from pyd.formats.reference import Reference, parse_reference, validate_tag

if TYPE_CHECKING:
    from pyd.daemon.main import Daemon
    from pyd.daemon.images.distribution import DistributionMetadata

# the registry client stays out of an idle daemon
pulling: Any = LazyModule("pyd.daemon.images.pull")
registry: Any = LazyModule("pyd.daemon.images.registry")

LIST_FILTERS = {"dangling", "label", "reference", "before", "since", "until"}


def register(router: Any, daemon: "Daemon") -> None:
    graph = daemon.graph
    tmp_dir = os.path.join(daemon.cfg.data_root, "tmp")

    def dist_meta() -> DistributionMetadata:
        return pulling.dist_meta(daemon)

    def _session(domain: str, creds: registry.AuthConfig) -> registry.RegistrySession:
        return pulling.session(daemon, domain, creds)

    def publish(action: str, image_id: str, name: str = "") -> None:
        daemon.events.publish("image", action, image_id if not name else name, {"name": name or image_id})

    async def list_(req) -> list:
        filters = filters_arg(req)
        check_filter_keys(filters, LIST_FILTERS)
        out = [image_summary(graph, img) for img in graph.images()]
        if not req.arg_bool("all"):   # dockerd hides intermediate images: untagged, with children (builds)
            out = [e for e in out if e["RepoTags"] or e["RepoDigests"] or not graph.children(e["Id"])]
        out = [e for e in out if _image_matches(e, filters, graph)]
        if filters.get("reference"):   # dockerd shows only the references that matched
            for e in out:
                e["RepoTags"] = [t for t in e["RepoTags"] if _ref_matches(t, filters["reference"])]
                e["RepoDigests"] = [d for d in e["RepoDigests"] if _ref_matches(d, filters["reference"])]
        return sorted(out, key=lambda e: e["Created"], reverse=True)

    async def inspect(req, name: str) -> dict:
        return image_inspect(graph, graph.resolve_image(name))

    async def tag(req, name: str) -> Response:
        image = graph.resolve_image(name)
        repo = req.arg("repo") or ""
        if not repo:
            raise BadParameter("repository name must have at least one component")
        ref = f"{repo}:{req.arg('tag')}" if req.arg("tag") else repo
        await asyncio.to_thread(graph.tag, image.id, ref)
        publish("tag", image.id, ref)
        return Response(201, b"")

    async def remove(req, name: str) -> list:
        result = await asyncio.to_thread(graph.delete_image, name, req.arg_bool("force"),
                                         daemon.containers.image_in_use)
        for item in result:
            for key, action in (("Untagged", "untag"), ("Deleted", "delete")):
                if key in item:
                    publish(action, item[key])
        return result

    async def load(req) -> None:
        # quiet only changes progress output, which load does not produce
        path = await spool_body(req, tmp_dir)
        try:
            with open(path, "rb") as f:
                messages = await asyncio.to_thread(graph.load, f)
        finally:
            os.unlink(path)
        out = await req.stream(200, "application/json")
        for msg in messages:
            publish("load", msg.split(": ", 1)[-1])
            await out.write_json({"stream": msg + "\n"})
        await out.close()

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
            with open(path, "rb") as f:
                image_id = await asyncio.to_thread(graph.import_tar, f, ref, changes, req.arg("message") or "")
        finally:
            os.unlink(path)
        publish("import", image_id)
        out = await req.stream(200, "application/json")
        await out.write_json({"status": image_id})
        await out.close()

    async def pull(req) -> None:
        ref = _pull_reference(req.arg("fromImage") or "", req.arg("tag") or "")
        auth = registry.decode_auth_header(req.headers.get("x-registry-auth"))
        out = _LazyStream(req)
        await out.run(pulling.pull_image(daemon, ref, auth, out.emit, req.arg("platform") or ""))
        publish("pull", str(ref), ref.familiar())

    async def push(req, name: str) -> None:
        ref = parse_reference(name, default_tag=False)
        if ref.digest:
            raise BadParameter("cannot push a digest reference")
        tag_ = req.arg("tag") or ref.tag
        if tag_:
            tags = [ref.with_tag(tag_)]
        else:   # no tag: every tag of the repository (docker push --all-tags)
            tags = sorted({r for r in graph._refs if r.name == ref.name and r.tag}, key=str)
        if not tags:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name()}")
        for t in tags:
            graph.resolve_image(str(t))   # 404 before the stream starts
        auth = registry.decode_auth_header(req.headers.get("x-registry-auth"))
        out = _LazyStream(req)

        async def push_all() -> None:
            await out.emit({"status": f"The push refers to repository [{ref.name if ref.domain != 'docker.io' else 'docker.io/' + ref.path}]"})
            for t in tags:
                await registry.Pusher(session, graph, dist_meta(), out.emit, tmp_dir,
                                      daemon.cfg.max_concurrent_uploads, daemon.cfg.upload_chunk_size).push(t)
                publish("push", str(t), t.familiar())
        async with _session(ref.domain, auth) as session:
            await out.run(push_all())

    async def auth(req) -> dict:
        body = await req.json() or {}
        if not isinstance(body, dict):
            raise BadParameter("invalid auth configuration")
        creds = registry.auth_from_json(body)
        server = creds.server or "https://index.docker.io/v1/"
        domain = server.split("://", 1)[-1].split("/", 1)[0]
        if domain in ("index.docker.io", "registry-1.docker.io"):
            domain = "docker.io"
        async with _session(domain, creds) as session:
            await session.check_login()
        return {"Status": "Login Succeeded", "IdentityToken": ""}

    async def distribution(req, name: str) -> dict:
        ref = parse_reference(name)
        auth = registry.decode_auth_header(req.headers.get("x-registry-auth"))
        async with _session(ref.domain, auth) as session:
            puller = registry.Puller(session, graph, dist_meta(), _discard, registry.PullOptions())
            body, mt, digest = await puller._get_manifest(ref, ref.digest or ref.tag or "latest")
        doc = json.loads(body)
        platforms = [m.get("platform") for m in doc.get("manifests") or [] if m.get("platform")]
        if not platforms:
            platforms = [{"architecture": "amd64", "os": "linux"}]
        return {"Descriptor": {"mediaType": mt, "digest": digest, "size": len(body)}, "Platforms": platforms}

    async def history(req, name: str) -> list:
        return image_history(graph, graph.resolve_image(name))

    async def prune(req) -> dict:
        filters = filters_arg(req)
        check_filter_keys(filters, {"dangling", "until", "label", "label!"})
        result = await asyncio.to_thread(prune_images, graph, filters, daemon.containers.image_in_use)
        for item in result["ImagesDeleted"] or []:
            for key, action in (("Untagged", "untag"), ("Deleted", "delete")):
                if key in item:
                    publish(action, item[key])
        daemon.events.publish("image", "prune", "", {"reclaimed": str(result["SpaceReclaimed"])})
        return result

    async def commit(req) -> Response:
        from pyd.daemon.images.commit import commit_container, frozen
        c = daemon.containers.get(req.arg("container") or "")
        overrides = await req.json() if int(req.headers.get("content-length") or 0) else None
        repo, tag_ = req.arg("repo") or "", req.arg("tag") or ""
        ref = None
        if repo:
            ref = parse_reference(f"{repo}:{tag_}" if tag_ else repo)
            if ref.digest:
                raise BadParameter("refusing to create a tag with a digest reference")
        def run() -> str:
            pause = req.arg_bool("pause", True)
            with frozen(getattr(daemon, "cgroups", None) if pause else None, c):
                return commit_container(graph, c, changes=req.query.get("changes", []),
                                        comment=req.arg("comment") or "", author=req.arg("author") or "",
                                        overrides=overrides if isinstance(overrides, dict) else None)
        image_id = await asyncio.to_thread(run)
        if ref is not None:
            await asyncio.to_thread(graph.tag, image_id, str(ref))
        daemon.events.publish("container", "commit", c.ID, {"comment": req.arg("comment") or "",
                                                            "imageID": image_id, "imageRef": ref.familiar() if ref else ""})
        return Response(201, {"Id": image_id})

    async def save(req, name: str | None = None) -> None:
        names = [name] if name else req.query.get("names", [])
        for n in names:
            graph.resolve_image(n)  # 404 before any byte is sent
        out = await req.stream(200, "application/x-tar")
        queue: asyncio.Queue = asyncio.Queue(maxsize=8)
        loop = asyncio.get_running_loop()

        def produce() -> None:
            try:
                for chunk in graph.save(names):
                    asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
            finally:
                asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

        producer = loop.run_in_executor(None, produce)
        while (chunk := await queue.get()) is not None:
            await out.write(chunk)
        await producer
        await out.close()

    def releasing(handler: Any) -> Any:
        return releasing_memory(daemon, handler)

    router.add("GET", "/images/json", list_)
    router.add("POST", "/images/prune", prune)
    router.add("POST", "/commit", releasing(commit))
    router.add("POST", "/auth", auth)
    router.add("GET", "/distribution/{name:path}/json", distribution)
    router.add("GET", "/images/{name:path}/history", history)
    router.add("POST", "/images/{name:path}/push", releasing(push))
    router.add("POST", "/images/load", releasing(load))
    router.add("POST", "/images/create", releasing(create))
    router.add("GET", "/images/get", releasing(save))
    router.add("GET", "/images/{name:path}/json", inspect)
    router.add("GET", "/images/{name:path}/get", releasing(save))
    router.add("POST", "/images/{name:path}/tag", tag)
    router.add("DELETE", "/images/{name:path}", remove)


def _split_refs(refs: list[str]) -> tuple[list[str], list[str]]:
    tags = [r for r in refs if "@" not in r]
    digests = [r for r in refs if "@" in r]
    return tags, digests


def image_summary(graph: Any, img: Any) -> dict[str, Any]:
    tags, digests = _split_refs(graph.image_refs(img.id))
    return {
        "Id": img.id, "ParentId": img.parent or "", "RepoTags": tags, "RepoDigests": digests,
        "Created": int(parse_rfc3339(img.created)), "Size": img.size, "SharedSize": -1,
        "Labels": (img.container_config().get("Labels") or {}), "Containers": -1,
    }


def image_inspect(graph: Any, img: Any) -> dict[str, Any]:
    tags, digests = _split_refs(graph.image_refs(img.id))
    cfg = img.config
    return {
        "Id": img.id, "RepoTags": tags, "RepoDigests": digests, "Parent": img.parent or "",
        "Comment": cfg.get("comment", ""),
        "Created": img.created, "DockerVersion": cfg.get("docker_version", ""), "Author": cfg.get("author", ""),
        "Config": img.container_config(), "Architecture": cfg.get("architecture", "amd64"),
        "Variant": cfg.get("variant"), "Os": cfg.get("os", "linux"), "Size": img.size,
        "GraphDriver": graph.graph_driver(image_id=img.id),
        "RootFS": {"Type": "layers", **({"Layers": img.diff_ids()} if img.diff_ids() else {})},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }


def _ref_matches(ref: str, patterns: list[str]) -> bool:
    import fnmatch
    name = ref.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    bare = name.rsplit(":", 1)[0] if ":" in last else name
    return any(fnmatch.fnmatchcase(n, p) for n in (ref, name, bare) for p in patterns)


def _image_matches(entry: dict[str, Any], filters: dict[str, list[str]], graph: Any) -> bool:
    import fnmatch
    for key, values in filters.items():
        if not values:
            continue
        if key == "dangling":
            dangling = not entry["RepoTags"] and not entry["RepoDigests"]   # dockerd: no reference at all
            if (values[0].lower() in ("true", "1")) != dangling:
                return False
        elif key == "label":
            labels = entry["Labels"]
            for v in values:
                k, eq, val = v.partition("=")
                if k not in labels or (eq and labels[k] != val):
                    return False
        elif key == "reference":
            names = entry["RepoTags"] + [t.rsplit(":", 1)[0] for t in entry["RepoTags"]]
            if not any(fnmatch.fnmatchcase(n, v) for n in names for v in values):
                return False
        elif key in ("before", "since"):
            ref_created = int(parse_rfc3339(graph.resolve_image(values[0]).created))
            if key == "before" and not entry["Created"] < ref_created:
                return False
            if key == "since" and not entry["Created"] > ref_created:
                return False
    return True


log = logging.getLogger("pyd.api.images")


async def _discard(msg: dict) -> None:
    pass


class _LazyStream:
    """A JSON-message stream whose head is sent with the first message: an error before it is a plain HTTP
    error (docker shows "Error response from daemon: ..."), an error after it an errorDetail message."""

    def __init__(self, req: Any) -> None:
        self.req = req
        self.out: Any = None

    async def emit(self, msg: dict) -> None:
        if self.out is None:
            self.out = await self.req.stream(200, "application/json")
        await self.out.write_json(msg)

    async def run(self, coro: Any) -> None:
        try:
            await coro
        except (HTTPError, OSError) as exc:
            if self.out is None:
                raise
            message = getattr(exc, "message", "") or str(exc)
            log.info("stream failed: %s", message)
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


def image_history(graph: Any, img: Any) -> list[dict[str, Any]]:
    """Docker's history: newest first, one row per history entry; layer sizes on non-empty entries."""
    chains = img.chain_ids()
    sizes = [graph.layer(c).size for c in chains]
    entries = list(img.config.get("history") or [])
    if not entries:
        entries = [{"created": img.created, "created_by": ""} for _ in chains] or [{"created": img.created}]
    rows, layer_i = [], 0
    for h in entries:
        size = 0
        if not h.get("empty_layer") and layer_i < len(sizes):
            size = sizes[layer_i]
            layer_i += 1
        rows.append({"Id": "<missing>", "Created": int(parse_rfc3339(h.get("created") or img.created or
                                                                     "1970-01-01T00:00:00Z")),
                     "CreatedBy": h.get("created_by", ""), "Tags": None, "Size": size,
                     "Comment": h.get("comment", "")})
    rows.reverse()
    tags = [r for r in graph.image_refs(img.id) if "@" not in r]
    rows[0]["Id"], rows[0]["Tags"] = img.id, tags or None
    parent = graph._images.get(img.parent) if img.parent else None
    i = 1
    while parent is not None and i < len(rows):   # rows made by an ancestor image carry its ID
        own = len(parent.config.get("history") or []) or 1
        idx = len(rows) - own
        if 0 <= idx < len(rows):
            rows[idx]["Id"] = parent.id
            rows[idx]["Tags"] = [r for r in graph.image_refs(parent.id) if "@" not in r] or None
        parent = graph._images.get(parent.parent) if parent.parent else None
        i += 1
    return rows


def _labels_match(labels: dict, values: list[str], negate: bool) -> bool:
    for v in values:
        k, eq, val = v.partition("=")
        hit = k in labels and (not eq or labels[k] == val)
        if hit == negate:
            return False
    return True


def prune_images(graph: Any, filters: dict[str, list[str]], in_use: Any) -> dict[str, Any]:
    """POST /images/prune: dangling images (or, with dangling=false, every unused image), filtered."""
    dangling_only = True
    if filters.get("dangling"):
        v = filters["dangling"][0].lower()
        if v not in ("true", "false", "1", "0"):
            raise BadParameter(f"invalid filter 'dangling={filters['dangling'][0]}'")
        dangling_only = v in ("true", "1")
    until = min((parse_time_arg(u, "until") for u in filters.get("until", [])), default=None)
    sizes = {}
    deleted: list[dict] = []
    for img in sorted(graph.images(), key=lambda i: i.created, reverse=True):
        if img.id not in graph._images:
            continue   # went with an earlier image
        if dangling_only and graph.image_refs(img.id):
            continue
        if until is not None and parse_rfc3339(img.created or "1970-01-01T00:00:00Z") >= until:
            continue
        labels = img.container_config().get("Labels") or {}
        if not _labels_match(labels, filters.get("label", []), False) or \
                not _labels_match(labels, filters.get("label!", []), True):
            continue
        if in_use(img.id) or graph.children(img.id):
            continue
        for c in img.chain_ids():
            if graph.has_layer(c):
                sizes[c] = graph.layer(c).size
        try:
            records = graph.delete_image(img.id, force=True, in_use=in_use)
        except (Conflict, NotFound):
            continue
        deleted.extend(records)
    reclaimed = sum(sizes.get(r["Deleted"], 0) for r in deleted if "Deleted" in r)
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}
