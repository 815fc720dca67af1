"""Bad input gets Docker's status and a {"message": ...} body, and the daemon keeps serving."""
from __future__ import annotations

import json
import socket


def raw_request(sock_path: str, data: bytes, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """Send bytes as they are; return (status, headers, body) of the response (Content-Length bodies)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0") or 0)
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, headers, body


def request(sock_path: str, method: str, path: str, body: bytes = b"", extra: str = "") -> tuple[int, dict, bytes]:
    head = (f"{method} {path} HTTP/1.1\r\nHost: pyd\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n")
    return raw_request(sock_path, head.encode() + body)


def message(body: bytes) -> str:
    return json.loads(body)["message"]


def still_serving(daemon) -> None:
    status, headers, body = request(daemon.sock, "GET", "/_ping")
    assert status == 200 and body == b"OK"
    assert headers["api-version"] == "1.47"


def test_ping_headers(daemon):
    status, headers, body = request(daemon.sock, "GET", "/v1.47/_ping")
    assert status == 200 and body == b"OK"
    assert headers["ostype"] == "linux" and "pyd" in headers["server"]
    status, headers, body = request(daemon.sock, "HEAD", "/_ping")
    assert status == 200 and body == b""


def test_malformed_json(daemon):
    status, headers, body = request(daemon.sock, "POST", "/v1.47/containers/create", b'{"Image": "busybox",')
    assert status == 400 and headers["content-type"].startswith("application/json")
    assert "invalid JSON" in message(body)
    still_serving(daemon)


def test_field_of_wrong_type(daemon, busybox):
    status, _, body = request(daemon.sock, "POST", "/containers/create", json.dumps({"Image": 12}).encode())
    assert status == 400
    assert message(body) == ("json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image "
                             "of type string")
    status, _, body = request(daemon.sock, "POST", "/containers/create",
                              json.dumps({"Image": busybox, "Cmd": ["true"], "HostConfig": {"Memory": "lots"}}).encode())
    assert status == 400 and "HostConfig.Memory of type int64" in message(body)
    still_serving(daemon)


def test_unknown_image(daemon):
    status, _, body = request(daemon.sock, "POST", "/containers/create",
                              json.dumps({"Image": "127.0.0.1:1/missing/image:v9", "Cmd": ["true"]}).encode())
    assert status == 404
    assert message(body) == "No such image: 127.0.0.1:1/missing/image:v9"


def test_unknown_container(daemon):
    for method, path in (("GET", "/containers/nope/json"), ("POST", "/containers/nope/start"),
                         ("POST", "/containers/nope/stop"), ("DELETE", "/containers/nope"),
                         ("POST", "/containers/nope/wait")):
        status, _, body = request(daemon.sock, method, path)
        assert status == 404, path
        assert message(body) == "No such container: nope"


def test_duplicate_name(daemon, busybox):
    body = json.dumps({"Image": busybox, "Cmd": ["true"]}).encode()
    status, _, first = request(daemon.sock, "POST", "/containers/create?name=api-dup", body)
    assert status == 201
    try:
        status, _, again = request(daemon.sock, "POST", "/containers/create?name=api-dup", body)
        assert status == 409
        assert 'The container name "/api-dup" is already in use' in message(again)
    finally:
        request(daemon.sock, "DELETE", "/containers/api-dup?force=1")


def test_oversized_header(daemon):
    huge = "X-Junk: " + "a" * (2 << 20) + "\r\n"
    status, _, body = request(daemon.sock, "GET", "/_ping", extra=huge)
    assert status == 431
    assert message(body)
    still_serving(daemon)


def test_garbage_request_line(daemon):
    status, _, body = raw_request(daemon.sock, b"NOT HTTP AT ALL\r\n\r\n")
    assert status == 400
    still_serving(daemon)


def test_unknown_path_and_bad_version(daemon):
    status, _, body = request(daemon.sock, "GET", "/v1.47/nothing/here")
    assert status == 404 and message(body) == "page not found"
    status, _, body = request(daemon.sock, "GET", "/v1.99/version")
    assert status == 400
    assert message(body) == "client version 1.99 is too new. Maximum supported API version is 1.47"


def test_start_and_stop_state_errors(daemon, busybox):
    status, _, body = request(daemon.sock, "POST", "/containers/create?name=api-state",
                              json.dumps({"Image": busybox, "Cmd": ["sleep", "300"]}).encode())
    assert status == 201
    try:
        assert request(daemon.sock, "POST", "/containers/api-state/stop")[0] == 304
        status, _, body = request(daemon.sock, "POST", "/containers/api-state/kill")
        assert status == 409 and "is not running" in message(body)
        assert request(daemon.sock, "POST", "/containers/api-state/start")[0] == 204
        assert request(daemon.sock, "POST", "/containers/api-state/start")[0] == 304
        status, _, body = request(daemon.sock, "DELETE", "/containers/api-state")
        assert status == 409 and "container is running" in message(body)
        status, _, body = request(daemon.sock, "POST", "/containers/api-state/kill?signal=NOPE")
        assert status == 400 and message(body) == "Invalid signal: NOPE"
    finally:
        assert request(daemon.sock, "DELETE", "/containers/api-state?force=1")[0] == 204
