"""The pure part of the benchmark: medians, targets, verdicts and the table. No processes, no clocks,
so tests/bench/test_bench_harness.py can check it quickly."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

# Columns of the table, in order: engine measured + client that drove it.
COLUMNS = ("dockerd", "pyd", "pyd-cli", "podman")
HEADERS = {"dockerd": "dockerd", "pyd": "pyd (docker CLI)", "pyd-cli": "pyd (pyd CLI)", "podman": "podman"}


@dataclass(frozen=True)
class Target:
    """What pyd must reach. kind: "ratio_max" (pyd/dockerd ≤ value), "ratio_min" (pyd/dockerd ≥ value)
    or "abs_max" (the pyd figure itself ≤ value, in the figure's unit)."""
    kind: str
    value: float
    text: str

    def met(self, pyd: float | None, ratio: float | None) -> bool | None:
        """True/False, or None when the figures needed are missing."""
        if self.kind == "abs_max":
            return None if pyd is None else pyd <= self.value
        if ratio is None:
            return None
        return ratio <= self.value if self.kind == "ratio_max" else ratio >= self.value


@dataclass
class Figure:
    """One row: its samples per column (or the reason a column is n/a)."""
    key: str
    title: str
    unit: str
    target: Target
    samples: dict[str, list[float]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)      # column → reason it is n/a

    def add(self, column: str, value: float) -> None:
        self.samples.setdefault(column, []).append(value)

    def mark_na(self, column: str, reason: str) -> None:
        if column not in self.samples:
            self.missing[column] = first_line(reason, 300)

    def value(self, column: str) -> float | None:
        return median(self.samples.get(column, []))

    def ratio(self) -> float | None:
        return ratio(self.value("pyd"), self.value("dockerd"))

    def verdict(self) -> bool | None:
        return self.target.met(self.value("pyd"), self.ratio())

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "unit": self.unit,
                "values": {c: self.value(c) for c in COLUMNS},
                "samples": {c: v for c, v in self.samples.items()},
                "na": dict(self.missing), "ratio": self.ratio(),
                "target": {"kind": self.target.kind, "value": self.target.value, "text": self.target.text},
                "met": self.verdict()}


def first_line(text: str, limit: int = 90) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    line = lines[-1] if lines and lines[-1].startswith(("Error", "error")) else (lines[0] if lines else "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(pyd: float | None, reference: float | None) -> float | None:
    if pyd is None or reference is None or reference == 0:
        return None
    return pyd / reference


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100 or unit in ("ms",) and abs(value) >= 10:
        return f"{value:.0f} {unit}"
    if abs(value) >= 10:
        return f"{value:.1f} {unit}"
    return f"{value:.2f} {unit}"


def format_table(figures: list[Figure]) -> str:
    """One text table: figure, each column, ratio pyd/dockerd, target, verdict; then the n/a reasons."""
    headers = ["figure", *(HEADERS[c] for c in COLUMNS), "pyd/dockerd", "target", "verdict"]
    rows, notes = [], []
    for fig in figures:
        cells = [fig.title]
        for column in COLUMNS:
            value = fig.value(column)
            cell = format_value(value, fig.unit)
            if value is None and fig.missing.get(column) == "":
                cell = "-"                                   # the column does not apply to this figure
            elif value is None and column in fig.missing:
                reason = first_line(fig.missing[column])
                if reason not in notes:
                    notes.append(reason)
                cell = f"n/a [{notes.index(reason) + 1}]"
            cells.append(cell)
        r = fig.ratio()
        verdict = fig.verdict()
        cells += ["n/a" if r is None else f"{r:.2f}", fig.target.text,
                  "n/a" if verdict is None else ("met" if verdict else "NOT met")]
        rows.append(cells)
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in
                         enumerate(zip(cells, widths))).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)] + [line(row) for row in rows]
    if notes:
        out += ["", "n/a:"] + [f"[{i}] {reason}" for i, reason in enumerate(notes, 1)]
    return "\n".join(out)
