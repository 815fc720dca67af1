"""The pieces of a Solve that need no daemon: fsutil's DiffCopy receiver against a sender that speaks the
protocol as fsutil's send.go does, the frontend's attributes, the exporter, BuildKit's wording of errors,
the vertex names of the steps, and the Status replay."""
from __future__ import annotations

import asyncio
import json
import os
import stat

import pytest

from pyd.daemon.build import dockerfile
from pyd.daemon.buildkit import grpc, messages as m
from pyd.daemon.buildkit.filesync import GO_DIR, GO_SYMLINK, SyncError, SyncRequest, receive
from pyd.daemon.buildkit.frontend import (ClientOutput, StageSteps, buildkit_message, parse_exporters,
                                          parse_frontend_attrs, solve_cache_options)
from pyd.daemon.buildkit.progress import Job
from pyd.daemon.buildkit.session import Session
from pyd.http.h2conn import H2Connection, H2Stream
from test_h2_grpc import _pair, run

TREE = [  # (stat, content) in walk order, as the client sends them
    ({"path": "app", "mode": GO_DIR | 0o755, "modTime": 1_600_000_000 * 10**9}, None),
    ({"path": "app/main.sh", "mode": 0o755, "size": 12, "modTime": 1_600_000_000 * 10**9}, b"echo hello\n" + b"!"),
    ({"path": "app/empty", "mode": 0o644}, b""),
    ({"path": "app/link", "mode": GO_SYMLINK | 0o777, "linkname": "main.sh"}, None),
    ({"path": "app/hard", "mode": 0o755, "linkname": "app/main.sh"}, None),
    ({"path": "big.bin", "mode": 0o600, "size": 300_000}, os.urandom(300_000)),
]


def _sender(tree, seen_metadata: list, fail: str = ""):
    """fsutil's sender: the stats, an empty stat, then the content of each file asked for (in 32 KiB
    DATA packets, an empty one ending it), FIN answered with FIN."""
    async def handle(stream: H2Stream) -> None:
        seen_metadata.append([(k, v) for k, v in stream.headers if not k.startswith(":")])
        await stream.send_headers([(":status", "200"), ("content-type", "application/grpc")])
        if fail:
            await stream.end([("grpc-status", str(grpc.NOT_FOUND)), ("grpc-message", fail)])
            return
        for st, _ in tree:
            await stream.send_data(grpc.frame(m.PACKET.encode({"type": m.PACKET_STAT, "stat": st})))
        await stream.send_data(grpc.frame(m.PACKET.encode({"type": m.PACKET_STAT})))
        reader = grpc.MessageReader(stream)
        while (raw := await reader.next()) is not None:
            packet = m.PACKET.decode(raw)
            if packet["type"] == m.PACKET_REQ:
                data = tree[packet["ID"]][1]
                for i in range(0, len(data), 32 << 10):
                    await stream.send_data(grpc.frame(m.PACKET.encode(
                        {"type": m.PACKET_DATA, "ID": packet["ID"], "data": data[i:i + (32 << 10)]})))
                await stream.send_data(grpc.frame(m.PACKET.encode({"type": m.PACKET_DATA, "ID": packet["ID"]})))
            elif packet["type"] == m.PACKET_FIN:
                await stream.send_data(grpc.frame(m.PACKET.encode({"type": m.PACKET_FIN})))
                break
        await stream.end([("grpc-status", "0")])
    return handle


async def _session(handler) -> tuple[Session, list]:
    (dr, dw), (cr, cw) = await _pair()
    client_side = H2Connection(cr, cw, client=False, handler=handler)
    daemon_side = H2Connection(dr, dw, client=True)
    tasks = [asyncio.create_task(client_side.run()), asyncio.create_task(daemon_side.run())]
    session = Session("s", "ctx", "", frozenset({"/moby.filesync.v1.FileSync/DiffCopy"}),
                      grpc.GrpcClient(daemon_side), daemon_side)
    return session, tasks


def test_diffcopy_places_files_dirs_links_and_modes(tmp_path):
    async def body() -> None:
        metadata: list = []
        session, tasks = await _session(_sender(TREE, metadata))
        result = await receive(session, SyncRequest("context", exclude=["*.tmp", "café"]), str(tmp_path))
        assert (result.files, result.bytes) == (3, 12 + 300_000)
        assert (tmp_path / "app/main.sh").read_bytes() == b"echo hello\n!"
        assert stat.S_IMODE((tmp_path / "app/main.sh").stat().st_mode) == 0o755
        assert os.readlink(tmp_path / "app/link") == "main.sh"
        assert (tmp_path / "app/hard").stat().st_ino == (tmp_path / "app/main.sh").stat().st_ino
        assert (tmp_path / "app/empty").read_bytes() == b""
        assert (tmp_path / "big.bin").read_bytes() == TREE[-1][1]
        assert (tmp_path / "app").stat().st_mtime == 1_600_000_000
        # the filters go to the client as metadata, escaped when a header cannot carry them
        assert metadata[0][-4:] == [("exclude-patterns", "%2A.tmp"), ("exclude-patterns", "caf%C3%A9"),
                                    ("exclude-patterns-encoded", "1"), ("dir-name", "context")]
        for t in tasks:
            t.cancel()
    run(body)


def test_diffcopy_refuses_paths_outside_and_reports_the_clients_error(tmp_path):
    async def body() -> None:
        session, tasks = await _session(_sender([({"path": "../evil", "mode": 0o644}, b"x")], []))
        with pytest.raises(SyncError, match="invalid path"):
            await receive(session, SyncRequest("context"), str(tmp_path / "in"))
        assert not (tmp_path / "evil").exists()
        session, tasks2 = await _session(_sender([], [], fail='no access allowed to dir "context"'))
        with pytest.raises(SyncError, match='no access allowed to dir "context"'):
            await receive(session, SyncRequest("context"), str(tmp_path))
        for t in tasks + tasks2:
            t.cancel()
    run(body)


def test_frontend_attributes_and_exporters():
    req = parse_frontend_attrs({"filename": "build.Dockerfile", "target": "final", "build-arg:A": "1",
                                "label:org.x": "y", "no-cache": "", "platform": "linux/amd64"}, "linux/amd64")
    assert (req.filename, req.target, req.buildargs, req.labels, req.nocache) == \
        ("build.Dockerfile", "final", {"A": "1"}, {"org.x": "y"}, True)
    assert parse_frontend_attrs({}, "linux/amd64").filename == "Dockerfile"
    with pytest.raises(grpc.GrpcError, match="builds for linux/amd64 only, not linux/s390x"):
        parse_frontend_attrs({"platform": "linux/s390x"}, "linux/amd64")
    named = parse_frontend_attrs({"context:base": "docker-image://x", "context:docker.io/library/busybox:latest":
                                  "local:busybox", "context:ubuntu:22.04": "docker-image://u"}, "linux/amd64")
    assert named.image_contexts == {"base": "x", "ubuntu:22.04": "u"}
    assert named.local_contexts == {"busybox": "busybox"}     # BuildKit's key: familiar, without :latest
    with pytest.raises(grpc.GrpcError, match="named context g: git sources are not supported"):
        parse_frontend_attrs({"context:g": "git://example.invalid/r.git"}, "linux/amd64")
    with pytest.raises(grpc.GrpcError, match="unsupported context source nope for n"):
        parse_frontend_attrs({"context:n": "nope:x"}, "linux/amd64")
    export = parse_exporters([{"Type": "moby", "Attrs": {"name": "x,registry.local:5000/y:1,x"}}], "", {})
    assert export.names == ["docker.io/library/x:latest", "registry.local:5000/y:1"]
    assert parse_exporters([], "image", {"name": "z"}).names == ["docker.io/library/z:latest"]
    outputs = parse_exporters([{"Type": "moby", "Attrs": {"name": "x"}}, {"Type": "tar", "Attrs": {}}], "", {})
    assert outputs.image and outputs.outputs == [ClientOutput("tar", 1)]
    assert not parse_exporters([{"Type": "local", "Attrs": {}}], "", {}).image
    with pytest.raises(grpc.GrpcError, match="exporter 'oci' is not supported"):
        parse_exporters([{"Type": "oci", "Attrs": {}}], "", {})
    with pytest.raises(grpc.GrpcError, match="invalid reference 'UPPER'"):
        parse_exporters([{"Type": "moby", "Attrs": {"name": "UPPER"}}], "", {})


def test_cache_imports_and_exports():
    imports = json.dumps([{"Type": "registry", "Attrs": {"ref": "r.local:5000/c:1"}}])
    req = parse_frontend_attrs({"cache-imports": imports, "cache-from": "a:1,b"}, "linux/amd64")
    assert req.cache_from == ["r.local:5000/c:1", "a:1", "b"]
    assert solve_cache_options({"Imports": [{"Type": "registry", "Attrs": {"ref": "x"}}],
                                "ImportRefsDeprecated": ["y", "x"], "Exports": [{"Type": "inline", "Attrs": {}}]}) == \
        ["x", "y"]
    assert solve_cache_options(None) == []
    with pytest.raises(grpc.GrpcError, match="cache exporter 'gha' is not supported by this daemon"):
        solve_cache_options({"Exports": [{"Type": "gha", "Attrs": {}}]})
    with pytest.raises(grpc.GrpcError, match="cache exporter 'registry' is not supported"):
        solve_cache_options({"ExportRefDeprecated": "r/x"})
    with pytest.raises(grpc.GrpcError, match="cache importer 's3' is not supported"):
        solve_cache_options({"Imports": [{"Type": "s3", "Attrs": {}}]})
    with pytest.raises(grpc.GrpcError, match="registry cache importer requires ref"):
        solve_cache_options({"Imports": [{"Type": "registry", "Attrs": {}}]})
    with pytest.raises(grpc.GrpcError, match="invalid cache-imports"):
        parse_frontend_attrs({"cache-imports": "{"}, "linux/amd64")


def test_errors_in_buildkits_words():
    assert buildkit_message("The command '/bin/sh -c exit 3' returned a non-zero code: 3") == \
        'process "/bin/sh -c exit 3" did not complete successfully: exit code: 3'
    assert buildkit_message("failed to reach build target nope in Dockerfile") == \
        'target stage "nope" could not be found'
    assert buildkit_message("something else") == "something else"


def _names(job: Job) -> list[str]:
    return [v.name for v in job.vertexes]


def _stage_steps(text: str) -> tuple[list[dockerfile.Stage], Job, StageSteps]:
    _, stages = dockerfile.split_stages(dockerfile.parse(text))
    job = Job("ref")
    return stages, job, StageSteps(job, [s.name for s in stages], lambda s: s.base, [])


def test_steps_are_named_as_dockerfile2llb_names_them():
    stages, job, steps = _stage_steps("FROM busybox AS build\nENV A=1\nWORKDIR /w\nRUN echo \\\n  hi\n"
                                      "FROM build\nCOPY a b\nLABEL x=y\n")

    async def body() -> None:
        for i, stage in enumerate(stages):
            await steps.step(i, stage, None)
            for ins in stage.commands:
                await steps.step(i, stage, ins)
                if ins.cmd == "workdir":
                    steps.cached(i)
            steps.stage_done(i)
        steps.end()
    run(body)
    assert _names(job) == ["[internal] load metadata for docker.io/library/busybox:latest",
                           "[build 1/3] FROM docker.io/library/busybox:latest", "[build 2/3] WORKDIR /w",
                           "[build 3/3] RUN echo   hi", "[stage-1 1/1] COPY a b"]
    assert [v.cached for v in job.vertexes] == [False, False, True, False, False]
    assert all(v.completed is not None for v in job.vertexes)
    assert job.vertexes[-1].inputs == [job.vertexes[-2].digest]     # stage-1 starts where build ended


def test_which_dockerfiles_read_the_context():
    from pyd.daemon.buildkit.frontend import _needs_context

    def needs(text: str) -> bool:
        return _needs_context(dockerfile.split_stages(dockerfile.parse(text))[1])
    assert needs("FROM b\nCOPY a /a\n") and not needs("FROM b\nCOPY --from=x a /a\n")
    assert needs("FROM b\nRUN --mount=target=/src ls /src\n")           # bind is the default type
    assert needs("FROM b\nRUN --mount=type=bind,source=x,target=/x cat /x\n")
    assert not needs("FROM b\nRUN --mount=type=bind,from=y,target=/y ls\nRUN --mount=type=cache,target=/c ls\n")


def test_steps_of_stages_at_once_keep_their_own_vertex():
    stages, job, steps = _stage_steps("FROM busybox AS a\nRUN one\nFROM busybox AS b\nRUN two\n")

    async def body() -> None:
        for i, stage in enumerate(stages):
            await steps.step(i, stage, None)
            await steps.step(i, stage, stage.commands[0])
        await steps.log(0, 1, b"from a\n")
        steps.cached(1)
        steps.end("it failed", failed_stage=0)
    run(body)
    by_name = {v.name: v for v in job.vertexes}
    assert by_name["[a 2/2] RUN one"].error == "it failed" and not by_name["[a 2/2] RUN one"].cached
    assert by_name["[b 2/2] RUN two"].cached and not by_name["[b 2/2] RUN two"].error
    logs = [u for u in (m.STATUS_RESPONSE.decode(raw) for raw in job.updates) if u["logs"]]
    assert [log["vertex"] for u in logs for log in u["logs"]] == [by_name["[a 2/2] RUN one"].digest]


def test_status_replays_a_solve_from_its_start():
    async def body() -> None:
        job = Job("r")
        v = job.vertex("one")
        job.log(v, 1, b"out\n")
        seen: list[dict] = []

        async def follow() -> None:
            async for raw in job.follow():
                seen.append(m.STATUS_RESPONSE.decode(raw))
        task = asyncio.create_task(follow())
        await asyncio.sleep(0.01)
        job.finish("boom")
        await asyncio.wait_for(task, 5)
        assert seen[0]["vertexes"][0]["name"] == "one" and seen[1]["logs"][0]["msg"] == b"out\n"
        assert seen[-1]["vertexes"][0]["error"] == "boom"
    run(body)
