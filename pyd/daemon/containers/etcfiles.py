"""The files Docker writes for a container (hosts, hostname, resolv.conf) and user lookup in its image.

Users are resolved here, from the container's own /etc/passwd and /etc/group, because the static execd
cannot use NSS (and must not: the host's users are not the container's).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from pyd.daemon.errors import BadParameter
from pyd.daemon.fsutil import atomic_write

# hosts, hostname and resolv.conf are derived from the container's config: written without fsync, and
# re-created at start when a machine crash left one missing or empty (etc_files_intact).
ETC_FILES = ("hostname", "hosts", "resolv.conf")
HOSTS_BASE = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::\tip6-localnet\n"
    "ff00::\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
FALLBACK_DNS = ("8.8.8.8", "8.8.4.4")


def write_hosts(path: str, extra: list[tuple[str, str]]) -> None:
    """/etc/hosts as Docker writes it: the loopback block, then `IP\tnames` lines."""
    lines = "".join(f"{ip}\t{names}\n" for ip, names in extra)
    atomic_write(path, (HOSTS_BASE + lines).encode(), durable=False)


def hosts_names(hostname: str, domainname: str | None) -> str:
    """The container's own names in /etc/hosts, as libnetwork writes them: the FQDN, then the bare name."""
    fqdn = f"{hostname}.{domainname}" if domainname else hostname
    return f"{fqdn} {fqdn.split('.', 1)[0]}" if "." in fqdn else fqdn


def write_hostname(path: str, hostname: str) -> None:
    atomic_write(path, (hostname + "\n").encode(), durable=False)


def write_resolv_conf(path: str, host_resolv: str = "/etc/resolv.conf", dns: list[str] | None = None,
                      search: list[str] | None = None, options: list[str] | None = None) -> None:
    """The host's resolv.conf minus loopback resolvers (unreachable from a container's own network),
    Google's public resolvers when nothing is left, as Docker does; --dns/--dns-search override."""
    try:
        with open(host_resolv) as f:
            text = f.read()
    except OSError:
        text = ""
    out: list[str] = []
    servers: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            if not re.match(r"^(127\.|::1$|0:0:0:0:0:0:0:1$)", words[1]):
                servers.append(words[1])
        elif words[0] in ("search", "domain") and search:
            continue
        elif words[0] == "options" and options:
            continue
        else:
            out.append(line)
    if dns:
        servers = list(dns)
    if not servers:
        servers = list(FALLBACK_DNS)
    body = out + [f"nameserver {s}" for s in servers]
    if search:
        body.append("search " + " ".join(search))
    if options:
        body.append("options " + " ".join(options))
    atomic_write(path, ("\n".join(body) + "\n").encode(), durable=False)


def etc_files_intact(folder: str) -> bool:
    """Whether hostname, hosts and resolv.conf of a container folder all exist and are not empty."""
    for name in ETC_FILES:
        try:
            if os.stat(os.path.join(folder, name)).st_size == 0:
                return False
        except OSError:
            return False
    return True


@dataclass
class ExecUser:
    uid: int = 0
    gid: int = 0
    groups: list[int] = field(default_factory=list)
    home: str = "/"


def _read_inside(rootfs: str, path: str) -> list[list[str]]:
    """Lines of a colon-separated file of the container, never following a link out of its root."""
    from pyd.daemon.storage.rootpath import resolve_in_root

    try:
        with open(resolve_in_root(rootfs, path), errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def lookup_user(rootfs: str, spec: str, group_add: list[str] | None = None) -> ExecUser:
    """Docker's `-u user[:group]`: names or numbers, looked up in the image's passwd and group files."""
    user, _, group = (spec or "").partition(":")
    passwd = _read_inside(rootfs, "/etc/passwd")
    groups_file = _read_inside(rootfs, "/etc/group")
    result = ExecUser()
    if user:
        entry = next((p for p in passwd if len(p) >= 7 and (p[0] == user or p[2] == user)), None)
        if entry:
            result.uid, result.gid, result.home = int(entry[2]), int(entry[3]), entry[5] or "/"
        elif user.isdigit():
            result.uid = int(user)
        else:
            raise BadParameter(f"unable to find user {user}: no matching entries in passwd file")
    else:   # no user: root, with root's home (runc's default user, looked up like any other)
        entry = next((p for p in passwd if len(p) >= 7 and p[2] == "0"), None)
        if entry:
            result.gid, result.home = int(entry[3]) if entry[3].isdigit() else 0, entry[5] or "/"
    if group:
        result.gid = _group_id(groups_file, group)
    else:
        name = next((p[0] for p in passwd if len(p) >= 3 and p[2] == str(result.uid)), None)
        result.groups = [int(g[2]) for g in groups_file
                         if len(g) >= 4 and name and name in g[3].split(",") and g[2].isdigit()]
    for extra in group_add or []:
        gid = _group_id(groups_file, extra, "Unable")     # the additional groups' lookup says it so
        if gid not in result.groups:
            result.groups.append(gid)
    # dockerd's AdditionalGids start with the primary group (containerd since CVE-2023-25173)
    result.groups = [result.gid, *(g for g in result.groups if g != result.gid)]
    return result


def _group_id(groups_file: list[list[str]], group: str, unable: str = "unable") -> int:
    entry = next((g for g in groups_file if len(g) >= 3 and (g[0] == group or g[2] == group)), None)
    if entry:
        return int(entry[2])
    if group.isdigit():
        return int(group)
    raise BadParameter(f"{unable} to find group {group}: no matching entries in group file")


def ensure_dir(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
