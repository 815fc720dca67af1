"""The Dockerfile syntax BuildKit users write, built by pyd's builder through the docker CLI (DOCKER_BUILDKIT=0):
heredocs, RUN --mount and --network, COPY/ADD's newer flags, platform ARGs, stage selection, # syntax=."""
from __future__ import annotations

import hashlib
import http.server
import platform
import re
import threading
import time
from pathlib import Path

import pytest


def _context(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def _build(daemon, ctx: Path, *args: str, ok: bool = True):
    r = daemon.docker("build", *args, str(ctx), timeout=180)
    if ok:
        assert r.returncode == 0, r.describe()
    return r


def _sh(daemon, image: str, script: str) -> str:
    r = daemon.docker("run", "--rm", image, "sh", "-c", script, timeout=60)
    assert r.returncode == 0, r.describe()
    return r.stdout


def _host_arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


# ---- heredocs ---------------------------------------------------------------------------------------

RUN_HEREDOCS = """\
# syntax=docker/dockerfile:1
FROM busybox
ARG NAME=world
RUN <<EOF
echo "hello $NAME" > /simple
echo second line >> /simple
EOF
RUN <<EOF sh
echo "interpreter $NAME" > /interp
EOF
RUN <<-EOF
\techo tabs > /tabs
\tEOF
RUN cat <<A > /a && cat <<'B' > /b
$NAME-a
A
$NAME-b
B
RUN <<EOF
#!/bin/sh
echo "shebang $0" > /shebang
EOF
"""


def test_run_heredocs(daemon, busybox, tmp_path):
    ctx = _context(tmp_path, {"Dockerfile": RUN_HEREDOCS})
    _build(daemon, ctx, "-t", "heredoc-run:1")
    out = _sh(daemon, "heredoc-run:1", "cat /simple /interp /tabs /a /b /shebang")
    assert out.splitlines() == ["hello world", "second line", "interpreter world", "tabs", "world-a", "$NAME-b",
                                "shebang /dev/pipes/EOF"]
    again = _build(daemon, ctx, "-t", "heredoc-run:1")
    assert "Running in" not in again.stdout, again.stdout     # the whole build is cached
    (ctx / "Dockerfile").write_text(RUN_HEREDOCS.replace("second line", "changed line"))
    changed = _build(daemon, ctx, "-t", "heredoc-run:2")
    assert changed.stdout.count(" ---> Running in ") == 5, changed.stdout   # heredoc content is in the key
    assert _sh(daemon, "heredoc-run:2", "cat /simple").splitlines()[1] == "changed line"


def test_copy_heredocs(daemon, busybox, tmp_path):
    dockerfile = ("FROM busybox\nARG V=val\nENV E=env\n"
                  "COPY <<EOF /etc/one.conf\nvalue=${V} \"$E\" \\$V\nEOF\n"
                  "COPY <<\"EOF\" /raw.txt\nvalue=${V}\nEOF\n"
                  "COPY --chmod=755 <<a.sh <<b.sh /scripts/\necho a\na.sh\necho b\nb.sh\n"
                  "COPY <<-EOF /chomped\n\t\tindented\n\tEOF\n")
    ctx = _context(tmp_path, {"Dockerfile": dockerfile})
    _build(daemon, ctx, "-t", "heredoc-copy:1")
    out = _sh(daemon, "heredoc-copy:1", "cat /etc/one.conf /raw.txt /chomped; stat -c '%a %n' /etc/one.conf "
              "/scripts/a.sh /scripts/b.sh; sh /scripts/a.sh; sh /scripts/b.sh")
    assert out.splitlines() == ['value=val "env" $V', "value=${V}", "indented", "644 /etc/one.conf",
                                "755 /scripts/a.sh", "755 /scripts/b.sh", "a", "b"]
    again = _build(daemon, ctx, "-t", "heredoc-copy:1")
    assert again.stdout.count("Using cache") == 6, again.stdout
    (ctx / "Dockerfile").write_text(dockerfile.replace("echo b\n", "echo B\n"))
    changed = _build(daemon, ctx, "-t", "heredoc-copy:2")
    assert changed.stdout.count("Using cache") == 4, changed.stdout
    assert _sh(daemon, "heredoc-copy:2", "sh /scripts/b.sh") == "B\n"


def test_unterminated_heredoc_is_a_parse_error(daemon, busybox, tmp_path):
    ctx = _context(tmp_path, {"Dockerfile": "FROM busybox\nRUN <<EOF\necho never\n"})
    r = _build(daemon, ctx, ok=False)
    assert r.returncode == 1 and "dockerfile parse error on line 2: unterminated heredoc" in r.stderr, r.describe()


# ---- RUN --mount, --network --------------------------------------------------------------------------

def test_cache_mount_persists_across_builds(daemon, busybox, tmp_path):
    dockerfile = ("FROM busybox\n"
                  "RUN --mount=type=cache,target=/cache,id=counter,sharing=locked "
                  "sh -c 'echo x >> /cache/log; wc -l < /cache/log > /count'\n"
                  "RUN --mount=type=cache,target=/owned,uid=1000,gid=1001,mode=0700 "
                  "stat -c '%u %g %a' /owned > /owned-stat\n"
                  "RUN --mount=type=cache,target=/var/cache/app sh -c 'ls /var/cache/app | wc -l > /default-id'\n")
    ctx = _context(tmp_path, {"Dockerfile": dockerfile})
    _build(daemon, ctx, "--no-cache", "-t", "cachemount:1")
    assert _sh(daemon, "cachemount:1", "cat /count /owned-stat").split() == ["1", "1000", "1001", "700"]
    _build(daemon, ctx, "--no-cache", "-t", "cachemount:2")
    assert _sh(daemon, "cachemount:2", "cat /count").strip() == "2"      # the same cache directory again
    # the mount points the cache mounts needed are not in the image
    assert _sh(daemon, "cachemount:2", "for p in /cache /owned /var/cache/app /var/cache; do "
               "test -e $p && echo $p; done; true") == ""
    # another id is another cache, and the id is in the step's cache key
    (ctx / "Dockerfile").write_text(dockerfile.replace("id=counter", "id=other"))
    r = _build(daemon, ctx, "-t", "cachemount:3")
    assert r.stdout.count("Running in") == 3, r.stdout
    assert _sh(daemon, "cachemount:3", "cat /count").strip() == "1"
    # from= and source= seed a new cache from a stage
    (ctx / "Dockerfile").write_text("FROM busybox AS seed\nRUN mkdir /s && echo seeded > /s/f\nFROM busybox\n"
                                    "RUN --mount=type=cache,target=/c,id=seeded,from=seed,source=/s cat /c/f > /out\n")
    _build(daemon, ctx, "-t", "cachemount:seed")
    assert _sh(daemon, "cachemount:seed", "cat /out") == "seeded\n"
    # docker builder prune empties them
    pruned = daemon.docker("builder", "prune", "-f", timeout=60)
    assert pruned.returncode == 0, pruned.describe()
    (ctx / "Dockerfile").write_text(dockerfile)
    _build(daemon, ctx, "--no-cache", "-t", "cachemount:4")
    assert _sh(daemon, "cachemount:4", "cat /count").strip() == "1"


def test_bind_tmpfs_secret_and_network(daemon, busybox, tmp_path):
    dockerfile = (
        "FROM busybox AS tools\nRUN mkdir /tools && echo tool > /tools/t.txt\n"
        "FROM busybox\n"
        "RUN --mount=type=bind,source=data,target=/data cat /data/in.txt > /from-context\n"
        "RUN --mount=type=bind,source=data,target=/data sh -c "
        "'if echo x > /data/in.txt; then echo writable; else echo readonly; fi > /ro'\n"
        "RUN --mount=type=bind,from=tools,source=/tools,target=/t cat /t/t.txt > /from-stage\n"
        "RUN --mount=type=bind,target=/ctx,rw sh -c 'echo scribble > /ctx/data/in.txt; cat /ctx/data/in.txt > /rw'\n"
        "RUN --mount=type=bind,source=data,target=/data cat /data/in.txt > /after-rw\n"
        "RUN --mount=type=tmpfs,target=/scratch,size=1m sh -c "
        "'grep \" /scratch \" /proc/mounts | cut -d\" \" -f3 > /tmpfs-type; echo x > /scratch/f'\n"
        "RUN --mount=type=secret,id=token sh -c 'test -e /run/secrets/token && echo yes || echo no' > /secret\n"
        "RUN --network=none sh -c 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d \" \" > /netdevs'\n"
        "RUN --network=default sh -c 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d \" \" | sort > /netdefault'\n")
    ctx = _context(tmp_path, {"Dockerfile": dockerfile, "data/in.txt": "context data\n"})
    _build(daemon, ctx, "-t", "mounts:1")
    out = _sh(daemon, "mounts:1", "cat /from-context /ro /from-stage /rw /after-rw /tmpfs-type /secret /netdevs; "
              "for p in /data /t /ctx /scratch /run/secrets; do test -e $p && echo $p; done; true")
    assert out.splitlines() == ["context data", "readonly", "tool", "scribble", "context data", "tmpfs", "no", "lo"]
    assert _sh(daemon, "mounts:1", "cat /netdefault").split() == ["eth0", "lo"]   # the build's own network
    assert (ctx / "data/in.txt").read_text() == "context data\n"
    # a bind of the context is keyed by what it binds
    (ctx / "data/in.txt").write_text("new data\n")
    r = _build(daemon, ctx, "-t", "mounts:2")
    assert r.stdout.count("Using cache") == 1, r.stdout     # only the tools stage's RUN
    assert _sh(daemon, "mounts:2", "cat /from-context") == "new data\n"


@pytest.mark.parametrize("line, message", [
    ("RUN --mount=type=secret,id=token,required cat /run/secrets/token", "secret token: not found"),
    ("RUN --mount=type=nope,target=/x true", 'unsupported mount type "nope"'),
    ("RUN --mount=type=cache,target=/x,color=red true", "unexpected key 'color' in 'color=red'"),
    ("RUN --mount=type=tmpfs,target=/x,uid=1 true", 'uid not allowed for "tmpfs" type mounts'),
    ("RUN --network=host true", "granting entitlement network.host is not allowed by build daemon configuration"),
    ("RUN --network=bogus true", 'invalid network mode "bogus"'),
    ("RUN --security=insecure true",
     "granting entitlement security.insecure is not allowed by build daemon configuration"),
])
def test_run_flag_errors(daemon, busybox, tmp_path, line, message):
    ctx = _context(tmp_path, {"Dockerfile": f"FROM busybox\n{line}\n"})
    r = _build(daemon, ctx, ok=False)
    assert r.returncode != 0 and message in r.stderr, r.describe()


def test_unknown_run_flag(daemon, busybox, tmp_path):
    ctx = _context(tmp_path, {"Dockerfile": "FROM busybox\nRUN --frobnicate=1 true\n"})
    r = _build(daemon, ctx, ok=False)
    assert "dockerfile parse error on line 2: unknown flag: frobnicate" in r.stderr, r.describe()


# ---- COPY / ADD flags ---------------------------------------------------------------------------------

def test_copy_chmod_chown_exclude_parents_link(daemon, busybox, tmp_path):
    files = {"src/a.txt": "a\n", "src/b.log": "b\n", "src/sub/c.txt": "c\n", "src/sub/d.log": "d\n",
             "pkgs/x/package.json": "x\n", "pkgs/y/package.json": "y\n", "pkgs/y/other.txt": "o\n"}
    dockerfile = ("FROM busybox\n"
                  "COPY --exclude=*.log src/ /excl/\n"
                  "COPY --exclude=**/*.log --exclude=sub/c.txt --chown=1000:1001 --chmod=600 src /own/\n"
                  "COPY --parents pkgs/*/package.json /par/\n"
                  "COPY --parents ./pkgs/./x/package.json /piv/\n"
                  "COPY --link src/a.txt /linked.txt\n")
    ctx = _context(tmp_path, {"Dockerfile": dockerfile, **files})
    _build(daemon, ctx, "-t", "copyflags:1")
    out = _sh(daemon, "copyflags:1", "cd / && find excl own par piv -type f | sort; "
              "stat -c '%u %g %a' own/a.txt; cat linked.txt")
    assert out.splitlines() == ["excl/a.txt", "excl/sub/c.txt", "excl/sub/d.log", "own/a.txt",
                                "par/pkgs/x/package.json", "par/pkgs/y/package.json", "piv/x/package.json",
                                "1000 1001 600", "a"]
    # an excluded file's change keeps the cache; the chmod is in the key
    (ctx / "src/b.log").write_text("changed\n")
    r = _build(daemon, ctx, "-t", "copyflags:1")
    assert r.stdout.count("Using cache") == 5 and "Running in" not in r.stdout, r.stdout
    (ctx / "Dockerfile").write_text(dockerfile.replace("--chmod=600", "--chmod=640"))
    r = _build(daemon, ctx, "-t", "copyflags:2")
    assert _sh(daemon, "copyflags:2", "stat -c %a /own/a.txt") == "640\n"


class _Files(http.server.BaseHTTPRequestHandler):
    data: dict[str, bytes] = {}

    def do_GET(self) -> None:   # noqa: N802 (http.server's name)
        body = self.data.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def file_server(daemon):
    """An HTTP server on 127.0.0.1 inside the daemon's network namespace; yields (port, files dict)."""
    sock = daemon.netns.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    files: dict[str, bytes] = {}
    handler = type("Handler", (_Files,), {"data": files})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1], files
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_add_url_checksum(daemon, busybox, tmp_path, file_server):
    port, files = file_server
    files["/dl/tool.txt"] = b"downloaded\n"
    good = "sha256:" + hashlib.sha256(b"downloaded\n").hexdigest()
    bad = "sha256:" + "0" * 64
    url = f"http://127.0.0.1:{port}/dl/tool.txt"
    ctx = _context(tmp_path, {"Dockerfile": f"FROM busybox\nADD --checksum={good} {url} /opt/\n"
                                            f"ADD {url} /plain/renamed.txt\n"})
    _build(daemon, ctx, "-t", "addurl:1")
    assert _sh(daemon, "addurl:1", "cat /opt/tool.txt; stat -c '%a %Y' /plain/renamed.txt") == \
        "downloaded\n600 1445412480\n"
    (ctx / "Dockerfile").write_text(f"FROM busybox\nADD --checksum={bad} {url} /opt/\n")
    r = _build(daemon, ctx, ok=False)
    assert f"digest mismatch {good}: {bad}" in r.stderr, r.describe()
    (ctx / "Dockerfile").write_text(f"FROM busybox\nCOPY --checksum={good} a /a\n")
    (ctx / "a").write_text("a")
    r = _build(daemon, ctx, ok=False)
    assert "dockerfile parse error on line 2: unknown flag: checksum" in r.stderr, r.describe()   # BuildKit's too
    (ctx / "Dockerfile").write_text(f"FROM busybox\nADD --checksum={good} a /a\n")
    r = _build(daemon, ctx, ok=False)
    assert "checksum requires HTTP(S) or Git sources" in r.stderr, r.describe()
    (ctx / "Dockerfile").write_text("FROM busybox\nADD --keep-git-dir https://example.invalid/x.git /src\n")
    r = _build(daemon, ctx, ok=False)
    assert "git sources are not supported by this daemon" in r.stderr, r.describe()


# ---- platforms, stages, directives --------------------------------------------------------------------

def test_platform_args_and_from_platform(daemon, busybox, tmp_path):
    arch = _host_arch()
    dockerfile = ("ARG TARGETARCH\n"
                  "FROM --platform=$BUILDPLATFORM busybox AS build\n"
                  "ARG TARGETPLATFORM\nARG BUILDARCH\n"
                  "RUN echo \"$TARGETPLATFORM $BUILDARCH [$TARGETARCH]\" > /p\n"
                  "FROM busybox:${TARGETARCH:+latest}\n"
                  "COPY --from=build /p /p\n"
                  "RUN echo \"[$TARGETOS]\" > /undeclared\n"
                  "ARG TARGETOS\nRUN echo \"[$TARGETOS]\" > /declared\n")
    ctx = _context(tmp_path, {"Dockerfile": dockerfile})
    _build(daemon, ctx, "-t", "plat:1", "--platform", f"linux/{arch}")
    assert _sh(daemon, "plat:1", "cat /p /undeclared /declared").splitlines() == \
        [f"linux/{arch} {arch} []", "[]", "[linux]"]
    other = "linux/s390x" if arch != "s390x" else "linux/ppc64le"
    (ctx / "Dockerfile").write_text(f"FROM --platform={other} busybox\nRUN true\n")
    r = _build(daemon, ctx, ok=False)
    assert f"pyd builds for its own platform only: linux/{arch}, not {other}" in r.stderr, r.describe()


STAGES = """\
FROM busybox AS base
RUN echo base > /base
FROM base AS broken
RUN echo running-broken && exit 7
FROM busybox AS other
RUN echo other > /other
FROM base AS app
COPY --from=other /other /other
RUN cat /base /other > /app
FROM app AS test
RUN cat /app
"""


def test_only_needed_stages_run_and_are_reused_across_targets(daemon, busybox, tmp_path):
    ctx = _context(tmp_path, {"Dockerfile": STAGES})
    r = _build(daemon, ctx, "-t", "stages:test")
    assert "running-broken" not in r.stdout and "base\nother\n" in r.stdout, r.stdout
    assert "Step 1/9 : FROM busybox AS base" in r.stdout, r.stdout        # 11 steps, the broken stage's 2 skipped
    r = _build(daemon, ctx, "--target", "other", "-t", "stages:other")
    assert r.stdout.count("Using cache") == 1 and "FROM busybox AS base" not in r.stdout, r.stdout
    assert _sh(daemon, "stages:other", "ls /base /other 2>/dev/null; true") == "/other\n"
    r = _build(daemon, ctx, "--target", "app", "-t", "stages:app")
    assert "Running in" not in r.stdout, r.stdout        # every stage it needs is in the cache already
    r = _build(daemon, ctx, "--target", "broken", ok=False)
    assert "running-broken" in r.stdout and "returned a non-zero code: 7" in r.stderr, r.describe()
    # COPY --from may name a stage written later (BuildKit resolves it); a cycle is an error
    (ctx / "Dockerfile").write_text("FROM busybox AS first\nCOPY --from=later /l /l\n"
                                    "FROM busybox AS later\nRUN echo later > /l\n")
    r = _build(daemon, ctx, "--target", "first", "-t", "stages:forward")
    assert _sh(daemon, "stages:forward", "cat /l") == "later\n"
    (ctx / "Dockerfile").write_text("FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n")
    r = _build(daemon, ctx, ok=False)
    assert "circular dependency detected on stage: b" in r.stderr, r.describe()


def test_syntax_and_check_directives(daemon, busybox, tmp_path):
    for syntax in ("docker/dockerfile:1", "docker/dockerfile:1.7", "docker.io/docker/dockerfile:1.4.3",
                   "docker/dockerfile:1-labs"):
        ctx = _context(tmp_path / syntax.replace("/", "_"), {
            "Dockerfile": f"# syntax={syntax}\n# check=skip=all\n# escape=`\nFROM busybox\nRUN echo a `\n  b > /x\n"})
        r = _build(daemon, ctx, "-t", "syntax:1")
        assert _sh(daemon, "syntax:1", "cat /x") == "a b\n"
    ctx = _context(tmp_path / "bad", {"Dockerfile": "# syntax=example.com/frontend:1\nFROM busybox\n"})
    r = _build(daemon, ctx, ok=False)
    assert r.returncode == 1 and 'unsupported frontend "example.com/frontend:1"' in r.stderr, r.describe()


# ---- independent stages run at once -----------------------------------------------------------------

# each stage leaves its marker in a shared cache mount and waits (30 s at most) for the other's: built one
# after the other, the first one waits in vain and fails with exit code 7
MEETING = """\
FROM busybox AS left
ARG TOKEN
RUN --mount=type=cache,id=meet-$TOKEN,target=/meet touch /meet/left && i=0 && \\
    while [ ! -e /meet/right ]; do i=$((i+1)); [ $i -le 300 ] || exit 7; sleep 0.1; done && echo met > /left
FROM busybox AS right
ARG TOKEN
RUN --mount=type=cache,id=meet-$TOKEN,target=/meet touch /meet/right && i=0 && \\
    while [ ! -e /meet/left ]; do i=$((i+1)); [ $i -le 300 ] || exit 7; sleep 0.1; done && echo met > /right
FROM busybox
COPY --from=left /left /left
COPY --from=right /right /right
"""


def test_independent_stages_run_at_once_and_the_stream_stays_in_order(daemon, busybox, tmp_path):
    ctx = _context(tmp_path, {"Dockerfile": MEETING})
    r = _build(daemon, ctx, "--build-arg", f"TOKEN={tmp_path.name}", "-t", "stages:meeting")
    assert _sh(daemon, "stages:meeting", "cat /left /right") == "met\nmet\n"
    steps = [int(n) for n in re.findall(r"^Step (\d+)/9 : ", r.stdout, re.M)]
    assert steps == list(range(1, 10)), r.stdout        # stage after stage, as dockerd writes them
    assert r.stdout.index("FROM busybox AS right") > r.stdout.index("Removed intermediate container"), r.stdout


def test_a_failing_stage_stops_the_others_and_leaves_only_its_container(daemon, busybox, tmp_path):
    ctx = _context(tmp_path, {"Dockerfile": "FROM busybox AS slow\nRUN echo slow-started; sleep 60\n"
                                            "FROM busybox AS bad\nRUN sleep 1; echo bad-failing; exit 5\n"
                                            "FROM busybox\nCOPY --from=slow /etc/passwd /a\nCOPY --from=bad /etc/passwd /b\n"})
    before = set(daemon.docker("ps", "-aq", check=True).stdout.split())
    started = time.monotonic()
    r = _build(daemon, ctx, ok=False)
    assert time.monotonic() - started < 40, "the slow stage ran to its end"
    assert "returned a non-zero code: 5" in r.stderr and "bad-failing" in r.stdout, r.describe()
    assert "slow-started" in r.stdout, r.stdout      # what it wrote before it was stopped
    left = set(daemon.docker("ps", "-aq", check=True).stdout.split()) - before
    commands = [daemon.docker("inspect", "-f", "{{json .Config.Cmd}}", c, check=True).stdout for c in left]
    assert len(commands) == 1 and "exit 5" in commands[0], commands      # dockerd keeps the failed step's
    daemon.docker("rm", "-f", *left, check=True)
