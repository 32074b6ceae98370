"""Plans for writing pydantic models as JSON request bodies without ``model_dump``.

A plan lists a model's fields in pydantic's order, each with its JSON key and the kind
of value pydantic writes there, read from the class's core schema. The Rust side
(``PlainPlan``) writes a model by its plan when every value has exactly the planned
type, and returns None otherwise, so the caller runs pydantic instead.

A schema node the plan cannot mirror becomes ``("unknown",)``. A value that reaches
such a node makes the whole model go to pydantic, so an unknown node costs speed,
never correctness. Serializers of this package are marked with the kind they stand
for (``mark_serializer``); any other serializer is unknown.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from tinker_accel._backend import PlainPlan

_MARKER = "_tinker_accel_kind"

# Nesting of schema nodes beyond which a plan gives up, well above any tinker model.
_MAX_DEPTH = 48

_UNKNOWN: tuple[str] = ("unknown",)

# Keys of a model field's schema that do not change what pydantic writes for it.
_NEUTRAL_FIELD_KEYS = frozenset({"type", "schema", "metadata", "frozen", "validation_alias"})

# Options of model_dump that a plan writes as pydantic does only when they are off.
_FALSE_OPTIONS = ("exclude_defaults",)

# The string values model_dump takes for `warnings`.
_WARNING_MODES = ("none", "warn", "error")

# Most schema nodes one plan may have. A DAG of shared definitions expands into a
# tree here, which could otherwise grow exponentially.
_MAX_NODES = 20_000

Function = TypeVar("Function", bound=Callable[..., Any])


def mark_serializer(function: Function, kind: str) -> Function:
    """Mark a serializer function of this package with the plan kind it stands for:
    "tokens", "exact_values", "exact_indices", or "chunks" for one that passes values
    through to the schema it wraps."""
    setattr(function, _MARKER, kind)
    return function


@functools.cache
def _sequence_serializers() -> frozenset[Any]:
    """Return pydantic's serializer functions of ``Sequence[...]`` fields, which moved
    from ``_std_types_schema`` (2.7, 2.8) to ``_serializers`` (2.9 and later)."""
    found = set()
    for module_name in ("pydantic._internal._serializers", "pydantic._internal._std_types_schema"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        function = getattr(module, "serialize_sequence_via_list", None)
        if function is not None:
            found.add(function)
    return frozenset(found)


class _TooLarge(Exception):
    """The plan would have more than ``_MAX_NODES`` nodes."""


class _Definitions:
    """Shared schema definitions by reference, the ones being expanded, and the count
    of nodes built so far."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}
        self.expanding: set[str] = set()
        self.nodes = 0


def plan_tree(model_class: type[BaseModel]) -> tuple[Any, ...] | None:
    """Return the plan of ``model_class`` as nested tuples, or None if pydantic must
    write its top level."""
    schema = model_class.__pydantic_core_schema__
    try:
        tree = _kind(dict(schema), _Definitions(), 0)
    except _TooLarge:
        return None
    return tree if tree[0] == "model" else None


def _kind(schema: dict[str, Any], definitions: _Definitions, depth: int) -> tuple[Any, ...]:
    definitions.nodes += 1
    if definitions.nodes > _MAX_NODES:
        raise _TooLarge
    if depth > _MAX_DEPTH:
        return _UNKNOWN
    kind = schema.get("type")
    if kind == "definitions":
        for definition in schema.get("definitions", ()):
            definitions.schemas[definition["ref"]] = definition
        return _kind(schema["schema"], definitions, depth + 1)
    if kind == "definition-ref":
        reference = schema.get("schema_ref", "")
        target = definitions.schemas.get(reference)
        # A model that contains itself is left to pydantic where it recurs.
        if target is None or "serialization" in schema or reference in definitions.expanding:
            return _UNKNOWN
        definitions.expanding.add(reference)
        try:
            return _kind(target, definitions, depth + 1)
        finally:
            definitions.expanding.discard(reference)

    serialization = schema.get("serialization")
    if serialization is not None:
        function = serialization.get("function")
        if function in _sequence_serializers():
            # pydantic's serializer of `Sequence[...]`: a list of the items.
            items = serialization.get("schema")
            return ("sequence", _UNKNOWN if items is None else _kind(items, definitions, depth + 1))
        marker = getattr(function, _MARKER, None)
        if marker == "chunks":
            inner = {key: value for key, value in schema.items() if key != "serialization"}
            return _kind(inner, definitions, depth + 1)
        if marker is None:
            return _UNKNOWN
        # The index serializer sits on the nullable node and passes None to pydantic,
        # which writes null.
        return ("nullable", (marker,)) if kind == "nullable" else (marker,)

    if kind in ("int", "float", "str", "bool"):
        return (kind,)
    if kind == "literal":
        expected = tuple(schema.get("expected", ()))
        same_kind = all(type(value) is str for value in expected) or all(
            type(value) is int for value in expected
        )
        return ("literal", expected) if expected and same_kind else _UNKNOWN
    if kind in ("default", "function-before", "function-after", "function-wrap"):
        # A default or a validator leaves serialization to the schema it wraps.
        wrapped = schema.get("schema")
        return _UNKNOWN if wrapped is None else _kind(wrapped, definitions, depth + 1)
    if kind == "nullable":
        return ("nullable", _kind(schema["schema"], definitions, depth + 1))
    if kind == "list":
        items = schema.get("items_schema")
        return ("list", _UNKNOWN if items is None else _kind(items, definitions, depth + 1))
    if kind == "union":
        choices = tuple(
            _kind(choice[0] if isinstance(choice, tuple) else choice, definitions, depth + 1)
            for choice in schema.get("choices", ())
        )
        return ("union", choices)
    if kind == "model":
        return _model(schema, definitions, depth)
    return _UNKNOWN


def _model(schema: dict[str, Any], definitions: _Definitions, depth: int) -> tuple[Any, ...]:
    # A model the plan cannot write keeps its class, so that a union can still tell
    # its values from those of the other choices.
    opaque = ("opaque", schema["cls"])
    if schema.get("root_model"):
        return opaque
    inner = schema.get("schema", {})
    while inner.get("type") in ("function-before", "function-after", "function-wrap"):
        if "serialization" in inner:
            return opaque
        inner = inner.get("schema", {})
    if inner.get("type") != "model-fields" or inner.get("computed_fields"):
        return opaque
    if (
        inner.get("extra_behavior") == "allow"
        or schema.get("config", {}).get("extra_fields_behavior") == "allow"
    ):
        return opaque
    fields = []
    for name, field in inner.get("fields", {}).items():
        # An alias, an exclusion or a condition on the field changes the output.
        if field.get("type") != "model-field" or not set(field) <= _NEUTRAL_FIELD_KEYS:
            return opaque
        kind = _kind(field["schema"], definitions, depth + 1)
        # A field that stops the plan for every value but None stops it for nearly
        # every model: writing the fields before it would be wasted work, repeated
        # by pydantic after the plan gives up.
        if _always_stops(kind):
            return opaque
        key = json.dumps(name, ensure_ascii=False).encode() + b":"
        fields.append((name, key, kind))
    return ("model", schema["cls"], tuple(fields))


def _always_stops(kind: tuple[Any, ...]) -> bool:
    """Return whether every value of this kind, an empty list aside, stops a plan."""
    if kind[0] in ("unknown", "opaque"):
        return True
    return kind[0] in ("list", "sequence") and _always_stops(kind[1])


# The attribute of a model class that stores its plan, with the schema the plan was
# built from: enable() and disable() rebuild tinker's models with new schemas, and a
# new schema needs a new plan. A plan refers to its class, so keeping plans on the
# classes (not in a module-level dict) lets a class made on the fly be freed.
_PLAN_ATTRIBUTE = "__tinker_accel_plan__"


def plan_for(model_class: type[BaseModel]) -> PlainPlan | None:
    """Return the plan of ``model_class``, or None where pydantic must write it."""
    schema = getattr(model_class, "__pydantic_core_schema__", None)
    # Read from the class itself: a subclass must not use its parent's plan.
    cached = model_class.__dict__.get(_PLAN_ATTRIBUTE)
    if cached is not None and cached[0] is schema:
        plan: PlainPlan | None = cached[1]
        return plan
    plan = None
    # A class that overrides model_dump changes the body in ways a plan cannot see.
    if (
        PlainPlan is not None
        and schema is not None
        and getattr(model_class, "model_dump", None) is BaseModel.model_dump
    ):
        tree = plan_tree(model_class)
        plan = None if tree is None else PlainPlan(tree)
    # A class that takes no attributes gets its plan built on every call.
    with contextlib.suppress(AttributeError, TypeError):
        type.__setattr__(model_class, _PLAN_ATTRIBUTE, (schema, plan))
    return plan


def options_allowed(dump_options: dict[str, Any]) -> bool:
    """Return whether a plan writes what ``model_dump`` writes with these options.

    Only valid values are allowed, so that pydantic raises its own error for an
    invalid one, such as ``exclude_none="yes"``.
    """
    for key, value in dump_options.items():
        if key in _FALSE_OPTIONS:
            if value is not False:
                return False
        elif key in ("include", "exclude"):
            if value is not None:
                return False
        elif key in ("exclude_none", "exclude_unset"):
            if type(value) is not bool:
                return False
        elif key == "warnings":
            if type(value) is not bool and value not in _WARNING_MODES:
                return False
        else:
            return False
    return True
