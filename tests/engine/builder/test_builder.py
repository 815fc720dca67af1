"""Dockerfile builds (classic builder, POST /build) through the docker CLI (DOCKER_BUILDKIT=0), docker-py
and `pyd build`."""
from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path

import pytest

FULL_DOCKERFILE = """\
# syntax=docker/dockerfile:1
# escape=\\
ARG BASE=busybox
FROM ${BASE} AS base
ARG GREETING=hello
ENV APP_HOME=/app \\
    MODE="two words"
LABEL org.example.title="pyd test" version=${GREETING}
WORKDIR ${APP_HOME}
COPY --chown=1000:1000 --chmod=640 data.txt ./
COPY dir/ sub/
ADD bundle.tar.gz /opt/
RUN echo "$GREETING from $MODE" > /greeting && \\
    addgroup -g 1000 app 2>/dev/null; true
USER 1000:1000
EXPOSE 8080 53/udp
VOLUME ["/data"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=5s --retries=2 CMD ["true"]
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo triggered
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /greeting"]
"""


def _make_context(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def _bundle() -> bytes:
    buf = io.BytesIO()
    import gzip
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"unpacked\n"
        info = tarfile.TarInfo("bundle/inside.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue())


def _layer_names(daemon, image: str) -> dict[str, bytes]:
    """Every file in every layer of the image (docker save), name -> content."""
    saved = daemon.docker("save", image, timeout=60)
    assert saved.returncode == 0, saved.describe()
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(saved.stdout_bytes)) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as inner:
                for m in inner.getmembers():
                    out[m.name] = inner.extractfile(m).read() if m.isfile() else b""
    return out


def test_full_dockerfile_docker_cli(daemon, busybox, tmp_path):
    ctx = _make_context(tmp_path, {"Dockerfile": FULL_DOCKERFILE, "data.txt": "data\n",
                                   "dir/a.txt": "a\n", "dir/nested/b.txt": "b\n",
                                   "bundle.tar.gz": _bundle()})
    r = daemon.docker("build", "-t", "full:1", "--build-arg", "GREETING=hi", str(ctx), timeout=120)
    assert r.returncode == 0, r.describe()
    assert "Step 1/19 : ARG BASE=busybox" in r.stdout
    assert "Step 2/19 : FROM ${BASE} AS base" in r.stdout
    assert " ---> Running in " in r.stdout
    assert "Successfully built " in r.stdout and "Successfully tagged full:1" in r.stdout
    cfg = json.loads(daemon.docker("inspect", "full:1", check=True).stdout)[0]["Config"]
    assert "APP_HOME=/app" in cfg["Env"] and "MODE=two words" in cfg["Env"]
    assert cfg["Labels"] == {"org.example.title": "pyd test", "version": "hi"}
    assert cfg["WorkingDir"] == "/app"
    assert cfg["User"] == "1000:1000"
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["StopSignal"] == "SIGINT"
    assert cfg["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 30_000_000_000, "Timeout": 5_000_000_000,
                                  "Retries": 2}
    assert cfg["Shell"] == ["/bin/sh", "-ec"]
    assert cfg["OnBuild"] == ["RUN echo triggered"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c"] and cfg["Cmd"] == ["cat /greeting"]
    run = daemon.docker("run", "--rm", "full:1", timeout=60)
    assert run.returncode == 0 and run.stdout == "hi from two words\n", run.describe()
    ls = daemon.docker("run", "--rm", "--user", "0", "full:1",
                       "stat -c '%u:%g %a %n' /app/data.txt /app/sub/a.txt /app/sub/nested/b.txt && "
                       "cat /opt/bundle/inside.txt", timeout=60)
    assert ls.returncode == 0, ls.describe()
    assert ls.stdout.splitlines() == ["1000:1000 640 /app/data.txt", "0:0 644 /app/sub/a.txt",
                                      "0:0 644 /app/sub/nested/b.txt", "unpacked"]
    # ONBUILD triggers run in a child build
    child = _make_context(tmp_path / "child", {"Dockerfile": "FROM full:1\nRUN test -d /app\n"})
    r = daemon.docker("build", "-t", "child:1", str(child), timeout=120)
    assert r.returncode == 0, r.describe()
    assert "# Executing 1 build trigger" in r.stdout and "triggered" in r.stdout


def test_rebuild_is_all_cache_and_copy_change_rebuilds(daemon, busybox, tmp_path):
    dockerfile = "FROM busybox\nRUN echo one > /one\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy\nCMD [\"sh\"]\n"
    ctx = _make_context(tmp_path, {"Dockerfile": dockerfile, "a.txt": "first\n"})
    first = daemon.docker("build", "-t", "cached:1", str(ctx), timeout=120)
    assert first.returncode == 0 and "Using cache" not in first.stdout, first.describe()
    again = daemon.docker("build", "-t", "cached:1", str(ctx), timeout=120)
    assert again.returncode == 0, again.describe()
    assert again.stdout.count(" ---> Using cache") == 4 and "Running in" not in again.stdout, again.stdout
    assert first.stdout.splitlines()[-2] == again.stdout.splitlines()[-2]   # Successfully built <same id>
    (ctx / "a.txt").write_text("second\n")
    changed = daemon.docker("build", "-t", "cached:2", str(ctx), timeout=120)
    assert changed.returncode == 0, changed.describe()
    assert changed.stdout.count(" ---> Using cache") == 1      # RUN echo one; COPY and after rebuild
    assert daemon.docker("run", "--rm", "cached:2", "cat", "/copy").stdout == "second\n"
    nocache = daemon.docker("build", "--no-cache", str(ctx), timeout=120)
    assert nocache.returncode == 0 and "Using cache" not in nocache.stdout


def test_multi_stage_copy_into_scratch(daemon, busybox, tmp_path):
    dockerfile = ("FROM busybox AS build\nRUN mkdir /out && echo built > /out/result.txt\n"
                  "FROM scratch\nCOPY --from=build /out/result.txt /result.txt\n"
                  "COPY --from=0 /bin/busybox /bin/busybox\nCMD [\"/bin/busybox\", \"cat\", \"/result.txt\"]\n")
    ctx = _make_context(tmp_path, {"Dockerfile": dockerfile})
    r = daemon.docker("build", "-t", "multi:1", str(ctx), timeout=120)
    assert r.returncode == 0, r.describe()
    files = _layer_names(daemon, "multi:1")
    assert files["result.txt"] == b"built\n" and "bin/busybox" in files
    assert not any(n.startswith(("etc/", "out/")) for n in files), sorted(files)
    run = daemon.docker("run", "--rm", "multi:1", timeout=60)
    assert run.stdout == "built\n", run.describe()
    saved = daemon.docker("save", "multi:1", timeout=60)
    with tarfile.open(fileobj=io.BytesIO(saved.stdout_bytes)) as outer:
        assert len(json.load(outer.extractfile("manifest.json"))[0]["Layers"]) == 2


def test_run_failure_reports_command_and_code(daemon, busybox, tmp_path):
    ctx = _make_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo before && exit 3\n"})
    r = daemon.docker("build", str(ctx), timeout=120)
    assert "before" in r.stdout
    assert "The command '/bin/sh -c echo before && exit 3' returned a non-zero code: 3" in r.stderr, r.describe()
    assert r.returncode == 3      # the docker CLI exits with errorDetail.code, as against dockerd
    with pytest.raises(Exception) as info:
        daemon.api.images.build(path=str(ctx))
    assert "returned a non-zero code: 3" in str(info.value)


def test_quiet_build_that_fails_prints_its_step_log(daemon, busybox, tmp_path):
    ctx = _make_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo out-1\nRUN echo err-2 >&2; exit 4\n"})
    r = daemon.docker("build", "-q", str(ctx), timeout=120)
    assert r.returncode == 4 and r.stdout == "", r.describe()
    # dockerd sends the log it kept back before the error; stderr of a step in its red
    assert "Step 2/3 : RUN echo out-1\n" in r.stderr and "out-1\n" in r.stderr, r.describe()
    assert "\x1b[91merr-2\n\x1b[0mThe command '/bin/sh -c echo err-2 >&2; exit 4' returned a non-zero code: 4" \
        in r.stderr, r.describe()
    ok = daemon.docker("build", "-q", str(_make_context(tmp_path / "ok", {"Dockerfile": "FROM busybox\nRUN true\n"})),
                       timeout=120)
    assert ok.returncode == 0 and ok.stdout.startswith("sha256:") and "Step" not in ok.stdout + ok.stderr


def test_parse_errors(daemon, busybox, tmp_path):
    ctx = _make_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN true\nFOO bar\n"})
    r = daemon.docker("build", str(ctx), timeout=60)
    assert r.returncode == 1
    assert "dockerfile parse error on line 3: unknown instruction: FOO" in r.stderr, r.describe()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY onlyone\n")
    r = daemon.docker("build", str(ctx), timeout=60)
    assert "dockerfile parse error on line 2: COPY requires at least two arguments" in r.stderr, r.describe()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY missing.txt /x\n")
    r = daemon.docker("build", str(ctx), timeout=60)
    assert r.returncode == 1
    assert "file not found in build context or excluded by .dockerignore: stat missing.txt" in r.stderr


def test_dockerignore_keeps_secret_out(daemon, busybox, tmp_path):
    ctx = _make_context(tmp_path, {"Dockerfile": "FROM busybox\nCOPY . /ctx/\n", "secret.key": "TOPSECRET\n",
                                   "keep.txt": "keep\n", "logs/a.log": "log\n", "logs/important.log": "imp\n",
                                   "deep/x/y.tmp": "tmp\n",
                                   ".dockerignore": "secret.key\nlogs\n!logs/important.log\n**/*.tmp\n"})
    r = daemon.docker("build", "-t", "ignored:1", str(ctx), timeout=120)
    assert r.returncode == 0, r.describe()
    files = _layer_names(daemon, "ignored:1")
    names = {n for n in files if n.startswith("ctx/")}
    assert "ctx/keep.txt" in names and "ctx/logs/important.log" in names
    assert "ctx/secret.key" not in names and "ctx/logs/a.log" not in names and "ctx/deep/x/y.tmp" not in names
    assert not any(b"TOPSECRET" in content for content in files.values())
    # the same through pyd build and docker-py (both filter client-side)
    r = daemon.pyd("build", "-t", "ignored:2", str(ctx), timeout=120)
    assert r.returncode == 0, r.describe()
    assert not any(b"TOPSECRET" in c for c in _layer_names(daemon, "ignored:2").values())
    image, _ = daemon.api.images.build(path=str(ctx), tag="ignored:3")
    assert not any(b"TOPSECRET" in c for c in _layer_names(daemon, "ignored:3").values())


def test_build_args_and_target(daemon, busybox, tmp_path):
    dockerfile = ("ARG V=default\nFROM busybox AS first\nARG V\nARG OTHER=${V}-x\n"
                  "RUN echo \"$V $OTHER\" > /v\nFROM first AS second\nRUN false\n")
    ctx = _make_context(tmp_path, {"Dockerfile": dockerfile})
    r = daemon.docker("build", "--target", "first", "-t", "args:1", "--build-arg", "V=given",
                      "--build-arg", "UNUSED=1", str(ctx), timeout=120)
    assert r.returncode == 0, r.describe()
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in r.stdout
    assert daemon.docker("run", "--rm", "args:1", "cat", "/v").stdout == "given given-x\n"
    image, logs = daemon.api.images.build(path=str(ctx), target="first", buildargs={"V": "py"}, tag="args:2")
    assert daemon.docker("run", "--rm", "args:2", "cat", "/v").stdout == "py py-x\n"
    r = daemon.docker("build", "--target", "nosuch", str(ctx), timeout=60)
    assert "failed to reach build target nosuch in Dockerfile" in r.stderr


def test_pyd_build_quiet_label_and_stdin(daemon, busybox, tmp_path):
    ctx = _make_context(tmp_path, {"Dockerfile": "FROM busybox\nLABEL a=b\n"})
    r = daemon.pyd("build", "-q", "--label", "x=y", str(ctx), timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("sha256:"), r.describe()
    labels = json.loads(daemon.docker("inspect", r.stdout.strip(), check=True).stdout)[0]["Config"]["Labels"]
    assert labels == {"a": "b", "x": "y"}
    r = daemon.pyd("build", "-t", "stdin:1", "-", input="FROM busybox\nCMD [\"echo\", \"from-stdin\"]\n",
                   timeout=120)
    assert r.returncode == 0, r.describe()
    assert daemon.docker("run", "--rm", "stdin:1").stdout == "from-stdin\n"
    (tmp_path / "other.Dockerfile").write_text("FROM busybox\nRUN echo other\n")
    r = daemon.pyd("build", "-f", str(tmp_path / "other.Dockerfile"), str(ctx), timeout=120)
    assert r.returncode == 0 and "other" in r.stdout, r.describe()


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


@pytest.mark.slow
def test_large_context_does_not_grow_daemon_memory(daemon, busybox, tmp_path):
    ctx = _make_context(tmp_path, {"Dockerfile": "FROM busybox\nCOPY small.txt /small.txt\n", "small.txt": "s\n"})
    with open(ctx / "big.bin", "wb") as f:
        for _ in range(200):
            f.write(os.urandom(1 << 20))
    before = _vm_hwm_kib(daemon.pid)
    started = time.monotonic()
    r = daemon.docker("build", "-t", "big:1", str(ctx), timeout=120)
    assert r.returncode == 0, r.describe()
    after = _vm_hwm_kib(daemon.pid)
    assert after - before < 100 * 1024, (before, after)   # 200 MB context, < 100 MiB growth
    assert time.monotonic() - started < 60


def test_docker_py_build_and_intermediate_images_hidden(daemon, busybox, tmp_path):
    ctx = _make_context(tmp_path, {"Dockerfile": "FROM busybox\nENV A=1\nRUN echo hi > /hi\nCMD [\"cat\", \"/hi\"]\n"})
    image, logs = daemon.api.images.build(path=str(ctx), tag="py:1", rm=True)
    streams = "".join(chunk.get("stream", "") for chunk in logs)
    assert "Step 1/4 : FROM busybox" in streams and "Successfully tagged py:1" in streams
    assert image.attrs["Config"]["Cmd"] == ["cat", "/hi"] and "A=1" in image.attrs["Config"]["Env"]
    assert daemon.api.containers.run("py:1", remove=True) == b"hi\n"
    listed = [i["Id"] for i in daemon.api.api.images()]
    every = [i["Id"] for i in daemon.api.api.images(all=True)]
    assert image.id in listed and len(every) > len(listed), (len(listed), len(every))   # steps: only with -a


def test_stderr_of_a_step_is_red_in_the_stream(daemon, busybox, tmp_path):
    ctx = _make_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo to-stdout && echo to-stderr >&2\n"})
    chunks = [c.get("stream", "") for c in daemon.api.api.build(path=str(ctx), nocache=True, decode=True)]
    assert "to-stdout\n" in chunks and "\x1b[91mto-stderr\n\x1b[0m" in chunks, chunks     # dockerd's colours


def test_dockerfile_outside_the_context(daemon, busybox, tmp_path):
    """docker-py puts such a Dockerfile into the tar under a random name and sends dockerfile=<that name>
    &dockerfile=<its content>: the first value names it, as dockerd reads it."""
    ctx = _make_context(tmp_path / "ctx", {"file.txt": "in the context\n"})
    outside = tmp_path / "elsewhere.Dockerfile"
    outside.write_text("FROM busybox\nCOPY file.txt /file.txt\n")
    image, _ = daemon.api.images.build(path=str(ctx), dockerfile=str(outside), tag="py:outside")
    assert daemon.api.containers.run("py:outside", ["cat", "/file.txt"], remove=True) == b"in the context\n"


CACHED = "FROM busybox\nENV STEP=one\nRUN echo two > /two\nRUN echo three > /three\n"


def test_cache_from_a_pulled_image_and_only_from_it(daemon, busybox, registry, tmp_path):
    """--cache-from: the steps of an image pulled from a registry (no parent chain here) are the cache,
    and the result is that image; cache sources that name nothing leave no cache at all (dockerd's rule)."""
    ctx = _make_context(tmp_path, {"Dockerfile": CACHED})
    name = f"{registry}/cache/from:1"
    built = daemon.docker("build", "-q", "-t", name, str(ctx), timeout=120)
    assert built.returncode == 0, built.describe()
    image_id = built.stdout.strip()
    daemon.docker("push", name, check=True, timeout=120)
    daemon.docker("rmi", name, check=True)
    daemon.docker("builder", "prune", "-af", check=True)
    assert daemon.docker("image", "inspect", image_id).returncode == 1       # no step of it is left here
    daemon.docker("pull", name, check=True, timeout=120)

    again = daemon.docker("build", "--cache-from", name, "-t", "cache:again", str(ctx), timeout=120)
    assert again.returncode == 0, again.describe()
    assert again.stdout.count(" ---> Using cache") == 3 and "Running in" not in again.stdout, again.stdout
    assert daemon.docker("image", "inspect", "-f", "{{.Id}}", "cache:again", check=True).stdout.strip() == image_id
    assert daemon.docker("run", "--rm", "cache:again", "cat", "/two", "/three", check=True).stdout == "two\nthree\n"

    none = daemon.docker("build", "--cache-from", "no/such:image", str(ctx), timeout=120)
    assert none.returncode == 0, none.describe()
    assert "Using cache" not in none.stdout and none.stdout.count("Running in") == 2, none.stdout


def test_a_base_image_without_path_gets_the_default_one(daemon, busybox, tmp_path):
    """The test busybox has no Env: the stage starts with dockerd's default PATH, so $PATH expands to it."""
    ctx = _make_context(tmp_path, {"Dockerfile": "FROM busybox\nENV PATH=/opt/x:$PATH\nRUN chmod 755 /bin\n"})
    r = daemon.docker("build", "-q", "-t", "py:path", str(ctx), timeout=120)
    assert r.returncode == 0, r.describe()
    env = json.loads(daemon.docker("image", "inspect", "-f", "{{json .Config.Env}}", "py:path", check=True).stdout)
    assert env == ["PATH=/opt/x:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def test_dockerfile_from_stdin_with_and_without_a_context(daemon, busybox, tmp_path):
    ctx = _make_context(tmp_path, {"file.txt": "from the context\n"})
    text = "FROM busybox\nCOPY file.txt /file.txt\n"
    r = daemon.docker("build", "-q", "-t", "py:stdin", "-f", "-", str(ctx), input=text, timeout=120)
    assert r.returncode == 0, r.describe()
    assert daemon.docker("run", "--rm", "py:stdin", "cat", "/file.txt", check=True).stdout == "from the context\n"
    r = daemon.docker("build", "-q", "-t", "py:stdin2", "-", input="FROM busybox\nRUN echo only > /only\n", timeout=120)
    assert r.returncode == 0, r.describe()
    assert daemon.docker("run", "--rm", "py:stdin2", "cat", "/only", check=True).stdout == "only\n"
