"""Unit tests of the BuildKit-era parts of the Dockerfile front end: heredocs, parser directives, RUN --mount
specs, platforms and stage selection (no daemon)."""
from __future__ import annotations

import pytest

from pyd.daemon.build import platforms, runmounts, stages
from pyd.daemon.build.dockerfile import DockerfileError, builtin_frontend, parse, parse_heredoc, split_stages
from pyd.daemon.build.run_heredocs import script


def test_heredoc_words():
    assert parse_heredoc("<<EOF").name == "EOF" and parse_heredoc("<<EOF").expand
    assert parse_heredoc("<<-EOF").chomp
    assert not parse_heredoc("<<'EOF'").expand and parse_heredoc("<<'EOF'").name == "EOF"
    assert not parse_heredoc('<<"E"OF').expand and parse_heredoc('<<"E"OF').name == "EOF"
    assert parse_heredoc("2<<EOF") is not None
    assert parse_heredoc("<<") is None and parse_heredoc("echo") is None and parse_heredoc("<<EOF bash") is None


def test_heredoc_bodies_keep_comments_and_blank_lines():
    df = parse("FROM busybox\nRUN <<EOF\n# kept\n\necho hi\nEOF\nRUN <<-A cat <<B\n\tone\n\tA\n two\nB\nCMD x\n")
    run1, run2 = df.instructions[1], df.instructions[2]
    assert [i.cmd for i in df.instructions] == ["from", "run", "run", "cmd"]
    assert run1.heredocs[0].content == "# kept\n\necho hi\n"
    assert [(d.name, d.content, d.text()) for d in run2.heredocs] == [("A", "\tone\n", "one\n"), ("B", " two\n", " two\n")]
    with pytest.raises(DockerfileError, match="line 2: unterminated heredoc"):
        parse("FROM busybox\nRUN <<EOF\necho\n")
    exec_form = parse('FROM busybox\nRUN ["echo", "<<EOF"]\n').instructions[1]
    assert exec_form.heredocs == []


def test_run_heredoc_scripts_as_buildkit_runs_them():
    def run(text):
        ins = parse("FROM busybox\n" + text).instructions[1]
        return script(ins, ins.args)
    assert run("RUN <<EOF\necho a\nEOF\n").argv == ["echo a\n"]
    shebang = run("RUN <<EOF\n#!/bin/sh\necho a\nEOF\n")
    assert shebang.argv == ["/dev/pipes/EOF"] and shebang.file == ("EOF", "#!/bin/sh\necho a\n")
    assert run("RUN <<EOF python3\nprint(1)\nEOF\n").argv == ["<<EOF python3\nprint(1)\nEOF"]
    assert run("RUN cat <<A <<B\na\nA\nb\nB\n").argv == ["cat <<A <<B\na\nA\nb\nB"]


def test_directives():
    df = parse("# syntax=docker/dockerfile:1\n# check=skip=all\n# escape=`\nFROM busybox\n")
    assert df.syntax == "docker/dockerfile:1" and df.escape == "`"
    df = parse("# foo=bar\n# escape=`\nFROM busybox\n")   # an unknown directive ends the directives
    assert df.escape == "\\"
    for good in ("docker/dockerfile:1", "docker/dockerfile:1.7.1", "docker.io/docker/dockerfile:1-labs",
                 "docker/dockerfile", "docker/dockerfile:1@sha256:" + "0" * 64):
        assert builtin_frontend(good), good
    for bad in ("docker/dockerfile:2", "example.com/frontend:1", "tonistiigi/dockerfile:1", "docker/dockerfile:0"):
        assert not builtin_frontend(bad), bad


def test_repeatable_flags():
    ins = parse("FROM busybox\nRUN --mount=type=cache,target=/a --mount=type=tmpfs,target=/b true\n").instructions[1]
    assert ins.lists["mount"] == ["type=cache,target=/a", "type=tmpfs,target=/b"] and "mount" not in ins.flags
    with pytest.raises(DockerfileError, match="duplicate flag specified: network"):
        parse("FROM busybox\nRUN --network=none --network=none true\n")


def test_mount_specs():
    m = runmounts.parse("type=cache,target=cache,mode=0700,uid=1,sharing=locked", lambda v: v, "/work")
    assert (m.type, m.target, m.id, m.mode, m.uid, m.sharing, m.readonly) == \
        ("cache", "/work/cache", "/work/cache", 0o700, 1, "locked", False)
    b = runmounts.parse("target=/x,source=$D", lambda v: v.replace("$D", "data"))
    assert (b.type, b.source, b.readonly) == ("bind", "data", True)
    assert not runmounts.parse("type=bind,target=/x,rw", lambda v: v).readonly
    s = runmounts.parse("type=secret,id=tok,required", lambda v: v)
    assert (s.target, s.required) == ("/run/secrets/tok", True)
    assert runmounts.parse("type=secret,target=/etc/key", lambda v: v).id == "key"
    for bad, message in [("type=x,target=/a", 'unsupported mount type "x"'),
                         ("type=cache,target=/a,sharing=all", 'unsupported sharing value "all"'),
                         ("type=bind,target=/a,required", "unexpected key 'required' for mount type 'bind'"),
                         ("type=bind,target=/a,mode=1", 'mode not allowed for "bind" type mounts'),
                         ("type=secret,from=x,id=a", "secret mount should not have a from"),
                         ("type=tmpfs,target=/a,what=1", "unexpected key 'what' in 'what=1'"),
                         ("type=cache,target=/a,uid=x", "invalid value x for uid"),
                         ("type=cache,target=/a,bogus", "invalid field 'bogus' must be a key=value pair")]:
        with pytest.raises(runmounts.MountError) as info:
            runmounts.parse(bad, lambda v: v)
        assert str(info.value) == message
    a = runmounts.parse("type=cache,target=/a", lambda v: v)
    assert a.key() != runmounts.parse("type=cache,target=/a,mode=0700", lambda v: v).key()


def test_platforms():
    here = platforms.host()
    assert platforms.parse("linux/x86_64") == platforms.Platform("linux", "amd64")
    assert platforms.parse("linux/arm64/v8") == platforms.Platform("linux", "arm64")
    assert str(platforms.parse("linux/arm/v7")) == "linux/arm/v7"
    assert platforms.runnable(str(here)) == here
    with pytest.raises(platforms.PlatformError):
        platforms.runnable("windows/amd64")
    args = platforms.args(here, here)
    assert args["TARGETPLATFORM"] == str(here) and args["BUILDOS"] == "linux" and set(args) == set(platforms.ARG_NAMES)


def test_needed_stages():
    _, st = split_stages(parse(
        "ARG SRC=b\nFROM busybox AS a\nFROM a AS b\nFROM busybox AS unused\nFROM busybox AS c\n"
        "COPY --from=${SRC} /x /x\nRUN --mount=from=d,target=/d true\nFROM busybox AS d\nFROM c AS last\n"
        "COPY --from=0 /y /y\n"))
    names = [s.name for s in st]
    expand = lambda ref: ref.replace("${SRC}", "b")   # noqa: E731
    # COPY --from and --mount from= may name a later stage (d); FROM only an earlier one
    assert [names[i] for i in stages.needed(st, len(st) - 1, expand)] == ["a", "b", "c", "d", "last"]
    assert [names[i] for i in stages.needed(st, names.index("unused"), expand)] == ["unused"]
    # a named context standing in for stage c: what c reads is not built
    assert [names[i] for i in stages.needed(st, len(st) - 1, expand, {names.index("c")})] == ["a", "c", "last"]
    _, loop = split_stages(parse("FROM busybox AS x\nCOPY --from=y /a /a\nFROM busybox AS y\nCOPY --from=x /b /b\n"))
    with pytest.raises(stages.StageError, match="circular dependency detected on stage: y"):
        stages.needed(loop, 1, lambda r: r)
    _, bad = split_stages(parse("FROM busybox\nCOPY --from=5 /a /a\n"))
    with pytest.raises(stages.StageError, match="invalid stage index 5"):
        stages.needed(bad, 0, lambda r: r)
