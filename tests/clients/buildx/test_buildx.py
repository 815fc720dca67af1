"""buildx 0.13 (Debian 13's docker-buildx, placed by scripts/install-cli-plugins.sh) with its default `docker`
driver: the builder, its worker and the build cache over /grpc, the session over /session."""
from __future__ import annotations

import io
import json
import os
import platform
import shutil
import signal
import stat
import tarfile
import re
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[3]
PLUGINS = ROOT / "build" / "cli-plugins"


@pytest.fixture(scope="session")
def cli_plugins() -> Path:
    if not (PLUGINS / "docker-buildx").exists():
        done = subprocess.run(["bash", str(ROOT / "scripts" / "install-cli-plugins.sh")], capture_output=True,
                              text=True, timeout=600)
        if done.returncode != 0:
            pytest.fail(f"scripts/install-cli-plugins.sh failed:\n{done.stdout}{done.stderr}", pytrace=False)
    return PLUGINS


@pytest.fixture(scope="module")
def buildx(daemon: Any, cli_plugins: Path) -> Callable[..., Any]:
    """`docker buildx ARGS` through the docker CLI, its config folder holding the plugins."""
    plugins = daemon.docker_config / "cli-plugins"
    plugins.mkdir(exist_ok=True)
    for name in ("docker-buildx", "docker-compose"):
        link = plugins / name
        if not link.exists():
            link.symlink_to(cli_plugins / name)

    def run(*args: str, timeout: float = 60) -> Any:
        return daemon.docker("buildx", *args, timeout=timeout, env=CLI_ENV)
    return run


CLI_ENV = {"BUILDX_NO_DEFAULT_ATTESTATIONS": "1", "DOCKER_BUILDKIT": ""}   # unset: the CLI asks /_ping


ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())

DOCKERFILE = "FROM busybox:latest\nRUN echo one > /one\nRUN echo two > /two\n"


def test_ls_shows_the_default_builder_on_the_docker_driver(daemon, buildx):
    out = buildx("ls")
    assert out.returncode == 0, out.describe()
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["NAME/NODE", "DRIVER/ENDPOINT", "STATUS", "BUILDKIT", "PLATFORMS"], out.stdout
    assert lines[1].split() == ["default*", "docker"], out.stdout
    assert lines[2].split() == ["\\_", "default", "\\_", "default", "running", "v0.13.0-pyd", f"linux/{ARCH}"], out.stdout


def test_inspect_shows_the_worker(daemon, buildx):
    out = buildx("inspect")
    assert out.returncode == 0, out.describe()
    fields = dict(line.split(":", 1) for line in out.stdout.splitlines() if ":" in line and not line.startswith(" "))
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    assert fields["Name"] == "default" and fields["Driver"] == "docker", out.stdout
    assert fields["Status"] == "running" and fields["BuildKit version"] == "v0.13.0-pyd", out.stdout
    assert fields["Platforms"] == f"linux/{ARCH}", out.stdout
    assert "org.mobyproject.buildkit.worker.executor:" in out.stdout, out.stdout


def test_du_lists_the_classic_build_cache_and_prune_removes_it(daemon, busybox, buildx, tmp_path):
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    built = daemon.docker("build", "-q", str(tmp_path), timeout=120)    # untagged: all of it reclaimable
    assert built.returncode == 0, built.describe()
    out = buildx("du")
    assert out.returncode == 0, out.describe()
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["ID", "RECLAIMABLE", "SIZE", "LAST", "ACCESSED"], out.stdout
    rows = [l.split() for l in lines[1:] if l and not l.startswith(("Reclaimable", "Total"))]
    assert len(rows) == 2 and all(r[1] == "true" for r in rows), out.stdout
    assert any(l.startswith("Reclaimable:") for l in lines) and any(l.startswith("Total:") for l in lines)

    pruned = buildx("prune", "-f")
    assert pruned.returncode == 0, pruned.describe()
    assert {r[0] for r in rows} <= set(pruned.stdout.split()), pruned.stdout
    assert "Total:" in pruned.stdout, pruned.stdout
    after = buildx("du")
    assert after.returncode == 0, after.describe()
    assert not [l for l in after.stdout.splitlines()[1:] if l and not l.startswith(("Reclaimable", "Total"))]
    assert daemon.docker("images", "-aq", check=True).stdout.split() == \
        daemon.docker("images", "-q", "busybox", check=True).stdout.split()


MULTI_STAGE = """\
ARG BASE=busybox:latest
FROM $BASE AS build
ARG GREETING=hello
WORKDIR /src
COPY words.txt .
RUN echo "$GREETING from build" > /src/out.txt && cat words.txt >> /src/out.txt
RUN echo built-log-line

FROM busybox:latest AS final
LABEL stage=final
COPY --from=build /src/out.txt /out.txt
CMD ["cat", "/out.txt"]

FROM final AS extra
RUN echo never-built-for-target-final > /extra
"""


def _project(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text(MULTI_STAGE)
    (tmp_path / "words.txt").write_text("words from the context\n")
    (tmp_path / "secret.txt").write_text("left out\n")
    (tmp_path / ".dockerignore").write_text("secret.txt\n")
    return tmp_path


def test_buildx_build_multi_stage_with_args_and_target_then_cached(daemon, busybox, buildx, tmp_path):
    ctx = _project(tmp_path)
    iid, meta = tmp_path.parent / "iid.txt", tmp_path.parent / "meta.json"
    out = buildx("build", "--progress=plain", "-t", "bkx:one", "--build-arg", "GREETING=bonjour", "--target",
                 "final", "--iidfile", str(iid), "--metadata-file", str(meta), str(ctx), timeout=180)
    assert out.returncode == 0, out.describe()
    err = out.stderr
    assert "[internal] load build definition from Dockerfile" in err, err
    assert "[internal] load .dockerignore" in err and "[internal] load build context" in err, err
    assert "[build 1/5] FROM docker.io/library/busybox:latest" in err and "[build 2/5] WORKDIR /src" in err, err
    assert '[build 4/5] RUN echo "$GREETING from build"' in err, err
    assert re.search(r"#\d+ \[build \d/\d\] RUN echo built-log-line\n(#\d+ [\d.]+ built-log-line)", err), err
    assert "[final 2/2] COPY --from=build /src/out.txt /out.txt" in err, err
    assert "never-built" not in err, err
    assert "naming to docker.io/library/bkx:one" in err, err
    image_id = daemon.docker("image", "inspect", "-f", "{{.Id}}", "bkx:one", check=True).stdout.strip()
    assert iid.read_text() == image_id
    import json
    assert json.loads(meta.read_text())["containerimage.digest"] == image_id
    run = daemon.docker("run", "--rm", "bkx:one", check=True, timeout=60)
    assert run.stdout == "bonjour from build\nwords from the context\n"
    labels = daemon.docker("image", "inspect", "-f", "{{json .Config.Labels}}", "bkx:one", check=True).stdout
    assert json.loads(labels) == {"stage": "final"}

    again = buildx("build", "--progress=plain", "-t", "bkx:two", "--build-arg", "GREETING=bonjour", "--target",
                   "final", str(ctx), timeout=180)
    assert again.returncode == 0, again.describe()
    assert re.search(r"\[build \d/\d\] RUN echo built-log-line\n#\d+ CACHED", again.stderr), again.stderr
    assert daemon.docker("image", "inspect", "-f", "{{.Id}}", "bkx:two", check=True).stdout.strip() == image_id


SYNTAX = """\
# syntax=docker/dockerfile:1
FROM busybox:latest AS tools
COPY --chmod=755 greet.sh /usr/local/bin/greet
RUN <<EOF
set -e
echo heredoc-line-one
greet > /greeting
EOF
RUN --mount=type=cache,target=/cache echo run >> /cache/runs && wc -l < /cache/runs > /runs-seen
"""


def test_buildkit_syntax_heredocs_cache_mounts_and_copy_chmod(daemon, busybox, buildx, tmp_path):
    (tmp_path / "Dockerfile").write_text(SYNTAX)
    (tmp_path / "greet.sh").write_text("#!/bin/sh\necho greetings\n")
    out = buildx("build", "--progress=plain", "-t", "bkx:syntax", str(tmp_path), timeout=180)
    assert out.returncode == 0, out.describe()
    assert "[2/4] COPY --chmod=755 greet.sh /usr/local/bin/greet" in out.stderr, out.stderr   # one stage: no label
    assert re.search(r"#\d+ [\d.]+ heredoc-line-one", out.stderr), out.stderr
    run = daemon.docker("run", "--rm", "bkx:syntax", "sh", "-c",
                        "stat -c %a /usr/local/bin/greet; cat /greeting /runs-seen", check=True)
    assert run.stdout == "755\ngreetings\n1\n"
    again = buildx("build", "--progress=plain", "--no-cache", "-t", "bkx:syntax", str(tmp_path), timeout=180)
    assert again.returncode == 0, again.describe()
    seen = daemon.docker("run", "--rm", "bkx:syntax", "cat", "/runs-seen", check=True).stdout
    assert seen == "2\n"     # the cache mount outlived the first build


def test_push_goes_through_the_engine_api_after_the_build(daemon, busybox, buildx, registry, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox:latest\nRUN echo pushed > /p\n")
    name = f"{registry}/bkx/pushed:1"
    out = buildx("build", "--progress=plain", "--push", "-t", name, str(tmp_path), timeout=180)
    assert out.returncode == 0, out.describe()
    assert f"pushing {name} with docker" in out.stderr, out.stderr
    daemon.docker("rmi", name, check=True)
    pulled = daemon.docker("pull", name, timeout=120)
    assert pulled.returncode == 0, pulled.describe()
    assert daemon.docker("run", "--rm", name, "cat", "/p", check=True).stdout == "pushed\n"


def test_a_failing_step_ends_the_build_with_its_error(daemon, busybox, buildx, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox:latest\nRUN echo about to fail && exit 3\n")
    out = buildx("build", "--progress=plain", str(tmp_path), timeout=120)
    assert out.returncode == 1, out.describe()
    assert "about to fail" in out.stderr, out.stderr
    assert 'ERROR: failed to solve: process "/bin/sh -c echo about to fail && exit 3" did not complete ' \
           'successfully: exit code: 3' in out.stderr, out.stderr
    (tmp_path / "Dockerfile").write_text("FROM busybox:latest\nFOO bar\n")
    out = buildx("build", "--progress=plain", str(tmp_path), timeout=120)
    assert out.returncode == 1, out.describe()
    assert "ERROR: failed to solve: dockerfile parse error on line 2: unknown instruction: FOO" in out.stderr, \
        out.stderr


def test_plain_docker_build_goes_through_buildkit(daemon, busybox, buildx, tmp_path):
    """Without DOCKER_BUILDKIT, the docker CLI sees Builder-Version 2 in /_ping and hands `docker build`
    to buildx, as it does against dockerd 23 and later."""
    ctx = _project(tmp_path)
    out = daemon.docker("build", "--progress=plain", "-t", "bkx:plain", "--build-arg", "GREETING=hi", str(ctx),
                        timeout=180, env=CLI_ENV)
    assert out.returncode == 0, out.describe()
    assert "[internal] load build definition from Dockerfile" in out.stderr, out.stderr
    assert "[extra 1/1] RUN echo never-built-for-target-final > /extra" in out.stderr, out.stderr   # FROM a stage: no vertex
    assert re.search(r"naming to docker.io/library/bkx:plain( [\d.]+s)? done", out.stderr), out.stderr
    run = daemon.docker("run", "--rm", "bkx:plain", "cat", "/extra", check=True, timeout=60)
    assert run.stdout == "never-built-for-target-final\n"

    du = daemon.docker("buildx", "du", env=CLI_ENV)
    assert du.returncode == 0, du.describe()
    assert any(l.startswith("Total:") for l in du.stdout.splitlines()), du.stdout
    pruned = daemon.docker("builder", "prune", "-f", env=CLI_ENV)
    assert pruned.returncode == 0, pruned.describe()
    assert "Total:" in pruned.stdout, pruned.stdout
    removed = [line.split()[0] for line in pruned.stdout.splitlines()[1:] if re.match(r"[0-9a-f]{64}\s", line)]
    assert removed, pruned.stdout
    assert all(daemon.docker("image", "inspect", i).returncode == 1 for i in removed)
    assert daemon.docker("image", "inspect", "bkx:plain").returncode == 0    # tagged: kept, with its steps


COMPOSE_PROJECT = {
    "compose.yaml": """\
services:
  api:
    build:
      context: ./api
      args:
        MESSAGE: from-api
    command: ["sh", "-c", "cat /message; exec httpd -f -p 8080 -h /www"]
  worker:
    build: ./worker
    depends_on: [api]
    command: ["sh", "-c", "sleep 1; wget -qO- http://api:8080/index.html; cat /role; exec sleep 300"]
    volumes: [data:/data]
  cache:
    image: busybox:latest
    command: ["sh", "-c", "echo cache-up; exec sleep 300"]
volumes:
  data: {}
""",
    "api/Dockerfile": """\
FROM busybox:latest
ARG MESSAGE=unset
RUN mkdir -p /www && echo served-by-api > /www/index.html && echo "$MESSAGE" > /message
""",
    "worker/Dockerfile": """\
FROM busybox:latest AS base
RUN echo worker-role > /role
FROM base
COPY hello.txt /hello.txt
""",
    "worker/hello.txt": "hello\n",
}


def test_compose_v2_up_build_ps_logs_down(daemon, busybox, buildx, tmp_path):
    for rel, text in COMPOSE_PROJECT.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)

    def compose(*args: str, timeout: float = 240) -> Any:
        return daemon.docker("compose", "--project-directory", str(tmp_path), "-p", "bkdemo", *args,
                             timeout=timeout, env={**CLI_ENV, "COMPOSE_PROGRESS": "plain"})

    try:
        up = compose("up", "--build", "-d")
        assert up.returncode == 0, up.describe()
        shown = up.stdout + up.stderr      # compose's build progress, then its container lines
        assert "[api 2/2] RUN mkdir -p /www" in shown and "[worker base 2/2] RUN echo worker-role" in shown, shown
        assert re.search(r"naming to docker.io/library/bkdemo-worker:latest( [\d.]+s)? done", shown), shown
        images = daemon.docker("images", "--format", "{{.Repository}}", check=True).stdout.split()
        assert {"bkdemo-api", "bkdemo-worker"} <= set(images), images
        ps = compose("ps", "--format", "{{.Service}} {{.State}}")
        assert ps.returncode == 0, ps.describe()
        assert sorted(ps.stdout.split("\n")[:-1]) == ["api running", "cache running", "worker running"], ps.stdout
        for _ in range(50):
            logs = compose("logs", "--no-color", "worker")
            if "worker-role" in logs.stdout:
                break
            time.sleep(0.2)
        assert "served-by-api" in logs.stdout and "worker-role" in logs.stdout, logs.stdout
        assert "from-api" in compose("logs", "--no-color", "api").stdout
    finally:
        down = compose("down", "-v", "-t", "1")
    assert down.returncode == 0, down.describe()
    assert daemon.docker("ps", "-aq", "--filter", "label=com.docker.compose.project=bkdemo", check=True).stdout == ""
    assert "bkdemo_data" not in daemon.docker("volume", "ls", "-q", check=True).stdout.split()


def test_a_build_cancelled_by_the_client_leaves_no_container(daemon, busybox, buildx, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox:latest\nRUN echo started-long-step && sleep 60\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=daemon.host, DOCKER_CONFIG=str(daemon.docker_config), DOCKER_CLI_HINTS="false",
               **CLI_ENV)
    proc = subprocess.Popen(["/usr/local/bin/docker", "buildx", "build", "--progress=plain", str(tmp_path)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "started-long-step" in line and "RUN" not in line:
                break
        assert daemon.docker("ps", "-q", check=True).stdout.strip(), "the RUN step's container runs"
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for _ in range(100):
        if not daemon.docker("ps", "-aq", check=True).stdout.strip():
            break
        time.sleep(0.2)
    assert daemon.docker("ps", "-aq", check=True).stdout == "", daemon.docker("ps", "-a").stdout


SECRETS = """FROM busybox:latest
RUN --mount=type=secret,id=token tr a-z A-Z < /run/secrets/token > /ok
RUN --mount=type=secret,id=fromenv,target=/etc/envsecret tr a-z A-Z < /etc/envsecret >> /ok
"""


def test_secrets_come_from_the_client_session_and_stay_out_of_the_image(daemon, busybox, buildx, tmp_path):
    (tmp_path / "Dockerfile").write_text(SECRETS)
    token = tmp_path.parent / f"{tmp_path.name}-token"
    token.write_text("from-a-file\n")
    out = daemon.docker("buildx", "build", "--progress=plain", "-t", "bkx:secrets",
                        "--secret", f"id=token,src={token}", "--secret", "id=fromenv,env=BKX_SECRET", str(tmp_path),
                        timeout=180, env={**CLI_ENV, "BKX_SECRET": "from-env\n"})
    assert out.returncode == 0, out.describe()
    run = daemon.docker("run", "--rm", "bkx:secrets", "sh", "-c",
                        "cat /ok; test -e /run/secrets/token || test -e /etc/envsecret || echo no-secret-files",
                        check=True)
    assert run.stdout == "FROM-A-FILE\nFROM-ENV\nno-secret-files\n"      # read in the steps, not kept
    history = daemon.docker("history", "--no-trunc", "bkx:secrets", check=True).stdout
    assert "from-a-file" not in history and "from-env" not in history, history
    (tmp_path / "Dockerfile").write_text("FROM busybox:latest\nRUN --mount=type=secret,id=nope,required=true true\n")
    out = buildx("build", "--progress=plain", str(tmp_path), timeout=120)
    assert out.returncode == 1, out.describe()
    assert "secret nope: not found" in out.stderr, out.stderr


NAMED_CONTEXTS = """\
FROM registry.invalid/base:1 AS base
COPY --from=extra . /extra/
COPY --from=tools /bin/busybox /tools-busybox
RUN --mount=from=extra,target=/mnt cat /mnt/greeting.txt > /mounted.txt
"""


def test_named_contexts_local_dirs_and_images(daemon, busybox, buildx, registry, tmp_path):
    """--build-context: a local dir (fetched through the session under the name buildx gives it, its own
    .dockerignore applied) for COPY --from and RUN --mount from=; images from the store and from a registry
    standing in for FROM and COPY --from names that would otherwise be pulled."""
    ctx, extra = tmp_path / "ctx", tmp_path / "extra"
    ctx.mkdir()
    extra.mkdir()
    (ctx / "Dockerfile").write_text(NAMED_CONTEXTS)
    (extra / "greeting.txt").write_text("hello from a named context\n")
    (extra / "skip.txt").write_text("ignored\n")
    (extra / ".dockerignore").write_text("skip.txt\n")
    daemon.docker("tag", "busybox:latest", "bkx/named-base:1", check=True)
    tools = f"{registry}/bkx/tools:1"
    daemon.docker("tag", "busybox:latest", tools, check=True)
    daemon.docker("push", tools, check=True, timeout=120)
    daemon.docker("rmi", tools, check=True)
    out = buildx("build", "--progress=plain", "-t", "bkx:named", "--build-context", f"extra={extra}",
                 "--build-context", "registry.invalid/base:1=docker-image://bkx/named-base:1",
                 "--build-context", f"tools=docker-image://{tools}", str(ctx), timeout=180)
    assert out.returncode == 0, out.describe()
    assert "[context extra] load .dockerignore" in out.stderr and "[context extra] load from client" in out.stderr, \
        out.stderr
    assert "[context registry.invalid/base:1] docker.io/bkx/named-base:1" in out.stderr, out.stderr
    run = daemon.docker("run", "--rm", "bkx:named", "sh", "-c",
                        "cat /extra/greeting.txt /mounted.txt; test -e /extra/skip.txt || echo no-skip; "
                        "test -x /tools-busybox && echo tools", check=True)
    assert run.stdout == "hello from a named context\n" * 2 + "no-skip\ntools\n"
    assert daemon.docker("image", "inspect", tools).returncode == 0      # pulled from the registry for the build

    (ctx / "Dockerfile").write_text("FROM busybox:latest\nCOPY --from=gone /x /x\n")
    out = buildx("build", "--progress=plain", "--build-context", "gone=https://example.invalid/x.tar", str(ctx),
                 timeout=120)
    assert out.returncode == 1, out.describe()
    assert "named context gone: https sources are not supported by this daemon" in out.stderr, out.stderr


MEETING = """\
FROM busybox:latest AS left
ARG TOKEN
RUN --mount=type=cache,id=meet-$TOKEN,target=/meet touch /meet/left && i=0 && \\
    while [ ! -e /meet/right ]; do i=$((i+1)); [ $i -le 300 ] || exit 7; sleep 0.1; done && echo left met
FROM busybox:latest AS right
ARG TOKEN
RUN --mount=type=cache,id=meet-$TOKEN,target=/meet touch /meet/right && i=0 && \\
    while [ ! -e /meet/left ]; do i=$((i+1)); [ $i -le 300 ] || exit 7; sleep 0.1; done && echo right met
FROM busybox:latest
COPY --from=left /etc/passwd /left
COPY --from=right /etc/passwd /right
"""


def test_independent_stages_run_at_once(daemon, busybox, buildx, tmp_path):
    """Each stage leaves a marker in a shared cache mount and waits (30 s at most) for the other's: built
    one after the other, the first would fail with exit code 7."""
    (tmp_path / "Dockerfile").write_text(MEETING)
    out = buildx("build", "--progress=plain", "--build-arg", f"TOKEN={tmp_path.name}", "-t", "bkx:meeting",
                 str(tmp_path), timeout=180)
    assert out.returncode == 0, out.describe()
    for name in ("left", "right"):      # each RUN's output under its own vertex
        assert re.search(rf"#(\d+) \[{name} 2/2\] RUN --mount=type=cache.*\n(#\1 .*\n)*#\1 [\d.]+ {name} met\n",
                         out.stderr), out.stderr
    assert daemon.docker("run", "--rm", "bkx:meeting", "ls", "/left", "/right", check=True).stdout == "/left\n/right\n"


def _host_tool_tree(dest: Path, tool: str) -> None:
    """A host binary and the libraries it loads, at their paths under dest (to COPY onto busybox)."""
    listed = subprocess.run(["ldd", tool], capture_output=True, text=True, check=True).stdout
    paths = [tool] + re.findall(r"(?:=> |^\s*)(/\S+) \(0x", listed, re.M)
    for path in paths:
        target = dest / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(path), target)


SSH_DOCKERFILE = """\
FROM busybox:latest
COPY tools/ /
RUN --mount=type=ssh echo "sock=$SSH_AUTH_SOCK" > /agent && ssh-add -l >> /agent
RUN --mount=type=ssh,id=notforwarded echo optional-ssh-skipped > /optional
"""


def test_ssh_agent_forwarded_into_run(daemon, busybox, buildx, tmp_path):
    """--ssh default=$SSH_AUTH_SOCK: a real ssh-agent holding a key; ssh-add -l in the RUN lists it through
    the session's sshforward service."""
    _host_tool_tree(tmp_path / "tools", shutil.which("ssh-add") or "/usr/bin/ssh-add")
    (tmp_path / "Dockerfile").write_text(SSH_DOCKERFILE)
    sock = tmp_path.parent / f"{tmp_path.name[:40]}.agent"
    started = subprocess.run(["ssh-agent", "-s", "-a", str(sock)], capture_output=True, text=True, check=True)
    agent_pid = int(re.search(r"SSH_AGENT_PID=(\d+)", started.stdout)[1])
    try:
        key = tmp_path.parent / f"{tmp_path.name}-key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pyd-build-key", "-f", str(key)],
                       check=True, capture_output=True)
        agent_env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", str(key)], env=agent_env, check=True, capture_output=True)
        listed = subprocess.run(["ssh-add", "-l"], env=agent_env, check=True, capture_output=True, text=True).stdout
        assert "pyd-build-key" in listed
        out = buildx("build", "--progress=plain", "-t", "bkx:ssh", "--ssh", f"default={sock}", str(tmp_path),
                     timeout=180)
        assert out.returncode == 0, out.describe()
        run = daemon.docker("run", "--rm", "bkx:ssh", "sh", "-c",
                            "cat /agent /optional; ls /run/buildkit 2>/dev/null || echo no-socket-kept", check=True)
        assert run.stdout == "sock=/run/buildkit/ssh_agent.0\n" + listed + "optional-ssh-skipped\nno-socket-kept\n"

        (tmp_path / "Dockerfile").write_text("FROM busybox:latest\nRUN --mount=type=ssh,id=other,required=true true\n")
        out = buildx("build", "--progress=plain", "--ssh", f"default={sock}", str(tmp_path), timeout=120)
        assert out.returncode == 1, out.describe()
        assert 'no SSH key "other" forwarded from the client' in out.stderr, out.stderr
    finally:
        os.kill(agent_pid, signal.SIGTERM)


def test_from_a_registry_that_wants_basic_auth_uses_the_clients_login(daemon, busybox, buildx, tmp_path):
    """docker-registry with htpasswd on 127.0.0.1; after `docker login` in the CLI's config, FROM pulls with
    the credentials the session's auth service gives (the daemon has none of its own)."""
    from conftest import Registry
    htpasswd = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(htpasswd), "dave", "pa55word"], check=True, capture_output=True)
    registry = Registry(daemon, "registry-auth", htpasswd)
    host = str(registry)
    try:
        login = daemon.docker("login", "-u", "dave", "--password-stdin", host, input="pa55word\n")
        assert login.returncode == 0, login.describe()
        base = f"{host}/bkx/private:1"
        daemon.docker("tag", "busybox:latest", base, check=True)
        daemon.docker("push", base, check=True, timeout=120)
        daemon.docker("rmi", base, check=True)
        (tmp_path / "Dockerfile").write_text(f"FROM {base}\nRUN echo built-on-private > /p\n")
        out = buildx("build", "--progress=plain", "-t", "bkx:private", str(tmp_path), timeout=180)
        assert out.returncode == 0, out.describe()
        assert daemon.docker("run", "--rm", "bkx:private", "cat", "/p", check=True).stdout == "built-on-private\n"

        daemon.docker("rmi", base, check=True)
        daemon.docker("logout", host, check=True)
        out = buildx("build", "--progress=plain", str(tmp_path), timeout=180)
        assert out.returncode == 1, out.describe()
        assert "pull access denied" in out.stderr or "authentication required" in out.stderr, out.stderr
    finally:
        daemon.docker("logout", host)
        registry.stop()


def test_a_run_bind_mount_of_the_context_alone_loads_the_context(daemon, busybox, buildx, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox:latest\nRUN --mount=target=/src cat /src/data.txt > /seen\n")
    (tmp_path / "data.txt").write_text("bound from the context\n")
    out = buildx("build", "--progress=plain", "-t", "bkx:bind", str(tmp_path), timeout=120)
    assert out.returncode == 0, out.describe()
    assert "[internal] load build context" in out.stderr, out.stderr
    assert daemon.docker("run", "--rm", "bkx:bind", "cat", "/seen", check=True).stdout == "bound from the context\n"


CACHEABLE = "FROM busybox:latest\nRUN echo one > /one && cat /proc/sys/kernel/random/uuid > /stamp\nRUN echo two > /two\n"


def _all_images(daemon) -> set[str]:
    return set(daemon.docker("images", "-aq", "--no-trunc", check=True).stdout.split())


def _push_cacheable_then_forget(daemon, buildx, context, name: str) -> str:
    """Build CACHEABLE with inline cache and push it as `name`, then remove it, so that only the registry
    has its steps; returns its /stamp. The store ends with the images it began with."""
    (context / "Dockerfile").write_text(CACHEABLE)
    before = _all_images(daemon)
    out = buildx("build", "--progress=plain", "--cache-to", "type=inline", "--push", "-t", name, str(context),
                 timeout=180)
    assert out.returncode == 0, out.describe()
    stamp = daemon.docker("run", "--rm", name, "cat", "/stamp", check=True).stdout
    daemon.docker("rmi", name, check=True)
    assert _all_images(daemon) == before     # nothing local to hit: only the registry has the steps
    return stamp


def test_cache_from_a_pushed_image_reuses_its_steps_once_the_local_cache_is_gone(daemon, busybox, buildx, registry,
                                                                                  tmp_path):
    name = f"{registry}/bkx/cache:1"
    before = _all_images(daemon)
    stamp = _push_cacheable_then_forget(daemon, buildx, tmp_path, name)

    again = buildx("build", "--progress=plain", "--cache-from", f"type=registry,ref={name}", "-t", "bkx:cached",
                   str(tmp_path), timeout=180)
    assert again.returncode == 0, again.describe()
    err = again.stderr
    assert f"importing cache manifest from {name}" in err, err
    assert re.search(r"\[2/3\] RUN echo one > /one && cat /proc/sys/kernel/random/uuid > /stamp\n#\d+ CACHED", err), err
    assert re.search(r"\[3/3\] RUN echo two > /two\n#\d+ CACHED", err), err
    assert daemon.docker("run", "--rm", "bkx:cached", "cat", "/stamp", check=True).stdout == stamp

    daemon.docker("rmi", "bkx:cached", name, check=True)
    assert _all_images(daemon) == before
    fresh = buildx("build", "--progress=plain", "-t", "bkx:fresh", str(tmp_path), timeout=180)   # no cache-from
    assert fresh.returncode == 0, fresh.describe()
    assert "CACHED" not in fresh.stderr, fresh.stderr
    assert daemon.docker("run", "--rm", "bkx:fresh", "cat", "/stamp", check=True).stdout != stamp
    daemon.docker("rmi", "bkx:fresh", check=True)


def test_cache_from_a_missing_image_warns_and_builds(daemon, busybox, buildx, registry, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox:latest\nRUN echo built > /b\n")
    name = f"{registry}/bkx/never-pushed:1"
    out = buildx("build", "--progress=plain", "--cache-from", f"type=registry,ref={name}", "-t", "bkx:nocache",
                 str(tmp_path), timeout=180)
    assert out.returncode == 0, out.describe()
    assert re.search(rf"importing cache manifest from {re.escape(name)}\n#\d+ ERROR: failed to configure registry "
                     "cache importer: ", out.stderr), out.stderr
    assert daemon.docker("run", "--rm", "bkx:nocache", "cat", "/b", check=True).stdout == "built\n"


def test_cache_importers_pyd_lacks_are_refused_by_type(daemon, busybox, buildx, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox:latest\n")
    cache = tmp_path / "cache"      # an OCI layout naming a "latest": what the client needs to pass it on
    (cache / "blobs" / "sha256").mkdir(parents=True)
    (cache / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (cache / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + "0" * 64, "size": 2,
         "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))
    out = buildx("build", "--progress=plain", "--cache-from", f"type=local,src={cache}", str(tmp_path), timeout=120)
    assert out.returncode == 1, out.describe()
    assert "ERROR: failed to solve: Unimplemented: cache importer 'local' is not supported by this daemon " \
        "(type=registry is" in out.stderr, out.stderr
    # cache exporters other than inline: buildx's docker driver refuses them before asking (as with dockerd)
    out = buildx("build", "--progress=plain", "--cache-to", "type=local,dest=" + str(tmp_path / "out"), str(tmp_path),
                 timeout=120)
    assert out.returncode == 1 and "Cache export is not supported for the docker driver" in out.stderr, out.describe()


SCRATCH_OUTPUT = """\
FROM busybox:latest AS make
RUN mkdir -p /out/sub && echo built > /out/sub/made.txt && chmod 640 /out/sub/made.txt

FROM scratch
COPY --chmod=755 run.sh /run.sh
COPY data/ /data/
COPY --from=make /out/ /
"""


def _output_project(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "data" / "deep").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(SCRATCH_OUTPUT)
    (ctx / "run.sh").write_text("#!/bin/sh\necho run\n")
    (ctx / "data" / "a.txt").write_text("a\n")
    (ctx / "data" / "deep" / "b.bin").write_bytes(bytes(range(256)) * 4096)   # 1 MiB: several DATA packets
    os.symlink("a.txt", ctx / "data" / "link")
    return ctx


SCRATCH_FILES = {"run.sh": 0o755, "data": 0o755, "data/a.txt": 0o644, "data/deep": 0o755, "data/deep/b.bin": 0o644,
                 "data/link": None, "sub": 0o755, "sub/made.txt": 0o640}


def test_local_exporter_writes_the_final_stage_into_a_directory(daemon, busybox, buildx, tmp_path):
    ctx = _output_project(tmp_path)
    for args, dest in ((["-o", f"type=local,dest={tmp_path / 'out1'}"], tmp_path / "out1"),
                       (["-o", str(tmp_path / "out2")], tmp_path / "out2")):
        out = buildx("build", "--progress=plain", *args, str(ctx), timeout=180)
        assert out.returncode == 0, out.describe()
        assert "exporting to client directory" in out.stderr and "exporting to image" not in out.stderr, out.stderr
        found = {str(p.relative_to(dest)): p for p in dest.rglob("*")}
        assert set(found) == set(SCRATCH_FILES), sorted(found)
        for rel, mode in SCRATCH_FILES.items():
            if mode is not None:
                assert stat.S_IMODE(found[rel].lstat().st_mode) == mode, rel
        assert os.readlink(dest / "data" / "link") == "a.txt"
        assert (dest / "run.sh").read_text() == "#!/bin/sh\necho run\n"
        assert (dest / "data" / "deep" / "b.bin").read_bytes() == bytes(range(256)) * 4096
        assert (dest / "sub" / "made.txt").read_text() == "built\n"


def _tar_members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name.rstrip("/"): m for m in tar.getmembers()}


def test_tar_exporter_to_a_file_and_to_stdout(daemon, busybox, buildx, tmp_path):
    ctx = _output_project(tmp_path)
    out = buildx("build", "--progress=plain", "-o", f"type=tar,dest={tmp_path / 'out.tar'}", str(ctx), timeout=180)
    assert out.returncode == 0, out.describe()
    assert "exporting to client tarball" in out.stderr, out.stderr
    members = _tar_members((tmp_path / "out.tar").read_bytes())
    assert set(members) == set(SCRATCH_FILES), sorted(members)
    for rel, mode in SCRATCH_FILES.items():
        if mode is not None:
            assert members[rel].mode == mode, rel
    assert members["data/link"].issym() and members["data/link"].linkname == "a.txt"
    assert members["data"].isdir() and members["sub/made.txt"].size == len("built\n")

    piped = buildx("build", "--progress=plain", "-o", "-", str(ctx), timeout=180)
    assert piped.returncode == 0, piped.describe()
    members = _tar_members(piped.stdout_bytes)
    assert set(members) == set(SCRATCH_FILES), sorted(members)
    with tarfile.open(fileobj=io.BytesIO(piped.stdout_bytes)) as tar:
        assert tar.extractfile("data/deep/b.bin").read() == bytes(range(256)) * 4096


def test_compose_cache_from_reuses_a_pushed_images_steps(daemon, busybox, buildx, registry, tmp_path):
    name = f"{registry}/bkx/compose-cache:1"
    _push_cacheable_then_forget(daemon, buildx, tmp_path, name)
    (tmp_path / "compose.yaml").write_text(f"services:\n  app:\n    image: bkcc-app\n    build:\n      context: .\n"
                                           f"      cache_from:\n        - {name}\n")
    built = daemon.docker("compose", "--project-directory", str(tmp_path), "-p", "bkcc", "build", timeout=240,
                          env={**CLI_ENV, "COMPOSE_PROGRESS": "plain"})
    assert built.returncode == 0, built.describe()
    shown = built.stdout + built.stderr
    assert f"importing cache manifest from {name}" in shown, shown
    assert re.search(r"\[app 3/3\] RUN echo two > /two\n#\d+ CACHED", shown), shown
    daemon.docker("rmi", "bkcc-app", check=True)
