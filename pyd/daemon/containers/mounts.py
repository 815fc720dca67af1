"""A container's mounts: -v / --mount / --tmpfs / --volumes-from and the image's VOLUMEs, as dockerd
resolves them, into MountPoints (stored in config.v2.json, shown by inspect) and execd mounts.

A MountPoint is Docker's shape, keyed by destination:
  {"Type": "bind"|"volume"|"tmpfs", "Name", "Source", "Destination", "Driver", "Mode", "RW", "Propagation"}
plus private keys (leading underscore) that inspect does not show: "_NoCopy", "_Tmpfs" (fs options),
"_NonRecursive", "_Subpath" (VolumeOptions.Subpath) and "_Bound" (the directory of the volume a subpath
mount binds, found at each start).
"""
from __future__ import annotations

import logging
import os
import posixpath
import stat
from typing import TYPE_CHECKING, Any, Protocol

from pyd.daemon.errors import BadParameter, Conflict, NotFound

if TYPE_CHECKING:
    from pyd.daemon.containers.model import Container
    from pyd.daemon.containers.store import ContainerStore
    from pyd.daemon.volumes.store import VolumeStore

log = logging.getLogger("pyd")


class RootfsMounts(Protocol):
    """The graph's container layers, mounted for a copy-up."""
    def mount_rw(self, container_id: str) -> str: ...
    def unmount_rw(self, container_id: str) -> None: ...

PROPAGATIONS = ("shared", "rshared", "slave", "rslave", "private", "rprivate")
DEFAULT_PROPAGATION = "rprivate"
TMPFS_DEFAULTS = ["nosuid", "nodev", "noexec"]
PUBLIC_KEYS = ("Type", "Name", "Source", "Destination", "Driver", "Mode", "RW", "Propagation")


# ---------------------------------------------------------------- parsing (pure)

def _check_dest(dest: str, kind: str, raw: str | None = None) -> str:
    if not dest:
        raise BadParameter(f'invalid mount config for type "{kind}": field Target must not be empty')
    if not dest.startswith("/"):
        raise BadParameter(f"invalid mount config for type \"{kind}\": invalid mount path: '{dest}' "
                           "mount path must be absolute")
    dest = posixpath.normpath(dest)
    if dest.startswith("//"):
        dest = dest[1:]
    if dest == "/":
        raise BadParameter("invalid specification: destination can't be '/'")
    return dest


def parse_mode(mode: str, kind: str) -> tuple[bool, str, bool]:
    """A -v mode string ("ro,z,rshared,nocopy") -> (rw, propagation, nocopy); "invalid mode" otherwise."""
    rw, propagation, nocopy = True, "", False
    seen_rw = seen_prop = seen_label = False
    for word in mode.split(",") if mode else []:
        if word in ("ro", "rw") and not seen_rw:
            rw, seen_rw = word == "rw", True
        elif word in PROPAGATIONS and not seen_prop:
            propagation, seen_prop = word, True
        elif word in ("z", "Z") and not seen_label:
            seen_label = True
        elif word == "nocopy" and kind == "volume" and not nocopy:
            nocopy = True
        else:
            raise BadParameter(f"invalid mode: {mode}")
    return rw, propagation, nocopy


def parse_bind(raw: str) -> dict[str, Any]:
    """One HostConfig.Binds entry: [SRC:]DST[:MODE] (SRC absolute: a host path, else a volume name)."""
    parts = raw.split(":")
    if len(parts) == 1:
        src, dst, mode = "", parts[0], ""
    elif len(parts) == 2:
        if parts[0].startswith("/") and not parts[1].startswith("/"):
            src, dst, mode = "", parts[0], parts[1]
        else:
            src, dst, mode = parts[0], parts[1], ""
    elif len(parts) == 3:
        src, dst, mode = parts
    else:
        raise BadParameter(f"invalid volume specification: '{raw}'")
    if not dst:
        raise BadParameter(f"invalid volume specification: '{raw}'")
    kind = "bind" if src.startswith("/") else "volume"
    rw, propagation, nocopy = parse_mode(mode, kind)
    if propagation and kind == "volume":
        raise BadParameter(f"invalid mode: {mode}")
    dest = _check_dest(dst, kind)
    mp = {"Type": kind, "Name": "" if kind == "bind" else src,
          "Source": posixpath.normpath(src) if kind == "bind" else "", "Destination": dest,
          "Driver": "" if kind == "bind" else "local", "Mode": mode, "RW": rw,
          "Propagation": (propagation or DEFAULT_PROPAGATION) if kind == "bind" else "", "_NoCopy": nocopy,
          "_CreateSource": kind == "bind"}
    if kind == "volume" and src:
        from pyd.daemon.volumes.store import NAME_RE
        if not NAME_RE.match(src):
            raise BadParameter(f'create {src}: "{src}" includes invalid characters for a local volume name, '
                               'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                               "directory, use absolute path")
    return mp


def parse_api_mount(m: Any) -> dict[str, Any]:
    """One HostConfig.Mounts entry (the --mount flag's API form)."""
    if not isinstance(m, dict):
        raise BadParameter("invalid mount config: mount must be an object")
    kind = m.get("Type") or ""
    if kind not in ("bind", "volume", "tmpfs"):
        raise BadParameter(f'invalid mount config for type "{kind}": mount type unknown')
    dest = _check_dest(m.get("Target") or "", kind)
    src = m.get("Source") or ""
    rw = not m.get("ReadOnly")
    for other, key in (("bind", "BindOptions"), ("volume", "VolumeOptions"), ("tmpfs", "TmpfsOptions")):
        if other != kind and m.get(key):
            raise BadParameter(f'invalid mount config for type "{kind}": field {key} must not be specified')
    mp: dict[str, Any] = {"Type": kind, "Name": "", "Source": "", "Destination": dest, "Driver": "",
                          "Mode": "", "RW": rw, "Propagation": ""}
    if kind == "bind":
        if not src:
            raise BadParameter('invalid mount config for type "bind": field Source must not be empty')
        if not src.startswith("/"):
            raise BadParameter(f"invalid mount config for type \"bind\": invalid mount path: '{src}' "
                               "mount path must be absolute")
        opts = m.get("BindOptions") or {}
        propagation = opts.get("Propagation") or DEFAULT_PROPAGATION
        if propagation not in PROPAGATIONS:
            raise BadParameter(f'invalid mount config for type "bind": invalid propagation mode: {propagation}')
        if not os.path.exists(src):
            if not opts.get("CreateMountpoint"):
                raise BadParameter(f'invalid mount config for type "bind": bind source path does not exist: {src}')
        mp.update(Source=posixpath.normpath(src), Propagation=propagation,
                  _NonRecursive=bool(opts.get("NonRecursive")), _CreateSource=bool(opts.get("CreateMountpoint")))
    elif kind == "volume":
        opts = m.get("VolumeOptions") or {}
        driver = ((opts.get("DriverConfig") or {}).get("Name")) or "local"
        subpath = str(opts.get("Subpath") or "")
        if subpath and (subpath.startswith("/") or ".." in subpath.split("/")):
            raise BadParameter('invalid mount config for type "volume": subpath must be a relative path within '
                               "the volume")
        if subpath:
            mp["_Subpath"] = posixpath.normpath(subpath)
        mp.update(Name=src, Driver=driver, _NoCopy=bool(opts.get("NoCopy")),
                  _Labels=opts.get("Labels") or {}, _Options=(opts.get("DriverConfig") or {}).get("Options") or {})
    else:
        if src:
            raise BadParameter('invalid mount config for type "tmpfs": field Source must not be specified')
        opts = m.get("TmpfsOptions") or {}
        data = list(TMPFS_DEFAULTS)
        size = opts.get("SizeBytes")
        if size:
            if not isinstance(size, int) or size < 0:
                raise BadParameter('invalid mount config for type "tmpfs": invalid tmpfs size')
            data.append(f"size={_size_k(size)}")
        mode = opts.get("Mode")
        if mode:
            data.append(f"mode={int(mode) & 0o7777:o}")
        for extra in opts.get("Options") or []:
            data.append("=".join(str(x) for x in extra) if isinstance(extra, list) else str(extra))
        mp["_Tmpfs"] = data
    return mp


def _size_k(size: int) -> str:
    return f"{size // 1024}k" if size % 1024 == 0 else str(size)


def tmpfs_mounts(tmpfs: dict[str, str] | None) -> list[dict[str, Any]]:
    """HostConfig.Tmpfs {"/run": "rw,size=64m"}: tmpfs mounts, nosuid,nodev,noexec unless told otherwise."""
    out = []
    for dest, options in (tmpfs or {}).items():
        dest = _check_dest(dest, "tmpfs")
        words = [w for w in (options or "").split(",") if w]
        for w in words:
            if w.startswith("size=") and not _valid_size(w[5:]):
                raise BadParameter(f"invalid tmpfs option [{w}]")
        out.append({"Type": "tmpfs", "Destination": dest, "RW": "ro" not in words,
                    "_Tmpfs": TMPFS_DEFAULTS + words})
    return out


def _valid_size(value: str) -> bool:
    v = value.lower().rstrip("bkmgt%")
    return v.isdigit()


# ---------------------------------------------------------------- resolution at create (daemon)

def check(containers: "ContainerStore", c: "Container") -> None:
    """Every mount option parses and every --volumes-from container exists (nothing is created)."""
    hc = c.HostConfig
    for key, kind in (("Binds", list), ("Mounts", list), ("VolumesFrom", list), ("Tmpfs", dict)):
        if hc.get(key) is not None and not isinstance(hc[key], kind):
            raise BadParameter(f"invalid JSON: HostConfig.{key} has the wrong type")
    seen: set[str] = set()
    for mp in [parse_bind(b) for b in hc.get("Binds") or []] + [parse_api_mount(m) for m in hc.get("Mounts") or []]:
        if mp["Destination"] in seen:
            raise BadParameter(f"Duplicate mount point: {mp['Destination']}")
        seen.add(mp["Destination"])
    tmpfs_mounts(hc.get("Tmpfs"))
    for ref in hc.get("VolumesFrom") or []:
        name, _, mode = ref.partition(":")
        if mode not in ("", "ro", "rw"):
            raise BadParameter(f"invalid mode: {mode}")
        try:
            containers.get(name)
        except NotFound as e:   # 400, not 404: a 404 on create makes the docker CLI try to pull the image
            raise BadParameter(e.message) from None


def resolve(store: "VolumeStore", containers: "ContainerStore", layers: RootfsMounts,
            c: "Container") -> dict[str, dict[str, Any]]:
    """The container's MountPoints from its HostConfig and Config.Volumes; creates the volumes it names
    and fills new empty ones from the image (copy-up). Runs in a worker thread."""
    hc = c.HostConfig
    points: dict[str, dict[str, Any]] = {}
    for ref in hc.get("VolumesFrom") or []:
        name, _, mode = ref.partition(":")
        if mode not in ("", "ro", "rw"):
            raise BadParameter(f"invalid mode: {mode}")
        other = containers.get(name)
        for dest, mp in (getattr(other, "MountPoints", None) or {}).items():
            mp = dict(mp)
            if mode:
                mp["RW"], mp["Mode"] = mode == "rw", mode
            points[dest] = mp
    explicit: dict[str, dict[str, Any]] = {}
    for mp in [parse_bind(b) for b in hc.get("Binds") or []] + [parse_api_mount(m) for m in hc.get("Mounts") or []]:
        if mp["Destination"] in explicit:
            raise BadParameter(f"Duplicate mount point: {mp['Destination']}")
        explicit[mp["Destination"]] = mp
    points.update(explicit)
    tmpfs_dests = {m["Destination"] for m in tmpfs_mounts(hc.get("Tmpfs"))}
    for dest in (c.Config.get("Volumes") or {}):
        dest = _check_dest(dest, "volume")
        if dest not in points and dest not in tmpfs_dests:
            points[dest] = {"Type": "volume", "Name": "", "Source": "", "Destination": dest, "Driver": "local",
                            "Mode": "", "RW": True, "Propagation": "", "_NoCopy": False}
    copy_up = []
    for mp in points.values():
        if mp["Type"] == "bind" and mp.get("_CreateSource") and not os.path.exists(mp["Source"]):
            os.makedirs(mp["Source"], 0o755, exist_ok=True)     # -v creates a missing host dir, as Docker
        if mp["Type"] != "volume":
            continue
        v = store.create(mp["Name"] or None, mp.get("Driver") or "local", mp.pop("_Labels", None),
                         mp.pop("_Options", None))
        mp["Name"], mp["Source"] = v.name, v.mountpoint
        if (not mp.get("_NoCopy") and not mp.get("_Subpath") and not store.needs_mount(v)
                and _is_empty_dir(v.mountpoint)):
            copy_up.append(mp)
    if copy_up:
        _copy_up(layers, c, copy_up)
    return points


def _is_empty_dir(path: str) -> bool:
    try:
        return not os.listdir(path)
    except OSError:
        return False


def _copy_up(layers: RootfsMounts, c: "Container", points: list[dict[str, Any]]) -> None:
    """Fill empty volumes with what the image has at their destination (ownership and modes kept)."""
    from pyd.daemon.containers.copy import copy_tree_in_root
    rootfs = layers.mount_rw(c.ID)
    try:
        for mp in points:
            try:
                copy_tree_in_root(rootfs, mp["Destination"], mp["Source"])
            except OSError as e:
                log.warning("copy-up of %s into volume %s failed: %s", mp["Destination"], mp["Name"], e)
    finally:
        layers.unmount_rw(c.ID)


# ---------------------------------------------------------------- life cycle hooks

def points_of(c: "Container") -> dict[str, dict[str, Any]]:
    return getattr(c, "MountPoints", None) or {}


def activate(volumes: "VolumeStore", c: "Container") -> None:
    """Before start: mount the option volumes (tmpfs, bind...) this container uses."""
    done = []
    try:
        for mp in points_of(c).values():
            if mp["Type"] == "volume":
                mp["Source"] = volumes.mount(mp["Name"], c.ID)
                done.append(mp["Name"])
                if mp.get("_Subpath"):
                    mp["_Bound"] = subpath_source(mp["Source"], mp["_Subpath"])
            elif mp["Type"] == "bind" and mp.get("_CreateSource") and not os.path.exists(mp["Source"]):
                os.makedirs(mp["Source"], 0o755, exist_ok=True)
    except BaseException:
        for name in done:
            volumes.unmount(name, c.ID)
        raise


def subpath_source(root: str, subpath: str) -> str:
    """root/subpath, which must exist and, symbolic links followed, stay inside the volume."""
    real_root = os.path.realpath(root)
    full = os.path.realpath(os.path.join(real_root, subpath))
    if os.path.commonpath([real_root, full]) != real_root:
        raise BadParameter(f"cannot access path {os.path.join(root, subpath)}: the subpath leaves the volume")
    if not os.path.exists(full):
        raise NotFound(f"cannot access path {os.path.join(root, subpath)}: no such file or directory")
    return full


def deactivate(volumes: "VolumeStore", c: "Container") -> None:
    """After exit: let go of option-volume mounts (and the shareable /dev/shm, pyd/shm.py)."""
    from pyd.daemon.containers import shm
    shm.release(c)
    for mp in points_of(c).values():
        if mp["Type"] == "volume":
            volumes.unmount(mp["Name"], c.ID)


def remove_anonymous(volumes: "VolumeStore", c: "Container") -> None:
    """rm -v and --rm: the anonymous volumes go (unless another container still uses them)."""
    for mp in points_of(c).values():
        if mp["Type"] != "volume":
            continue
        v = volumes.find(mp["Name"])
        if v is None or not v.anonymous:
            continue
        try:
            volumes.remove(v.name)
        except Conflict:
            pass
        except OSError as e:
            log.warning("removal of volume %s failed: %s", v.name, e)


def volume_users(containers: "ContainerStore", name: str) -> list[str]:
    return [c.ID for c in containers.all()
            if any(mp["Type"] == "volume" and mp.get("Name") == name for mp in points_of(c).values())]


def inspect_mounts(c: "Container") -> list[dict[str, Any]]:
    out = []
    for mp in points_of(c).values():
        entry = {k: mp.get(k, "") for k in PUBLIC_KEYS}
        entry["RW"] = bool(mp.get("RW", True))
        if mp["Type"] == "bind":
            del entry["Name"], entry["Driver"]
        if mp["Type"] == "tmpfs":
            del entry["Name"], entry["Driver"]
        out.append(entry)
    return out


def is_dir_mode(st_mode: int) -> bool:
    return stat.S_ISDIR(st_mode)
