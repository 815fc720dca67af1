"""System commands: version, info, events, and the generic inspect."""
from __future__ import annotations

import sys

TYPE_CHECKING = False     # typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

from pyd import API_VERSION, __version__
from pyd.client import formatting as fmt
from pyd.client.common import Cli, StatusError, api_error_message, encode_filters, time_query, validate_filter, PROG
from pyd.client.flags import BOOL, LIST, STRING, Flag, Options, Spec
from pyd.client.gotemplate import Template, TemplateExecError, TemplateParseError
from pyd.formats import rfc3339
from pyd.formats.platforms import goarch, host_machine

_TEMPLATE_HELP = ("Format output using a custom template: 'json': Print in JSON format 'TEMPLATE': Print "
                  "output using the given Go template.")

SPECS: dict[str, Spec] = {
    "version": Spec("[OPTIONS]", "Show the pyd version information", [
        Flag("format", "f", STRING, help=_TEMPLATE_HELP),
    ], max_args=0),
    "info": Spec("[OPTIONS]", "Display system-wide information", [
        Flag("format", "f", STRING, help=_TEMPLATE_HELP),
    ], max_args=0, aliases=(f"{PROG} system info", f"{PROG} info")),
    "events": Spec("[OPTIONS]", "Get real time events from the server", [
        Flag("filter", "f", LIST, metavar="filter", help="Filter output based on conditions provided",
             validate=validate_filter),
        Flag("format", "", STRING, help=_TEMPLATE_HELP),
        Flag("since", "", STRING, help="Show all events created since timestamp"),
        Flag("until", "", STRING, help="Stream events until this timestamp"),
    ], max_args=0, aliases=(f"{PROG} system events", f"{PROG} events")),
    "inspect": Spec("[OPTIONS] NAME|ID [NAME|ID...]", "Return low-level information on pyd objects", [
        Flag("format", "f", STRING, help=_TEMPLATE_HELP),
        Flag("size", "s", BOOL, help="Display total file sizes if the type is container"),
        Flag("type", "", STRING, help="Only inspect objects of the given type"),
    ], min_args=1),
}

# ---------------------------------------------------------------- version

_VERSION_TEMPLATE = """Client:
 Version:\t{{.Client.Version}}
 API version:\t{{.Client.ApiVersion}}
 Python version:\t{{.Client.PythonVersion}}
 OS/Arch:\t{{.Client.Os}}/{{.Client.Arch}}
{{- if .Server}}{{with .Server}}

Server:{{if .Platform.Name}} {{.Platform.Name}}{{end}}
{{- range .Components}}
 {{.Name}}:
  Version:\t{{.Version}}
{{- if eq .Name "Engine"}}
  API version:\t{{index .Details "ApiVersion"}} (minimum version {{index .Details "MinAPIVersion"}})
  Go version:\t{{index .Details "GoVersion"}}
  Git commit:\t{{index .Details "GitCommit"}}
  Built:\t{{index .Details "BuildTime"}}
  OS/Arch:\t{{index .Details "Os"}}/{{index .Details "Arch"}}
  Experimental:\t{{index .Details "Experimental"}}
{{- else}}{{range $k, $v := .Details}}
  {{$k}}:\t{{$v}}
{{- end}}{{end}}
{{- end}}{{end}}{{end}}
"""


def _client_version() -> dict[str, Any]:
    arch = goarch(host_machine())
    return {"Version": __version__, "ApiVersion": API_VERSION, "DefaultAPIVersion": API_VERSION,
            "PythonVersion": "%d.%d.%d" % sys.version_info[:3], "Os": sys.platform.rstrip("0123456789"), "Arch": arch}


def cmd_version(cli: Cli, opts: Options, args: list[str]) -> int:
    data: dict[str, Any] = {"Client": _client_version(), "Server": None}
    error = None
    try:
        data["Server"] = cli.client().request("GET", "/version").json()
    except Exception as exc:
        if not _is_proto_error(exc):
            raise
        error = api_error_message(exc)
    template = opts.format or _VERSION_TEMPLATE
    if template == "json":
        template = "{{json .}}"
    try:
        text = Template(template).execute(data)
    except TemplateParseError as exc:
        raise StatusError(1, f"template parsing error: {exc}") from None
    except TemplateExecError as exc:
        raise StatusError(1, f"template parsing error: {exc}") from None
    cli.out(fmt.tabwrite(text, minwidth=20, padding=1) if not opts.format else text + "\n")
    if error:
        raise StatusError(1, error)
    return 0


# ---------------------------------------------------------------- info


def server_info_text(info: dict[str, Any]) -> str:
    """docker info's server section, in docker's order and words."""
    out: list[str] = []

    def line(label: str, value: Any, always: bool = True) -> None:
        if always or value not in (None, ""):
            out.append(f"{label} {_go_value(value)}")

    line(" Containers:", info.get("Containers", 0))
    line("  Running:", info.get("ContainersRunning", 0))
    line("  Paused:", info.get("ContainersPaused", 0))
    line("  Stopped:", info.get("ContainersStopped", 0))
    line(" Images:", info.get("Images", 0))
    line(" Server Version:", info.get("ServerVersion"), always=False)
    line(" Storage Driver:", info.get("Driver"), always=False)
    for pair in info.get("DriverStatus") or []:
        out.append(f"  {pair[0]}: {pair[1]}")
    for pair in info.get("SystemStatus") or []:
        out.append(f" {pair[0]}: {pair[1]}")
    line(" Logging Driver:", info.get("LoggingDriver"), always=False)
    line(" Cgroup Driver:", info.get("CgroupDriver"), always=False)
    line(" Cgroup Version:", info.get("CgroupVersion"), always=False)
    plugins = info.get("Plugins") or {}
    out.append(" Plugins:")
    line("  Volume:", " ".join(plugins.get("Volume") or []))
    line("  Network:", " ".join(plugins.get("Network") or []))
    if plugins.get("Authorization"):
        line("  Authorization:", " ".join(plugins["Authorization"]))
    line("  Log:", " ".join(plugins.get("Log") or []))
    line(" Swarm:", (info.get("Swarm") or {}).get("LocalNodeState", "inactive"))
    runtimes = info.get("Runtimes") or {}
    if runtimes:
        line(" Runtimes:", " ".join(runtimes))
        line(" Default Runtime:", info.get("DefaultRuntime", ""))
    if info.get("OSType") == "linux":
        line(" Init Binary:", info.get("InitBinary", ""))
        for name, key in (("containerd", "ContainerdCommit"), ("runc", "RuncCommit"), ("init", "InitCommit")):
            commit = info.get(key) or {}
            text = f" {name} version: {commit.get('ID', '')}"
            if commit.get("Expected") and commit.get("Expected") != commit.get("ID"):
                text += f" (expected: {commit['Expected']})"
            out.append(text)
        security = info.get("SecurityOptions") or []
        if security:
            out.append(" Security Options:")
            for option in security:
                fields = dict(kv.split("=", 1) for kv in option.split(",") if "=" in kv)
                out.append("  " + fields.get("name", option))
                if "profile" in fields:
                    out.append(f"   Profile: {fields['profile']}")
    line(" Kernel Version:", info.get("KernelVersion"), always=False)
    line(" Operating System:", info.get("OperatingSystem"), always=False)
    line(" OSType:", info.get("OSType"), always=False)
    line(" Architecture:", info.get("Architecture"), always=False)
    line(" CPUs:", info.get("NCPU", 0))
    line(" Total Memory:", fmt.binary_size(info.get("MemTotal") or 0))
    line(" Name:", info.get("Name"), always=False)
    line(" ID:", info.get("ID"), always=False)
    line(" Docker Root Dir:", info.get("DockerRootDir", ""))
    line(" Debug Mode:", bool(info.get("Debug")))
    if info.get("Debug"):
        line("  File Descriptors:", info.get("NFd", 0))
        line("  Goroutines:", info.get("NGoroutines", 0))
        line("  System Time:", info.get("SystemTime", ""))
        line("  EventsListeners:", info.get("NEventsListener", 0))
    line(" HTTP Proxy:", info.get("HttpProxy"), always=False)
    line(" HTTPS Proxy:", info.get("HttpsProxy"), always=False)
    line(" No Proxy:", info.get("NoProxy"), always=False)
    if info.get("Labels"):
        out.append(" Labels:")
        out += ["  " + label for label in info["Labels"]]
    line(" Experimental:", bool(info.get("ExperimentalBuild")))
    registry = info.get("RegistryConfig") or {}
    insecure = [c["Name"] for c in (registry.get("IndexConfigs") or {}).values() if not c.get("Secure", True)]
    insecure += registry.get("InsecureRegistryCIDRs") or []
    if insecure:
        out.append(" Insecure Registries:")
        out += ["  " + name for name in insecure]
    if registry.get("Mirrors"):
        out.append(" Registry Mirrors:")
        out += ["  " + m for m in registry["Mirrors"]]
    line(" Live Restore Enabled:", bool(info.get("LiveRestoreEnabled")))
    return "\n".join(out) + "\n\n"


def _go_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def cmd_info(cli: Cli, opts: Options, args: list[str]) -> int:
    info = None
    error = None
    try:
        info = cli.client().request("GET", "/info").json()
    except Exception as exc:
        if not _is_proto_error(exc):
            raise
        error = api_error_message(exc)
    if opts.format:
        if error:
            raise StatusError(1, error)
        template = "{{json .}}" if opts.format == "json" else opts.format
        try:
            cli.out(Template(template).execute(info) + "\n")
        except (TemplateParseError, TemplateExecError) as exc:
            raise StatusError(1, f"template parsing error: {exc}") from None
        return 0
    cli.out(f"Client:\n Version:    {__version__}\n Context:    default\n Debug Mode: {_go_value(cli.debug)}\n\n")
    cli.out("Server:\n")
    if error:
        raise StatusError(1, error)
    cli.out(server_info_text(info or {}))
    for warning in (info or {}).get("Warnings") or []:
        cli.err(warning + "\n")
    return 0


# ---------------------------------------------------------------- events


def format_event(event: dict[str, Any]) -> str:
    """One event as docker prints it: time, type, action, actor ID and sorted attributes."""
    head = ""
    if event.get("timeNano"):
        head = rfc3339.format_ns(int(event["timeNano"]), rfc3339.FIXED, local=True) + " "
    elif event.get("time"):
        head = rfc3339.format_ns(int(event["time"]) * 1_000_000_000, rfc3339.FIXED, local=True) + " "
    actor = event.get("Actor") or {}
    text = f"{head}{event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        text += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return text + "\n"


def cmd_events(cli: Cli, opts: Options, args: list[str]) -> int:
    query = time_query(opts)
    filters = encode_filters(opts.filter)
    if filters:
        query["filters"] = filters
    template = None
    if opts.format:
        try:
            template = Template("{{json .}}" if opts.format == "json" else opts.format)
        except TemplateParseError as exc:
            raise StatusError(1, f"template parsing error: {exc}") from None
    resp = cli.client().request("GET", "/events", query=query or None)
    for event in resp.iter_json():
        if template is None:
            cli.out(format_event(event))
        else:
            try:
                cli.out(template.execute(event) + "\n")
            except TemplateExecError as exc:
                raise StatusError(1, f"template parsing error: {exc}") from None
        cli.stdout.flush()
    return 0


# ---------------------------------------------------------------- inspect

_INSPECT_PATHS = {
    "container": "/containers/{}/json", "image": "/images/{}/json", "network": "/networks/{}",
    "volume": "/volumes/{}",
}
_KNOWN_TYPES = ("config", "container", "image", "network", "node", "plugin", "secret", "service", "task", "volume")


def cmd_inspect(cli: Cli, opts: Options, args: list[str]) -> int:
    if opts.type and opts.type not in _KNOWN_TYPES:
        raise StatusError(1, f'unknown type: "{opts.type}": must be one of '
                             + ", ".join(f'"{t}"' for t in _KNOWN_TYPES))
    template = None
    if opts.format and opts.format != "json":
        try:
            template = Template(opts.format)
        except TemplateParseError as exc:
            raise StatusError(64, f"template parsing error: {exc}") from None
    kinds = [opts.type] if opts.type else ["container", "image", "network", "volume"]
    found: list[Any] = []
    errors: list[str] = []
    written = False
    for name in args:
        obj, error = _inspect_one(cli, name, kinds, opts.size)
        if error:
            errors.append(error)
            continue
        if template is None:
            found.append(obj)
            continue
        try:
            cli.out(template.execute(obj) + "\n")
            written = True
        except TemplateExecError as exc:
            errors.append(f"template parsing error: {exc}")
            break
    if template is None:
        cli.out(_indent_json(found) + "\n")
    elif not written:
        cli.out("\n")        # docker's template inspector writes a newline when it printed nothing
    if errors:
        raise StatusError(1, "\n".join(errors))
    return 0


def _inspect_one(cli: Cli, name: str, kinds: list[str], size: bool) -> tuple[Any, str | None]:
    """The first object of the given kinds with this name; else docker's error text."""
    last_error = None
    for kind in kinds:
        if kind not in _INSPECT_PATHS:
            return None, f"Error: No such {kind}: {name}"
        query = {"size": "1"} if size and kind == "container" else None
        try:
            return cli.client().request("GET", _INSPECT_PATHS[kind].format(name), query=query).json(), None
        except Exception as exc:
            if not _is_proto_error(exc):
                raise
            if getattr(exc, "status", None) != 404:
                return None, api_error_message(exc)
            last_error = api_error_message(exc)
    if len(kinds) == 1:
        return None, last_error
    return None, f"Error: No such object: {name}"


def _indent_json(items: list[Any]) -> str:
    import json
    if not items:
        return "[]"
    return json.dumps(items, indent=4, ensure_ascii=False)


def _is_proto_error(exc: BaseException) -> bool:
    from pyd.client.api import APIError, DaemonUnreachable
    return isinstance(exc, (APIError, DaemonUnreachable))

