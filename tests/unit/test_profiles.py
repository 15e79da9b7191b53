"""Agent profiles: parsed and checked whole, resolved into a conversation's start
input, unknown names refused with a typed error."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from durable_agent.config import Settings
from durable_agent.profiles import (
    ProfileError,
    ProfileFileError,
    UnknownProfile,
    load_profiles,
    parse_profiles,
)

YAML = """
profiles:
  support:
    description: Answers customers about their orders.
    system_prompt: You are Acme's support agent.
    tools: [lookup_order, calculator]
    toolsets: [desk]
    limits: {conversation: {usd: "2"}}
    safety: {approval_levels: [write, execute, admin]}
  plain: {}
"""

TOML = """
[profiles.support]
system_prompt = "You are Acme's support agent."
tools = ["calculator"]
toolsets = ["desk"]
max_tokens = 2000
"""


def test_a_profile_resolves_into_a_start_input() -> None:
    profiles = parse_profiles(YAML)
    config = profiles.resolve("support", tenant="acme")
    assert config.agent == "support" and config.tenant == "acme"
    assert config.system_prompt == "You are Acme's support agent."
    assert config.tools == ["lookup_order", "calculator"] and config.toolsets == ["desk"]
    assert config.limits.conversation.usd == Decimal("2")
    assert config.limits.turn.usd == Decimal("1.00")  # unset: the defaults stay
    assert config.safety.approval_levels == ["write", "execute", "admin"]
    plain = profiles.resolve("plain")
    assert plain.tools is None and plain.toolsets == [] and plain.agent == "plain"


def test_toml_files_and_settings(tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text(TOML)
    assert load_profiles(path).resolve("support").max_tokens == 2000
    settings = Settings(_env_file=None, profiles_file=str(path))  # type: ignore[call-arg]
    assert settings.profiles_file == path


def test_unknown_name_is_a_typed_error() -> None:
    with pytest.raises(UnknownProfile, match="'sales'; known: plain, support") as raised:
        parse_profiles(YAML).resolve("sales")
    assert raised.value.known == ["plain", "support"]
    assert isinstance(raised.value, ProfileError) and isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("profiles: [", "not valid YAML"),
        ("profiles:\n  a:\n    colour: red\n", "profiles.a.colour: Extra inputs"),
        ("profiles:\n  a:\n    toolsets: [a__b]\n", "profiles.a.toolsets.0: String should match"),
        ("profiles:\n  a:\n    max_tokens: 0\n", "profile 'a': max_tokens"),
    ],
)
def test_a_bad_file_names_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ProfileFileError, match=message):
        parse_profiles(text, source="agents.yaml")


def test_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileFileError, match="cannot read"):
        load_profiles(tmp_path / "missing.yaml")


def test_editing_the_file_changes_new_inputs_only(tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text(YAML)
    first = load_profiles(path).resolve("support")
    path.write_text(YAML.replace("Acme's support agent", "a pirate"))
    second = load_profiles(path).resolve("support")
    assert "Acme" in first.system_prompt and "pirate" in second.system_prompt


TEAM = """
profiles:
  triage:
    description: Talks to customers.
    subagents:
      researcher: {budget: {usd: "0.25"}}
      triage: {}
  researcher:
    description: Looks things up.
    tools: [web_search]
    subagents: [triage]
delegation: {max_depth: 2, max_children_per_response: 3}
"""


def test_sub_agents_resolve_down_to_the_depth_limit() -> None:
    profiles = parse_profiles(TEAM)
    config = profiles.resolve("triage", tenant="acme")
    assert config.delegation.max_children_per_response == 3
    researcher, itself = config.subagents
    assert itself.name == "triage"  # an agent may delegate to its own profile
    assert (researcher.name, researcher.description) == ("researcher", "Looks things up.")
    # Unset limits take the default carve-out; the set one wins.
    assert researcher.budget.usd == Decimal("0.25") and researcher.budget.model_calls == 4
    assert researcher.input is not None and researcher.input.tools == ["web_search"]
    assert researcher.input.agent == "researcher"
    # Depth 2 lists its sub-agents' names no further: a cycle ends at the limit.
    (again,) = researcher.input.subagents
    assert again.name == "triage" and again.input is not None and again.input.subagents == []
    assert profiles.resolve("researcher").subagents[0].input.subagents[0].name == "researcher"  # type: ignore[union-attr]


def test_an_unknown_sub_agent_is_refused_naming_it() -> None:
    with pytest.raises(ProfileFileError, match="unknown sub-agents \\['nobody'\\]"):
        parse_profiles("profiles:\n  a: {subagents: [nobody]}\n")
