"""The offline planner: a deterministic stand-in model for demos and tests.

Used when no ``ANTHROPIC_API_KEY`` is set. It is honestly named (``offline-planner``,
backend ``offline``): it is not Claude and never says it is. It does plan real tool
calls, in exactly the message shapes the Claude path produces, so the workflow cannot
tell the two apart. Pure code: no I/O, no clock, no randomness; the same request
always gives the same response, byte for byte.

* A new user turn: find the requests in the text (the trigger phrases of ``_INTENTS``,
  "Paris weather", arithmetic expressions) whose tools are offered, and ask for them
  all in one response, in the order they appear.
* Tool results: phrase every result of the turn as text; or, when the turn said
  "…, then multiply that by 4", ask the calculator for the next step (one round per
  such clause, so it cannot loop).
* A tool it has no phrases for (a user tool, an MCP tool) is called only when the text
  names it with JSON arguments: ``use lookup_order {"order_id": "A-1"}``. The
  planner cannot choose such tools; it can be told.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from durable_agent.activity_models import ModelRequest, ModelResponse, StopReason, ToolDefinition
from durable_agent.contract import (
    ContentBlock,
    DeltaKind,
    Message,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)

CHARS_PER_TOKEN = 4
Call = tuple[str, dict[str, Any]]


def estimate_tokens(text: str) -> int:
    """A deterministic token count: about one token per four characters, at least 1."""
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def _p(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


class _Intent(NamedTuple):
    """A trigger phrase and the tool it asks for."""

    tool: str
    key: str
    """The input field filled from the text after the trigger."""
    phrase: bool
    """The argument is a short phrase (it ends at a comma or "and"), not a whole sentence."""
    trigger: re.Pattern[str]


# fmt: off
_INTENTS = (
    _Intent("save_note", "text", False, _p(
        r"(?<!you )(?<!did i )(?<!do i )\b(?:remember|memori[sz]e)\b(?:\s+(?:that|to)\b)?")),
    _Intent("save_note", "text", False, _p(
        r"\b(?:save|make|take|add|write|create)\s+(?:down\s+)?(?:a\s+|an\s+|this\s+|the\s+)?note\b"
        r"(?:\s+(?:that|saying|of|about)\b)?|\bnote\s+(?:that|down)\b|\bjot\s+down\b"
        r"|^\s*note\b(?=\s*:)|\b(?:add|save|put)\s+(?:to|in)\s+my\s+notes\b")),
    _Intent("list_notes", "query", True, _p(  # the query only after "about"
        r"\b(?:(?:list|show|display|read|get)(?:\s+me)?\s+(?:all\s+)?(?:of\s+)?(?:my\s+|the\s+"
        r"|your\s+)?(?:saved\s+)?notes|what\s+did\s+i\s+(?:ask\s+you\s+to\s+)?(?:note|save"
        r"|remember|write\s+down)|what\s+do\s+you\s+remember|my\s+notes)\b"
        r"(?P<about>\s+(?:about|on|containing|mentioning|regarding|with)\b)?")),
    _Intent("get_weather", "location", True, _p(
        r"\b(?:weather|forecast)(?:\s+(?:forecast|report|conditions|today|tomorrow|now|like))*"
        r"\s+(?:in|for|at|of|around)\b")),
    _Intent("web_search", "query", False, _p(
        r"\b(?:search(?:\s+(?:the\s+web|online|the\s+internet))?(?:\s+for)?|look\s+up|google"
        r"|find\s+(?:some\s+)?(?:information|info|articles|results)\s+(?:about|on|for))\b")),
)
# fmt: on
_END_SENTENCE = re.compile(r"[.?!;](?=\s|$)|\n")
_END_PHRASE = re.compile(r"[.?!;:](?=\s|$)|\n|,(?!\s*[A-Z])|(?i:\s(?:and|then|but|also|or)\b)")
# Words that lead into a request or a place: "and what's the weather", "the Paris weather".
_LEAD_IN = (
    r"what(?:'?s)?|how(?:'?s)?|is|are|the|a|an|me|tell|show|get|check|give|today'?s|current|and"
    r"|was|will|be|about|of|for|in|then|please|i|like|you|do|does|know|can|could|your|it|s|also|to"
)
# A request inside another's free text splits it only at a clause break ("search for X and
# what's the weather in Y"), not in "search for how to remember names".
_CLAUSE_BREAK = _p(rf"(?:[,;.!?]|\b(?:and|then|also|but|plus)\b)(?:\s+(?:{_LEAD_IN})\b){{0,5}}\s*$")
_JOINERS = frozenset({"and", "then", "also", "but", "or", "please", "the", "a", "an", "to"})
_FILLERS = frozenset({"today", "tonight", "tomorrow", "now", "right", "please", "currently"})

# "Paris weather": the place is the (up to three) name-like words before.
_WEATHER_AFTER = _p(r"\bweather\b(?!\s+(?:forecast\s+|report\s+)?(?:in|for|at|of|around)\b)")
_WORD = re.compile(r"\S+")
_NAME = re.compile(r"[^\W\d_][\w'-]*")
_STOP_WORD = _p(_LEAD_IN)

_OP_WORDS = {
    **dict.fromkeys(["multiplied by", "times", "x", "\u00d7"], "*"),
    **dict.fromkeys(["divided by", "over", "\u00f7"], "/"),
    **dict.fromkeys(["to the power of", "^"], "**"),
    **dict.fromkeys(["modulo", "mod"], "%"),
    "plus": "+",
    "minus": "-",
}
_OP_WORD_RE = (
    r"multiplied\s+by|divided\s+by|to\s+the\s+power\s+of|times|plus|minus|over|mod(?:ulo)?|x"
)
_TOKEN = re.compile(
    rf"(?P<num>[0-9]+(?:\.[0-9]+)?|\.[0-9]+)|(?P<fn>sqrt\s*\()|(?P<op>\*\*|//|[-+*/%^\u00d7\u00f7()]"
    rf"|\b(?:{_OP_WORD_RE})\b)|(?P<gap>\s+)|(?P<other>.)",
    re.IGNORECASE | re.DOTALL,
)
# An expression after a cue is a request of its own ("remember X and what is 2+3").
_CUE = _p(r"\b(?:what\s+is|what's|whats|compute|calculate|calc|evaluate|solve)\s*:?\s*$")

# "…, then multiply that by 4": (step pattern, operator, operand); None: from the match.
_REF = r"(?:that|it|this|the\s+result|the\s+answer)"
_NUM = r"(?P<n>-?[0-9]+(?:\.[0-9]+)?)"
_CHAIN = tuple(
    (_p(rf"\bthen\s+(?:please\s+)?(?:what\s+is\s+|what's\s+|compute\s+|take\s+)?(?:{step})"), op, n)
    for step, op, n in (
        (rf"multiply\s+{_REF}\s+by\s+{_NUM}", "*", None),
        (rf"divide\s+{_REF}\s+by\s+{_NUM}", "/", None),
        (rf"add\s+{_NUM}\s+to\s+{_REF}", "+", None),
        (rf"subtract\s+{_NUM}\s+from\s+{_REF}", "-", None),
        (rf"double\s+{_REF}", "*", "2"),
        (rf"triple\s+{_REF}", "*", "3"),
        (rf"halve\s+{_REF}", "/", "2"),
        (rf"square\s+{_REF}|{_REF}\s+squared", "**", "2"),
        (rf"{_REF}\s*(?P<op>{_OP_WORD_RE}|\*\*|//|[-+*/%^\u00d7\u00f7])\s*{_NUM}", None, None),
    )
)
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?")
# "use lookup_order {"order_id": "A-1"}": an offered tool named, then a JSON object.
_EXPLICIT = _p(
    r"\b(?:use|call)\s+(?:the\s+)?(?:tool\s+)?(?P<name>[a-z0-9_-]{1,64})(?:\s+tool)?"
    r"\s+(?:with\s+)?(?=\{)"
)


@dataclass
class _Hit:
    """One request found in the text."""

    start: int
    arg_start: int
    end: int
    tool: str
    """A tool name, or ``"chain"`` for a "then … that" step."""
    args: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    """The input field still to be filled from ``text[arg_start:end]``."""
    phrase: bool = False
    cuts: bool = True
    """Whether it may end the free text of an earlier hit (a bare "2-3" may not)."""


def _place_before(text: str, at: int) -> list[re.Match[str]]:
    """The name-like words (up to three) right before ``at``: "New York" in "the New York"."""
    place: list[re.Match[str]] = []
    for word in reversed(list(_WORD.finditer(text, max(0, at - 80), at))[-3:]):
        if _STOP_WORD.fullmatch(word.group()) or not _NAME.fullmatch(word.group()):
            break
        place.insert(0, word)
    return place


def _symbol(token: str) -> str:
    """An operator or function token in calculator syntax ("multiplied  by" → "*")."""
    token = " ".join(token.lower().split())
    return _OP_WORDS.get(token, token.replace(" ", ""))


def _keyword_hits(text: str) -> list[_Hit]:
    """Trigger phrases, "Paris weather", and "then … that" steps."""
    hits = []
    for tool, key, phrase, trigger in _INTENTS:
        for m in trigger.finditer(text):
            hit = _Hit(m.start(), m.end(), m.end(), tool)
            if m.groupdict().get("about", "") is not None:  # "list my notes" takes no argument
                end = (_END_PHRASE if phrase else _END_SENTENCE).search(text, m.end())
                hit.end, hit.key, hit.phrase = end.start() if end else len(text), key, phrase
            hits.append(hit)
    for m in _WEATHER_AFTER.finditer(text):
        if place := _place_before(text, m.start()):
            location = " ".join(w.group() for w in place)
            hits.append(
                _Hit(place[0].start(), m.end(), m.end(), "get_weather", {"location": location})
            )
    for pattern, op, operand in _CHAIN:
        for m in pattern.finditer(text):
            step = {"op": _symbol(op or m.group("op")), "operand": operand or m.group("n")}
            hits.append(_Hit(m.start(), m.end(), m.end(), "chain", step))
    return hits


def _format_expression(tokens: list[str]) -> str | None:
    """``tokens`` as a calculator expression, or ``None`` if they are not arithmetic."""
    out: list[str] = []
    depth, operand_next, operations = 0, True, 0
    for tok in tokens:
        if tok in ("(", "sqrt(") or tok[0].isdigit() or tok[0] == ".":
            if not operand_next:
                return None
            if tok[-1] == "(":
                depth, operations = depth + 1, operations + (tok == "sqrt(")
            else:
                operand_next = False
            out.append(re.sub(r"^0+(?=[0-9])", "", tok))
        elif tok == ")":
            if operand_next or depth == 0:
                return None
            depth -= 1
            out.append(tok)
        elif operand_next:
            if tok not in ("+", "-"):
                return None
            out.append(tok)  # a sign
        else:
            operand_next, operations = True, operations + 1
            out.append(f" {tok} ")
    return "".join(out) if not operand_next and not depth and operations else None


def _expression_hit(text: str, run: list[re.Match[str]]) -> _Hit | None:
    """The calculator call in a run of number and operator tokens, if it is one."""
    first, last = 0, len(run)  # drop what cannot start or end an expression
    while first < last and run[first].lastgroup == "op" and run[first].group() not in "(+-":
        first += 1
    while last > first and run[last - 1].lastgroup != "num" and run[last - 1].group() != ")":
        last -= 1
    expression = _format_expression([_symbol(t.group()) for t in run[first:last]])
    if expression is None:
        return None
    start, end = run[first].start(), run[last - 1].end()
    cue = _CUE.search(text, max(0, start - 40), start)
    if not cue and re.fullmatch(r"[0-9]+(?:-[0-9]+)+", text[start:end]):
        return None  # a date or a phone number
    begin = cue.start() if cue else start
    return _Hit(begin, end, end, "calculator", {"expression": expression}, cuts=bool(cue))


def _expression_hits(text: str) -> list[_Hit]:
    """Arithmetic expressions: maximal runs of number and operator tokens."""
    hits, run = [], []
    for m in [*_TOKEN.finditer(text), None]:
        if m is not None and m.lastgroup in ("num", "fn", "op"):
            run.append(m)
        elif m is None or m.lastgroup == "other":
            hit = _expression_hit(text, run) if run else None
            hits += [hit] if hit else []
            run = []
    return hits


def _clean(arg: str, phrase: bool, was_cut: bool) -> str:
    """A free-text argument without the joining words before a cut ("cats and" → "cats")."""
    arg = arg.strip().lstrip(":,-").strip()
    if not (phrase or was_cut):
        return arg.rstrip(" ,;:")
    droppable = _JOINERS | _FILLERS if phrase else _JOINERS
    for word in reversed(list(_WORD.finditer(arg))):  # a regex for this can backtrack badly
        kept = word.group().rstrip(",;:.!?-")
        if kept and kept.lower() not in droppable:
            return arg[: word.start()] + kept
    return ""


def _cut_point(text: str, hit: _Hit) -> int | None:
    """Where ``hit`` ends the free text of an earlier request: at a clause break before it."""
    if hit.tool == "chain":  # it begins with its own break, "then"
        return hit.start
    found = _CLAUSE_BREAK.search(text, max(0, hit.start - 60), hit.start) if hit.cuts else None
    return found.start() if found else None


def _plan(
    text: str, offered: dict[str, ToolDefinition]
) -> tuple[list[Call], list[tuple[str, str]]]:
    """The tool calls ``text`` asks for now, and its chained calculator steps (op, operand)."""
    text = text.replace("\u2019", "'")  # a phone's apostrophe; same length, so offsets hold
    usable = set(offered) | ({"chain"} if "calculator" in offered else set())
    hits = [h for h in _keyword_hits(text) + _expression_hits(text) if h.tool in usable]
    hits.sort(key=lambda h: (h.start, -h.end))
    cut_points = sorted(p for p in (_cut_point(text, h) for h in hits) if p is not None)
    requests = sorted(h.start for h in hits if h.cuts)
    kept: list[_Hit] = []
    for hit in hits:
        j = bisect.bisect_left(requests, hit.arg_start)
        after = requests[j] if j < len(requests) else len(text)
        if hit.tool == "web_search" and not _clean(text[hit.arg_start : after], False, True):
            continue  # "look up the weather in Paris" asks for the weather itself
        if hit.key is not None:  # free text runs to the next request that cuts it
            i = bisect.bisect_left(cut_points, hit.arg_start)
            was_cut = i < len(cut_points) and cut_points[i] < hit.end
            hit.end = cut_points[i] if was_cut else hit.end
            value = _clean(text[hit.arg_start : hit.end], hit.phrase, was_cut)
            if not value:
                continue
            hit.args = {hit.key: value}
        if not kept or hit.start >= kept[-1].end:
            kept.append(hit)
    calls: list[Call] = []
    for hit in kept:
        call = _fit(offered, hit.tool, hit.args) if hit.tool != "chain" else None
        if call is not None and call not in calls:
            calls.append(call)
    return calls, [(h.args["op"], h.args["operand"]) for h in kept if h.tool == "chain"]


def _explicit_calls(text: str, offered: dict[str, ToolDefinition]) -> tuple[list[Call], str]:
    """The calls ``text`` names with JSON arguments (``use <tool> {…}``), and the
    text with them blanked out (for the phrase-based plan of the rest)."""
    calls: list[Call] = []
    rest, done = text, 0
    for match in _EXPLICIT.finditer(text):
        if match.start() < done or match.group("name") not in offered:
            continue
        try:
            args, end = json.JSONDecoder().raw_decode(text, match.end())
        except ValueError:
            continue
        if isinstance(args, dict):
            calls.append((match.group("name"), args))
            rest = rest[: match.start()] + "." + " " * (end - match.start() - 1) + rest[end:]
            done = end
    return calls, rest


def _schema_value(prop: dict[str, Any], name: str) -> Any:
    """``name`` (e.g. ``maxLength``) of a property schema, looking inside ``anyOf``."""
    return next((s[name] for s in [prop, *prop.get("anyOf", [])] if name in s), None)


def _fit(offered: dict[str, ToolDefinition], tool: str, args: dict[str, str]) -> Call | None:
    """``args`` trimmed to the offered tool's input schema, or ``None`` if they cannot fit."""
    schema = offered[tool].input_schema
    props = schema.get("properties", {})
    fitted = {}
    for key, value in args.items():
        if key not in props:
            return None
        limit = _schema_value(props[key], "maxLength")
        text = value[:limit].strip() if isinstance(limit, int) else value.strip()
        if len(text) < max(1, _schema_value(props[key], "minLength") or 0):
            return None
        fitted[key] = text
    return (tool, fitted) if set(schema.get("required", [])) <= fitted.keys() else None


_EXAMPLES = {
    "calculator": 'arithmetic ("what is 12 * (3 + 4)?")',
    "save_note": 'saving notes ("remember that the meeting moved to 3pm")',
    "list_notes": 'recalling notes ("list my notes")',
    "get_weather": 'the weather ("weather in Paris")',
    "web_search": 'web searches ("search for Temporal workflows")',
}
_DOING = {
    "calculator": "calculate {expression}",
    "save_note": "save that note",
    "list_notes": "list your notes",
    "get_weather": "get the weather for {location}",
    "web_search": "search for {query}",
}
_DONE = {
    "calculator": "The result of {expression} is {value}.",
    "save_note": "I saved that note.",
    "list_notes": "Here are your notes:\n{content}",
    "get_weather": "The weather in {location}: {content}",
    "web_search": 'Here is what I found for "{query}":\n{content}',
}


def _help(offered: dict[str, ToolDefinition]) -> str:
    skills = [example for tool, example in _EXAMPLES.items() if tool in offered]
    others = sorted(set(offered) - _EXAMPLES.keys())
    if others:
        skills.append(
            f"the tools {', '.join(others)} when you name one with JSON arguments "
            f'("use {others[0]} {{...}}")'
        )
    if not skills:
        return (
            "I'm the offline planner, not Claude, and I have no tools here, so I can't act on that."
        )
    return (
        "I'm the offline planner, not Claude, and I didn't find a request I can act on. "
        f"I can help with {'; '.join(skills)}."
    )


def _value(result: ToolResultBlock) -> str:
    """The value of a calculator result ``"<expression> = <value>"``."""
    return result.content.rsplit(" = ", 1)[-1].strip()


def _phrase(use: ToolUseBlock, result: ToolResultBlock | None) -> str:
    """One sentence about one tool call's outcome."""
    if result is None:
        return f"I got no result from {use.name}."
    fields = defaultdict(str, {k: str(v) for k, v in use.input.items()})
    fields.update(name=use.name, value=_value(result), content=result.content.strip())
    if result.is_error:
        doing = _DOING.get(use.name, "use {name}").format_map(fields)
        return f"I couldn't {doing}: {result.content.strip().rstrip('.') or 'unknown error'}."
    return _DONE.get(use.name, "{name} returned: {content}").format_map(fields)


def _block_text(block: ContentBlock) -> str:
    if isinstance(block, TextBlock):
        return block.text
    if isinstance(block, ToolUseBlock):
        return block.name + json.dumps(block.input, sort_keys=True)
    return block.content


def _is_turn_start(message: Message) -> bool:
    results = any(isinstance(b, ToolResultBlock) for b in message.content)
    return message.role == "user" and not results and bool(message.text().strip())


class OfflineModel:
    """Plans tool calls from the user's words with fixed patterns; see the module docstring."""

    name = "offline-planner"
    backend = "offline"

    def respond(self, request: ModelRequest) -> ModelResponse:
        """One assistant message for ``request``; pure and deterministic."""
        offered = {tool.name: tool for tool in request.tools}
        last = request.messages[-1] if request.messages else None
        content: list[ContentBlock] = [TextBlock(text=_help(offered))]
        if last is not None and any(isinstance(b, ToolResultBlock) for b in last.content):
            content = self._after_results(request, offered)
        elif last is not None and last.role == "user":
            named, rest = _explicit_calls(last.text(), offered)
            planned, _ = _plan(rest, offered)
            calls = named + [c for c in planned if c not in named]
            content = self._tool_uses(request, calls) if calls else content
        return self._finish(request, content)

    def _after_results(
        self, request: ModelRequest, offered: dict[str, ToolDefinition]
    ) -> list[ContentBlock]:
        """Phrase the turn's results, or take the next "then … that" calculator step."""
        messages = request.messages
        starts = [i for i, m in enumerate(messages) if _is_turn_start(m)]
        turn = messages[starts[-1] if starts else 0 :]
        rounds = [
            [b for b in m.content if isinstance(b, ToolUseBlock)]
            for m in turn
            if m.role == "assistant" and any(isinstance(b, ToolUseBlock) for b in m.content)
        ]
        results = {
            b.tool_use_id: b for m in turn for b in m.content if isinstance(b, ToolResultBlock)
        }
        _, steps = _plan(_explicit_calls(turn[0].text(), offered)[1] if starts else "", offered)
        if 1 <= len(rounds) <= len(steps):  # one chained round per "then … that" clause
            answers = [results.get(u.id) for u in rounds[-1] if u.name == "calculator"]
            values = [_value(r) for r in answers if r is not None and not r.is_error]
            if values and _NUMBER.fullmatch(values[-1]):
                op, operand = steps[len(rounds) - 1]
                prev = f"({values[-1]})" if values[-1].startswith("-") else values[-1]
                call = _fit(offered, "calculator", {"expression": f"{prev} {op} {operand}"})
                if call is not None:
                    return self._tool_uses(request, [call])
        lines = [_phrase(use, results.get(use.id)) for uses in rounds for use in uses]
        return [TextBlock(text="\n".join(lines) or "I have no tool results to report.")]

    def _tool_uses(self, request: ModelRequest, calls: list[Call]) -> list[ContentBlock]:
        """A short preamble and one ``tool_use`` block per call, with deterministic ids."""
        transcript = json.dumps(
            [m.model_dump(mode="json") for m in request.messages], sort_keys=True
        )
        digest = hashlib.sha256(transcript.encode()).hexdigest()
        names = list(dict.fromkeys(name for name, _ in calls))
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        content: list[ContentBlock] = [TextBlock(text=f"Let me use {listed}.")]
        for index, (name, args) in enumerate(calls):
            # Unique in the conversation: the transcript so far differs at every model call.
            seed = json.dumps([len(request.messages), digest, index, name, args], sort_keys=True)
            tool_id = "toolu_off_" + hashlib.sha256(seed.encode()).hexdigest()[:20]
            content.append(ToolUseBlock(id=tool_id, name=name, input=args))
        return content

    def _finish(self, request: ModelRequest, content: list[ContentBlock]) -> ModelResponse:
        """Apply ``max_tokens`` and count usage."""
        stop: StopReason = "tool_use" if any(b.type == "tool_use" for b in content) else "end_turn"
        budget = max(1, request.max_tokens)
        if estimate_tokens("\n".join(map(_block_text, content))) > budget:
            # Stop mid-answer, as the API does; a half-written tool call is dropped, not sent.
            text = "\n".join(b.text for b in content if isinstance(b, TextBlock))
            content, stop = [TextBlock(text=text[: budget * CHARS_PER_TOKEN])], "max_tokens"
        seen = [request.system, *(_block_text(b) for m in request.messages for b in m.content)]
        seen += [
            t.name + t.description + json.dumps(t.input_schema, sort_keys=True)
            for t in request.tools
        ]
        usage = Usage(
            input_tokens=estimate_tokens("\n".join(seen)),
            output_tokens=estimate_tokens("\n".join(map(_block_text, content))),
        )
        return ModelResponse(
            content=content, stop_reason=stop, usage=usage, model=self.name, backend="offline"
        )


class Piece(NamedTuple):
    """One piece of a response as the planner streams it (a ``ModelDelta`` without its
    place in the conversation)."""

    kind: DeltaKind
    text: str = ""
    call_id: str | None = None
    tool: str | None = None


_STREAM_WORD = re.compile(r"\s*\S+|\s+")


def stream_pieces(content: list[ContentBlock]) -> list[Piece]:
    """``content`` as it is streamed: text word by word (each word with the whitespace
    before it, so the words joined are the text exactly), a tool call as its start and
    finish."""
    pieces: list[Piece] = []
    for block in content:
        if isinstance(block, TextBlock):
            pieces += [Piece("text", word) for word in _STREAM_WORD.findall(block.text)]
        elif isinstance(block, ToolUseBlock):
            pieces.append(Piece("tool_use_started", call_id=block.id, tool=block.name))
            pieces.append(Piece("tool_use_finished", call_id=block.id, tool=block.name))
    return pieces


def summarise(messages: list[Message], max_chars: int = 4000) -> str:
    """A deterministic, extractive summary of a transcript: each turn's request and
    answer, shortened (what the offline planner does where Claude would write a summary
    when old turns are compacted)."""
    lines = []
    for message in messages:
        text = " ".join(message.text().split())
        if text:
            who = "user" if message.role == "user" else "assistant"
            lines.append(f"- {who}: {text[:160]}{'…' if len(text) > 160 else ''}")
    summary = "\n".join(lines)
    return summary if len(summary) <= max_chars else "…\n" + summary[-max_chars:]
