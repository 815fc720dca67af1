"""A running container's processes: `pyd pause` and `unpause` (the freezer), `top` and `stats`, as the docker
CLI shows them."""
from __future__ import annotations

TYPE_CHECKING = False     # typing costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

from pyd.client.api import APIError
from pyd.client.common import PROG, Cli, StatusError, api_error_message, for_each
from pyd.client.flags import BOOL, STRING, Flag, Options, Spec
from pyd.client.gotemplate import FormatContext

STATS_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}"
               "\t{{.PIDs}}")
STATS_HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
                 "PIDs": "PIDS"}

SPECS: dict[str, Spec] = {
    "pause": Spec("CONTAINER [CONTAINER...]", "Pause all processes within one or more containers", min_args=1,
                  aliases=(f"{PROG} container pause", f"{PROG} pause")),
    "unpause": Spec("CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers",
                    min_args=1, aliases=(f"{PROG} container unpause", f"{PROG} unpause")),
    "top": Spec("CONTAINER [ps OPTIONS]", "Display the running processes of a container", min_args=1,
                interspersed=False, aliases=(f"{PROG} container top", f"{PROG} top")),
    "stats": Spec("[OPTIONS] [CONTAINER...]", "Display a live stream of container(s) resource usage statistics", [
        Flag("all", "a", BOOL, help="Show all containers (default shows just running)"),
        Flag("format", "", STRING, help="Format output using a custom template"),
        Flag("no-stream", "", BOOL, help="Disable streaming stats and only pull the first result"),
        Flag("no-trunc", "", BOOL, help="Do not truncate output"),
    ], aliases=(f"{PROG} container stats", f"{PROG} stats")),
}


def cmd_pause(cli: Cli, opts: Options, args: list[str]) -> int:
    for_each(cli, args, lambda n: cli.client().request("POST", f"/containers/{n}/pause"))
    return 0


def cmd_unpause(cli: Cli, opts: Options, args: list[str]) -> int:
    for_each(cli, args, lambda n: cli.client().request("POST", f"/containers/{n}/unpause"))
    return 0


def cmd_top(cli: Cli, opts: Options, args: list[str]) -> int:
    from pyd.client.formatting import tabwrite
    query = {"ps_args": " ".join(args[1:])} if len(args) > 1 else None
    procs = cli.client().request("GET", f"/containers/{args[0]}/top", query=query).json()
    lines = ["\t".join(procs.get("Titles") or [])]
    lines += ["\t".join(row) for row in procs.get("Processes") or []]
    cli.out(tabwrite("\n".join(lines), minwidth=20, padding=1) + "\n")
    return 0


# ---------------------------------------------------------------- stats

class StatsRow(FormatContext):
    """One line of `docker stats`, computed as the docker CLI does from two samples."""
    go_type = "*formatter.statsContext"

    def __init__(self, ref: str, s: dict[str, Any], no_trunc: bool) -> None:
        self.ref, self.s, self.no_trunc = ref, s, no_trunc
        mem = s.get("memory_stats") or {}
        usage, stats = mem.get("usage", 0), mem.get("stats") or {}
        inactive = stats.get("total_inactive_file", stats.get("inactive_file"))
        self.mem = usage - inactive if inactive is not None and inactive < usage else usage
        self.limit = mem.get("limit", 0)
        cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
        cpu_delta = cpu.get("cpu_usage", {}).get("total_usage", 0) - pre.get("cpu_usage", {}).get("total_usage", 0)
        sys_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
        online = cpu.get("online_cpus") or len(cpu.get("cpu_usage", {}).get("percpu_usage") or []) or 1
        self.cpu = cpu_delta / sys_delta * online * 100.0 if cpu_delta > 0 and sys_delta > 0 else 0.0
        nets = (s.get("networks") or {}).values()
        self.rx, self.tx = sum(n.get("rx_bytes", 0) for n in nets), sum(n.get("tx_bytes", 0) for n in nets)
        blk = (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
        self.read = sum(e["value"] for e in blk if e.get("op", "").lower() == "read")
        self.write = sum(e["value"] for e in blk if e.get("op", "").lower() == "write")
        self.running = bool(s.get("read")) and not s["read"].startswith("0001-")

    def field_Container(self) -> str:
        return self.ref

    def field_ID(self) -> str:
        ident = self.s.get("id", "")
        return ident if self.no_trunc else ident[:12]

    def field_Name(self) -> str:
        return (self.s.get("name") or "").lstrip("/") or "--"

    def field_CPUPerc(self) -> str:
        return f"{self.cpu:.2f}%"

    def field_MemUsage(self) -> str:
        from pyd.client.formatting import binary_size
        return f"{binary_size(self.mem)} / {binary_size(self.limit)}" if self.running else "0B / 0B"

    def field_MemPerc(self) -> str:
        return f"{self.mem / self.limit * 100:.2f}%" if self.limit else "0.00%"

    def field_NetIO(self) -> str:
        from pyd.client.formatting import human_size
        return f"{human_size(self.rx)} / {human_size(self.tx)}"

    def field_BlockIO(self) -> str:
        from pyd.client.formatting import human_size
        return f"{human_size(self.read)} / {human_size(self.write)}"

    def field_PIDs(self) -> str:
        return str((self.s.get("pids_stats") or {}).get("current", 0))


def _sample(cli: Cli, ref: str) -> dict[str, Any]:
    return cli.new_client().request("GET", f"/containers/{ref}/stats", query={"stream": "0"}).json() or {}


def cmd_stats(cli: Cli, opts: Options, args: list[str]) -> int:
    import concurrent.futures
    import time
    from pyd.client.formatting import render
    refs = list(args)
    if not refs:
        query = {"all": "1"} if opts.all else None
        refs = [c["Id"] for c in cli.client().request("GET", "/containers/json", query=query).json()]
    fmt = opts.format or STATS_TABLE
    if fmt == "table":
        fmt = STATS_TABLE
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(len(refs), 16))) as pool:
        while True:
            futures = [pool.submit(_sample, cli, r) for r in refs]
            rows, errors = [], []
            for ref, fut in zip(refs, futures):
                try:
                    rows.append(StatsRow(ref, fut.result(), opts.no_trunc))
                except APIError as exc:
                    errors.append(api_error_message(exc))
            if errors:
                raise StatusError(1, "\n".join(errors))
            text = render(fmt, rows, STATS_HEADERS)
            if opts.no_stream:
                cli.out(text)
                return 0
            cli.out("\033[2J\033[H" + text)
            cli.stdout.flush()
            time.sleep(0.1)
