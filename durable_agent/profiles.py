"""Agent profiles: named bundles of system prompt, model, tools, toolsets, limits and
safety policy, declared in a YAML or TOML file (``AGENT_PROFILES_FILE``).

    profiles:
      support:
        description: Answers customers about their orders.
        system_prompt: You are Acme's support agent. Be brief.
        tools: [lookup_order, calculator]
        toolsets: [desk]
        limits: {conversation: {usd: "2"}}
        safety: {approval_levels: [write, execute, admin]}

A client resolves a profile into a ``ConversationInput`` when it starts a conversation
(``starter.py start --agent support``, ``start_agent``, the gateway's
``{"agent": "support"}``), so the conversation carries the resolved profile in its own
start input: editing the file changes new conversations only. Pure: parsing and
validation, no Temporal.

    ProfileError (ValueError)
    ├── ProfileFileError   the file cannot be read or parsed, or a profile is invalid
    └── UnknownProfile     no profile has that name
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from durable_agent.contract import ConversationInput, ConversationLimits, SafetyPolicy
from durable_agent.toolsets import ToolsetName

ProfileName = Annotated[str, Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")]


class ProfileError(ValueError):
    """Base of the profile errors."""


class ProfileFileError(ProfileError):
    """The profiles file cannot be used; the message names the file (and profile)."""


class UnknownProfile(ProfileError):
    """No profile has this name."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown agent profile {name!r}; known: {', '.join(known) or 'none'}")
        self.name = name
        self.known = known


class AgentProfile(BaseModel):
    """One agent. Unset fields keep ``ConversationInput``'s defaults."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    """For people choosing an agent; never sent to the model."""
    system_prompt: str | None = Field(default=None, min_length=1)
    model: str | None = None
    tools: list[str] | None = None
    """Built-in and user tool names; unset: every built-in tool."""
    toolsets: list[ToolsetName] = []
    """MCP servers (names in ``AGENT_MCP_SERVERS``) whose tools the agent gets."""
    max_tokens: int | None = None
    max_model_calls_per_turn: int | None = None
    turn_timeout_seconds: float | None = None
    limits: ConversationLimits | None = None
    safety: SafetyPolicy | None = None

    def conversation_input(self, name: str, **overrides: Any) -> ConversationInput:
        """The start input of a conversation with this agent; ``overrides`` (e.g. the
        tenant) take precedence. ``ValidationError`` if the result is invalid."""
        chosen = self.model_dump(exclude_unset=True, exclude={"description"})
        chosen = {k: v for k, v in chosen.items() if v is not None}
        return ConversationInput.model_validate(chosen | {"agent": name} | overrides)


class Profiles(BaseModel):
    """The profiles of one file, by name."""

    model_config = ConfigDict(extra="forbid")

    profiles: dict[ProfileName, AgentProfile] = {}

    def get(self, name: str) -> AgentProfile:
        """The profile called ``name``; ``UnknownProfile`` if there is none."""
        profile = self.profiles.get(name)
        if profile is None:
            raise UnknownProfile(name, sorted(self.profiles))
        return profile

    def resolve(self, name: str, **overrides: Any) -> ConversationInput:
        """The start input for agent ``name`` (see ``AgentProfile.conversation_input``)."""
        return self.get(name).conversation_input(name, **overrides)


def parse_profiles(text: str, *, toml: bool = False, source: str = "profiles") -> Profiles:
    """Parse a YAML (or TOML) document; ``ProfileFileError`` names ``source`` and what
    is wrong."""
    try:
        data = tomllib.loads(text) if toml else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise ProfileFileError(f"{source}: not valid {'TOML' if toml else 'YAML'}: {e}") from e
    try:
        profiles = Profiles.model_validate(data or {})
    except ValidationError as e:
        raise ProfileFileError(f"{source}: {_describe(e)}") from e
    for name, profile in profiles.profiles.items():
        try:
            profile.conversation_input(name)  # every profile must make a valid input
        except ValidationError as e:
            raise ProfileFileError(f"{source}: profile {name!r}: {_describe(e)}") from e
    return profiles


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
        for e in error.errors(include_url=False, include_input=False)
    )


def load_profiles(path: Path) -> Profiles:
    """Read ``path`` (``.toml``: TOML; anything else: YAML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ProfileFileError(f"{path}: cannot read the profiles file: {e.strerror}") from e
    return parse_profiles(text, toml=path.suffix == ".toml", source=str(path))
