"""Storage fixtures: a fresh data-root per test and one parameter per graph driver of the picker, so a
new driver is tested by every contract and hostile-layer test as soon as it is in DRIVERS."""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Iterator

import pytest

from pyd.daemon.runtime import native
from pyd.daemon.storage.drivers import DRIVERS, GraphDriver
from pyd.daemon.storage.graph import Graph

from .tarkit import mounts_under


@pytest.fixture
def data_root() -> Iterator[str]:
    root = tempfile.mkdtemp(prefix="pyd-storage-", dir="/tmp")
    yield root
    for target in sorted(mounts_under(root), key=len, reverse=True):
        try:
            native.umount2(target, native.MNT_DETACH)
        except OSError:
            pass
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=list(DRIVERS))
def driver_name(request: pytest.FixtureRequest, data_root: str) -> str:
    why = DRIVERS[request.param].unusable(data_root)
    if why:
        pytest.skip(f"{request.param} cannot run here: {why}")
    return request.param


@pytest.fixture
def make_driver(driver_name: str, data_root: str):
    """A new driver object over the test's data-root (a second call: the daemon after a restart)."""
    def make() -> GraphDriver:
        return DRIVERS[driver_name](os.path.join(data_root, driver_name))
    return make


@pytest.fixture
def driver(make_driver) -> GraphDriver:
    return make_driver()


@pytest.fixture
def graph(driver_name: str, data_root: str) -> Graph:
    return Graph(data_root, driver_name)
