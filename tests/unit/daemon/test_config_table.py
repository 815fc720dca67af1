"""The daemon's one option table: every config field has one flag, daemon.json keys are unique, and the
defaults that --help prints are the defaults the daemon uses."""
from __future__ import annotations

import dataclasses
import re

from pyd.daemon.config import OPTIONS, DaemonConfig, help_text, parse


def test_every_config_field_has_exactly_one_option():
    fields = [f.name for f in dataclasses.fields(DaemonConfig)]
    dests = [o.dest for o in OPTIONS]
    assert sorted(dests) == sorted(fields)
    assert len({o.long for o in OPTIONS}) == len(OPTIONS)
    assert len({o.short for o in OPTIONS if o.short}) == len([o for o in OPTIONS if o.short])
    keys = [o.file_key() for o in OPTIONS if o.json]
    assert len(set(keys)) == len(keys)


def test_help_defaults_are_the_config_defaults():
    cfg = DaemonConfig()
    shown = 0
    for o in OPTIONS:
        m = re.search(r'\(default "?([^")]*)"?\)', o.help)
        if m:
            shown += 1
            assert str(getattr(cfg, o.dest)) == m.group(1), o.long
            assert f"--{o.long}" in help_text()
    assert shown >= 8


def test_each_daemon_json_key_sets_its_field(tmp_path):
    values = {"bool": True, "str": "x", "int": 7, "list": ["a"]}
    for o in OPTIONS:
        if not o.json:
            continue
        value = {"k": "v"} if o.file_type() is dict else values[o.kind]
        if o.dest == "log_level":
            value = "warn"
        if o.dest == "registry_mirrors":
            value = ["https://mirror.invalid"]
        path = tmp_path / f"{o.dest}.json"
        path.write_text('{"%s": %s}' % (o.file_key(), __import__("json").dumps(value)))
        cfg = parse(["--config-file", str(path)])
        got = getattr(cfg, o.dest)
        assert got == value or (o.dest == "registry_mirrors" and got), o.file_key()
