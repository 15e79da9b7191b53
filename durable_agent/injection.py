"""Prompt-injection screening of user messages and tool results.

Pure and deterministic: text in, a ``Screening`` out. The rules see the text twice:

- a *canonical* view: Unicode tag characters decoded, NFKC, case folded, invisible and
  bidi-control characters and stacked diacritics dropped, lookalike letters (Cyrillic and
  Greek) in mixed-script words mapped to Latin, spaced-out letters joined
  ("i g n o r e", "d.i.s.r.e.g.a.r.d"), hyphen-split keywords joined ("ig-nore"),
  leetspeak decoded ("1gn0re") and common misspellings of trigger words corrected
  ("ingore", "instrucitons"); whitespace collapsed;
- a *squashed* view (letters only) for a few strong phrases, against any separator trick.

Rules are regular expressions in named categories (``DEFAULT_RULES``); operators add
their own (category ``custom``). Every pattern is linear: no nested quantifiers, every
gap a bounded class like ``[^\\n]{0,40}``. Texts over ``MAX_SCREENED_CHARS`` are screened
on their head and tail only, so a call's work is bounded.

A flag is a signal, not a verdict, and a missed attack is expected: the workflow records
flags, marks flagged tool output as untrusted and raises the approval's severity, but the
defence that must hold is provenance gating of side effects. docs/detector.md has the
measured recall per attack family and the false-positive rate.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from re import _constants, _parser  # type: ignore[attr-defined]

from pydantic import BaseModel, ConfigDict

MAX_SCREENED_CHARS = 256_000
"""Longer texts are screened on their first and last half of this many characters (about
a second of work at worst on this project's CI machines; see docs/detector.md)."""

# Zero-width, bidi-control, soft hyphen, variation selectors, fillers: used to split
# trigger words or hide text; never meaningful to a rule.
_INVISIBLE = dict.fromkeys(
    [0x00AD, 0x034F, 0x115F, 0x1160, 0x180E, 0x3164, 0xFEFF,
     *range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2070),
     *range(0xFE00, 0xFE10)]
)  # fmt: skip
# Unicode tag characters ("ASCII smuggling") spell ASCII invisibly: decode them.
_TAGS = {cp: cp - 0xE0000 for cp in range(0xE0020, 0xE007F)} | {0xE0001: None, 0xE007F: None}
# Letters that look Latin, for words that mix them with Latin (or consist only of them).
_CONFUSABLE = str.maketrans(
    "аеорсухіјѕԁԛԝһӏёїɡɑıℓαοριυνκτεχ",
    "aeopcyxijsdqwhleigailaopiuvktex",
)
_CONFUSABLE_CHARS = frozenset("аеорсухіјѕԁԛԝһӏёїɡɑıℓαοριυνκτεχ")
_LEET = str.maketrans("0134578$", "oieastbs")

# Trigger words whose common misspellings (one letter dropped, doubled or swapped with
# its neighbour) are corrected before the rules run.
_KEYWORDS = (
    "ignore", "disregard", "forget", "override", "bypass", "previous", "earlier",
    "instructions", "instruction", "prompt", "system", "assistant", "reveal", "password",
    "guidelines", "directions", "directives", "developer", "unrestricted", "above", "prior",
)  # fmt: skip
_REAL_WORDS = frozenset({"forge", "revel", "revela", "prio", "abov"})


def _misspellings() -> dict[str, str]:
    fixes: dict[str, str] = {}
    for word in _KEYWORDS:
        variants = {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)}
        variants |= {word[:i] + word[i] + word[i:] for i in range(len(word))}
        if len(word) >= 6:
            variants |= {word[:i] + word[i + 1 :] for i in range(len(word))}
        for variant in variants - _REAL_WORDS - set(_KEYWORDS):
            fixes.setdefault(variant, word)
    fixes.update(
        ingore="ignore", igonre="ignore", disreguard="disregard", pervious="previous",
        previus="previous", sistem="system", promt="prompt", assistent="assistant",
    )  # fmt: skip
    return fixes


_FIXES = _misspellings()
_JOINABLE = frozenset(_KEYWORDS) | frozenset(_FIXES)

_MARKS = re.compile(r"(?<=[a-z])[\u0300-\u036f\u1ab0-\u1aff\u20d0-\u20ff]+")
_WORD = re.compile(r"\w+")
# One letter, then the same separator and one letter at least twice more.
_SPACED = re.compile(r"\b[a-z](?P<sep>[ .\-_*·])[a-z]\b(?:(?P=sep)[a-z]\b)+")
_SPLIT = re.compile(r"\b[a-z]+(?:[-.·*][a-z]+)+\b")
_TOKEN = re.compile(r"[a-z0-9@$]*[a-z][a-z0-9@$]*")
_NOT_LETTER = re.compile(r"[^a-z]+")
# "3pm", "10am", "mp3", "sha256": a number with a unit or a name, not leetspeak.
_UNIT = re.compile(r"\d+[a-z]{1,3}|[a-z]{1,4}\d+")


def _unconfuse(word: re.Match[str]) -> str:
    text = word.group()
    if text.isascii():
        return text
    if any("a" <= c <= "z" for c in text) or set(text) <= _CONFUSABLE_CHARS:
        return text.translate(_CONFUSABLE)
    return text


def _clean(text: str) -> str:
    """Tags decoded, NFKC, invisibles dropped, case folded, lookalikes mapped."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text.translate(_TAGS)).translate(_INVISIBLE)
        return _WORD.sub(_unconfuse, text.casefold())
    return text.casefold()


def _collapse(text: str) -> str:
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def normalise(text: str) -> str:
    """What patterns written by people see (blocked patterns, custom injection patterns):
    NFKC, case folded, invisible characters dropped, lookalike letters mapped to Latin,
    runs of whitespace collapsed (newlines kept as line breaks, empty lines dropped)."""
    return _collapse(_clean(text))


def _join_spaced(found: re.Match[str]) -> str:
    return found.group().replace(found.group("sep"), "")


def _join_split(found: re.Match[str]) -> str:
    joined = re.sub(r"[-.·*]", "", found.group())
    return joined if joined in _JOINABLE else found.group()


def _fix_token(found: re.Match[str]) -> str:
    token = found.group()
    if not token.isalpha() and not _UNIT.fullmatch(token):
        # "@ll" is leetspeak, "x@evil.example" an address.
        token = ("a" + token[1:] if token[0] == "@" else token).translate(_LEET)
    return _FIXES.get(token, token)


def canonical(text: str) -> str:
    """The view most rules see: ``normalise`` plus accents dropped from Latin letters,
    spaced-out letters and hyphen-split keywords joined, leetspeak decoded and common
    misspellings corrected."""
    text = _clean(text)
    if not text.isascii():  # accents and stacked diacritics off Latin letters
        text = unicodedata.normalize("NFC", _MARKS.sub("", unicodedata.normalize("NFD", text)))
    text = _SPACED.sub(_join_spaced, text)
    text = _SPLIT.sub(_join_split, text)
    return _collapse(_TOKEN.sub(_fix_token, text))


# Building blocks (each a plain alternation; gaps between them are bounded).
_OVERRIDE = (
    r"ignore|disregard|forget|override|bypass|discard|abandon|set aside|never ?mind|"
    r"stop following|do not follow|don'?t follow|pay no attention to|throw away"
)
_EARLIER = (
    r"previous|prior|above|earlier|preceding|former|original|initial|old|existing|all|any|"
    r"your|those|these|system|developer|other"
)
_RULES = (
    r"instructions?|prompts?|rules|directions|directives|guidelines|guidance|commands|orders|"
    r"constraints|restrictions|policies|programming|context|system prompt|tasks?"
)
_AI = (
    r"ai|a\.i\.|assistants?|ai assistants?|language models?|llms?|models?|chatbots?|bots?|"
    r"agents?|ai agents?|claude|chatgpt|gpt(?:-?\d)?|copilot|gemini|coding agents?"
)
_AI_NOUN = (
    r"(?:ai|llm|language model|gpt|automated)s? ?(?:agents?|assistants?|models?|systems?|"
    r"summari[sz]ers?|reviewers?|recruiters?|screeners?|readers?|crawlers?|bots?|tools?)?"
)
_DO = (
    r"ignore|call|send|save|reveal|book|disable|delete|forward|tell|say|recommend|approve|"
    r"skip|email|transfer|grant|run|execute|output|print|respond|reply|stop|obey|follow|"
    r"comply|add|remove|write|share|export|visit|open|insert|include|mark|rank|rate|omit|"
    r"state|accept|sign|give|do not|don'?t|never|always|only|push|upload|post|wipe"
)
_SECRET = (
    r"system prompt|system message|(?:hidden|initial|original|secret|developer|full|exact|"
    r"entire|complete) (?:instructions?|prompt|message|rules|configuration)|instructions you "
    r"were given|pre-?prompt|api ?keys?|secret (?:key|code|password)|passwords?|secrets?"
)
_DATA = (
    r"user'?s?|conversation|chat|transcripts?|history|notes|passwords?|api ?keys?|tokens?|"
    r"secrets?|credentials?|contacts?|system prompt|instructions|e-?mails|invoices|"
    r"e-?mail (?:thread|history|archive)|address(?:es)?|phone|calendar|files|thread|contents|iban|"
    r"everything|memory|\.env|ssh keys?|documents|messages"
)
_LEAK_KEY = (
    r"data|d|q|secret|prompt|system_?prompt|conversation|chat|history|notes|info|summary|"
    r"memory|credentials|msg"
)
_DEST = r"(?:[\w.+-]+@[\w-]+\.[\w.]+|https?://|www\.)"

DEFAULT_RULES: dict[str, tuple[str, ...]] = {
    "instruction_override": (
        rf"\b(?:{_OVERRIDE})\b[^.!?\n]{{0,40}}?\b(?:{_EARLIER})\b[^.!?\n]{{0,30}}?\b(?:{_RULES})\b",
        r"\b(?:forget|ignore|disregard)\b (?:about )?(?:everything|all|anything) (?:you(?:'ve| "
        r"have)? (?:been|were) (?:told|given|instructed)|(?:above|before|so far|said))",
        r"\binstead of (?:following|obeying|doing) (?:the|your|my|these|those) "
        r"(?:system prompt|instructions|rules|task)",
        r"\bnew (?:system )?(?:instructions?|rules|directives?|policy|task|orders)\s*:",
        r"\bfrom now on,? (?:you|ignore|always|never|only)\b",
        # Spanish, French, German, Italian, Portuguese, Chinese, Japanese, Russian.
        r"\b(?:ignora|ignore|ignoren|olvida|olvide|olvidate de|descarta|omite)\b[^.\n]{0,30}"
        r"\b(?:instrucciones|indicaciones|reglas|ordenes|instrucoes|regras|istruzioni|regole)\b",
        r"\b(?:ignore[zs]?|oublie[zs]?|ne tiens pas compte|ne tenez pas compte)\b[^.\n]{0,30}"
        r"\b(?:les|tes|vos|ces|des) (?:\w+ )?(?:instructions|consignes|regles|directives)\b",
        r"\b(?:ignorier\w*|vergiss|vergessen sie|missachte\w*)\b[^.\n]{0,30}"
        r"\b(?:anweisungen|instruktionen|regeln|vorgaben|befehle)\b",
        r"(?:忽略|忽视|无视|忘记|忘掉|不要理会|不要遵守|跳过|無視|忘れ)[^。\n]{0,12}"
        r"(?:指令|指示|说明|規則|规则|提示|命令|要求|指南)",
        r"\b(?:игнорируй\w*|забудь\w*)\b[^.\n]{0,30}\b(?:инструкци\w*|правила)",
    ),
    "role_hijack": (
        r"\byou are (?:now|no longer)\b[^.\n]{0,30}?\b(?:ai|assistant|model|bot|chatbot|dan|stan|"
        r"\w*gpt|jailbroken|unrestricted|unfiltered|uncensored|evil|mode|persona|character|"
        r"bound|restricted|limited|required to)\b",
        r"\b(?:act|pretend|behave|roleplay|role-play)(?: to be| as| that you are| you are)"
        r"(?: if you were)?(?: an?| my)? (?:unrestricted|unfiltered|uncensored|jailbroken|evil|"
        r"amoral|unethical|dan|stan|dude|(?:ai|model|assistant|bot) (?:with no|without))",
        r"\b(?:enable|enter|activate|switch to|turn on|in|into) (?:jailbreak|dan|unrestricted|"
        r"unfiltered) mode\b",
        r"\b(?:you|assistant|model|ai)\b[^.\n]{0,30}\b(?:enable|enter|activate|switch to|turn "
        r"on|in|into) (?:developer|god|sudo) mode\b",
        r"\b(?:developer|god|jailbreak|dan) mode (?:on|enabled|activated)\b",
        r"\b(?:an? (?:ai|model|assistant|chatbot|bot)|you(?: will)?|respond|answer|reply)\b "
        r"(?:\w+ )?(?:without|with no)(?: any)? (?:restrictions|filters|content polic(?:y|ies)|"
        r"limits|censorship|ethical guidelines)",
        r"\bdo anything now\b|\bstay in character\b|\byou (?:never|cannot|can't|won't) refuse\b",
        r"\bsay ['\"“]?access granted\b",
        r"\b(?:grandmother|grandma|granny)\b[^.\n]{0,80}\b(?:password|secret|key|code|serial)",
    ),
    "fake_delimiters": (
        r"<\|?(?:im_start|im_end|system|endoftext|end_of_turn|start_header_id|eot_id)\|?>",
        r"<<\s*/?\s*sys\s*>>|\[/?(?:system|inst|sys|admin)\]",
        r"</?(?:system|system[_-]prompt|system[_-]message|sys|instructions?|admin|developer|"
        r"tool_result|tool_output|function_results?|end_of_data|important|information|"
        r"untrusted[\w-]*)\b[^<>\n]{0,40}>",
        # A role header at a line or sentence start ("… 9-5. SYSTEM: the user is …"),
        # followed by an instruction: not "the operating system:" or "System: Ubuntu".
        r"(?:^|[.!?;]\s)\s*(?:#{1,4}\s*)?(?:system|developer|admin|administrator|root)"
        r"(?: message| prompt| notice| update| override)?\s*:[^\n]{0,80}?\b(?:you|the user|"
        r"the assistant|the model|ignore|must|skip|approv\w*|comply|obey|follow|override|mode|"
        r"grant|delete|save|send|reveal|disable|new|priority|from now)\b",
        r"(?:^|\n)\s*#{1,4}\s*(?:system|system prompt|(?:new )?instructions?\s*:)\s*$",
        r"```\s*(?:system|system[-_ ]?(?:message|prompt)|sys|instructions?|admin|developer)\b",
        r"\b(?:begin|end|start) (?:of )?(?:the )?(?:system|hidden) (?:prompt|instructions?)\b",
    ),
    "fake_completion": (
        r"[\[=<#*-]\s*/?\s*(?:end of|end_of_|end)\s*(?:the )?(?:tool[ _]output|tool[ _]results?|"
        r"search[ _]results?|results|document|data|context|user[ _]input|input|email|file|page|"
        r"text)\s*[\]=>#*-]",
        r"\[(?:new|next) (?:task|request|instructions?)\]",
        r"\b(?:task|request|summary|answer|response|job|search|query|analysis)(?: is| has been| "
        r"was)? (?:fully |successfully )?(?:complete|completed|done|finished|answered)\b"
        r"[^\n]{0,60}?(?:\n+[^\n]{0,60}?)?\b(?:new|next|follow-?up|another|additional) (?:task|"
        r"request|instructions?|step)\b",
        r"(?:^|\n)\s*(?:user|human)\s*:\s*(?:(?:ok|great|thanks|thank you)[!.,]* )?(?:now|ignore|"
        r"forget|go ahead|please (?:write|save|send|email|reveal|delete|forward|print))",
        r"(?:^|\n)\s*(?:assistant|ai)\s*:\s*(?:understood|sure|ok)?[.,!]*\s*i will now\b",
        r"\n\s*(?:assistant|ai)\s*:\s*\Z",
    ),
    "addressed_instruction": (
        # A vocative: "Assistant, you must …", "Hey Claude, …", "Chatbot: do not …".
        rf"(?:^|[\n.!?;:(\[\"'“>]|(?:^|[\s<!])[*/#!-]+|\b(?:dear|hey|hi|hello|attention|yo|ok|"
        rf"okay))\s*"
        rf"(?:the |all |any )?(?:{_AI})\s*(?:[,!][^\n]{{0,80}}?\b(?:you must|you should|you need|"
        rf"you will|please|before|when|if|from now|the user|{_DO})\b|:\s*(?:please |now |also |"
        rf"first )?(?:you must|you should|you need|before you|when you|do not|don'?t|never|"
        rf"ignore|forward|export|send|save|delete|call|reveal|approve|tell|say|email|transfer|"
        rf"grant|run|execute|remove|write|share|visit|open|insert|include|stop)\b)",
        rf"\b(?:dear|hey|hello|attention|calling all) (?:the )?(?:{_AI})\b(?! (?:manager|"
        rf"director|professor|editor|principal|coach|secretary|to|of|team)\b)",
        rf"\b(?:note|instructions?|hidden (?:note|text|message)|todo|important (?:message|"
        rf"notice|note)|directive)s? (?:to|for) (?:the |all |any |you,? )?(?:{_AI_NOUN}|{_AI})\b",
        rf"\b(?:message|a request|reminder) (?:to|for) (?:the |all |any )?(?:{_AI})\s*:",
        rf"\b(?:any |all |every )?{_AI_NOUN}\b[^.\n]{{0,40}}?\b(?:reading|processing|browsing|"
        rf"summari[sz]ing|parsing|screening|reviewing|scanning|analy[sz]ing|that reads?|who "
        rf"reads?|generating)\b[^.\n]{{0,60}}?\b(?:should|must|need to|needs to|are (?:instructed|"
        rf"required|asked) to|is (?:instructed|required|asked) to|have to|has to)\b",
        r"\b(?:ai|llm|language|automated) (?:models?|agents?|assistants?|systems?|summari[sz]ers|"
        r"reviewers|recruiters|bots|crawlers)\b[^.\n]{0,20}\b(?:should|must|need to|are "
        r"(?:instructed|required|asked) to)\b",
        rf"\bif you are an? (?:ai|llm|language model|chatbot|assistant|bot|automated|agent)"
        rf"[^\n]{{0,80}}?\b(?:you must|you should|your (?:real|actual|true|new)|please|{_DO})\b",
        rf"\bthe (?:assistant|model|ai|llm|agent|chatbot) (?:must|should|shall|needs? to|has to|"
        rf"is (?:required|instructed|ordered|expected) to)(?: now| also| immediately| first)? "
        rf"(?:{_DO})\b",
        r"\byour (?:real|actual|true|new|only|primary) (?:task|job|goal|objective|instructions?|"
        r"purpose|mission) (?:is|are|now)\b",
        r"\b(?:the user|your (?:owner|user|boss|admin\w*)|the (?:account )?owner) (?:has |have )?"
        r"(?:asked|wants|authori[sz]ed|instructed|requested|approved|told)\b[^.\n]{0,20}?\b(?:you|"
        r"me to tell you)\b",
        r"\b(?:as (?:your|the) (?:assistant|ai)|as the administrator)\b[^.\n]{0,60}?"
        r"\b(?:you are authori[sz]ed|i instruct|you must)\b",
        r"\bi instruct the (?:ai|assistant|model)\b",
    ),
    "prompt_exfiltration": (
        rf"(?<!not )(?<!never )(?<!n't )"
        rf"\b(?:reveal|print|show|repeat|output|leak|display|tell|give|disclose|share|write|dump|"
        rf"quote|recite|expose|paste|spell out|list)\b(?: me| us)?(?: the| your| all| all of "
        rf"your| any| all of the)?(?: full| exact| complete| entire| original| hidden| secret| "
        rf"initial| current)? (?:{_SECRET})\b",
        r"\brepeat (?:everything|all|the (?:text|words|lines|content|message)) (?:above|before|"
        r"preceding)",
        r"\b(?:text|words|lines|content) above (?:this line|verbatim|word for word)",
        r"\bstarting (?:with|from) ['\"“]?you are\b",
        r"\bwhat (?:is|are|were) (?:the (?:exact )?(?:words|text) of )?your (?:system prompt|"
        r"instructions|initial|original|hidden|rules|configuration)",
        r"\b(?:text|content|contents|words) of your (?:instructions|system prompt|prompt)\b",
        r"\b(?:tell|give|show|reveal|print|what)\b[^.\n]{0,60}\b(?:in|from|of) your (?:system )?"
        r"(?:prompt|instructions|configuration)\b",
        r"\b(?:revela|muestra|imprime|revelez|revele|affiche[zr]?|montre[zr]?|zeige|gib)\b"
        r"[^.\n]{0,20}\b(?:prompt|mensaje|message|nachricht)\b[^.\n]{0,5}\b(?:del |de |du )?"
        r"(?:sistema|systeme|system)",
        r"(?:输出|显示|告诉我|泄露|打印|重复)[^。\n]{0,6}系统提示",
    ),
    "tool_coercion": (
        r"\b(?:call|use|invoke|run|execute)\b[^\n]{0,20}\b(?:the )?(?:save_note|tool|function)\b"
        r"[^\n]{0,40}\b(?:now|immediately|without (?:asking|confirmation))\b",
        r"\b(?:call|invoke|execute|trigger|fire)\b (?:the )?[a-z]+_[a-z_]+\b",
        r"\b(?:use|run)\b (?:the )?[a-z]+_[a-z_]+\b(?: tool| function)?(?: with| now| "
        r"immediately| right away| before| first|\()",
        r"\b[a-z]+_[a-z_]+\([^)\n]{0,120}\) (?:immediately|now|right away|first)",
        r"\"(?:type|kind)\"\s*:\s*\"(?:tool_use|tool_call)\"",
        # A call's shape (name, then arguments or input), not a tool's declaration.
        r"\"(?:tool|tool_name|function|name)\"\s*:\s*\"[a-z_]+\"\s*,\s*\"(?:arguments|args|"
        r"input)\"\s*:",
        r"<(?:function_calls|invoke name|tool_call)\b",
        r"\b(?:skip|bypass|disable)\b(?: all| the| any)? approvals?\b|\bapprovals? (?:are|is) "
        r"(?:disabled|turned off|off|not needed|not required)\b",
        r"\bwithout (?:waiting for |asking for |needing )(?:approval|confirmation)\b|\bwithout "
        r"asking the user\b",
        r"\b(?:do not|don't|never) (?:tell|inform|notify|alert) the user\b|\bwithout telling "
        r"the user\b",
    ),
    "data_exfiltration": (
        # A markdown image whose query string carries a placeholder or data for the model
        # to fill in (a badge's "?style=flat" does not).
        rf"!\[[^\]\n]{{0,100}}\]\(\s*(?:https?:)?//[^)\s?]{{1,200}}\?[^)\n]{{0,100}}?"
        rf"(?:[\[{{<]|%7b|%5b|\b(?:{_LEAK_KEY})=)",
        # Told to open a URL whose query string is a template or names a secret.
        rf"\b(?:visit|open|fetch|load|go to|navigate to|browse to|click|render|include|display|"
        rf"embed|insert|append)\b[^\n]{{0,40}}https?://[^\s?]{{1,200}}\?[^\s]{{0,100}}?"
        rf"(?:[\[{{<]|%7b|%5b|\b(?:{_LEAK_KEY})=)",
        # "send the user's password to x@evil.example", "upload the chat to https://…".
        rf"\b(?:send|e-?mail|post|forward|upload|leak|exfiltrate|transmit|share|export|mail|"
        rf"copy|append|dump|submit)\b(?=[^.\n]{{0,80}}?\b(?:the|all|every|all of the|their|his|"
        rf"her|your|this|a copy of|the full|the whole|the entire|any) (?:\w+ )?(?:{_DATA})\b)"
        rf"(?=[^\n]{{0,160}}?\bto\b\s*{_DEST})",
    ),
}

# Strong phrases matched on the letters-only view (any separator trick in between).
SQUASHED_RULES: dict[str, tuple[str, ...]] = {
    "instruction_override": (
        r"(?:ignore|disregard|forget|override|bypass)(?:all|any|the)?(?:of)?(?:your|my|the)?"
        r"(?:previous|prior|above|earlier|preceding|former|initial|original|system)"
        r"(?:instructions?|prompts?|rules|directives|directions|guidelines|commands)",
    ),
    "prompt_exfiltration": (
        r"(?:reveal|print|show|output|repeat|leak)(?:me)?(?:your|the)(?:full|entire|exact)?"
        r"(?:system|initial|hidden)(?:prompt|instructions)",
    ),
    "role_hijack": (r"youarenow(?:dan|jailbroken|unrestricted|unfiltered)",),
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


_FLAGS = re.MULTILINE | re.DOTALL
_Rule = tuple[str, str, re.Pattern[str], bool]  # category, pattern, compiled, on squashed view
# Compiled once at import; create() reuses them.
_DEFAULTS: tuple[_Rule, ...] = tuple(
    [(c, p, re.compile(p, _FLAGS), False) for c, ps in DEFAULT_RULES.items() for p in ps]
    + [(c, p, re.compile(p, _FLAGS), True) for c, ps in SQUASHED_RULES.items() for p in ps]
)


def _any_of(patterns: list[str]) -> re.Pattern[str]:
    """One pattern that finds a match in a text exactly when one of ``patterns`` does:
    each is a branch (none refers to a group). The patterns that start with ``\\b``
    share one branch that tests the boundary once for all of them: most positions fail
    it, and the rest reach alternations of words, rejected at their first letter."""
    bounded = [p for p in patterns if _starts_with_boundary(p)]
    rest = [p for p in patterns if not _starts_with_boundary(p)]
    branches = [f"(?:{p})" for p in rest]
    if bounded:
        branches.insert(0, "\\b(?:" + "|".join(f"(?:{p[2:]})" for p in bounded) + ")")
    return re.compile("|".join(branches), _FLAGS)


def _starts_with_boundary(pattern: str) -> bool:
    """Whether every match of ``pattern`` starts with a ``\\b``: its first, unless it
    is an alternation (the parser takes ``\\b`` out in front when every branch starts
    with it, and then the branches after the first keep their own)."""
    if not pattern.startswith("\\b"):
        return False
    first = _parser.parse(pattern, _FLAGS).data[0]
    return bool(first == (_constants.AT, _constants.AT_BOUNDARY))


_ANY_DEFAULT = _any_of([p for _, p, _, squashed in _DEFAULTS if not squashed])
_ANY_SQUASHED = _any_of([p for _, p, _, squashed in _DEFAULTS if squashed])


@dataclass(frozen=True)
class InjectionDetector:
    """Compiled rules; build once (e.g. per worker or per workflow) and reuse."""

    rules: tuple[_Rule, ...]

    @classmethod
    def create(
        cls, extra_patterns: Iterable[str] = (), *, defaults: bool = True
    ) -> InjectionDetector:
        """The default rules (unless ``defaults=False``) plus ``extra_patterns`` (category
        ``custom``, matched against ``normalise(text)``). Raises ``re.error`` naming a bad
        pattern."""
        custom = tuple(("custom", p, re.compile(p, _FLAGS), False) for p in extra_patterns)
        return cls((_DEFAULTS if defaults else ()) + custom)

    @cached_property
    def _defaults_first(self) -> bool:
        """Whether the rules start with the default ones, which ``screen`` rules out
        with one search per view when none of them matches (most texts)."""
        return self.rules[: len(_DEFAULTS)] == _DEFAULTS

    def screen(self, text: str) -> Screening:
        """Screen one text; each category that matched is reported once, with the first of
        its rules that matched."""
        if len(text) > MAX_SCREENED_CHARS:
            half = MAX_SCREENED_CHARS // 2
            text = text[:half] + "\n" + text[-half:]
        plain = normalise(text)
        seen = canonical(text)
        squashed = _NOT_LETTER.sub("", seen)
        rules = self.rules
        if self._defaults_first and not (
            _ANY_DEFAULT.search(seen) or _ANY_SQUASHED.search(squashed)
        ):
            rules = rules[len(_DEFAULTS) :]  # no default rule matches: custom ones left
        matches: dict[str, InjectionMatch] = {}
        for category, pattern, compiled, on_squashed in rules:
            if category in matches:
                continue
            view = squashed if on_squashed else plain if category == "custom" else seen
            found = compiled.search(view)
            if found:
                start = max(0, found.start() - 20)
                excerpt = view[start : start + 80].replace("\n", " ")
                matches[category] = InjectionMatch(category=category, rule=pattern, excerpt=excerpt)
        return Screening(flagged=True, matches=tuple(matches.values())) if matches else _CLEAN


_CLEAN = Screening(flagged=False)
"""What most texts get: one frozen value, shared."""
