"""The client's pure parts (templates, tables, units, flag parsing, create bodies) and its command-line
behaviour without a daemon (messages and exit codes, as the docker 28 CLI's)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyd.client import flags
from pyd.client.commands.container import (SPECS as CONTAINER_SPECS, ContainerRow, PS_HEADERS, PS_TABLE,
                               build_create_request, displayable_ports, familiar_reference, read_env_file,
                               run_status_error)
from pyd.client.formatting import FormatError, api_timestamp, ellipsis, render, tabwrite
from pyd.client.commands.image import IMAGE_HEADERS, IMAGES_TABLE, image_rows, split_reference
from pyd.client.commands.system import format_event
from pyd.client.gotemplate import Template, TemplateExecError, TemplateParseError, go_quote

REPO = Path(__file__).resolve().parents[3]
NOW = 1_800_000_000.0

INSPECTED = {
    "Id": "656dc6c212bd47767eac27bec1c707b2828e57b7e6305e8906d223720231b70b",
    "Name": "/web",
    "State": {"Status": "running", "Running": True, "Pid": 4242, "ExitCode": 0},
    "Config": {"Labels": {"tier": "web", "a": "b"}, "Cmd": ["sh", "-c", "sleep 1"], "Env": None},
}


# ---------------------------------------------------------------- template engine

@pytest.mark.parametrize("text, expected", [
    ("{{.Name}}", "/web"),
    ("{{.State.Pid}} {{.State.Running}}", "4242 true"),
    ("{{json .Config.Labels}}", '{"tier":"web","a":"b"}'),
    ('{{index .Config.Labels "tier"}}', "web"),
    ('{{index .Config.Labels "missing"}}', ""),
    ("{{range .Config.Cmd}}[{{.}}]{{end}}", "[sh][-c][sleep 1]"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "a=b;tier=web;"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ('{{if eq .State.Status "exited"}}x{{else if eq .State.Status "running"}}R{{else}}?{{end}}', "R"),
    ('{{join .Config.Cmd ","}}', "sh,-c,sleep 1"),
    ("{{upper .State.Status}} {{lower .Name}}", "RUNNING /web"),
    ("{{println .Name}}", "/web\n"),
    ("{{.Config.Cmd}}", "[sh -c sleep 1]"),
    ("{{.Config.Labels}}", "map[a:b tier:web]"),
    ("{{.Config.Labels.nolabel}}", "<no value>"),
    ("{{.Config.Env}}", "<nil>"),
    ("{{with .State}}{{.Status}}{{end}}", "running"),
    ('{{.Name | printf "%s!"}}', "/web!"),
    ("a {{- \" b \" -}} c", "a b c"),
    ("{{len .Config.Cmd}}", "3"),
    ("{{/* a comment */}}x", "x"),
])
def test_template_renders_like_go(text, expected):
    assert Template(text).execute(INSPECTED) == expected


@pytest.mark.parametrize("text, message", [
    ("{{.Name", "template: :1: unclosed action"),
    ("{{foo .Name}}", 'template: :1: function "foo" not defined'),
    ("{{if .Name}}", "template: :1: unexpected EOF"),
    ("{{end}}", "template: :1: unexpected {{end}}"),
])
def test_template_parse_errors_use_go_wording(text, message):
    with pytest.raises(TemplateParseError) as err:
        Template(text)
    assert str(err.value) == message


def test_template_missing_struct_field_is_an_error():
    with pytest.raises(TemplateExecError) as err:
        Template("{{.Nam}}").execute(INSPECTED)
    assert str(err.value) == 'template: :1:2: executing "" at <.Nam>: map has no entry for key "Nam"'


def test_template_unknown_field_of_a_ps_row():
    row = ContainerRow({"Id": "abc"}, now=NOW)
    with pytest.raises(TemplateExecError) as err:
        Template("{{.Foo}}").execute(row)
    assert str(err.value) == ('template: :1:2: executing "" at <.Foo>: '
                              "can't evaluate field Foo in type *formatter.ContainerContext")


# ---------------------------------------------------------------- quoting, times

def test_command_quoting_and_ellipsis():
    assert go_quote(ellipsis("sh -c 'echo hello world this is long'", 20)) == "\"sh -c 'echo hello w…\""
    assert go_quote('a"b\\c\n') == '"a\\"b\\\\c\\n"'


def test_api_timestamps():
    assert api_timestamp("1795880902.5") == "1795880902.5"
    assert api_timestamp("10m", now=NOW) == f"{int(NOW) - 600}.000000000"
    assert api_timestamp("2026-01-02T03:04:05Z") == "1767323045.000000000"
    with pytest.raises(ValueError, match='failed to parse value as time or duration: "bogus"'):
        api_timestamp("bogus")


def test_api_timestamps_without_a_zone_are_local(monkeypatch):
    import time
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert api_timestamp("2026-01-02T03:04:05") == "1767303245.000000000"
        assert api_timestamp("2026-01-02") == "1767292200.000000000"
        assert api_timestamp("2026-01-02T03") == "1767303000.000000000"
        assert api_timestamp("2026-01-02T03:04") == "1767303240.000000000"
        assert api_timestamp("2026-01-02T03:04:05.5+01:00") == "1767319445.500000000"
        with pytest.raises(ValueError, match="failed to parse value as time or duration"):
            api_timestamp("2026-13-02")
    finally:
        monkeypatch.undo()
        time.tzset()


def test_event_line_as_docker_prints_it():
    event = {"Type": "container", "Action": "die", "timeNano": 1795880905607107531,
             "Actor": {"ID": "6821eeac0245", "Attributes": {"name": "bold", "exitCode": "0", "image": "busybox"}}}
    line = format_event(event)
    assert line.endswith(".607107531Z container die 6821eeac0245 (exitCode=0, image=busybox, name=bold)\n")


# ---------------------------------------------------------------- tables

def _container(cid: str, name: str, command: str, created: float, status: str, **extra) -> dict:
    return {"Id": cid * 8, "Names": [f"/{name}"], "Image": "busybox", "ImageID": "sha256:" + "e" * 64,
            "Command": command, "Created": created, "Status": status, "State": "running", "Ports": [],
            "Labels": extra.pop("Labels", {}), **extra}


def test_ps_table_matches_docker_layout():
    rows = [ContainerRow(_container("2dc15b8d", "c2", "sh -c 'echo hello world this is long'", NOW - 0.5,
                                    "Created"), now=NOW),
            ContainerRow(_container("47e028f5", "c1", "sleep 1000", NOW - 75, "Up About a minute"), now=NOW)]
    assert render(PS_TABLE, rows, PS_HEADERS).splitlines() == [
        "CONTAINER ID   IMAGE     COMMAND                  CREATED                  STATUS              PORTS     NAMES",
        "2dc15b8d2dc1   busybox   \"sh -c 'echo hello w…\"   Less than a second ago   Created                       c2",
        "47e028f547e0   busybox   \"sleep 1000\"             About a minute ago       Up About a minute             c1",
    ]


def test_ps_table_without_rows_is_the_header():
    assert render(PS_TABLE, [], PS_HEADERS) == \
        "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"


def test_ps_custom_template_and_labels():
    row = ContainerRow(_container("abcdef12", "web", "x", NOW, "Up", Labels={"b": "2", "a": "1"}), now=NOW)
    assert render('{{.Names}} {{.Labels}} {{.Label "b"}}', [row], PS_HEADERS) == "web a=1,b=2 2\n"
    assert render("table {{.ID}}\\t{{.Names}}", [row], PS_HEADERS) == \
        "CONTAINER ID   NAMES\nabcdef12abcd   web\n"
    with pytest.raises(FormatError, match="^failed to parse template: template: :1: unclosed action$"):
        render("{{.ID", [row], PS_HEADERS)


def test_ps_json_format_has_docker_keys():
    import json
    row = ContainerRow(_container("abcdef12", "web", "x", NOW - 5, "Up 4 seconds"), now=NOW)
    doc = json.loads(render("json", [row], PS_HEADERS))
    assert list(doc) == sorted(doc)
    assert doc["ID"] == "abcdef12abcd" and doc["RunningFor"] == "5 seconds ago" and doc["Command"] == '"x"'


def test_ports_display():
    ports = [{"PrivatePort": 80, "PublicPort": 8080, "IP": "0.0.0.0", "Type": "tcp"},
             {"PrivatePort": 53, "Type": "udp"}, {"PrivatePort": 8000, "Type": "tcp"},
             {"PrivatePort": 8001, "Type": "tcp"}]
    assert displayable_ports(ports) == "53/udp, 8000-8001/tcp, 0.0.0.0:8080->80/tcp"


def test_images_rows_and_table():
    images = [{"Id": "sha256:" + "eb6bc440" * 8, "RepoTags": ["busybox:latest", "bb:1"], "RepoDigests": [],
               "Created": NOW - 9, "Size": 1_982_464},
              {"Id": "sha256:" + "1" * 64, "RepoTags": [], "RepoDigests": [], "Created": NOW - 7200, "Size": 0}]
    rows = image_rows(images, trunc=True, show_digests=False, now=NOW)
    assert render(IMAGES_TABLE, rows, IMAGE_HEADERS).splitlines() == [
        "REPOSITORY   TAG       IMAGE ID       CREATED         SIZE",
        "bb           1         eb6bc440eb6b   9 seconds ago   1.98MB",
        "busybox      latest    eb6bc440eb6b   9 seconds ago   1.98MB",
        "<none>       <none>    111111111111   2 hours ago     0B",
    ]


def test_tabwriter_blocks_align_per_column():
    assert tabwrite("a\tbb\tc\nlonger\tx\ty\n") == "a         bb        c\nlonger    x         y\n"


def test_references():
    assert split_reference("localhost:5000/a/b:v1") == ("localhost:5000/a/b", "v1", "")
    assert familiar_reference("busybox") == "busybox:latest"
    assert familiar_reference("docker.io/library/busybox:1") == "busybox:1"
    with pytest.raises(ValueError, match=r"repository name \(library/Bad\) must be lowercase"):
        split_reference("Bad:x")


# ---------------------------------------------------------------- flags and create bodies

def _parse(command: str, argv: list[str]):
    spec = CONTAINER_SPECS[command]
    opts, args, _ = flags.parse(spec, argv)
    flags.check_args(spec, f"pyd {command}", args)
    return opts, args


def test_run_flags_stop_at_the_image():
    opts, args = _parse("run", ["-it", "--rm", "-eA=1", "--name=web", "busybox", "sh", "-c", "ls -l", "--rm"])
    assert opts.interactive and opts.tty and opts.rm and opts.env == ["A=1"] and opts.name == "web"
    assert args == ["busybox", "sh", "-c", "ls -l", "--rm"]


def test_bool_flag_values_and_interspersed_flags():
    opts, _ = _parse("run", ["--sig-proxy=false", "busybox"])
    assert opts.sig_proxy is False
    opts, args = _parse("rm", ["a", "-f", "b"])
    assert opts.force and args == ["a", "b"]


@pytest.mark.parametrize("argv, message", [
    (["--bogus"], "unknown flag: --bogus"),
    (["-z"], "unknown shorthand flag: 'z' in -z"),
    (["-e"], "flag needs an argument: 'e' in -e"),
    (["--name"], "flag needs an argument: --name"),
    (["-e", "=x", "busybox"], 'invalid argument "=x" for "-e, --env" flag: invalid environment variable: =x'),
])
def test_flag_errors(argv, message):
    with pytest.raises(flags.FlagError) as err:
        flags.parse(CONTAINER_SPECS["run"], argv)
    assert str(err.value) == message


def test_env_without_value_comes_from_our_environment(monkeypatch):
    monkeypatch.setenv("PYD_UNIT_SET", "from-env")
    monkeypatch.delenv("PYD_UNIT_UNSET", raising=False)
    opts, _ = _parse("run", ["-e", "PYD_UNIT_SET", "-e", "PYD_UNIT_UNSET", "busybox"])
    assert opts.env == ["PYD_UNIT_SET=from-env", "PYD_UNIT_UNSET"]


def test_env_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PYD_UNIT_HOME", "/h")
    monkeypatch.delenv("PYD_UNIT_UNSET", raising=False)
    path = tmp_path / "env"
    path.write_text("# comment\n  A=1 \nPYD_UNIT_UNSET\nPYD_UNIT_HOME\n\nB=x=y\n")
    assert read_env_file(str(path)) == ["A=1 ", "PYD_UNIT_HOME=/h", "B=x=y"]
    path.write_text("A B=1\n")
    with pytest.raises(ValueError, match=r"variable 'A B' contains whitespaces"):
        read_env_file(str(path))
    with pytest.raises(ValueError, match="^open /nonexistent/env: no such file or directory$"):
        read_env_file("/nonexistent/env")


def test_create_body(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("FROM_FILE=1\n")
    opts, args = _parse("run", ["--env-file", str(env_file), "-e", "X=2", "-l", "a=b", "-l", "flag",
                                "--network", "none", "-w", "/tmp", "-u", "nobody", "--entrypoint", "",
                                "-i", "--rm", "busybox", "echo", "hi"])
    query, body = build_create_request(opts, args, for_run=True)
    assert query == {}
    assert body["Env"] == ["FROM_FILE=1", "X=2"] and body["Labels"] == {"a": "b", "flag": ""}
    assert body["Cmd"] == ["echo", "hi"] and body["Image"] == "busybox" and body["Entrypoint"] == [""]
    assert body["WorkingDir"] == "/tmp" and body["User"] == "nobody"
    assert body["AttachStdin"] and body["OpenStdin"] and body["StdinOnce"] and body["AttachStdout"]
    assert body["HostConfig"]["NetworkMode"] == "none" and body["HostConfig"]["AutoRemove"] is True
    assert not body["HostConfig"].get("Privileged") and not body["HostConfig"].get("ReadonlyRootfs")
    opts, args = _parse("run", ["-d", "--name", "x", "busybox"])
    query, body = build_create_request(opts, args, for_run=True)
    assert query == {"name": "x"} and body["Cmd"] is None and not body["AttachStdout"]
    assert body["HostConfig"]["NetworkMode"] == "default"


@pytest.mark.parametrize("message, status", [
    ('exec: "nosuch": executable file not found in $PATH', 127),
    ("open /x: no such file or directory", 127),
    ('exec: "/etc": permission denied', 126),
    ("No such image: x:latest", 125),
])
def test_run_exit_status_from_the_error(message, status):
    from pyd.client.common import Cli
    from pyd.client.api import APIError
    err = run_status_error(Cli(), APIError(500, message))
    assert err.status == status
    assert err.message == f"pyd: Error response from daemon: {message}\n\nRun 'pyd --help' for more information"


# ---------------------------------------------------------------- the command line, as a process

def pyd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYD_", "DOCKER_"))}
    return subprocess.run([sys.executable, "-m", "pyd", *args], cwd=REPO, capture_output=True, text=True,
                          env={**base, **(env or {})}, timeout=30)


def test_unknown_command():
    r = pyd("foo")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == "pyd: unknown command: pyd foo\n\nRun 'pyd --help' for more information\n"


def test_unknown_flag_prints_usage_and_exits_125():
    r = pyd("ps", "--bogus")
    assert r.returncode == 125
    assert r.stderr == "unknown flag: --bogus\n\nUsage:  pyd ps [OPTIONS]\n\nRun 'pyd ps --help' for more information\n"
    r = pyd("run", "-e")
    assert r.returncode == 125 and r.stderr.startswith("flag needs an argument: 'e' in -e\n\nUsage:  pyd run ")


def test_argument_count_errors_exit_1():
    r = pyd("run")
    assert r.returncode == 1
    assert r.stderr == ("pyd: 'pyd run' requires at least 1 argument\n\n"
                        "Usage:  pyd run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n"
                        "See 'pyd run --help' for more information\n")
    r = pyd("container", "ls", "extra")
    assert r.returncode == 1 and r.stderr.startswith("pyd: 'pyd container ls' accepts no arguments\n")


def test_help_lists_commands_and_command_help_exits_0():
    r = pyd("--help")
    assert r.returncode == 0 and "  run         Create and run a new container from an image" in r.stdout
    r = pyd("run", "--help")
    assert r.returncode == 0 and r.stdout.startswith("Usage:  pyd run [OPTIONS] IMAGE [COMMAND] [ARG...]\n")
    assert "  -d, --detach" in r.stdout
    r = pyd("image", "ls", "--help")
    assert r.returncode == 0 and r.stdout.startswith("Usage:  pyd image ls [OPTIONS] [REPOSITORY[:TAG]]\n")


def test_cannot_connect(tmp_path):
    host = f"unix://{tmp_path}/missing.sock"
    message = f"Cannot connect to the pyd daemon at {host}. Is the pyd daemon running?"
    r = pyd("-H", host, "ps")
    assert r.returncode == 1 and r.stderr == message + "\n"
    r = pyd("-H", host, "run", "busybox")
    assert r.returncode == 125
    assert r.stderr == f"pyd: {message}\n\nRun 'pyd run --help' for more information\n"
    r = pyd("ps", env={"PYD_HOST": host})
    assert r.returncode == 1 and r.stderr == message + "\n"


def test_version_without_daemon_prints_the_client_part(tmp_path):
    r = pyd("-H", f"unix://{tmp_path}/missing.sock", "version")
    assert r.returncode == 1
    assert r.stdout.startswith("Client:\n Version:           0.1.0\n API version:       1.47\n")
    assert "Cannot connect to the pyd daemon" in r.stderr
    assert pyd("-v").stdout == "pyd version 0.1.0\n"
