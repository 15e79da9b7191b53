"""Payload encryption: the AES-GCM codec, key rotation, key configuration, and the
data converter that also encrypts failure messages."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.exceptions import ApplicationError

from durable_agent import converter as shared
from durable_agent.codec import (
    ENCODING,
    KEY_ID,
    DecryptionError,
    EncryptionCodec,
    data_converter,
    encrypting_converter,
    main,
    new_key,
    parse_keys,
)
from durable_agent.config import Settings
from durable_agent.contract import Reply, Usage

OLD_KEY = bytes(range(32))
NEW_KEY = bytes(range(100, 116))  # AES-128: every size works
OLD = f"k0:{base64.b64encode(OLD_KEY).decode()}"
NEW = f"k1:{base64.b64encode(NEW_KEY).decode()}"


def _payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


def _settings(keys: str | None) -> Settings:
    return Settings(_env_file=None, encryption_keys=keys)  # type: ignore[call-arg]


async def test_round_trip_hides_the_data_and_names_the_key() -> None:
    codec = EncryptionCodec.from_config(OLD)
    originals = [_payload("canary-round-trip"), Payload(data=b"")]
    encoded = await codec.encode(originals)
    for payload in encoded:
        assert payload.metadata["encoding"] == ENCODING and payload.metadata[KEY_ID] == b"k0"
        assert b"canary" not in payload.SerializeToString()
    assert await codec.decode(encoded) == originals
    again = await codec.encode(originals)
    assert again[0].data != encoded[0].data  # a fresh nonce every time


async def test_unencrypted_payloads_pass_through_decode() -> None:
    codec = EncryptionCodec.from_config(OLD)
    plain = [_payload("written before encryption was turned on")]
    assert await codec.decode(plain) == plain


async def test_rotation_old_payloads_decrypt_new_ones_use_the_new_key() -> None:
    before = EncryptionCodec.from_config(OLD)
    stored = await before.encode([_payload("stored under k0")])
    after = EncryptionCodec.from_config(f"{NEW},{OLD}")
    assert after.current == "k1" and after.key_ids == ["k1", "k0"]
    assert await after.decode(stored) == [_payload("stored under k0")]
    fresh = await after.encode([_payload("new")])
    assert fresh[0].metadata[KEY_ID] == b"k1"
    with pytest.raises(DecryptionError, match="key id 'k1', which is not configured"):
        await before.decode(fresh)  # a worker not yet given the new key says so


async def test_tampered_or_truncated_data_is_refused_naming_the_key_id() -> None:
    codec = EncryptionCodec.from_config(OLD)
    (sealed,) = await codec.encode([_payload("integrity")])
    flipped = Payload()
    flipped.CopyFrom(sealed)
    flipped.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(DecryptionError, match="key id 'k0' fails authentication") as error:
        await codec.decode([flipped])
    assert base64.b64encode(OLD_KEY).decode() not in str(error.value)
    truncated = Payload()
    truncated.CopyFrom(sealed)
    truncated.data = sealed.data[:20]
    with pytest.raises(DecryptionError, match="key id 'k0' is truncated"):
        await codec.decode([truncated])


async def test_another_key_under_the_same_id_fails_authentication() -> None:
    (sealed,) = await EncryptionCodec.from_config(OLD).encode([_payload("x")])
    impostor = EncryptionCodec({"k0": NEW_KEY}, "k0")
    with pytest.raises(DecryptionError, match="fails authentication"):
        await impostor.decode([sealed])


async def test_unknown_key_id_lists_the_configured_ids() -> None:
    (sealed,) = await EncryptionCodec.from_config(NEW).encode([_payload("x")])
    with pytest.raises(DecryptionError) as error:
        await EncryptionCodec.from_config(OLD).decode([sealed])
    assert "'k1'" in str(error.value) and "configured: k0" in str(error.value)


def test_codec_refuses_a_current_key_it_does_not_have_or_a_bad_size() -> None:
    with pytest.raises(ValueError, match="current key id 'k9'"):
        EncryptionCodec({"k0": OLD_KEY}, "k9")
    with pytest.raises(ValueError, match="key 'k0' has 5 bytes"):
        EncryptionCodec({"k0": b"short"}, "k0")


SECRET_LOOKING = base64.b64encode(b"super secret key material!").decode()  # 26 bytes


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (SECRET_LOOKING, "entry 1: expected id:base64key"),
        (f"k1:{SECRET_LOOKING}", "entry 1: the key has 26 bytes"),
        (f"{OLD},k1:{SECRET_LOOKING}!", "entry 2: the key is not valid base64"),
        (f"{OLD},{OLD}", "entry 2: its key id repeats"),
        (f"{OLD},", "entry 2: expected id:base64key"),
        (f"bad id:{SECRET_LOOKING}", "entry 1: expected id:base64key"),
    ],
)
def test_bad_key_config_names_the_entry_never_the_key(
    monkeypatch: pytest.MonkeyPatch, keys: str, message: str
) -> None:
    monkeypatch.setenv("AGENT_ENCRYPTION_KEYS", keys)
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None)  # type: ignore[call-arg]
    text = str(error.value)
    assert "encryption_keys" in text and message in text
    assert SECRET_LOOKING not in text and base64.b64encode(OLD_KEY).decode() not in text
    assert SECRET_LOOKING[:8] not in text


def test_configured_keys_stay_secret_and_empty_means_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENT_ENCRYPTION_KEYS", f"{NEW},{OLD}")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert "k1:" not in repr(settings) and "k1:" not in str(settings)
    assert parse_keys(settings.encryption_keys.get_secret_value()) == {  # type: ignore[union-attr]
        "k1": NEW_KEY,
        "k0": OLD_KEY,
    }
    monkeypatch.setenv("AGENT_ENCRYPTION_KEYS", "")
    assert Settings(_env_file=None).encryption_keys is None  # type: ignore[call-arg]


def test_data_converter_encrypts_only_when_keys_are_configured() -> None:
    assert data_converter(_settings(None)) is shared.data_converter
    converter = data_converter(_settings(f"{NEW},{OLD}"))
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.payload_codec.current == "k1"
    assert converter.failure_converter_class is DefaultFailureConverterWithEncodedAttributes
    assert converter.payload_converter_class is shared.SharedPydanticPayloadConverter


async def test_failure_message_and_stack_trace_are_encrypted() -> None:
    converter = encrypting_converter(EncryptionCodec.from_config(OLD))
    failure = Failure()
    try:
        raise ApplicationError("refused: canary-in-a-failure", type="Refused")
    except ApplicationError as e:
        await converter.encode_failure(e, failure)
    assert failure.message == "Encoded failure" and not failure.stack_trace
    assert failure.encoded_attributes.metadata["encoding"] == ENCODING
    assert b"canary" not in failure.SerializeToString()
    decoded = await converter.decode_failure(failure)
    assert isinstance(decoded, ApplicationError)
    assert decoded.message == "refused: canary-in-a-failure" and decoded.type == "Refused"


def test_new_key_is_usable_config(capsys: pytest.CaptureFixture[str]) -> None:
    keys = parse_keys(f"{new_key('k2')},{new_key(size=16)}")
    assert len(keys["k2"]) == 32 and [len(k) for k in keys.values()] == [32, 16]
    main(["new-key", "--id", "k3"])
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("k3:") and len(parse_keys(printed)["k3"]) == 32


def test_every_payload_converter_the_sdk_builds_is_the_one_shared_instance() -> None:
    """The SDK builds a payload converter per workflow and per activation; each is the
    same instance, with one cache of type adapters, and converts as the SDK's own."""
    first = shared.data_converter._new_payload_converter()
    second = DataConverter(payload_converter_class=shared.SharedPydanticPayloadConverter)
    assert shared.SharedPydanticPayloadConverter() is shared.SharedPydanticPayloadConverter()
    reply = Reply(text="hi", turn=1, tool_calls=[], usage=Usage(), model="m", backend="b")
    for converter in (first, second.payload_converter):
        [payload] = converter.to_payloads([reply])
        assert payload == pydantic_data_converter.payload_converter.to_payloads([reply])[0]
        assert converter.from_payloads([payload], [Reply]) == [reply]
