"""The pydantic type for token ID fields and JSON documents with pre-encoded arrays."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Annotated, Any, Union

import orjson
from pydantic import (
    BaseModel,
    GetCoreSchemaHandler,
    PlainSerializer,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
)
from pydantic_core import PydanticSerializationError, core_schema

from tinker_accel import _plain
from tinker_accel._backend import (
    dumps_document,
    encode_exact,
    encode_tokens,
    json_token_sequence,
)

# Context keys under which `dumps_model` collects the encoded arrays of TokenIds fields
# and the first encoder error. pydantic wraps an error raised inside a serializer and,
# when serializers nest, drops the original, so the error travels beside the output.
_FRAGMENTS_KEY = "tinker_accel.fragments"
_ERRORS_KEY = "tinker_accel.errors"

# Stands in for an encoded array in the dumped dict until the bytes are spliced in.
# The random part keeps a user's own string from matching it by chance.
_PLACEHOLDER_PREFIX = f"\x00tinker-accel-{secrets.token_hex(8)}:"
# The same text as json.dumps writes it, opening quote included.
_QUOTED_PLACEHOLDER_PREFIX = json.dumps(_PLACEHOLDER_PREFIX)[:-1].encode()


def _as_json_list(tokens: Any) -> Sequence[int]:
    if type(tokens) is list or type(tokens) is tuple:
        return json_token_sequence(tokens)
    result: list[int] = json.loads(encode_tokens(tokens))
    return result


def _filtered(tokens: Any, info: SerializationInfo) -> list[int]:
    """Apply the item-level include and exclude sets of a call such as
    ``model_dump(include={"tokens": {0}})``."""
    # NOTE: only plain index sets are handled here; "__all__" and negative indices are
    # not. This runs only on pydantic versions whose Sequence serializer is not a wrap
    # function, because `_StockPythonMode` hands such calls to pydantic otherwise.
    items = _as_json_list(tokens)
    include, exclude = info.include, info.exclude
    return [
        item
        for index, item in enumerate(items)
        if (include is None or index in include) and (exclude is None or index not in exclude)
    ]


def _serialize_token_ids(tokens: Any, info: SerializationInfo) -> Any:
    if info.include is not None or info.exclude is not None:
        return _filtered(tokens, info)
    context = info.context
    if isinstance(context, dict):
        fragments = context.get(_FRAGMENTS_KEY)
        if fragments is not None:
            try:
                fragments.append(encode_tokens(tokens))
            except (TypeError, ValueError, MemoryError) as error:
                # Raised on, so that a union tries its other members. If none fits,
                # dumps_model raises this error instead of pydantic's wrapped one.
                context[_ERRORS_KEY].append(error)
                raise
            return f"{_PLACEHOLDER_PREFIX}{len(fragments) - 1}"
    return _as_json_list(tokens)


def _encoded_placeholder(values: Any, info: SerializationInfo) -> str | None:
    """Encode ``values`` into the fragments of a ``dumps_model`` call and return the
    placeholder that stands for them. Return None outside such a call, and for values
    that ``encode_exact`` leaves to pydantic.

    Raises the encoder's ValueError for NaN or infinity, which is the error json.dumps
    raises on the stock path.
    """
    context = info.context
    if info.include is None and info.exclude is None and isinstance(context, dict):
        fragments = context.get(_FRAGMENTS_KEY)
        if fragments is not None:
            try:
                encoded = encode_exact(values)
            except ValueError as error:
                context[_ERRORS_KEY].append(error)
                raise
            if encoded is not None:
                fragments.append(encoded)
                return f"{_PLACEHOLDER_PREFIX}{len(fragments) - 1}"
    return None


def serialize_tensor_indices(
    values: Any, handler: SerializerFunctionWrapHandler, info: SerializationInfo
) -> Any:
    """Serialize a ``List[int]`` field, such as ``TensorData.sparse_col_indices``,
    through the encoders inside ``dumps_model``, for lists of exact ints only, and
    through pydantic's handler elsewhere.

    pydantic writes a float in such a list through type inference, which turns NaN
    into ``null``, so floats there go to pydantic.
    """
    if type(values) is list and values and type(values[0]) is int:
        placeholder = _encoded_placeholder(values, info)
        if placeholder is not None:
            return placeholder
    return handler(values)


def serialize_tensor_values(
    values: Any, handler: SerializerFunctionWrapHandler, info: SerializationInfo
) -> Any:
    """Serialize a ``List[int]`` or ``List[float]`` field, such as ``TensorData.data``,
    through the encoders inside ``dumps_model``, and as pydantic does elsewhere.

    Only a list of exact ints or of exact floats is encoded here: for those, pydantic
    writes each item unchanged, so ``json.dumps`` would write what the encoders write.
    Other lists (mixed items, subclasses, NaN outside ``dumps_model``) are returned
    unchanged, so the serializer must be declared with
    ``tensor_values_return_type(annotation)`` as its return type, which makes pydantic
    write them by the field's own type. The handler would not do: in JSON mode it
    turns NaN and infinity into None, where the field's own serializer keeps them as
    floats for ``json.dumps`` to reject (seen with pydantic 2.14).
    """
    placeholder = _encoded_placeholder(values, info)
    if placeholder is not None:
        return placeholder
    if info.include is not None or info.exclude is not None:
        # Only the handler applies index sets such as include={"data": {0}}; writing
        # by the return type does not. NOTE: the handler turns NaN into None, so with
        # index sets NaN still dumps as None in JSON mode.
        return handler(values)
    if type(values) is list:
        return values
    # Other values are model_construct oddities. For a tuple or a str, what the
    # handler makes of it matches the return type, so pydantic warns once, as stock.
    return handler(values)


def tensor_values_return_type(annotation: Any) -> Any:
    """Return the return type to declare for ``serialize_tensor_values`` on a field of
    type ``annotation``: that type, or the placeholder string.

    NOTE: a list of other items put into such a field with ``model_construct``, such
    as ``["x", 1.0]``, then gets pydantic's warning three times instead of once, for
    the same output.
    """
    return Union[annotation, str]  # noqa: UP007


class _StockPythonMode:
    """Keeps pydantic's own ``Sequence[int]`` serializer for Python mode.

    A serializer annotation makes pydantic serialize the field as ``list[int]`` in
    Python mode, which warns on tuples where ``Sequence[int]`` does not. This marker
    puts the stock Sequence serializer back for Python mode and leaves JSON mode to
    the encoder.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        schema = handler(source)
        stock = handler.generate_schema(Sequence[int]).get("serialization")
        fast = schema.get("serialization")
        if (
            stock is None
            or fast is None
            or stock.get("type") != "function-wrap"
            or fast.get("type") != "function-plain"
        ):
            return schema
        stock_function = stock["function"]
        fast_function = fast["function"]

        def serialize(
            tokens: Any, handler: SerializerFunctionWrapHandler, info: SerializationInfo
        ) -> Any:
            # Item-level include and exclude sets go to pydantic, which applies them.
            if info.mode_is_json() and info.include is None and info.exclude is None:
                return fast_function(tokens, info)
            return stock_function(tokens, handler, info)

        _plain.mark_serializer(serialize, "tokens")
        schema["serialization"] = core_schema.wrap_serializer_function_ser_schema(  # type: ignore[index]
            serialize, info_arg=True, schema=stock.get("schema")
        )
        return schema


_plain.mark_serializer(_serialize_token_ids, "tokens")
_plain.mark_serializer(serialize_tensor_values, "exact_values")
_plain.mark_serializer(serialize_tensor_indices, "exact_indices")

TokenIds = Annotated[
    Sequence[int],
    PlainSerializer(_serialize_token_ids, when_used="json"),
    _StockPythonMode(),
    # The serializer's return type is Any, so the JSON schema would otherwise be empty.
    WithJsonSchema({"items": {"type": "integer"}, "type": "array"}, mode="serialization"),
]
"""A sequence of token IDs that serializes to JSON through the Rust encoder.

Validation is that of ``Sequence[int]``. ``model_dump()``, ``model_dump(mode="json")``
and ``model_dump_json()`` give the same results as for a ``Sequence[int]`` field.
"""


def token_fragment(tokens: Any) -> orjson.Fragment:
    """Encode token IDs into an ``orjson.Fragment`` that ``orjson.dumps`` writes as is."""
    return orjson.Fragment(encode_tokens(tokens))


def _splice(head: bytes, fragments: list[bytes]) -> bytes | None:
    """Put each encoded array where ``json.dumps`` wrote its placeholder string.

    Returns None unless the placeholders appear exactly once each and in order.
    """
    pieces = head.split(_QUOTED_PLACEHOLDER_PREFIX)
    if len(pieces) != len(fragments) + 1:
        return None
    spliced = [pieces[0]]
    for expected, piece in enumerate(pieces[1:]):
        index, quote, rest = piece.partition(b'"')
        if not quote or index != str(expected).encode():
            return None
        spliced.append(fragments[expected])
        spliced.append(rest)
    return b"".join(spliced)


def stock_dumps(model: BaseModel, **dump_options: Any) -> bytes:
    """Serialize ``model`` as tinker's HTTP client does without the accelerator."""
    return _compact_json(model.model_dump(mode="json", **dump_options))


# `json.dumps` with these options builds this encoder on every call and then calls its
# `encode`; building it once saves about 2 us per request body.
_COMPACT_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _compact_json(data: Any) -> bytes:
    """Encode ``data`` as httpx 0.28 and later encode a ``json=`` request body: with
    ``json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)``."""
    return _COMPACT_ENCODER.encode(data).encode("utf-8")


def dumps_model(model: BaseModel, **dump_options: Any) -> bytes:
    """Serialize ``model`` to compact JSON bytes, writing TokenIds fields with the encoder.

    The result is byte-identical to ``stock_dumps`` with the same options, and raises
    the same errors, because the rest of the document goes through the same
    ``json.dumps`` call with a short placeholder string in place of each token array.
    """
    user_context = dump_options.pop("context", None)
    plan = _plain.plan_for(type(model))
    if plan is not None and _plain.options_allowed(dump_options):
        # Straight from the model's fields where every value has its planned type.
        body: bytes | None = plan.dumps(
            model,
            bool(dump_options.get("exclude_none")),
            bool(dump_options.get("exclude_unset")),
        )
        if body is not None:
            return body
    if user_context is not None and not isinstance(user_context, dict):
        # No room to add the encoder's keys to a context that is not a dict.
        return stock_dumps(model, context=user_context, **dump_options)
    fragments: list[bytes] = []
    errors: list[BaseException] = []
    context = {**(user_context or {}), _FRAGMENTS_KEY: fragments, _ERRORS_KEY: errors}
    try:
        data = model.model_dump(mode="json", context=context, **dump_options)
    except PydanticSerializationError:
        if errors:
            # The encoder's own TypeError or ValueError, which names the index and the type.
            raise errors[0] from None
        raise
    body = dumps_document(data, _PLACEHOLDER_PREFIX, fragments)
    if body is not None:
        return body
    head = _compact_json(data)
    if not fragments:
        return head
    body = _splice(head, fragments)
    if body is None:
        # A string field held the placeholder text itself: serialize the stock way.
        return stock_dumps(model, context=user_context, **dump_options)
    return body
