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
        subagents:                      # each offered to the model as delegate_to_<name>
          researcher: {budget: {usd: "0.25", model_calls: 4}}
      researcher:
        description: Looks things up on the web.
        tools: [web_search]
    delegation: {max_depth: 2, max_children_per_response: 4}

A client resolves a profile into a ``ConversationInput`` when it starts a conversation
(``starter.py start --agent support``, ``start_agent``, the gateway's
``{"agent": "support"}``), so the conversation carries the resolved profile in its own
start input: editing the file changes new conversations only. A profile's sub-agents
are resolved the same way, down to ``delegation.max_depth`` (docs/delegation.md). Pure: parsing and
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
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from durable_agent.budget import BudgetLimits
from durable_agent.contract import (
    DEFAULT_SUBAGENT_BUDGET,
    ConversationInput,
    ConversationLimits,
    DelegationPolicy,
    SafetyPolicy,
    SubAgent,
    SubAgentName,
)
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


class SubAgentSettings(BaseModel):
    """How a profile uses one of its sub-agents."""

    model_config = ConfigDict(extra="forbid")

    budget: BudgetLimits = DEFAULT_SUBAGENT_BUDGET
    """Carved out of the parent's remaining budgets for each task."""
    description: str | None = None
    """What the model is told the sub-agent does; unset: its profile's description."""


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
    subagents: dict[SubAgentName, SubAgentSettings] = {}
    """Profiles this agent may hand tasks to (a list of names takes the default budget)."""
    _subagents: list[SubAgent] = PrivateAttr(default_factory=list)
    _policy: DelegationPolicy = PrivateAttr(default_factory=DelegationPolicy)

    @field_validator("subagents", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return {name: {} for name in value} if isinstance(value, list) else value

    def chosen(self) -> dict[str, Any]:
        """The ``ConversationInput`` fields this profile sets."""
        chosen = self.model_dump(exclude_unset=True, exclude={"description", "subagents"})
        return {k: v for k, v in chosen.items() if v is not None}

    def conversation_input(self, name: str, **overrides: Any) -> ConversationInput:
        """The start input of a conversation with this agent; ``overrides`` (e.g. the
        tenant) take precedence. ``ValidationError`` if the result is invalid."""
        chosen = self.chosen()
        delegation = (
            {"subagents": self._subagents, "delegation": self._policy} if self._subagents else {}
        )
        return ConversationInput.model_validate(chosen | {"agent": name} | delegation | overrides)


class Profiles(BaseModel):
    """The profiles of one file, by name."""

    model_config = ConfigDict(extra="forbid")

    profiles: dict[ProfileName, AgentProfile] = {}
    delegation: DelegationPolicy = DelegationPolicy()
    """Depth and fan-out limits for every conversation started from these profiles."""

    @model_validator(mode="after")
    def _resolve_subagents(self) -> Profiles:
        for name, profile in self.profiles.items():
            unknown = sorted(set(profile.subagents) - set(self.profiles))
            if unknown:
                raise ValueError(f"profile {name!r}: unknown sub-agents {unknown}")
        for name, profile in self.profiles.items():
            profile._subagents = self._subagents(name, 1)
            profile._policy = self.delegation
        return self

    def _subagents(self, name: str, depth: int) -> list[SubAgent]:
        """Agent ``name``'s sub-agents at ``depth``, each with its resolved start input;
        past the policy's depth, none (the workflow refuses them too)."""
        if depth > self.delegation.max_depth:
            return []
        resolved = []
        for child, settings in self.profiles[name].subagents.items():
            profile = self.profiles[child]
            chosen = profile.chosen()
            below = self._subagents(child, depth + 1)
            extra = {"subagents": below, "delegation": self.delegation} if below else {}
            resolved.append(
                SubAgent(
                    name=child,
                    description=settings.description or profile.description,
                    budget=settings.budget,
                    input=ConversationInput.model_validate(chosen | {"agent": child} | extra),
                )
            )
        return resolved

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
