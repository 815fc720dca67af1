"""/build and /build/prune: the classic builder behind Docker's JSON progress stream.

The context tar (plain or compressed) is extracted as it arrives into a temporary folder under
data-root/tmp, never held in memory; the Dockerfile is parsed before the response starts, so a bad one is
a plain 400, as dockerd answers it.
"""
from __future__ import annotations

import asyncio
import shutil
import tempfile
from typing import TYPE_CHECKING, Any, Callable, Iterator

from pyd.daemon.storage import archive
from pyd.daemon.api.util import releasing_memory
from pyd.daemon.errors import BadParameter
from pyd.formats.reference import parse_reference

if TYPE_CHECKING:
    from pyd.daemon.build.builder import BuildContainers, Builder, BuildOptions, PullForBuild
    from pyd.daemon.events import EventBus
    from pyd.daemon.storage.graph import Graph
    from pyd.http.server import Request, Router, StreamWriter


def register(router: Router, graph: Graph, containers: BuildContainers, in_use: Callable[[str], str | None],
             pull: PullForBuild, events: EventBus, tmp_dir: str) -> None:
    """in_use(image_id): a container using the image (build prune keeps it); tmp_dir: where build contexts
    are extracted."""
    running: set[Builder] = set()      # builds under way: prune keeps the images they stand on

    async def build(req) -> None:
        from pyd.daemon.build.builder import BuildError, Builder, short   # lazy: the builder stays out of an idle daemon
        opts = _options(req)
        if req.arg("remote"):
            raise BadParameter("remote build contexts (URLs, git) are not supported by this daemon")
        context = tempfile.mkdtemp(prefix="build-", dir=tmp_dir)
        builder = None
        try:
            await _receive_context(req, context)
            out: StreamWriter | None = None

            async def emit(msg: dict) -> None:
                assert out is not None   # the builder emits only from run()
                await out.write_json(msg)

            builder = Builder(graph, containers, pull, context, opts, emit)
            builder.prepare()   # a bad Dockerfile is a plain 400, before the stream starts
            out = await req.stream(200, "application/json")
            running.add(builder)
            try:
                image_id = await builder.run()
            except BuildError as exc:
                await _send_suppressed(builder, out)
                detail: dict[str, Any] = {"message": exc.message}
                if exc.code:
                    detail["code"] = exc.code
                await out.write_json({"errorDetail": detail, "error": exc.message})
                await out.close()
                return
            except (BadParameter, OSError) as exc:
                await _send_suppressed(builder, out)
                message = getattr(exc, "message", None) or str(exc)
                await out.write_json({"errorDetail": {"message": message}, "error": message})
                await out.close()
                return
            if opts.quiet:
                await out.write_json({"stream": image_id + "\n"})
            else:
                await out.write_json({"stream": f"Successfully built {short(image_id)}\n"})
            for tag in opts.tags:
                await asyncio.to_thread(graph.tag, image_id, tag)
                ref = parse_reference(tag).familiar()
                events.publish("image", "tag", image_id, {"name": ref})
                if not opts.quiet:
                    await out.write_json({"stream": f"Successfully tagged {ref}\n"})
            await out.close()
        finally:
            if builder is not None:
                running.discard(builder)
            await asyncio.to_thread(shutil.rmtree, context, True)

    async def prune(req) -> dict:
        from pyd.daemon.api.util import filters_arg
        from pyd.daemon.build.cache import prune_build_cache, until_arg
        until = until_arg(filters_arg(req).get("until", []))
        held = [i for b in list(running) for i in b.held_images()]
        report = await asyncio.to_thread(prune_build_cache, graph, in_use, held, until)
        if until is None:   # RUN --mount=type=cache directories no build holds
            from pyd.daemon.build.runmounts import prune_cache_mounts
            report["SpaceReclaimed"] += await asyncio.to_thread(prune_cache_mounts, graph.root)
        return report

    router.add("POST", "/build", releasing_memory(build))
    router.add("POST", "/build/prune", prune)


async def _send_suppressed(builder: Builder, out: StreamWriter) -> None:
    """dockerd's build -q that fails: the step log it kept back, before the error."""
    if builder.suppressed:
        await out.write_json({"stream": "".join(builder.suppressed)})


def _options(req: Request) -> BuildOptions:
    from pyd.daemon.build.builder import BuildOptions
    from pyd.daemon.images.pull import decode_registry_config
    tags = [t for t in req.query.get("t", []) if t]
    for t in tags:
        try:
            ref = parse_reference(t)
        except BadParameter:
            raise BadParameter(f'invalid tag "{t}": invalid reference format') from None
        if ref.digest:
            raise BadParameter(f'invalid tag "{t}": refusing to create a tag with a digest reference')
    buildargs = req.arg_json("buildargs", None) or {}
    labels = req.arg_json("labels", None) or {}
    if not isinstance(buildargs, dict) or not isinstance(labels, dict):
        raise BadParameter("buildargs and labels must be JSON objects")
    cache_from = req.arg_json("cachefrom", None) or []
    if not isinstance(cache_from, list) or not all(isinstance(c, str) for c in cache_from):
        raise BadParameter("cachefrom must be a JSON array of image references")
    extrahosts = []
    for value in req.query.get("extrahosts", []):
        extrahosts.extend(h for h in value.replace(",", " ").split() if h)
    return BuildOptions(
        # the first value, as dockerd reads it: docker-py sends a Dockerfile from outside the context as
        # dockerfile=<its name in the tar>&dockerfile=<its content>
        dockerfile=(req.query.get("dockerfile") or [""])[0] or "Dockerfile", tags=tags,
        buildargs={str(k): (None if v is None else str(v)) for k, v in buildargs.items()},
        target=req.arg("target") or "", nocache=req.arg_bool("nocache"), rm=req.arg_bool("rm", True),
        forcerm=req.arg_bool("forcerm"), labels={str(k): str(v) for k, v in labels.items()},
        quiet=req.arg_bool("q"), networkmode=req.arg("networkmode") or "", extrahosts=extrahosts,
        shmsize=req.arg_int("shmsize", 0) or 0, memory=req.arg_int("memory", 0) or 0,
        auth_configs=decode_registry_config(req.headers.get("x-registry-config")),
        platform=req.arg("platform") or "", cache_from=cache_from)


async def _receive_context(req: Request, context: str) -> None:
    """Extract the request body (a tar, maybe compressed) into `context` as it streams in."""
    loop = asyncio.get_running_loop()
    body = req.body_stream().__aiter__()

    def chunks() -> Iterator[bytes]:
        while True:
            try:
                data = asyncio.run_coroutine_threadsafe(body.__anext__(), loop).result()
            except StopAsyncIteration:
                return
            if data:
                yield data

    try:
        await asyncio.to_thread(archive.extract_layer, chunks(), context, None)
    except archive.ArchiveError as exc:
        raise BadParameter(f"failed to read the build context: {exc}") from None
