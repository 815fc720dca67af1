"""Daemon-side rules that need no running daemon: config merging, Docker's create-time merges, logs, paths."""
from __future__ import annotations

import json
import os

import pytest

from pyd.daemon import config as daemon_config
from pyd.daemon.containers.model import merge_env
from pyd.daemon.containers.service import entrypoint_and_args, merge_image_config, parse_signal
from pyd.daemon.errors import BadParameter
from pyd.daemon.containers.logs import LogReader
from pyd.daemon.storage.rootpath import resolve_in_root
from pyd.daemon.api.validate import check_body


def test_flags_and_file_conflict(tmp_path):
    cfg_file = tmp_path / "daemon.json"
    cfg_file.write_text(json.dumps({"debug": False, "data-root": str(tmp_path / "d")}))
    with pytest.raises(daemon_config.ConfigError) as info:
        daemon_config.parse(["--config-file", str(cfg_file), "--debug"])
    assert str(info.value) == ("the following directives are specified both as a flag and in the configuration "
                               "file: debug: (from flag: true, from file: false)")
    cfg = daemon_config.parse(["--config-file", str(cfg_file), "-H", "unix:///tmp/x.sock"])
    assert cfg.data_root == str(tmp_path / "d") and cfg.hosts == ["unix:///tmp/x.sock"]


def test_unknown_config_key(tmp_path):
    cfg_file = tmp_path / "daemon.json"
    cfg_file.write_text('{"no-such-option": 1}')
    with pytest.raises(daemon_config.ConfigError, match="don't match any configuration option: no-such-option"):
        daemon_config.parse(["--config-file", str(cfg_file)])


def test_defaults_and_driver_env(monkeypatch, tmp_path):
    monkeypatch.setenv("PYD_DRIVER", "vfs")
    cfg = daemon_config.parse([])
    assert cfg.storage_driver == "vfs"
    assert cfg.hosts == ["unix:///var/run/pyd.sock"] and cfg.data_root == "/var/lib/pyd"


def test_merge_image_config_rules():
    image = {"Env": ["PATH=/bin", "A=img"], "Cmd": ["sh"], "Entrypoint": None, "WorkingDir": "/srv",
             "Labels": {"from": "image"}}
    cfg = merge_image_config({"Image": "x", "Env": ["A=user", "B=2", "C"], "Labels": {"mine": "1"}}, image)
    # dockerd's merge(): the user's entries as given (a bare key kept), then the image's not named
    assert cfg["Env"] == ["A=user", "B=2", "C", "PATH=/bin"]
    assert cfg["Cmd"] == ["sh"] and cfg["WorkingDir"] == "/srv"
    assert cfg["Labels"] == {"from": "image", "mine": "1"}
    # an entrypoint given by the user drops the image's Cmd
    image2 = {"Entrypoint": ["/entry"], "Cmd": ["--default"]}
    cfg2 = merge_image_config({"Image": "x", "Entrypoint": ["/mine"]}, image2)
    assert entrypoint_and_args(cfg2) == ("/mine", [])
    cfg3 = merge_image_config({"Image": "x", "Cmd": ["arg"]}, image2)
    assert entrypoint_and_args(cfg3) == ("/entry", ["arg"])
    # --entrypoint "" resets the image's entrypoint
    cfg4 = merge_image_config({"Image": "x", "Entrypoint": [""], "Cmd": ["echo", "hi"]}, image2)
    assert entrypoint_and_args(cfg4) == ("echo", ["hi"])
    assert merge_image_config({"Image": "x", "Cmd": "echo hi"}, {})["Cmd"] == ["echo hi"]


def test_merge_env_removes_bare_keys():
    assert merge_env(["A=1", "B=2"], ["B", "C=3"]) == ["A=1", "C=3"]


def test_parse_signal():
    assert parse_signal("KILL") == 9 and parse_signal("SIGTERM") == 15 and parse_signal("2") == 2
    with pytest.raises(BadParameter, match="Invalid signal: NOPE"):
        parse_signal("NOPE")


def test_create_body_type_errors():
    with pytest.raises(BadParameter, match="ContainerConfigWrapper.Cmd of type string"):
        check_body("POST /containers/create", {"Image": "x", "Cmd": 5})
    with pytest.raises(BadParameter, match="HostConfig.HostConfig.AutoRemove of type bool"):
        check_body("POST /containers/create", {"Image": "x", "HostConfig": {"AutoRemove": "yes"}})
    check_body("POST /containers/create", {"Image": "x", "Cmd": "sh", "Unknown": object.__name__})


def test_log_tail(tmp_path):
    path = tmp_path / "c-json.log"
    lines = [json.dumps({"log": f"line {i}\n", "stream": "stdout", "time": "2026-01-01T00:00:00Z"})
             for i in range(1000)]
    path.write_text("\n".join(lines) + "\n" + '{"log":"torn')
    reader = LogReader(str(path))
    reader.skip_to_tail(3)
    assert [e.data for e in reader.read_new()] == [b"line 997\n", b"line 998\n", b"line 999\n"]
    with open(path, "a") as f:
        f.write('\\n","stream":"stderr","time":"2026-01-01T00:00:01Z"}\n')
    assert [(e.stream, e.data) for e in reader.read_new()] == [(2, b"torn\n")]
    zero = LogReader(str(path))
    zero.skip_to_tail(0)
    assert list(zero.read_new()) == []


def test_resolve_in_root_never_escapes(tmp_path):
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    os.symlink("/", root / "etc")
    os.symlink("../../../..", root / "real" / "up")
    assert resolve_in_root(str(root), "/etc/passwd") == str(root / "passwd")
    assert resolve_in_root(str(root), "/real/up/x") == str(root / "x")
    assert resolve_in_root(str(root), "../../x") == str(root / "x")


def test_prune_until_as_dockerds_get_timestamp():
    import time
    from pyd.daemon.api.util import until_filter
    now = time.time()
    assert now - 3600 - 1 <= until_filter("1h") <= now - 3600      # whole seconds, as dockerd's Unix()
    assert now - 5400 - 1 <= until_filter("1h30m") <= now - 5400
    assert until_filter("1700000000") == 1700000000.0 and until_filter("1700000000.5") == 1700000000.5
    assert until_filter("0") == 0.0                                # "0" is a timestamp, not a duration
    assert until_filter("2024-05-01T10:00:00Z") == 1714557600.0
    with pytest.raises(BadParameter) as info:
        until_filter("bogus")
    assert info.value.message == 'failed to parse value as time or duration: "bogus"'
