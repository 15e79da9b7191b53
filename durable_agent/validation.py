"""What a user message must be to enter a conversation (pure, used by the
``send_message`` validator, so a refused message never reaches history)."""

from __future__ import annotations

from durable_agent.contract import MAX_MESSAGE_CHARS

# Control characters other than tab/newline/carriage return are never legitimate text.
_ALLOWED_CONTROL = frozenset("\t\n\r")


def message_problem(text: str) -> str | None:
    """Why ``text`` cannot be sent, or ``None`` if it can."""
    if not text.strip():
        return "message text is empty"
    if len(text) > MAX_MESSAGE_CHARS:
        return f"message text has {len(text)} characters; the limit is {MAX_MESSAGE_CHARS}"
    for position, char in enumerate(text):
        if (ord(char) < 32 or ord(char) == 127) and char not in _ALLOWED_CONTROL:
            return (
                f"message text contains control character U+{ord(char):04X} at position {position}"
            )
    return None
