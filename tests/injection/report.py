"""Recall per attack family and false positives on benign text, for the detector.

``python -m tests.injection.report`` prints the table docs/detector.md quotes;
``tests/unit/test_injection.py`` asserts floors on the same figures.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from durable_agent.injection import InjectionDetector

HERE = Path(__file__).parent


def load(name: str) -> dict[str, list[str]]:
    """One data file's texts by family (attacks) or kind (benign)."""
    data = json.loads((HERE / name).read_text())
    texts: dict[str, list[str]] = data.get("families") or data["kinds"]
    return texts


@dataclass
class Figures:
    """How many texts of each group were flagged, and which were not (or were)."""

    total: dict[str, int] = field(default_factory=dict)
    flagged: dict[str, int] = field(default_factory=dict)
    odd: list[tuple[str, str]] = field(default_factory=list)
    """Attacks missed, or benign texts flagged: (group, text)."""

    @property
    def rate(self) -> float:
        """Flagged over all texts."""
        return sum(self.flagged.values()) / max(1, sum(self.total.values()))


def measure(detector: InjectionDetector, groups: dict[str, list[str]], *, attacks: bool) -> Figures:
    """Screen every text; ``odd`` lists misses (attacks) or false positives (benign)."""
    figures = Figures()
    for group, texts in groups.items():
        figures.total[group] = len(texts)
        figures.flagged[group] = 0
        for text in texts:
            flagged = detector.screen(text).flagged
            figures.flagged[group] += flagged
            if flagged != attacks:
                figures.odd.append((group, text))
    return figures


def table(tuned: Figures, held_out: Figures, benign: Figures) -> str:
    """A markdown table: recall per family on both splits, then the benign rate."""
    rows = ["| family | tuned recall | held-out recall |", "|---|---|---|"]
    for family in tuned.total:
        cells = [f"{s.flagged.get(family, 0)}/{s.total.get(family, 0)}" for s in (tuned, held_out)]
        rows.append(f"| {family} | {cells[0]} | {cells[1]} |")
    rows.append(
        f"| **all** | **{tuned.rate:.0%}** ({sum(tuned.flagged.values())}/"
        f"{sum(tuned.total.values())}) | **{held_out.rate:.0%}** ({sum(held_out.flagged.values())}"
        f"/{sum(held_out.total.values())}) |"
    )
    fp = sum(benign.flagged.values())
    rows.append(f"\nBenign: {fp} of {sum(benign.total.values())} flagged ({benign.rate:.1%}).")
    return "\n".join(rows)


def main() -> int:
    """Print the table, then every miss and every false positive."""
    detector = InjectionDetector.create()
    tuned = measure(detector, load("tuned.json"), attacks=True)
    held_out = measure(detector, load("held_out.json"), attacks=True)
    benign = measure(detector, load("benign.json"), attacks=False)
    print(table(tuned, held_out, benign))
    for title, figures in (("missed (tuned)", tuned), ("missed (held-out)", held_out),
                           ("false positives", benign)):  # fmt: skip
        for group, text in figures.odd:
            print(f"{title} [{group}]: {text!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
