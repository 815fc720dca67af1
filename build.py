#!/usr/bin/env python3
"""Build dist/pyd: the whole engine as ONE executable file (a shiv zipapp).

    python3 build.py                 # -> dist/pyd (x86_64)
    python3 build.py --arch aarch64  # -> dist/pyd-aarch64, cross-compiled on x86_64
    python3 build.py --execd-only    # -> pyd/execd (to run from the source tree)

Steps: compile pyd/execd statically from execd/*.c, stage a site-packages (our `pyd` package with execd as
package data, uvloop and cffi wheels for every CPython ABI the file supports), strip uvloop's debug info,
pack it with shiv, then swap shiv's __main__.py for a small bootstrap that skips shiv's ~35 ms set-up once
the archive is extracted (see FAST_MAIN).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "scripts"))
import foreign_debs  # noqa: E402  (scripts/foreign_debs.py)

# The shipped file runs on Debian's interpreter: /usr/bin/env python3 finds a slow pyenv shim here.
# -I isolates from PYTHON* variables, the user site-packages and the current directory; -S skips site
# (Debian dist-packages, .pth files: ~4 ms). The zipapp machinery still puts the archive on sys.path.
INTERPRETER = "/usr/bin/python3 -IS"
ENTRY_POINT = "pyd.__main__:main"

# The file carries the compiled wheels for every CPython a host may have as python3 (Debian 12: 3.11,
# Ubuntu 24.04: 3.12, Debian 13: 3.13, Fedora: 3.14). Their extension modules are named by ABI
# (_cffi_backend.cpython-313-x86_64-linux-gnu.so), so all of them share one site-packages and each
# interpreter imports its own. Pinned: the pure-Python halves must be the same for every ABI.
TARGET_PYTHONS = ("3.11", "3.12", "3.13", "3.14")
THIRD_PARTY = ("uvloop==0.23.0", "cffi==2.1.1", "h2==4.3.0", "hpack==4.1.0", "hyperframe==6.1.0")

EXECD_CFLAGS = ["-static", "-Os", "-Wall", "-Wextra"]


@dataclass(frozen=True)
class Target:
    """One machine the file is built for: its compiler and binutils, the wheels' platform tags, the Debian
    architecture its libseccomp comes from (None: the build machine's own libseccomp-dev) and the file."""
    machine: str                      # uname -m
    cross_prefix: str                 # "" for the build machine's gcc and strip
    platforms: tuple[str, ...]
    debian_arch: str | None
    output: str                       # under dist/

    def tool(self, name: str) -> str:
        return self.cross_prefix + name


TARGETS = {
    "x86_64": Target("x86_64", "", ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
                     None, "pyd"),
    "aarch64": Target("aarch64", "aarch64-linux-gnu-",
                      ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"), "arm64",
                      "pyd-aarch64"),
}
NATIVE = TARGETS["x86_64"]
# what a cross build takes from Debian's packages of the target architecture (the static libseccomp)
CROSS_DEBS = ("libseccomp-dev", "libseccomp2")
# Source files that must not go into the archive (they are inputs of the build, not of the program).
SKIP_SUFFIXES = (".pyc", ".pyo", ".c", ".h", ".o")
# uvloop ships its Cython sources; nothing imports them at run time.
THIRD_PARTY_JUNK = (".pyx", ".pxd", ".pxi", ".c", ".h")

# The archive's __main__.py. Kept tiny and stdlib-only: it runs on every start.
FAST_MAIN = '''\
# pyd bootstrap (written by build.py): once shiv has extracted this archive, go straight to the entry
# point instead of running shiv's bootstrap (which opens the zip and parses its metadata on every start).
import os
import sys

BUILD_ID = {build_id!r}


def _shiv_overrides():
    return any(k.startswith("SHIV_") and k != "SHIV_ROOT" for k in os.environ)


def _writable(path):
    # the nearest folder that exists decides (access() also says EROFS on a read-only mount)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return os.access(path, os.W_OK)


def _data_root():
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg == "--data-root" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--data-root="):
            return arg.split("=", 1)[1]
    return "/var/lib/pyd"


def _shiv_root():
    # SHIV_ROOT, else ~/.shiv, else (a read-only root file system) beside the daemon's data or in /run
    if os.environ.get("SHIV_ROOT"):
        return os.environ["SHIV_ROOT"]
    home = os.path.expanduser("~/.shiv")
    for root in (home, os.path.join(_data_root(), "shiv"), "/run/pyd/shiv"):
        if _writable(root):
            return root
    return home


def _extracted_site_packages():
    root = _SHIV_ROOT
    name = os.path.basename(os.path.realpath(sys.argv[0]))
    site_packages = os.path.join(root, name + "_" + BUILD_ID, "site-packages")
    # shiv extracts into a temporary folder and renames it, so a present folder is a complete one
    if os.path.isfile(os.path.join(site_packages, "pyd", "__main__.py")):
        return site_packages
    return None


def _extract_in_child():
    # The first run extracts the archive with shiv's code (zipfile, compileall with worker processes:
    # ~100 modules, ~2 MB of RSS). A child does it, so this process (maybe a long-lived daemon) never
    # carries any of that; on failure the caller falls back to shiv's own bootstrap.
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            import _bootstrap
            from _bootstrap.environment import Environment

            with _bootstrap.current_zipfile() as archive:
                env = Environment.from_json(archive.read("environment.json").decode())
                target = _bootstrap.cache_path(archive, _SHIV_ROOT, env.build_id)
                _bootstrap.extract_site_packages(archive, target, env.compile_pyc, env.compile_workers)
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    os.waitpid(pid, 0)


def _insert_path(site_packages):
    # before the interpreter's own site/dist-packages, as shiv does
    for index, entry in enumerate(sys.path):
        if entry.endswith(("site-packages", "dist-packages")):
            sys.path.insert(index, site_packages)
            return
    sys.path.append(site_packages)


_SHIV_ROOT = _shiv_root()
_site_packages = None
if not _shiv_overrides():
    _site_packages = _extracted_site_packages()
    if _site_packages is None:
        _extract_in_child()
        _site_packages = _extracted_site_packages()
if _site_packages is None:  # shiv overrides asked for, or the extraction failed: shiv handles it
    import _bootstrap

    os.environ["SHIV_ROOT"] = _SHIV_ROOT

    _bootstrap.bootstrap()
else:
    _insert_path(_site_packages)
    from {module} import {function} as _entry

    sys.exit(_entry())
'''


def run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, **kwargs)


def execd_sources(src: Path) -> list[Path]:
    """Every file of the helper's source folder (its .c files are compiled, its headers included)."""
    folder = src / "execd"
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def execd_link_flags(sources: list[Path]) -> list[str]:
    """Libraries execd needs, read off its includes."""
    uses_seccomp = any("<seccomp.h>" in p.read_text(errors="replace") for p in sources)
    return ["-lseccomp"] if uses_seccomp else []


def execd_path(src: Path, target: Target) -> Path:
    """pyd/execd for the build machine (the source tree runs it); build/execd-MACHINE for another."""
    return src / "pyd" / "execd" if target == NATIVE else src / "build" / f"execd-{target.machine}"


def cross_flags(src: Path, target: Target) -> list[str]:
    """Headers and static libseccomp from the target's Debian packages, unpacked under build/."""
    if target.debian_arch is None:
        return []
    root = foreign_debs.sysroot(target.debian_arch, src / "build", list(CROSS_DEBS))
    triplet = target.cross_prefix.rstrip("-")
    return [f"-I{root / 'usr/include'}", f"-L{root / 'usr/lib' / triplet}"]


def build_execd(src: Path, target: Target = NATIVE) -> Path:
    """Compile execd from execd/*.c unless it is newer than every file in execd/."""
    sources, binary = execd_sources(src), execd_path(src, target)
    c_files = [p for p in sources if p.suffix == ".c"]
    if not c_files:
        sys.exit(f"build.py: no {src / 'execd'}/*.c: pyd needs its execd helper")
    if binary.exists() and binary.stat().st_mtime >= max(p.stat().st_mtime for p in sources):
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    run([target.tool("gcc"), *EXECD_CFLAGS, *cross_flags(src, target), "-o", str(binary), *map(str, c_files),
         *execd_link_flags(sources)])
    return binary


def third_party_dir(src: Path, machine: Target = NATIVE) -> Path:
    """Download the wheels once per requirement set and machine; later builds reuse them (no network)."""
    key = hashlib.sha256(repr((THIRD_PARTY, TARGET_PYTHONS, machine.platforms)).encode()).hexdigest()[:12]
    target = src / "build" / f"third-party-{key}"
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    platforms = [arg for p in machine.platforms for arg in ("--platform", p)]
    target.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="pyd-wheels-") as tmp:
        for version in TARGET_PYTHONS:
            abi = "cp" + version.replace(".", "")
            run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 "--target", str(Path(tmp) / abi), "--only-binary=:all:", "--implementation", "cp",
                 "--python-version", version, "--abi", abi, *platforms, *THIRD_PARTY])
            merge_abi_tree(Path(tmp) / abi, target)
    prune_third_party(target, machine)
    (target / ".complete").write_text("")
    return target


def merge_abi_tree(tree: Path, target: Path) -> None:
    """Add one ABI's install to the shared tree: new files (its extension modules) go in; a file that is
    already there must be the same, but for the wheels' own records (their tags and hashes differ)."""
    for path in sorted(tree.rglob("*")):
        rel = path.relative_to(tree)
        dest = target / rel
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        elif not dest.exists():
            shutil.copy2(path, dest)
        elif rel.parts[0].endswith(".dist-info") or "__pycache__" in rel.parts or rel.parts[0] == "bin":
            continue
        elif dest.read_bytes() != path.read_bytes():
            sys.exit(f"build.py: {rel} differs between ABIs: pin one version of {rel.parts[0]} for all")


def prune_third_party(site_packages: Path, machine: Target) -> None:
    """Drop Cython sources and debug info: uvloop's .so alone is ~3 MB of DWARF."""
    for path in sorted(site_packages.rglob("*")):
        if path.is_file() and path.suffix in THIRD_PARTY_JUNK:
            path.unlink()
    for path in site_packages.rglob("*.so"):
        run([machine.tool("strip"), "--strip-debug", str(path)])
    shutil.rmtree(site_packages / "bin", ignore_errors=True)


def copy_pyd_package(src: Path, dest: Path, target: Target) -> None:
    """Copy the pyd package (sources plus the target's execd) into the staging site-packages."""
    def ignore(folder: str, names: list[str]) -> list[str]:
        skip = [n for n in names if n == "__pycache__" or n.endswith(SKIP_SUFFIXES)]
        return skip + (["execd"] if Path(folder) == src / "pyd" else [])

    shutil.copytree(src / "pyd", dest / "pyd", ignore=ignore)
    execd = dest / "pyd" / "execd"
    if not execd_path(src, target).exists():
        sys.exit(f"build.py: {execd_path(src, target)} was not built")
    shutil.copy2(execd_path(src, target), execd)
    run([target.tool("strip"), "--strip-all", str(execd)])
    execd.chmod(0o755)  # shiv keeps file modes; the daemon executes it from the extracted tree


# Run with the staged cffi (the one shipped): its generated code must match its _cffi_backend.
NATIVE_CFFI_SCRIPT = """\
import sys
sys.path.insert(0, sys.argv[1])
from pyd.daemon.runtime import native
native.ffi_builder().emit_python_code(sys.argv[2])
"""


def generate_native_cffi(staging: Path, cffi_tree: Path) -> None:
    """Write pyd/_native_cffi.py: pyd.native's declarations pre-parsed (cffi out-of-line ABI mode),
    so the daemon never imports pycparser at run time. The generated module holds no sizes or addresses,
    so the build machine's copy of the same pinned cffi (cffi_tree) writes it for every target."""
    target = staging / "pyd" / "_native_cffi.py"
    with tempfile.TemporaryDirectory(prefix="pyd-cffi-") as tmp:
        tree = Path(tmp) / "site-packages"
        shutil.copytree(cffi_tree, tree, ignore=shutil.ignore_patterns(".complete"))
        shutil.copytree(staging / "pyd", tree / "pyd")
        run([sys.executable, "-I", "-c", NATIVE_CFFI_SCRIPT, str(tree), str(target)])
    if not target.exists():
        sys.exit(f"build.py: {target} was not generated")


def stage(src: Path, staging: Path, target: Target) -> None:
    shutil.copytree(third_party_dir(src, target), staging, ignore=shutil.ignore_patterns(".complete"))
    copy_pyd_package(src, staging, target)
    generate_native_cffi(staging, third_party_dir(src, NATIVE))


def run_shiv(staging: Path, output: Path) -> None:
    run([sys.executable, "-m", "shiv", "--site-packages", str(staging), "--entry-point", ENTRY_POINT,
         "--python", INTERPRETER, "--output-file", str(output), "--reproducible", "--compressed", "--compile-pyc"],
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})


def replace_main(archive: Path) -> None:
    """Rewrite the zipapp with FAST_MAIN as __main__.py; everything else (modes, dates) as shiv wrote it."""
    with archive.open("rb") as f:
        shebang = f.readline()
    with zipfile.ZipFile(archive) as old:
        build_id = json.loads(old.read("environment.json"))["build_id"]
        module, function = ENTRY_POINT.split(":")
        main_py = FAST_MAIN.format(build_id=build_id, module=module, function=function).encode()
        rewritten = archive.with_suffix(".tmp")
        with rewritten.open("wb") as f:
            f.write(shebang)
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as new:
                for info in old.infolist():
                    data = main_py if info.filename == "__main__.py" else old.read(info)
                    new.writestr(info, data)
    rewritten.chmod(0o755)
    rewritten.replace(archive)


def build(src: Path, output: Path, target: Target = NATIVE) -> Path:
    build_execd(src, target)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pyd-build-") as tmp:
        staging = Path(tmp) / "site-packages"
        stage(src, staging, target)
        partial = Path(tmp) / "pyd"
        run_shiv(staging, partial)
        replace_main(partial)
        shutil.copy2(partial, output.with_suffix(".new"))
        output.with_suffix(".new").replace(output)  # atomic: a running dist/pyd is never half-written
    print(f"built {output} ({output.stat().st_size / 1e6:.2f} MB)", file=sys.stderr)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=ROOT, help="source tree (default: this file's folder)")
    parser.add_argument("-o", "--output", type=Path, help="output file (default: SRC/dist/pyd, SRC/dist/pyd-ARCH)")
    parser.add_argument("--arch", choices=sorted(TARGETS), default=NATIVE.machine,
                        help="the machine the file is for (default: x86_64)")
    parser.add_argument("--execd-only", action="store_true", help="only compile pyd/execd (from execd/*.c)")
    args = parser.parse_args()
    src, target = args.src.resolve(), TARGETS[args.arch]
    if args.execd_only:
        build_execd(src, target)
        return
    build(src, (args.output or src / "dist" / target.output).resolve(), target)


if __name__ == "__main__":
    main()
