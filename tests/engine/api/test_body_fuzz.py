"""Property-based: every JSON body route of the Engine API description, fed bodies generated from the
description's own types, against a real daemon over its socket.

- Wrong types (a field somewhere in the body, or the whole body, of a JSON kind its Go type cannot hold)
  are refused with 400 and Go's decoder words, before any handler runs.
- Well-typed random bodies on the routes where that is safe here never get a 5xx (but the swarm routes'
  503 "not a swarm manager" and a cluster volume update's 503, dockerd's answers outside a swarm).
- The daemon logs no traceback for any of it.

Bounded: EXAMPLES per route, no shrinking database, loopback only."""
from __future__ import annotations

import json
import re
import socket
from collections import Counter

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pyd.daemon.api.body_schema import DEFS, ROUTES  # noqa: E402

pytestmark = pytest.mark.slow

WRONG_EXAMPLES = 150
TYPED_EXAMPLES = 60
MAX_DEPTH = 5
# well-typed bodies would reach out of the loopback (a registry login, a plugin pull, a swarm to join) or
# start processes (an exec's start streams): only their wrong types are fuzzed
UNSAFE_WHEN_WELL_TYPED = {"POST /auth", "POST /plugins/pull", "POST /plugins/{name}/upgrade", "POST /swarm/join",
                          "POST /swarm/init", "POST /exec/{id}/start"}
# fields drawn from narrower values in the well-typed bodies, so that they get past the first checks
NAME = st.from_regex(r"fz[a-z0-9]{1,8}", fullmatch=True)
PINNED = {"POST /containers/create": {"Image": st.just("busybox:latest"), "Cmd": st.just(["true"])},
          "POST /containers/{id}/exec": {"Cmd": st.just(["true"])},
          "POST /networks/create": {"Driver": st.just("bridge"), "Name": NAME},
          "POST /networks/{id}/connect": {"Container": st.just("fz")},
          "POST /networks/{id}/disconnect": {"Container": st.just("fz")},
          "POST /volumes/create": {"Driver": st.just("local"), "Name": NAME}}
SWARM = re.compile(r"^(POST /(swarm|services|secrets|configs|nodes)/|PUT /volumes/)")


# ------------------------------------------------------------------------------------------ the daemon side

def post(sock: str, method: str, path: str, body: bytes) -> tuple[int, str]:
    """One request on its own connection; (status, the error message, the ID made, or the body's text)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(sock)
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: pyd\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        doc = json.loads(rest)
        text = doc.get("message") or doc.get("Id", "")
    except (ValueError, AttributeError):
        text = rest[:200].decode(errors="replace")
    return status, text


@pytest.fixture(scope="module")
def targets(daemon, busybox):
    """What the routes' path parameters name: a running container, a network, an exec."""
    daemon.pyd("run", "-d", "--name", "fz", busybox, "sleep", "1000", check=True)
    daemon.pyd("network", "create", "fznet", check=True)
    cid = daemon.pyd("inspect", "-f", "{{.Id}}", "fz", check=True).stdout.strip()
    status, exec_id = post(daemon.sock, "POST", "/containers/fz/exec", json.dumps({"Cmd": ["true"]}).encode())
    assert status == 201
    yield {"/containers/{id}": cid, "/networks/{id}": "fznet", "/exec/{id}": exec_id}
    daemon.pyd("rm", "-f", "fz")


def served(daemon, route: str, targets: dict[str, str]) -> tuple[str, str]:
    """The route's method and URL; skips a route this daemon does not serve."""
    method, path = url(route, targets)
    if post(daemon.sock, method, path, b"") == (404, "page not found"):
        pytest.skip(f"{route} is not served")
    return method, path


def url(route: str, targets: dict[str, str]) -> tuple[str, str]:
    method, path = route.split(" ", 1)
    for prefix, name in targets.items():
        path = path.replace(prefix, prefix.replace("{id}", name))
    path = path.replace("{id}", "x").replace("{name}", "x")
    query = {"/commit": "?container=fz", "/plugins/pull": "?remote=x", "/plugins/x/upgrade": "?remote=x",
             "/nodes/x/update": "?version=1", "/services/x/update": "?version=1",
             "/secrets/x/update": "?version=1", "/configs/x/update": "?version=1", "/swarm/update": "?version=1"}
    return method, path + query.get(path, "")


# ------------------------------------------------------------------------------------------ bodies from types

KEYS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=24)
SCALARS = {"string": TEXT, "number": st.integers(-10**6, 10**6) | st.floats(-1e6, 1e6, allow_nan=False),
           "bool": st.booleans(), "array": st.lists(TEXT, max_size=2), "object": st.dictionaries(KEYS, TEXT, max_size=2)}


def _kinds(*names: str) -> st.SearchStrategy:
    return st.one_of(*(SCALARS[n] for n in names))


def wrong(td: tuple, depth: int = 0) -> st.SearchStrategy | None:
    """Values that type `td` (body_schema's shape) cannot hold; None when every value fits it."""
    kind = td[0]
    if kind == "any":
        return None
    if kind == "s":
        return _kinds("number", "bool", "array", "object")
    if kind == "b":
        return _kinds("number", "string", "array", "object")
    if kind == "f":
        return _kinds("string", "bool", "array", "object")
    if kind == "i":
        lo, hi = td[2], td[3]
        return (_kinds("string", "bool", "array", "object") | st.integers(hi + 1, hi + 10**20)
                | st.integers(lo - 10**20, lo - 1) | st.floats(-1e6, 1e6).filter(lambda f: f != int(f)))
    if kind == "ss":
        return _kinds("number", "bool", "object") | st.lists(_kinds("number", "bool", "object"), min_size=1, max_size=2)
    outer = {"a": _kinds("string", "number", "bool", "object"), "m": _kinds("string", "number", "bool", "array"),
             "o": _kinds("string", "number", "bool", "array")}[kind]
    if depth >= MAX_DEPTH:
        return outer
    if kind == "a":
        inner = wrong(td[1], depth + 1)
        return outer if inner is None else outer | st.lists(inner, min_size=1, max_size=2)
    if kind == "m":
        inner = wrong(td[1], depth + 1)
        return outer if inner is None else outer | st.dictionaries(KEYS, inner, min_size=1, max_size=2)
    fields = {name: w for name, ftd in DEFS[td[1]][2].items() if (w := wrong(ftd, depth + 1)) is not None}
    if not fields:
        return outer
    one_field = st.sampled_from(sorted(fields)).flatmap(
        lambda name: st.tuples(st.sampled_from([name, name.lower(), name.upper()]), fields[name]))
    return outer | one_field.map(lambda kv: {kv[0]: kv[1]})


def typed(td: tuple, depth: int = 0) -> st.SearchStrategy:
    """Values of type `td`, contents random."""
    kind = td[0]
    if kind == "s":
        return TEXT
    if kind == "b":
        return st.booleans()
    if kind == "f":
        return st.floats(-1e9, 1e9, allow_nan=False)
    if kind == "i":
        lo, hi = td[2], td[3]
        return st.sampled_from([lo, hi, 0, -1, 1]).filter(lambda v: lo <= v <= hi) | st.integers(max(lo, -2**40),
                                                                                                 min(hi, 2**40))
    if kind == "ss":
        return TEXT | st.lists(TEXT, max_size=3)
    if kind == "any" or depth >= MAX_DEPTH:
        return st.none()
    if kind == "a":
        return st.none() | st.lists(typed(td[1], depth + 1), max_size=2)
    if kind == "m":
        return st.none() | st.dictionaries(KEYS, typed(td[1], depth + 1), max_size=2)
    fields = DEFS[td[1]][2]
    return st.fixed_dictionaries({}, optional={name: typed(ftd, depth + 1) for name, ftd in fields.items()})


def wrong_body(route: str) -> st.SearchStrategy:
    td = ROUTES[route]
    strategy = wrong(td)
    assert strategy is not None
    return strategy


# ------------------------------------------------------------------------------------------ the properties

FUZZ = settings(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_wrong_types_are_refused_with_gos_words(daemon, targets, route):
    method, path = served(daemon, route, targets)
    began = daemon.log_size()
    seen: list[tuple[int, str]] = []

    @settings(FUZZ, max_examples=WRONG_EXAMPLES)
    @given(wrong_body(route))
    def check(body):
        status, text = post(daemon.sock, method, path, json.dumps(body).encode())
        seen.append((status, text))
        assert status == 400 and text.startswith("json: cannot unmarshal "), (route, body, status, text)

    check()
    print(f"\nfuzz {route}: {len(seen)} wrong-typed bodies, answers {dict(Counter(status for status, _ in seen))}")
    assert seen and "Traceback" not in daemon.log_text(began)


TYPED = sorted(set(ROUTES) - UNSAFE_WHEN_WELL_TYPED)


@pytest.mark.parametrize("route", TYPED)
def test_well_typed_bodies_never_get_a_5xx(daemon, targets, route):
    method, path = served(daemon, route, targets)
    began = daemon.log_size()
    seen: list[int] = []
    texts: list[str] = []

    @settings(FUZZ, max_examples=TYPED_EXAMPLES)
    @given(st.tuples(typed(ROUTES[route]), st.fixed_dictionaries(PINNED.get(route, {}))))
    def check(drawn):
        body, pinned = drawn
        if isinstance(body, dict):
            body.update(pinned)
        status, text = post(daemon.sock, method, path, json.dumps(body).encode())
        seen.append(status)
        texts.append(text)
        if SWARM.match(route) and status == 503:
            assert "swarm" in text
            return
        assert status < 500, (route, body, status, text)

    check()
    print(f"\nfuzz {route}: {len(seen)} well-typed bodies, answers {dict(Counter(seen))}",
          Counter(texts).most_common(3))
    assert seen and "Traceback" not in daemon.log_text(began)
