"""Payload encryption: an AES-GCM ``PayloadCodec`` with key rotation.

With ``AGENT_ENCRYPTION_KEYS`` set, every payload a client or worker sends to Temporal
(workflow and activity inputs and results, update arguments and replies, memos) and
every failure's message and stack trace leave the process encrypted; the Temporal
service stores and shows only ciphertext. ``durable_agent.codec_server`` decrypts for
the web UI and the CLI on the operator's side.

An encrypted payload is the whole original ``Payload`` proto, AES-GCM encrypted as
``nonce (12 bytes) + ciphertext + tag``, with metadata ``encoding: binary/encrypted``
and ``encryption-key-id: <id>`` (the layout of Temporal's encryption samples).

Keys are ``id:base64key`` entries separated by commas. The first one encrypts; every
one decrypts, so rotation is: put a new key first, keep the old ones until no history
that needs them is retained.

    python -m durable_agent.codec new-key     # prints a fresh id:base64key
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from durable_agent import converter

if TYPE_CHECKING:  # config imports this module to validate the keys
    from durable_agent.config import Settings

ENCODING = b"binary/encrypted"
"""``encoding`` metadata of an encrypted payload."""
KEY_ID = "encryption-key-id"
"""Metadata naming the key a payload was encrypted with."""
KEY_SIZES = (16, 24, 32)
"""AES-128, AES-192 and AES-256."""
_NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


class DecryptionError(ValueError):
    """An encrypted payload cannot be decrypted: its key id is not configured, or it
    fails authentication (tampered with, truncated, or another key under that id)."""


def parse_keys(text: str) -> dict[str, bytes]:
    """Parse ``id:base64key,id:base64key`` into id → key, in order (the first is the
    current one). Errors name the entry by position, never echo it: it holds a key."""
    keys: dict[str, bytes] = {}
    for position, entry in enumerate(text.split(","), start=1):
        key_id, sep, encoded = (part.strip() for part in entry.partition(":"))
        if not sep or not _KEY_ID_PATTERN.fullmatch(key_id):
            raise ValueError(
                f"entry {position}: expected id:base64key, the id 1-64 letters, digits, "
                "'.', '_' or '-'"
            )
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError(f"entry {position}: the key is not valid base64") from None
        if len(key) not in KEY_SIZES:
            raise ValueError(
                f"entry {position}: the key has {len(key)} bytes; AES needs 16, 24 or 32"
            )
        if key_id in keys:
            raise ValueError(f"entry {position}: its key id repeats an earlier entry's")
        keys[key_id] = key
    return keys


def new_key(key_id: str | None = None, size: int = 32) -> str:
    """A fresh random key as ``id:base64key`` (id from today's date unless given)."""
    key_id = key_id or f"k{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(2)}"
    if not _KEY_ID_PATTERN.fullmatch(key_id):
        raise ValueError("a key id is 1-64 letters, digits, '.', '_' or '-'")
    if size not in KEY_SIZES:
        raise ValueError("AES keys have 16, 24 or 32 bytes")
    return f"{key_id}:{base64.b64encode(os.urandom(size)).decode()}"


class EncryptionCodec(PayloadCodec):
    """Encrypts every payload with the ``current`` key; decrypts with whichever of
    ``keys`` a payload names, and passes unencrypted payloads through unchanged."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError(f"the current key id {current!r} is not one of the keys")
        for key_id, key in keys.items():
            if len(key) not in KEY_SIZES:
                raise ValueError(f"key {key_id!r} has {len(key)} bytes; AES needs 16, 24 or 32")
        # Imported here: ~6 MiB resident, and a process without keys never needs it.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current = current

    @classmethod
    def from_config(cls, text: str) -> EncryptionCodec:
        """From ``id:base64key,...`` (the ``AGENT_ENCRYPTION_KEYS`` format)."""
        keys = parse_keys(text)
        return cls(keys, next(iter(keys)))

    @property
    def key_ids(self) -> list[str]:
        """The configured key ids, current first."""
        return list(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt each payload with the current key."""
        return [self._encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt encrypted payloads; others (written before encryption was turned
        on) are returned as they are. Raises ``DecryptionError``."""
        return [
            self._decrypt(payload) if payload.metadata.get("encoding") == ENCODING else payload
            for payload in payloads
        ]

    def _encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self.current].encrypt(nonce, payload.SerializeToString(), None)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: self.current.encode()},
            data=nonce + sealed,
        )

    def _decrypt(self, payload: Payload) -> Payload:
        from cryptography.exceptions import InvalidTag  # loaded with AESGCM by __init__

        key_id = payload.metadata.get(KEY_ID, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionError(
                f"payload encrypted with key id {key_id!r}, which is not configured "
                f"(configured: {', '.join(self._ciphers)}); add it to AGENT_ENCRYPTION_KEYS"
            )
        data = payload.data
        if len(data) < _NONCE_BYTES + _TAG_BYTES:
            raise DecryptionError(f"payload encrypted with key id {key_id!r} is truncated")
        try:
            plain = cipher.decrypt(data[:_NONCE_BYTES], data[_NONCE_BYTES:], None)
        except InvalidTag:
            raise DecryptionError(
                f"payload encrypted with key id {key_id!r} fails authentication: tampered "
                "with, or encrypted with a different key under that id"
            ) from None
        return Payload.FromString(plain)


def encrypting_converter(codec: PayloadCodec) -> DataConverter:
    """The pydantic data converter with ``codec`` applied to every payload, and failure
    messages and stack traces moved into an encoded payload so they are encrypted too
    (the server then shows ``Encoded failure`` as the message)."""
    return dataclasses.replace(
        converter.data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def codec_from_settings(settings: Settings) -> EncryptionCodec | None:
    """The codec of ``settings.encryption_keys``, or ``None`` when unset."""
    if settings.encryption_keys is None:
        return None
    return EncryptionCodec.from_config(settings.encryption_keys.get_secret_value())


def data_converter(settings: Settings) -> DataConverter:
    """What every client and worker of ``settings`` uses: encrypting when keys are
    configured, the plain pydantic data converter otherwise."""
    codec = codec_from_settings(settings)
    return converter.data_converter if codec is None else encrypting_converter(codec)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m durable_agent.codec", description="payload encryption keys"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("new-key", help="print a fresh random key as id:base64key")
    make.add_argument("--id", help="key id (default: k<date>-<random>)")
    make.add_argument("--bytes", type=int, default=32, choices=KEY_SIZES, help="key size")
    args = parser.parse_args(argv)
    try:
        print(new_key(args.id, args.bytes))
    except ValueError as e:
        parser.error(str(e))


if __name__ == "__main__":
    main()
