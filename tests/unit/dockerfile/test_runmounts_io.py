"""RUN --mount's file side without a daemon: secret files, cache directories (sharing modes, first-use
ownership), prune of the cache mounts no build holds, rw binds as throw-away copies."""
from __future__ import annotations

import asyncio
import os
import stat

import pytest

from pyd.daemon.build import runmounts


def _mounted(tmp_path, specs, secrets=None):
    ctx = tmp_path / "ctx"
    (ctx / "data").mkdir(parents=True, exist_ok=True)
    (ctx / "data" / "f.txt").write_text("ctx\n")
    (tmp_path / "tmp").mkdir(exist_ok=True)

    async def no_root(ref):
        raise AssertionError("no from= here")
    mounts = [runmounts.parse(s, lambda v: v) for s in specs]
    return runmounts.Mounted(mounts, context=str(ctx), data_root=str(tmp_path / "root"), tmp=str(tmp_path / "tmp"),
                             secrets=secrets or {}, open_root=no_root)


def test_secret_file_and_missing_secrets(tmp_path):
    async def run():
        async with _mounted(tmp_path, ["type=secret,id=tok,uid=5,mode=0440", "type=secret,id=absent"],
                            {"tok": b"s3cret"}) as api:
            assert len(api) == 1 and api[0]["Target"] == "/run/secrets/tok" and api[0]["ReadOnly"]
            st = os.stat(api[0]["Source"])
            assert open(api[0]["Source"], "rb").read() == b"s3cret"
            assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o440, 5)
            source = api[0]["Source"]
        assert not os.path.exists(source)            # gone after the step
        with pytest.raises(runmounts.MountError, match="secret absent: not found"):
            async with _mounted(tmp_path, ["type=secret,id=absent,required=true"]):
                pass
    asyncio.run(run())


def test_cache_dirs_sharing_and_prune(tmp_path):
    async def run():
        async with _mounted(tmp_path, ["type=cache,target=/c,uid=7,mode=0750"]) as api:
            first = api[0]["Source"]
            st = os.stat(first)
            assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o750, 7)
            open(os.path.join(first, "kept"), "w").write("x")
            async with _mounted(tmp_path, ["type=cache,target=/c"]) as shared:
                assert shared[0]["Source"] == first          # shared: the same directory at once
            async with _mounted(tmp_path, ["type=cache,target=/c,sharing=private"]) as private:
                assert private[0]["Source"] != first         # private: another one while the first is held
            runmounts.prune_cache_mounts(str(tmp_path / "root"))
            assert os.path.exists(os.path.join(first, "kept"))   # held: prune leaves it
        async with _mounted(tmp_path, ["type=cache,target=/c"]) as again:
            assert os.path.exists(os.path.join(again[0]["Source"], "kept"))   # persists between steps
        assert runmounts.prune_cache_mounts(str(tmp_path / "root")) >= 1
        async with _mounted(tmp_path, ["type=cache,target=/c"]) as after:
            assert os.listdir(after[0]["Source"]) == []
    asyncio.run(run())


def test_rw_bind_is_a_copy(tmp_path):
    async def run():
        async with _mounted(tmp_path, ["type=bind,source=data,target=/d,rw", "type=bind,target=/ro"]) as api:
            rw, ro = api
            assert not rw["ReadOnly"] and ro["ReadOnly"] and ro["Source"] == str(tmp_path / "ctx")
            open(os.path.join(rw["Source"], "f.txt"), "w").write("changed")
        assert (tmp_path / "ctx" / "data" / "f.txt").read_text() == "ctx\n"
        with pytest.raises(runmounts.MountError, match='"/nope": not found'):
            async with _mounted(tmp_path, ["type=bind,source=nope,target=/x"]):
                pass
    asyncio.run(run())
