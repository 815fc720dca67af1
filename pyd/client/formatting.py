"""Output helpers shared by the commands: tabwriter tables, --format handling, times (docker's human units
from pyd.formats.units, re-exported)."""
from __future__ import annotations

import time

TYPE_CHECKING = False     # typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Iterable

from pyd.formats.units import binary_size, human_duration, human_size  # noqa: F401  (re-exported for the commands)
from pyd.client.gotemplate import FormatContext, HEADER_FUNCS, Template, TemplateExecError, TemplateParseError

def truncate_id(ident: str) -> str:
    """stringid.TruncateID: drop the algorithm prefix, keep 12 characters."""
    if ":" in ident:
        ident = ident.split(":", 1)[1]
    return ident[:12]


def ellipsis(s: str, width: int) -> str:
    """Shorten to `width` characters with a trailing '…' (docker's formatter.Ellipsis)."""
    if len(s) <= width:
        return s
    if width <= 1:
        return s[:width]
    return s[:width - 1] + "…"


# ---------------------------------------------------------------- times

def go_time_string(unix: float) -> str:
    """Go's time.Time.String() in the local zone: '2026-11-28 15:48:26 +0000 UTC'."""
    t = time.localtime(unix)
    return time.strftime("%Y-%m-%d %H:%M:%S %z ", t) + (t.tm_zone or time.strftime("%z", t))


def parse_go_duration(value: str) -> float | None:
    """time.ParseDuration ("1h30m", "42m", "1.5s", "300ms") in seconds; None when not a duration."""
    import re
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    m = re.fullmatch(r"([-+]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+", value)
    if not m:
        return None
    total = sum(float(num) * units[unit] for num, unit in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", value))
    return -total if m.group(1) == "-" else total


def api_timestamp(value: str, now: float | None = None) -> str:
    """docker's timetypes.GetTimestamp: a relative duration ("42m"), an RFC 3339 time, a date, or a unix
    timestamp, turned into the "seconds.nanoseconds" string the API takes for since/until."""
    if value == "":
        return ""
    now = time.time() if now is None else now
    dur = parse_go_duration(value)
    if dur is not None:
        return _seconds_string(now - dur)
    import re
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return value
    ts = _local_rfc3339(value)
    if ts is None and re.fullmatch(r"\d{4}-\d\d-\d\d", value):
        ts = _local_rfc3339(value + "T00:00:00")
    if ts is None and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d(:\d\d)?", value):
        ts = _local_rfc3339(value + (":00:00" if len(value) == 13 else ":00"))
    if ts is None:
        raise ValueError(f'failed to parse value as time or duration: "{value}"')
    return _seconds_string(ts)


def _local_rfc3339(value: str) -> float | None:
    """An RFC 3339 time, local when it names no zone (as docker's GetTimestamp); None when it is not one."""
    from pyd.formats import rfc3339
    try:
        return rfc3339.parse(value, local=True)
    except ValueError:
        return None


def _seconds_string(ts: float) -> str:
    ns = int(round(ts * 1e9))
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


# ---------------------------------------------------------------- tabwriter

def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter with padchar ' ' and no flags: tab-terminated cells aligned per column block.

    A column block is a run of consecutive lines that have a cell in that column; the last cell of a
    line is not tab-terminated and takes no part in alignment.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    widths: list[list[int]] = [[0] * (len(cells) - 1) for cells in lines]
    _align(lines, widths, 0, 0, len(lines), minwidth, padding)
    out = []
    for cells, ws in zip(lines, widths):
        out.append("".join(c + " " * (w - len(c)) for c, w in zip(cells[:-1], ws)) + cells[-1])
    return "\n".join(out)


def _align(lines: list[list[str]], widths: list[list[int]], col: int, start: int, end: int,
           minwidth: int, padding: int) -> None:
    i = start
    while i < end:
        if len(lines[i]) - 1 <= col:
            i += 1
            continue
        j = i
        width = minwidth
        while j < end and len(lines[j]) - 1 > col:
            width = max(width, len(lines[j][col]) + padding)
            j += 1
        for k in range(i, j):
            widths[k][col] = width
        _align(lines, widths, col + 1, i, j, minwidth, padding)
        i = j


# ---------------------------------------------------------------- --format

class FormatError(Exception):
    """A bad --format template: message as docker prints it."""


def render(fmt: str, rows: Iterable[FormatContext], headers: dict[str, str]) -> str:
    """docker's formatter.Context: 'table ...' prints a header and aligns columns; a plain template
    prints one line per row; 'json' prints each row as JSON."""
    if fmt == "json":
        fmt = "{{json .}}"
    is_table = fmt.startswith("table")
    body = fmt[len("table"):] if is_table else fmt
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    try:
        tmpl = Template(body)
    except TemplateParseError as exc:
        raise FormatError(f"failed to parse template: {exc}") from None
    out = []
    try:
        for row in rows:
            out.append(tmpl.execute(row) + "\n")
    except TemplateExecError as exc:
        raise FormatError(f"failed to execute template: {exc}") from None
    text = "".join(out)
    if not is_table:
        return text
    try:
        header = tmpl.execute(_HeaderContext(headers), HEADER_FUNCS)
    except TemplateExecError:
        header = ""
    return tabwrite(header + "\n" + text)


class _HeaderContext(FormatContext):
    """Stands for the header map: every field is its column title ("" when it has none)."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def template_field(self, name: str, args: list[Any]) -> Any:
        return self.headers.get(name, "")


def listing_template(cli, opts, table: str) -> str:
    """The template of ps/images: {{.ID}} with -q (warning when --format is also set), else --format,
    else the command's table."""
    template = opts.format
    if opts.quiet and template and template != "table":
        cli.err("WARNING: Ignoring custom format, because both --format and --quiet are set.\n")
    if opts.quiet:
        return "{{.ID}}"
    return table if not template or template == "table" else template


def labels_text(labels: dict | None) -> str:
    """The Labels column: k=v pairs sorted by key, comma-separated."""
    labels = labels or {}
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))
