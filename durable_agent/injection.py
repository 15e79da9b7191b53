"""Prompt-injection screening of user messages and tool results.

Pure and deterministic: text in, a ``Screening`` out. Text is normalised first
(Unicode NFKC, case folded, zero-width and bidi-control characters removed, whitespace
collapsed) so lookalike and invisible-character tricks match the same rules. Rules are
regular expressions in named categories; operators add their own patterns.

A flag is a signal, not a verdict: the workflow records it and, when a tool result in
the current turn is flagged, requires human approval for the write/execute/admin tools
the model asks for next. Tool output always reaches the model as delimited data.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

# Invisible characters used to split trigger words or hide instructions.
_INVISIBLE = dict.fromkeys(
    [0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
)

DEFAULT_RULES: dict[str, tuple[str, ...]] = {
    "instruction_override": (
        r"\b(ignore|disregard|forget|override)\b.{0,40}\b(previous|prior|above|earlier|all|"
        r"your|the)\b.{0,20}\b(instructions?|prompts?|rules|directions|guidelines)\b",
        r"\bnew (system )?instructions?\s*:",
        r"\bfrom now on,? (you|ignore|always|never)\b",
    ),
    "role_hijack": (
        r"\byou are (now|no longer)\b",
        r"\b(act|pretend|behave) as (if you were |an? )?"
        r"(unrestricted|jailbroken|dan|developer mode)",
        r"\b(developer|god|jailbreak|dan) mode\b",
    ),
    "fake_delimiters": (
        r"<\|?(im_start|im_end|system|endoftext)\|?>",
        r"\[/?(system|inst)\]",
        # At a line or sentence start ("… 9-5. SYSTEM: …"), not "the operating system:".
        r"(^|[.!?;]\s)\s*(system|assistant|developer)\s*:",
        r"</?(system|tool_result|function_results?)>",
        r"\b(begin|end) (of )?(system|hidden) (prompt|instructions?)\b",
    ),
    "prompt_exfiltration": (
        r"\b(reveal|print|show|repeat|output|leak)\b.{0,30}\b(system prompt|hidden "
        r"instructions?|initial instructions?|api key|secret)",
    ),
    "tool_coercion": (
        r"\b(call|use|invoke|run|execute)\b.{0,20}\b(the )?(save_note|tool|function)\b.{0,40}"
        r"\b(now|immediately|without (asking|confirmation))\b",
        r"\b(send|post|upload|forward)\b.{0,40}\b(to|at) https?://",
    ),
}


class InjectionMatch(BaseModel):
    """One rule that matched."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str
    rule: str
    excerpt: str
    """Up to 80 characters of the normalised text around the match."""


class Screening(BaseModel):
    """The outcome of screening one text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flagged: bool
    matches: tuple[InjectionMatch, ...] = ()

    @property
    def categories(self) -> list[str]:
        return sorted({m.category for m in self.matches})


def normalise(text: str) -> str:
    """What the rules see: NFKC, case folded, invisible characters dropped, runs of
    whitespace (newlines kept as line breaks) collapsed."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).casefold()
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


@dataclass(frozen=True)
class InjectionDetector:
    """Compiled rules; build once (e.g. per worker or per workflow) and reuse."""

    rules: tuple[tuple[str, str, re.Pattern[str]], ...]

    @classmethod
    def create(
        cls, extra_patterns: Iterable[str] = (), *, defaults: bool = True
    ) -> InjectionDetector:
        """The default rules (unless ``defaults=False``) plus ``extra_patterns`` (category
        ``custom``). Raises ``re.error`` naming a bad pattern."""
        source = [(c, p) for c, ps in DEFAULT_RULES.items() for p in ps] if defaults else []
        source += [("custom", p) for p in extra_patterns]
        return cls(
            tuple((category, pattern, re.compile(pattern, re.MULTILINE | re.DOTALL))
                  for category, pattern in source)
        )  # fmt: skip

    def screen(self, text: str) -> Screening:
        """Screen one text; every matching rule is reported once."""
        seen = normalise(text)
        matches = []
        for category, pattern, compiled in self.rules:
            found = compiled.search(seen)
            if found:
                start = max(0, found.start() - 20)
                excerpt = seen[start : start + 80].replace("\n", " ")
                matches.append(InjectionMatch(category=category, rule=pattern, excerpt=excerpt))
        return Screening(flagged=bool(matches), matches=tuple(matches))
