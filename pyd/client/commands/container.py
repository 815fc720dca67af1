"""Container commands: run, create, start, ps, logs, stop, kill, rm, wait, restart, rename, container prune."""
from __future__ import annotations

import os
import time

TYPE_CHECKING = False     # typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

    from pyd.http.client import HijackedConnection

from pyd.client.common import (Cli, StatusError, api_error_message, encode_filters, for_each, is_api_error, is_not_found,
                            isatty, time_query, validate_filter, PROG)
from pyd.client.flags import BOOL, INT, LIST, STRING, Flag, Options, Spec
from pyd.client.gotemplate import FormatContext, go_quote
from pyd.client import formatting as fmt

# ---------------------------------------------------------------- flags


def _validate_env(raw: str) -> str:
    """-e KEY=VALUE as given; -e KEY takes KEY's value from our environment (kept bare when unset)."""
    key, eq, _ = raw.partition("=")
    if key == "":
        raise ValueError(f"invalid environment variable: {raw}")
    if eq:
        return raw
    return f"{key}={os.environ[key]}" if key in os.environ else raw


def _validate_attach(raw: str) -> str:
    if raw.lower() not in ("stdin", "stdout", "stderr"):
        raise ValueError("valid streams are STDIN, STDOUT and STDERR")
    return raw.lower()


def _container_flags(with_sig_proxy: bool) -> list[Flag]:
    flags = [
        Flag("attach", "a", LIST, help="Attach to STDIN, STDOUT or STDERR", validate=_validate_attach),
        Flag("entrypoint", "", STRING, help="Overwrite the default ENTRYPOINT of the image"),
        Flag("env", "e", LIST, help="Set environment variables", validate=_validate_env),
        Flag("env-file", "", LIST, help="Read in a file of environment variables"),
        Flag("hostname", "h", STRING, help="Container host name"),
        Flag("interactive", "i", BOOL, help="Keep STDIN open even if not attached"),
        Flag("label", "l", LIST, help="Set meta data on a container"),
        Flag("label-file", "", LIST, help="Read in a line delimited file of labels"),
        Flag("name", "", STRING, help="Assign a name to the container"),
        Flag("platform", "", STRING, help="Set platform if server is multi-platform capable"),
        Flag("rm", "", BOOL, help="Automatically remove the container and its associated anonymous "
                                  "volumes when it exits"),
        Flag("tty", "t", BOOL, help="Allocate a pseudo-TTY"),
        Flag("user", "u", STRING, help="Username or UID (format: <name|uid>[:<group|gid>])"),
        Flag("workdir", "w", STRING, help="Working directory inside the container"),
    ]
    if with_sig_proxy:
        flags += [Flag("detach", "d", BOOL, help="Run container in background and print container ID"),
                  Flag("sig-proxy", "", BOOL, True, help="Proxy received signals to the process")]
    from pyd.client.commands.mount_flags import mount_flags
    flags += mount_flags()     # -v, --mount, --tmpfs, --volumes-from
    from pyd.client.commands.resource_flags import security_flags
    flags += security_flags()  # --cap-add, --privileged, --security-opt, -m, --cpus, --ulimit, ...
    from pyd.client.commands.run_flags import run_flags
    flags += run_flags()       # --network, -p, --dns, --add-host, --restart, --health-*, --log-*, --stop-*
    flags.sort(key=lambda f: f.long)
    return flags


_FORMAT_HELP = ("Format output using a custom template: 'table': Print output in table format with column "
                "headers (default) 'table TEMPLATE': Print output in table format using the given Go "
                "template 'json': Print in JSON format 'TEMPLATE': Print output using the given Go template.")

SPECS: dict[str, Spec] = {
    "run": Spec("[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create and run a new container from an image",
                _container_flags(True), min_args=1, interspersed=False,
                aliases=(f"{PROG} container run", f"{PROG} run")),
    "create": Spec("[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container", _container_flags(False),
                   min_args=1, interspersed=False, aliases=(f"{PROG} container create", f"{PROG} create")),
    "start": Spec("[OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers", [
        Flag("attach", "a", BOOL, help="Attach STDOUT/STDERR and forward signals"),
        Flag("interactive", "i", BOOL, help="Attach container's STDIN"),
    ], min_args=1, aliases=(f"{PROG} container start", f"{PROG} start")),
    "ps": Spec("[OPTIONS]", "List containers", [
        Flag("all", "a", BOOL, help="Show all containers (default shows just running)"),
        Flag("filter", "f", LIST, metavar="filter", help="Filter output based on conditions provided",
             validate=validate_filter),
        Flag("format", "", STRING, help=_FORMAT_HELP),
        Flag("last", "n", INT, -1, help="Show n last created containers (includes all states)"),
        Flag("latest", "l", BOOL, help="Show the latest created container (includes all states)"),
        Flag("no-trunc", "", BOOL, help="Don't truncate output"),
        Flag("quiet", "q", BOOL, help="Only display container IDs"),
        Flag("size", "s", BOOL, help="Display total file sizes"),
    ], max_args=0, aliases=(f"{PROG} container ls", f"{PROG} container list", f"{PROG} container ps",
                            f"{PROG} ps")),
    "logs": Spec("[OPTIONS] CONTAINER", "Fetch the logs of a container", [
        Flag("details", "", BOOL, help="Show extra details provided to logs"),
        Flag("follow", "f", BOOL, help="Follow log output"),
        Flag("since", "", STRING, help='Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative '
                                       '(e.g. "42m" for 42 minutes)'),
        Flag("tail", "n", STRING, "all", help="Number of lines to show from the end of the logs"),
        Flag("timestamps", "t", BOOL, help="Show timestamps"),
        Flag("until", "", STRING, help='Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or '
                                       'relative (e.g. "42m" for 42 minutes)'),
    ], min_args=1, max_args=1, aliases=(f"{PROG} container logs", f"{PROG} logs")),
    "stop": Spec("[OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers", [
        Flag("signal", "s", STRING, help="Signal to send to the container"),
        Flag("timeout", "t", INT, help="Seconds to wait before killing the container", aliases=("time",)),
    ], min_args=1, aliases=(f"{PROG} container stop", f"{PROG} stop")),
    "kill": Spec("[OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers", [
        Flag("signal", "s", STRING, help="Signal to send to the container"),
    ], min_args=1, aliases=(f"{PROG} container kill", f"{PROG} kill")),
    "rm": Spec("[OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers", [
        Flag("force", "f", BOOL, help="Force the removal of a running container (uses SIGKILL)"),
        Flag("link", "l", BOOL, help="Remove the specified link"),
        Flag("volumes", "v", BOOL, help="Remove anonymous volumes associated with the container"),
    ], min_args=1, aliases=(f"{PROG} container rm", f"{PROG} container remove", f"{PROG} rm")),
    "wait": Spec("CONTAINER [CONTAINER...]", "Block until one or more containers stop, then print their exit codes",
                 [], min_args=1, aliases=(f"{PROG} container wait", f"{PROG} wait")),
    "restart": Spec("[OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers", [
        Flag("signal", "s", STRING, help="Signal to send to the container"),
        Flag("timeout", "t", INT, help="Seconds to wait before killing the container", aliases=("time",)),
    ], min_args=1, aliases=(f"{PROG} container restart", f"{PROG} restart")),
    "rename": Spec("CONTAINER NEW_NAME", "Rename a container", [], min_args=2, max_args=2,
                   aliases=(f"{PROG} container rename", f"{PROG} rename")),
    "container_prune": Spec("[OPTIONS]", "Remove all stopped containers", [
        Flag("filter", "", LIST, metavar="filter", help='Provide filter values (e.g. "until=<timestamp>")',
             validate=validate_filter),
        Flag("force", "f", BOOL, help="Do not prompt for confirmation"),
    ], max_args=0),
}

# ---------------------------------------------------------------- create / run


def read_env_file(path: str) -> list[str]:
    """docker's --env-file: KEY=VALUE lines kept verbatim (value whitespace included), comments and blank
    lines skipped, a bare KEY takes our environment's value (dropped when unset)."""
    return _read_kv_file(path, lookup_env=True)


def read_label_file(path: str) -> list[str]:
    return _read_kv_file(path, lookup_env=False)


def _read_kv_file(path: str, lookup_env: bool) -> list[str]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ValueError(f"open {path}: {os.strerror(exc.errno).lower() if exc.errno else exc}") from None
    text = data.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = []
    for raw in text.splitlines():
        line = raw.lstrip(" \t\n\v\f\r")
        if not line or line.startswith("#"):
            continue
        key, eq, _ = line.partition("=")
        key = key.lstrip(" \t\n\v\f\r")
        if any(c in key for c in " \t\n\v\f\r"):
            raise ValueError(f"invalid env file ({path}): variable '{key}' contains whitespaces")
        if not key:
            raise ValueError(f"invalid env file ({path}): no variable name on line '{line}'")
        if eq:
            lines.append(key + line[len(key):])
        elif not lookup_env:
            lines.append(key)
        elif key in os.environ:
            lines.append(f"{key}={os.environ[key]}")
    return lines


def parse_labels(items: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        labels[key] = value
    return labels


def build_create_request(opts: Options, args: list[str], for_run: bool) -> tuple[dict[str, str], dict[str, Any]]:
    """The query and body of POST /containers/create for run/create's flags, as docker's CLI builds them.
    Raises ValueError for bad flag contents (env-file problems)."""
    image, cmd = args[0], args[1:]
    env = [line for path in opts.env_file for line in read_env_file(path)] + list(opts.env)
    labels = parse_labels([line for path in opts.label_file for line in read_label_file(path)] + opts.label)
    detach = for_run and opts.detach
    attach = set(opts.attach)
    attach_stdin = "stdin" in attach or opts.interactive
    attach_stdout = "stdout" in attach or not attach
    attach_stderr = "stderr" in attach or not attach
    if detach:
        attach_stdin = attach_stdout = attach_stderr = False
    entrypoint = None
    if opts.given("entrypoint"):
        entrypoint = [opts.entrypoint] if opts.entrypoint else [""]
    body: dict[str, Any] = {
        "Hostname": opts.hostname or "",
        "Domainname": "",
        "User": opts.user or "",
        "AttachStdin": attach_stdin,
        "AttachStdout": attach_stdout,
        "AttachStderr": attach_stderr,
        "Tty": opts.tty,
        "OpenStdin": opts.interactive,
        "StdinOnce": bool(for_run and not detach and opts.interactive and attach_stdin),
        "Env": env,
        "Cmd": cmd or None,
        "Image": image,
        "Volumes": None,
        "WorkingDir": opts.workdir or "",
        "Entrypoint": entrypoint,
        "Labels": labels,
        "HostConfig": {"NetworkMode": "default", "AutoRemove": opts.rm},
        "NetworkingConfig": {"EndpointsConfig": {}},
    }
    from pyd.client.commands.run_flags import apply_run_flags
    apply_run_flags(opts, body)    # NetworkMode, ports, DNS, restart, healthcheck, logging, stop
    from pyd.client.commands.mount_flags import apply_mount_flags
    apply_mount_flags(opts, body)
    from pyd.client.commands.resource_flags import apply_security_flags
    apply_security_flags(opts, body)
    query = {"name": opts.name} if opts.name else {}
    if opts.platform:
        query["platform"] = opts.platform       # as docker's CLI sends it (API 1.41+)
    return query, body


def familiar_reference(ref: str) -> str:
    """busybox -> busybox:latest, docker.io/library/x:1 -> x:1 (for 'Unable to find image' messages)."""
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
            break
    if "@" in ref:
        return ref
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last else ref + ":latest"


def create_container(cli: Cli, query: dict[str, str], body: dict[str, Any]) -> str:
    """POST /containers/create; prints docker's notes (missing image, warnings); returns the ID."""
    try:
        resp = cli.client().request("POST", "/containers/create", query=query or None, body=body)
    except Exception as exc:
        if not (is_not_found(exc) and "image" in str(getattr(exc, "message", "")).lower()):
            raise
        cli.err(f"Unable to find image '{familiar_reference(body['Image'])}' locally\n")
        from pyd.client.commands.image import pull_image   # docker run pulls a missing image, progress on stderr
        pull_image(cli, body["Image"], query.get("platform") or "", out=cli.stderr)
        resp = cli.client().request("POST", "/containers/create", query=query or None, body=body)
    created = resp.json()
    for warning in created.get("Warnings") or []:
        cli.err(f"WARNING: {warning}\n")
    return created["Id"]


def _with_help(cli: Cli, message: str) -> str:
    return f"{PROG}: {message}\n\nRun '{cli.command_path} --help' for more information"


def run_status_error(cli: Cli, exc: BaseException) -> StatusError:
    """docker's toStatusError: 127 when the command was not found, 126 when it could not be invoked,
    125 for any other failure of run itself."""
    message = api_error_message(exc)
    status = 125
    if "executable file not found" in message or "no such file or directory" in message:
        status = 127
    elif "permission denied" in message or "is a directory" in message:
        status = 126
    return StatusError(status, _with_help(cli, message))


def cmd_create(cli: Cli, opts: Options, args: list[str]) -> int:
    try:
        query, body = build_create_request(opts, args, for_run=False)
    except ValueError as exc:
        raise StatusError(125, _with_help(cli, str(exc))) from None
    cli.out(create_container(cli, query, body) + "\n")
    return 0


def cmd_run(cli: Cli, opts: Options, args: list[str]) -> int:
    if opts.detach and opts.attach:
        raise StatusError(1, "conflicting options: cannot specify both --attach and --detach")
    try:
        query, body = build_create_request(opts, args, for_run=True)
    except ValueError as exc:
        raise StatusError(125, _with_help(cli, str(exc))) from None
    if not opts.detach and body["Tty"] and body["AttachStdin"] and not isatty(cli.stdin):
        raise StatusError(1, "the input device is not a TTY")
    try:
        cid = create_container(cli, query, body)
    except StatusError:
        raise
    except Exception as exc:
        if is_api_error(exc):
            raise run_status_error(cli, exc) from None
        raise
    if opts.detach:
        try:
            cli.client().request("POST", f"/containers/{cid}/start")
        except Exception as exc:
            if is_api_error(exc):
                raise run_status_error(cli, exc) from None
            raise
        cli.out(cid + "\n")
        return 0
    session = AttachSession(cli, cid, tty=body["Tty"], stdin=body["AttachStdin"],
                            stdout=body["AttachStdout"], stderr=body["AttachStderr"])
    return session.run(auto_remove=opts.rm, sig_proxy=opts.sig_proxy and not body["Tty"],
                       on_start_error=lambda exc: run_status_error(cli, exc))


def cmd_start(cli: Cli, opts: Options, args: list[str]) -> int:
    if opts.attach or opts.interactive:
        if len(args) > 1:
            raise StatusError(1, "you cannot start and attach multiple containers at once")
        info = cli.client().request("GET", f"/containers/{args[0]}/json").json()
        config = info.get("Config") or {}
        session = AttachSession(cli, info.get("Id", args[0]), tty=bool(config.get("Tty")),
                                stdin=bool(opts.interactive and config.get("OpenStdin")), stdout=True, stderr=True)
        auto_remove = bool((info.get("HostConfig") or {}).get("AutoRemove"))
        return session.run(auto_remove=auto_remove, sig_proxy=not config.get("Tty"), on_start_error=None)
    failed = []
    for name in args:
        try:
            cli.client().request("POST", f"/containers/{name}/start")
        except Exception as exc:
            if not is_api_error(exc):
                raise
            cli.err(api_error_message(exc) + "\n")
            failed.append(name)
            continue
        cli.out(name + "\n")
    if failed:
        raise StatusError(1, "Error: failed to start containers: " + ", ".join(failed))
    return 0


class AttachSession:
    """docker's attach-wait-start sequence for `run` (without -d) and `start -a`.

    Attach first (so no output is lost), then register the wait (its headers come back at once, the body
    when the container exits or is removed), then start; copy the stream until the daemon closes it and
    exit with the container's status. Threads do the concurrent parts: stdin copying, output copying.
    """

    def __init__(self, cli: Cli, cid: str, tty: bool, stdin: bool, stdout: bool, stderr: bool) -> None:
        self.cli, self.cid, self.tty = cli, cid, tty
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.conn: HijackedConnection | None = None
        self.detached = False      # the detach keys ended the session (the container goes on)

    def run(self, auto_remove: bool, sig_proxy: bool, on_start_error) -> int:
        cli = self.cli
        if self.stdin or self.stdout or self.stderr:
            self.conn = self._attach()
        wait_client = cli.new_client()
        wait_resp = wait_client.request("POST", f"/containers/{self.cid}/wait",
                                        query={"condition": "removed" if auto_remove else "next-exit"})
        restore_signals = self._proxy_signals() if sig_proxy else None
        try:
            from pyd.client.tty import RawTerminal     # restored on exceptions and on SIGTERM/SIGHUP too
            with RawTerminal(cli.stdin if self.tty and self.stdin else None):
                try:
                    cli.client().request("POST", f"/containers/{self.cid}/start")
                except Exception as exc:
                    self._close()
                    if auto_remove:      # as docker: let the daemon remove it before we report
                        _wait_briefly(wait_resp, 2.0)
                    if on_start_error is not None and is_api_error(exc):
                        raise on_start_error(exc) from None
                    raise
                if self.tty and isatty(cli.stdout):
                    self._watch_tty_size()
                self._copy_streams()
            if self.detached:
                return 0     # docker run: the detach keys end the session, the container goes on
            return self._exit_status(wait_resp)
        finally:
            if restore_signals:
                restore_signals()
            self._close()

    def _attach(self) -> HijackedConnection:
        query = {"stream": "1"}
        for name, on in (("stdin", self.stdin), ("stdout", self.stdout), ("stderr", self.stderr)):
            if on:
                query[name] = "1"
        return self.cli.new_client().hijack("POST", f"/containers/{self.cid}/attach", query=query)

    def _copy_streams(self) -> None:
        if self.conn is None:
            return
        from pyd.client.streams import Session
        from pyd.formats.detachkeys import DEFAULT_DETACH_KEYS, parse_detach_keys
        session = Session(self.cli, self.conn, self.tty, self.stdin, parse_detach_keys(DEFAULT_DETACH_KEYS))
        try:
            session.copy()
        finally:
            self.detached = session.detached

    def _exit_status(self, wait_resp: Any) -> int:
        try:
            result = wait_resp.json() or {}
        except Exception as exc:      # the daemon went away while we waited
            self.cli.err(f"error waiting for container: {exc}\n")
            return 125
        error = (result.get("Error") or {}).get("Message") if isinstance(result.get("Error"), dict) else None
        if error:
            self.cli.err(f"error waiting for container: {error}\n")
            return 125
        status = int(result.get("StatusCode", 0))
        if status:
            raise StatusError(status)
        return 0

    def _proxy_signals(self):
        """--sig-proxy: forward the signals a user sends us to the container (as docker, by name)."""
        import signal
        import threading
        names = {signal.SIGINT: "INT", signal.SIGTERM: "TERM", signal.SIGHUP: "HUP", signal.SIGQUIT: "QUIT",
                 signal.SIGUSR1: "USR1", signal.SIGUSR2: "USR2"}

        def forward(signum, _frame):
            try:
                self.cli.new_client().request("POST", f"/containers/{self.cid}/kill",
                                              query={"signal": names[signum]})
            except Exception as exc:       # the container may have gone already
                if self.cli.debug:
                    self.cli.err(f"error forwarding signal {signum}: {exc}\n")

        if threading.current_thread() is not threading.main_thread():
            return None
        previous = {s: signal.signal(s, forward) for s in names}

        def restore():
            for s, handler in previous.items():
                signal.signal(s, handler)
        return restore

    def _watch_tty_size(self) -> None:
        """Tell the daemon our terminal size now and on every SIGWINCH."""
        import signal
        import threading

        def resize(*_):
            try:
                size = os.get_terminal_size(self.cli.stdout.fileno())
                self.cli.new_client().request("POST", f"/containers/{self.cid}/resize",
                                              query={"h": str(size.lines), "w": str(size.columns)})
            except Exception:     # resizing is best effort, as in docker
                pass
        resize()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGWINCH, resize)

    def _close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass


def _wait_briefly(resp: Any, timeout: float) -> None:
    """Read a wait response's body, giving up after timeout seconds (a daemon that never answers)."""
    import threading
    reader = threading.Thread(target=lambda: _ignore_errors(resp.read), daemon=True)
    reader.start()
    reader.join(timeout)


def _ignore_errors(fn) -> None:
    try:
        fn()
    except Exception:      # only waiting for the container's removal; its outcome is not reported
        pass


# ---------------------------------------------------------------- ps

PS_HEADERS = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
    "Names": "NAMES", "Labels": "LABELS", "Label": "LABEL", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES",
    "Networks": "NETWORKS", "Platform": "PLATFORM",
}
PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


class ContainerRow(FormatContext):
    """One row of `ps`: docker's ContainerContext fields over a /containers/json entry."""

    go_type = "*formatter.ContainerContext"

    def __init__(self, c: dict[str, Any], trunc: bool = True, now: float | None = None) -> None:
        self.c, self.trunc = c, trunc
        self.now = time.time() if now is None else now

    def field_ID(self) -> str:
        return fmt.truncate_id(self.c.get("Id", "")) if self.trunc else self.c.get("Id", "")

    def field_Names(self) -> str:
        names = [n[1:] if n.startswith("/") else n for n in self.c.get("Names") or []]
        if self.trunc:
            names = next(([n] for n in names if "/" not in n), names)
        return ",".join(names)

    def field_Image(self) -> str:
        image = self.c.get("Image") or ""
        if not image:
            return "<no image>"
        if self.trunc:
            image_id = self.c.get("ImageID") or ""
            if image_id and fmt.truncate_id(image_id) == fmt.truncate_id(image):
                return fmt.truncate_id(image)
            if "@" in image:               # a digest reference: show the name only
                return image.split("@", 1)[0]
        return image

    def field_Command(self) -> str:
        command = self.c.get("Command") or ""
        return go_quote(fmt.ellipsis(command, 20) if self.trunc else command)

    def field_CreatedAt(self) -> str:
        return fmt.go_time_string(self.c.get("Created", 0))

    def field_RunningFor(self) -> str:
        return fmt.human_duration(self.now - self.c.get("Created", 0)) + " ago"

    def field_Ports(self) -> str:
        return displayable_ports(self.c.get("Ports") or [])

    def field_State(self) -> str:
        return self.c.get("State", "")

    def field_Status(self) -> str:
        return self.c.get("Status", "")

    def field_Size(self) -> str:
        rw = fmt.human_size(self.c.get("SizeRw") or 0)
        root = self.c.get("SizeRootFs") or 0
        return f"{rw} (virtual {fmt.human_size(root)})" if root > 0 else rw

    def field_Labels(self) -> str:
        return fmt.labels_text(self.c.get("Labels"))

    def field_Label(self, name: str) -> str:
        return (self.c.get("Labels") or {}).get(name, "")

    def field_Mounts(self) -> str:
        names = []
        for m in self.c.get("Mounts") or []:
            name = m.get("Name") or m.get("Source") or ""
            names.append(fmt.ellipsis(name, 15) if self.trunc else name)
        return ",".join(names)

    def field_LocalVolumes(self) -> str:
        return str(sum(1 for m in self.c.get("Mounts") or [] if m.get("Driver") == "local"))

    def field_Networks(self) -> str:
        networks = ((self.c.get("NetworkSettings") or {}).get("Networks")) or {}
        return ",".join(sorted(networks))

    def field_Platform(self) -> Any:
        return None


def displayable_ports(ports: list[dict[str, Any]]) -> str:
    """Ports as docker's ps shows them: '0.0.0.0:8080->80/tcp, 53/udp', consecutive ports as ranges."""
    def key(p):
        return (p.get("PrivatePort", 0), p.get("IP", ""), p.get("PublicPort", 0), p.get("Type", ""))
    groups: dict[str, list[int]] = {}
    order: list[str] = []
    result: list[str] = []
    mappings: list[str] = []
    for p in sorted(ports, key=key):
        private, public, ip, kind = p.get("PrivatePort", 0), p.get("PublicPort", 0), p.get("IP", ""), p.get("Type", "tcp")
        group_key = kind
        if ip:
            if public != private:
                host = f"[{ip}]" if ":" in ip else ip
                mappings.append(f"{host}:{public}->{private}/{kind}")
                continue
            group_key = f"{ip}/{kind}"
        group = groups.get(group_key)
        if group is None:
            groups[group_key] = [private, private]
            order.append(group_key)
        elif private == group[1] + 1:
            group[1] = private
        else:
            result.append(_port_group(group_key, *group))
            groups[group_key] = [private, private]
    result += [_port_group(k, *groups[k]) for k in order]
    return ", ".join(result + mappings)


def _port_group(key: str, first: int, last: int) -> str:
    ip, _, kind = key.rpartition("/")
    span = str(first) if first == last else f"{first}-{last}"
    if ip:
        host = f"[{ip}]" if ":" in ip else ip
        span = f"{host}:{span}->{span}"
    return f"{span}/{kind}"


def cmd_ps(cli: Cli, opts: Options, args: list[str]) -> int:
    query: dict[str, str] = {}
    if opts.all:
        query["all"] = "1"
    limit = 1 if opts.latest else opts.last
    if limit != -1:
        query["limit"] = str(limit)
    if opts.size or ".Size" in (opts.format or ""):     # docker asks for sizes when the template shows them
        query["size"] = "1"
    filters = encode_filters(opts.filter)
    if filters:
        query["filters"] = filters
    containers = cli.client().request("GET", "/containers/json", query=query).json() or []
    template = fmt.listing_template(cli, opts, PS_TABLE + ("\t{{.Size}}" if opts.size else ""))
    now = time.time()
    rows = [ContainerRow(c, trunc=not opts.no_trunc, now=now) for c in containers]
    try:
        cli.out(fmt.render(template, rows, PS_HEADERS))
    except fmt.FormatError as exc:
        raise StatusError(1, str(exc)) from None
    return 0


# ---------------------------------------------------------------- logs


def cmd_logs(cli: Cli, opts: Options, args: list[str]) -> int:
    name = args[0]
    info = cli.client().request("GET", f"/containers/{name}/json").json()
    query = {"stdout": "1", "stderr": "1", "tail": opts.tail, **time_query(opts)}
    for key, on in (("follow", opts.follow), ("timestamps", opts.timestamps), ("details", opts.details)):
        if on:
            query[key] = "1"
    resp = cli.client().request("GET", f"/containers/{name}/logs", query=query)
    tty = bool((info.get("Config") or {}).get("Tty"))
    copy_stream(cli, resp, multiplexed=not tty)
    return 0


def copy_stream(cli: Cli, resp: Any, multiplexed: bool) -> None:
    """Write a response body to our stdout/stderr, demultiplexing stdcopy frames when asked to."""
    demux = None
    if multiplexed:
        from pyd.formats.stdcopy import StdcopyDemuxer
        demux = StdcopyDemuxer()
    try:
        for data in resp.iter_chunks():
            if demux is None:
                cli.out_bytes(data)
                continue
            for stream, chunk in demux.feed(data):
                (cli.err_bytes if stream == 2 else cli.out_bytes)(chunk)
    finally:
        resp.close()


# ---------------------------------------------------------------- stop, kill, rm, wait


def _stop_query(opts: Options) -> dict[str, str] | None:
    """stop's and restart's -t and -s."""
    query: dict[str, str] = {}
    if opts.given("timeout"):
        query["t"] = str(opts.timeout)
    if opts.signal:
        query["signal"] = opts.signal
    return query or None


def cmd_stop(cli: Cli, opts: Options, args: list[str]) -> int:
    query = _stop_query(opts)
    for_each(cli, args, lambda n: cli.client().request("POST", f"/containers/{n}/stop", query=query))
    return 0


def cmd_kill(cli: Cli, opts: Options, args: list[str]) -> int:
    query = {"signal": opts.signal} if opts.signal else None
    for_each(cli, args, lambda n: cli.client().request("POST", f"/containers/{n}/kill", query=query))
    return 0


def cmd_rm(cli: Cli, opts: Options, args: list[str]) -> int:
    query = {k: "1" for k, on in (("force", opts.force), ("v", opts.volumes), ("link", opts.link)) if on}

    def missing_with_force(exc: BaseException) -> bool:
        if opts.force and is_not_found(exc):      # rm -f of a missing container: told, not failed
            cli.err(api_error_message(exc) + "\n")
            return True
        return False

    for_each(cli, args, lambda n: cli.client().request("DELETE", f"/containers/{n}", query=query or None),
             tolerate=missing_with_force)
    return 0


def cmd_restart(cli: Cli, opts: Options, args: list[str]) -> int:
    query = _stop_query(opts)
    for_each(cli, args, lambda n: cli.client().request("POST", f"/containers/{n}/restart", query=query))
    return 0


def cmd_rename(cli: Cli, opts: Options, args: list[str]) -> int:
    old, new = args[0].strip(), args[1].strip()
    if not old or not new:
        raise StatusError(1, "Error: Neither old nor new names may be empty")
    try:
        cli.client().request("POST", f"/containers/{old}/rename", query={"name": new})
    except Exception as exc:
        if not is_api_error(exc):
            raise
        cli.err(api_error_message(exc) + "\n")      # docker prints the daemon's reason, then its own line
        raise StatusError(1, f"Error: failed to rename container named {old}") from None
    return 0


def cmd_container_prune(cli: Cli, opts: Options, args: list[str]) -> int:
    if not opts.force:
        cli.out("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ")
        cli.stdout.flush()
        if (cli.stdin.readline() or "").strip().lower() not in ("y", "yes"):
            return 0       # docker: cancelled, nothing more printed, exit 0
    query = {}
    filters = encode_filters(opts.filter)
    if filters:
        query["filters"] = filters
    report = cli.client().request("POST", "/containers/prune", query=query or None).json() or {}
    deleted = report.get("ContainersDeleted") or []
    reclaimed = 0
    if deleted:
        cli.out("Deleted Containers:\n" + "".join(cid + "\n" for cid in deleted) + "\n")
        reclaimed = report.get("SpaceReclaimed") or 0
    cli.out(f"Total reclaimed space: {fmt.human_size(reclaimed)}\n")
    return 0


def cmd_wait(cli: Cli, opts: Options, args: list[str]) -> int:
    def wait(name: str) -> int:
        result = cli.client().request("POST", f"/containers/{name}/wait").json() or {}
        return int(result.get("StatusCode", 0))
    for_each(cli, args, wait, report=lambda _name, code: cli.out(f"{code}\n"))
    return 0
