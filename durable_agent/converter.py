"""The payload converter every client, worker and replayer of durable-agent uses: the
SDK's pydantic converter, one instance for the whole process.

The SDK builds a payload converter for every workflow it runs and again for every
workflow activation it encodes (``DataConverter.__post_init__`` calls the converter
class). Each ``PydanticPayloadConverter`` keeps its own cache of pydantic
``TypeAdapter``s, so each built the adapter of every type it met afresh: 3-4 % of a
loaded worker's CPU (``py-spy``, 200 conversations) and ~5 KiB per cached
conversation. The converter keeps no state of its own use (an adapter depends only on
its type), so one instance, and one bounded cache of adapters, serves them all.
"""

from __future__ import annotations

from typing import Any

from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter


class SharedPydanticPayloadConverter(PydanticPayloadConverter):
    """``PydanticPayloadConverter`` whose construction returns the process's one
    instance (the SDK calls the class each time it wants a converter)."""

    _instance: SharedPydanticPayloadConverter | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> SharedPydanticPayloadConverter:
        if cls._instance is None:
            instance = super().__new__(cls)
            PydanticPayloadConverter.__init__(instance)
            cls._instance = instance
        return cls._instance

    def __init__(self) -> None:
        """Built once, in ``__new__``."""


data_converter = DataConverter(payload_converter_class=SharedPydanticPayloadConverter)
"""``temporalio.contrib.pydantic.pydantic_data_converter``, with the shared converter."""
