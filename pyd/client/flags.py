"""A small pflag-like command-line parser with the Docker CLI's error wording.

argparse would cost start-up time and prints its own messages; the docker CLI's users (and tests) expect
pflag's: "unknown flag: --x", "flag needs an argument: 'e' in -e", "invalid argument ... for ... flag".
"""
from __future__ import annotations

TYPE_CHECKING = False     # typing and dataclasses cost milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Callable

BOOL, STRING, INT, LIST = "bool", "string", "int", "list"


class FlagError(Exception):
    """A bad command line: docker prints it with the command's usage and exits 125."""


class ArgCountError(Exception):
    """Too few/many positional arguments: docker prints it prefixed with 'docker: ' and exits 1."""

    def __init__(self, message: str, hint: str = "Run") -> None:
        super().__init__(message)
        self.hint = hint   # docker says "See" for minimum-count errors and "Run" for the others


class Flag:
    """One flag. validate(raw) returns the value to store or raises ValueError(message)."""

    def __init__(self, long: str, short: str = "", kind: str = BOOL, default: Any = None, help: str = "",
                 metavar: str = "", validate: Callable[[str], Any] | None = None,
                 aliases: tuple[str, ...] = (), hidden: bool = False) -> None:
        self.long, self.short, self.kind, self.default, self.help = long, short, kind, default, help
        self.metavar = metavar            # type word shown in the help ("list", "string", "filter", ...)
        self.validate = validate
        self.aliases = aliases            # extra long names (e.g. stop --time for --timeout)
        self.hidden = hidden

    @property
    def dest(self) -> str:
        return self.long.replace("-", "_")

    def initial(self) -> Any:
        if self.kind == LIST:
            return list(self.default or [])
        if self.default is None and self.kind == BOOL:
            return False
        return self.default

    def name_for_errors(self) -> str:
        return f"-{self.short}, --{self.long}" if self.short else f"--{self.long}"


class Spec:
    """One command: its usage line (after the command path, e.g. "[OPTIONS] IMAGE [COMMAND] [ARG...]"),
    summary, flags and how many positional arguments it takes (max_args None = unlimited).
    interspersed=False ends flags at the first positional (run, create, exec); aliases are shown in help."""

    def __init__(self, usage: str, summary: str, flags: list[Flag] | None = None, min_args: int = 0,
                 max_args: int | None = None, interspersed: bool = True, aliases: tuple[str, ...] = ()) -> None:
        self.usage, self.summary, self.flags = usage, summary, flags or []
        self.min_args, self.max_args = min_args, max_args
        self.interspersed, self.aliases = interspersed, aliases


class Options:
    """Parsed flag values as attributes (dest names), plus the set of flags the user gave."""

    def __init__(self, flags: list[Flag]) -> None:
        self._given: set[str] = set()
        for f in flags:
            setattr(self, f.dest, f.initial())

    def given(self, dest: str) -> bool:
        return dest in self._given

    def __repr__(self) -> str:
        return f"Options({ {k: v for k, v in vars(self).items() if not k.startswith('_')} })"


def _convert(flag: Flag, raw: str) -> Any:
    try:
        if flag.validate is not None:
            return flag.validate(raw)
        if flag.kind == INT:
            return _parse_int(raw)
        if flag.kind == BOOL:
            return _parse_bool(raw)
        return raw
    except ValueError as exc:
        raise FlagError(f'invalid argument "{raw}" for "{flag.name_for_errors()}" flag: {exc}') from None


def _parse_int(raw: str) -> int:
    try:
        return int(raw, 0) if raw.lower().startswith(("0x", "0o", "0b")) else int(raw)
    except ValueError:
        raise ValueError(f'strconv.ParseInt: parsing "{raw}": invalid syntax') from None


def _parse_bool(raw: str) -> bool:
    if raw in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if raw in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{raw}": invalid syntax')


def _store(opts: Options, flag: Flag, raw: str) -> None:
    value = _convert(flag, raw)
    if flag.kind == LIST:
        getattr(opts, flag.dest).append(value)
    else:
        setattr(opts, flag.dest, value)
    opts._given.add(flag.dest)


def parse(spec: Spec, argv: list[str]) -> tuple[Options, list[str], bool]:
    """Parse argv against spec. Returns (options, positional args, help_requested).

    Raises FlagError for flag problems; positional-count checks are left to check_args so that
    `--help` wins over a missing argument, as in cobra.
    """
    by_long: dict[str, Flag] = {}
    by_short: dict[str, Flag] = {}
    for f in spec.flags:
        by_long[f.long] = f
        for alias in f.aliases:
            by_long[alias] = f
        if f.short:
            by_short[f.short] = f
    opts = Options(spec.flags)
    args: list[str] = []
    help_requested = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            args.extend(argv[i:])
            break
        if not arg.startswith("-") or arg == "-":
            args.append(arg)
            if not spec.interspersed:
                args.extend(argv[i:])
                break
            continue
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name == "help" and "help" not in by_long:
                help_requested = True
                continue
            flag = by_long.get(name)
            if flag is None:
                raise FlagError(f"unknown flag: --{name}")
            if flag.kind == BOOL:
                _store(opts, flag, value if eq else "true")
            elif eq:
                _store(opts, flag, value)
            elif i < len(argv):
                _store(opts, flag, argv[i])
                i += 1
            else:
                raise FlagError(f"flag needs an argument: --{name}")
            continue
        i = _parse_shorts(arg[1:], argv, i, by_short, opts)
        if i < 0:                      # -h seen as help
            help_requested = True
            i = -i - 1
    return opts, args, help_requested


def _parse_shorts(shorts: str, argv: list[str], i: int, by_short: dict[str, Flag], opts: Options) -> int:
    """Parse a cluster like -it or -eFOO=bar; returns the next index (negative-encoded when -h asked for help)."""
    help_requested = False
    while shorts:
        c = shorts[0]
        flag = by_short.get(c)
        if flag is None:
            if c == "h":
                help_requested = True
                shorts = shorts[1:]
                continue
            raise FlagError(f"unknown shorthand flag: '{c}' in -{shorts}")
        rest = shorts[1:]
        if len(shorts) > 2 and shorts[1] == "=":
            _store(opts, flag, shorts[2:])
            rest = ""
        elif flag.kind == BOOL:
            _store(opts, flag, "true")
        elif rest:
            _store(opts, flag, rest)
            rest = ""
        elif i < len(argv):
            _store(opts, flag, argv[i])
            i += 1
        else:
            raise FlagError(f"flag needs an argument: '{c}' in -{c}")
        shorts = rest
    return -i - 1 if help_requested else i


def check_args(spec: Spec, path: str, args: list[str]) -> None:
    """Cobra's positional-argument checks, with its wording."""
    n, lo, hi = len(args), spec.min_args, spec.max_args
    if hi == 0 and n > 0:
        raise ArgCountError(f"'{path}' accepts no arguments")
    if hi is not None and lo == hi and n != lo:
        raise ArgCountError(f"'{path}' requires {lo} argument{'s' if lo != 1 else ''}")
    if hi is None and n < lo:
        raise ArgCountError(f"'{path}' requires at least {lo} argument{'s' if lo != 1 else ''}", hint="See")
    if hi is not None and lo == 0 and n > hi:
        raise ArgCountError(f"'{path}' requires at most {hi} argument{'s' if hi != 1 else ''}")
    if hi is not None and (n < lo or n > hi):
        raise ArgCountError(f"'{path}' requires at least {lo} and at most {hi} arguments")


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    return lines + [line] if line else lines or [""]


def help_text(spec: Spec, path: str) -> str:
    """The command's help in the docker CLI's layout."""
    out = [f"Usage:  {path} {spec.usage}".rstrip(), "", spec.summary, ""]
    if spec.aliases:
        out += ["Aliases:", "  " + ", ".join(spec.aliases), ""]
    visible = [f for f in spec.flags if not f.hidden]
    if visible:
        out.append("Options:")
        heads = []
        for f in visible:
            head = f"  -{f.short}, --{f.long}" if f.short else f"      --{f.long}"
            word = f.metavar or ("" if f.kind == BOOL else f.kind)
            heads.append(f"{head} {word}".rstrip())
        width = max(len(h) for h in heads) + 3
        for f, head in zip(visible, heads):
            text = f.help
            if f.kind not in (BOOL, LIST) and f.default not in (None, "", 0) or (f.kind == BOOL and f.default):
                shown = f'"{f.default}"' if f.kind == STRING else str(f.default).lower()
                text += f" (default {shown})"
            lines = _wrap(text, max(30, 80 - width))
            out.append(head.ljust(width) + lines[0])
            out.extend(" " * width + extra for extra in lines[1:])
    return "\n".join(out).rstrip() + "\n"
