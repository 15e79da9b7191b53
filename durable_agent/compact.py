"""A model's JSON without the fields at their defaults, which decodes back exactly.

Continue-as-new records the next run's input twice (the continued-as-new event and the
new run's started event), and most of a conversation's input is defaults: policies it
never changed, events' empty fields, zero counters. ``compact_json`` leaves them out,
and keeps a field whenever leaving it out would not decode to the same value:

- a one-value ``Literal`` field (a union member's tag, such as a content block's
  ``type``: without it the member could not be told);
- a field equal to its default but written differently (``Decimal("0.00")`` against a
  default of ``Decimal("0")``), found by decoding and comparing the JSON.

If the compact form still does not decode to exactly the full form's JSON, the full
form is returned: the result always decodes to a model whose JSON is the original's.

Pure: pydantic and the standard library only.
"""

from __future__ import annotations

import json
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError

__all__ = ["compact_json"]


def compact_json(model: BaseModel) -> bytes:
    """``model`` as JSON, leaving out the fields at their defaults, or in full if the
    compact form does not decode to exactly the same JSON."""
    full_text = model.model_dump_json()
    full = json.loads(full_text)
    compact = _without_defaults(model, full)
    try:
        back = json.loads(type(model).model_validate_json(_dumps(compact)).model_dump_json())
        _put_back(compact, full, back)
        text = _dumps(compact)
        if type(model).model_validate_json(text).model_dump_json() == full_text:
            return text
    except ValidationError:
        pass
    return full_text.encode()


def _dumps(value: Any) -> bytes:
    """Compact JSON, as pydantic writes it (UTF-8, no spaces)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _without_defaults(value: Any, dumped: Any) -> Any:
    """``dumped`` (the JSON of ``value``) without the fields of every model in it that
    equal their default, except tags."""
    if isinstance(value, BaseModel) and isinstance(dumped, dict):
        kept = {}
        for name, field in type(value).model_fields.items():
            if name not in dumped:
                continue
            item = getattr(value, name)
            if (
                not field.is_required()
                and field.default_factory is None
                and not _is_tag(field.annotation)
                and item == field.default
            ):
                continue
            kept[name] = _without_defaults(item, dumped[name])
        return kept
    if isinstance(value, list | tuple) and isinstance(dumped, list) and len(value) == len(dumped):
        return [_without_defaults(v, d) for v, d in zip(value, dumped, strict=True)]
    if isinstance(value, dict) and isinstance(dumped, dict) and len(value) == len(dumped):
        pairs = zip(dumped.items(), value.values(), strict=True)
        return {key: _without_defaults(v, d) for (key, d), v in pairs}
    return dumped


def _is_tag(annotation: Any) -> bool:
    """Whether a field of this type is a tag: a ``Literal`` of one value."""
    return get_origin(annotation) is Literal and len(get_args(annotation)) == 1


def _put_back(compact: Any, full: Any, back: Any) -> None:
    """Put back into ``compact`` every field whose absence decoded (``back``) to
    something other than the original (``full``)."""
    if isinstance(compact, dict) and isinstance(full, dict) and isinstance(back, dict):
        for key, value in full.items():
            if key not in compact:
                if back.get(key) != value:
                    compact[key] = value
            else:
                _put_back(compact[key], value, back.get(key))
    elif isinstance(compact, list) and isinstance(full, list) and isinstance(back, list):
        for parts in zip(compact, full, back, strict=False):
            _put_back(*parts)
