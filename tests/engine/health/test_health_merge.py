"""The container's Healthcheck merged with the image's HEALTHCHECK field by field, as dockerd's merge()."""
from __future__ import annotations

import json

import pytest

from test_health import wait_status

SECOND = 1_000_000_000


@pytest.fixture(scope="module")
def hc_image(daemon, busybox, tmp_path_factory):
    ctx = tmp_path_factory.mktemp("hc-ctx")
    (ctx / "Dockerfile").write_text(f"FROM {busybox}\n"
                                    "HEALTHCHECK --interval=100ms --timeout=3s --retries=2 --start-period=7s "
                                    "CMD echo from-image\n")
    r = daemon.docker("build", "-q", "-t", "hc-image:latest", str(ctx))
    assert r.returncode == 0, r.describe()
    yield "hc-image:latest"
    daemon.docker("rmi", "-f", "hc-image:latest")


def healthcheck(daemon, ref: str) -> dict | None:
    return json.loads(daemon.docker("inspect", ref, check=True).stdout)[0]["Config"].get("Healthcheck")


def test_image_healthcheck_is_inherited_and_runs(daemon, hc_image):
    daemon.docker("run", "-d", "--name", "hcm-plain", hc_image, "sleep", "300", check=True)
    try:
        hc = healthcheck(daemon, "hcm-plain")
        assert hc["Test"] == ["CMD-SHELL", "echo from-image"]
        assert (hc["Interval"], hc["Timeout"], hc["Retries"], hc["StartPeriod"]) == (SECOND // 10, 3 * SECOND, 2,
                                                                                    7 * SECOND)
        h = wait_status(daemon, "hcm-plain", "healthy")
        assert h["Log"][-1]["Output"] == "from-image\n"
    finally:
        daemon.docker("rm", "-f", "hcm-plain")


def test_flags_without_cmd_keep_the_image_test(daemon, hc_image):
    # --health-retries alone: Test and the other durations come from the image
    daemon.docker("create", "--name", "hcm-retries", "--health-retries", "5", hc_image, "sleep", "300", check=True)
    try:
        hc = healthcheck(daemon, "hcm-retries")
        assert hc["Test"] == ["CMD-SHELL", "echo from-image"] and hc["Retries"] == 5
        assert hc["Interval"] == SECOND // 10 and hc["Timeout"] == 3 * SECOND and hc["StartPeriod"] == 7 * SECOND
    finally:
        daemon.docker("rm", "-f", "hcm-retries")
    # --health-cmd replaces the test; zero durations still inherit (docker-py, through the API)
    c = daemon.api.containers.create(hc_image, ["sleep", "300"], name="hcm-cmd",
                                     healthcheck={"test": ["CMD", "true"], "timeout": 2 * SECOND})
    try:
        hc = healthcheck(daemon, c.id)
        assert hc["Test"] == ["CMD", "true"] and hc["Timeout"] == 2 * SECOND
        assert hc["Interval"] == SECOND // 10 and hc["Retries"] == 2
    finally:
        c.remove(force=True)


def test_no_healthcheck_disables_the_image_one(daemon, hc_image):
    daemon.docker("run", "-d", "--name", "hcm-none", "--no-healthcheck", hc_image, "sleep", "300", check=True)
    try:
        assert healthcheck(daemon, "hcm-none")["Test"] == ["NONE"]
        state = json.loads(daemon.docker("inspect", "hcm-none", check=True).stdout)[0]["State"]
        assert "Health" not in state
        assert "health" not in daemon.docker("ps", "--filter", "name=hcm-none", "--format", "{{.Status}}").stdout
    finally:
        daemon.docker("rm", "-f", "hcm-none")
