"""The switch that puts the encoder into the tinker SDK and takes it out again."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import sys
import threading
import typing
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Annotated, Any

from pydantic import BaseModel, SerializerFunctionWrapHandler, WrapSerializer

from tinker_accel import _plain
from tinker_accel._serialize import (
    TokenIds,
    dumps_model,
    serialize_tensor_indices,
    serialize_tensor_values,
    tensor_values_return_type,
)

logger = logging.getLogger("tinker_accel")

_lock = threading.RLock()


@dataclass
class _FieldPatch:
    """A field annotation replaced on a model class, with what it replaced."""

    model: type[BaseModel]
    name: str
    annotation: Any
    class_annotation: Any
    original_annotation: Any


@dataclass
class _State:
    fields: list[_FieldPatch] = field(default_factory=list)
    reprs: list[tuple[type[BaseModel], Any]] = field(default_factory=list)
    rebuilt: list[type[BaseModel]] = field(default_factory=list)
    # Resource modules whose `model_dump` was replaced, each with its original.
    body_hooks: list[tuple[Any, Any]] = field(default_factory=list)
    # tinker's client class and its `_build_request`, while that is replaced.
    build_request: tuple[Any, Any] | None = None


_state: _State | None = None
# Reason the last enable() left tinker unchanged, or None.
_last_problem: str | None = None

_MISSING = object()


class _TokenCount:
    """Stands for a token list in a repr, so the repr's cost does not grow with it."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __repr__(self) -> str:
        return f"<{self.count} tokens>"


def _chunk_repr_args(self: BaseModel) -> Iterator[tuple[str | None, Any]]:
    for name, value in BaseModel.__repr_args__(self):
        if name == "tokens":
            # A token container without a working len() keeps its own repr.
            with contextlib.suppress(Exception):
                value = _TokenCount(len(value))
        yield name, value


def _chunk_types() -> tuple[type[BaseModel], ...]:
    from tinker.types.model_input_chunk import ModelInputChunk

    union = typing.get_args(ModelInputChunk)[0]
    return tuple(member for member in typing.get_args(union) if isinstance(member, type))


def _adopt_chunk(chunk: Any, by_name: dict[str, type[BaseModel]]) -> Any:
    """Rebuild a chunk whose class is another copy of a tinker chunk class, for
    example one left over after a module reload, as an instance of tinker's class.

    A copy is recognized by its class name, its module (one of tinker's) and its field
    names, because a reloaded module's class differs from tinker's in identity only.
    A user's class that merely shares the name keeps its own serialization.
    """
    if not isinstance(chunk, BaseModel):
        return chunk
    chunk_class = type(chunk)
    target = by_name.get(chunk_class.__qualname__)
    module = chunk_class.__module__
    from_tinker = module == "tinker" or module.startswith("tinker.")
    fields = chunk_class.model_fields
    if target is None or not from_tinker or fields.keys() != target.model_fields.keys():
        return chunk
    values = {name: getattr(chunk, name) for name in fields}
    return target.model_construct(_fields_set=set(chunk.model_fields_set), **values)


def _make_chunks_serializer() -> WrapSerializer:
    chunk_types = _chunk_types()
    known = frozenset(chunk_types)
    by_name = {chunk_type.__qualname__: chunk_type for chunk_type in chunk_types}

    def serialize_chunks(chunks: Any, handler: SerializerFunctionWrapHandler) -> Any:
        # A chunk of no known class makes pydantic >= 2.11 try each union member and
        # format a warning per token, which is quadratic. Rebuilding such chunks as
        # tinker's own class first keeps serialization linear.
        if isinstance(chunks, list) and not all(type(chunk) in known for chunk in chunks):
            chunks = [_adopt_chunk(chunk, by_name) for chunk in chunks]
        return handler(chunks)

    _plain.mark_serializer(serialize_chunks, "chunks")
    return WrapSerializer(serialize_chunks, when_used="always")


def _references(annotation: Any, targets: set[type[BaseModel]]) -> bool:
    if isinstance(annotation, type) and annotation in targets:
        return True
    return any(_references(argument, targets) for argument in typing.get_args(annotation))


def _tinker_models() -> list[type[BaseModel]]:
    models: dict[type[BaseModel], None] = {}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "tinker" or name.startswith("tinker.")):
            continue
        for value in list(vars(module).values()):
            if (
                isinstance(value, type)
                and issubclass(value, BaseModel)
                and (value.__module__ == "tinker" or value.__module__.startswith("tinker."))
            ):
                models[value] = None
    return list(models)


def _dependent_models(changed: list[type[BaseModel]]) -> list[type[BaseModel]]:
    """Return the tinker models that contain any of ``changed``, innermost first, so
    each is rebuilt after the models it contains."""
    affected: set[type[BaseModel]] = set(changed)
    ordered: list[type[BaseModel]] = []
    candidates = [model for model in _tinker_models() if model not in affected]
    progress = True
    while progress:
        progress = False
        for model in candidates:
            if model in affected:
                continue
            annotations = [info.annotation for info in model.model_fields.values()]
            if any(_references(annotation, affected) for annotation in annotations):
                affected.add(model)
                ordered.append(model)
                progress = True
    return ordered


def _replace_annotation(model: type[BaseModel], name: str, annotation: Any) -> _FieldPatch:
    info = model.model_fields[name]
    # The class's own dict, not inspect.get_annotations, because it is changed in place.
    class_annotations = model.__dict__.get("__annotations__", {})  # noqa: RUF063
    patch = _FieldPatch(
        model=model,
        name=name,
        annotation=info.annotation,
        class_annotation=class_annotations.get(name, _MISSING),
        original_annotation=getattr(info, "_original_annotation", _MISSING),
    )
    _set_annotation(model, name, annotation, annotation, annotation)
    return patch


def _set_annotation(
    model: type[BaseModel],
    name: str,
    annotation: Any,
    class_annotation: Any,
    original_annotation: Any,
) -> None:
    # Depending on the pydantic version, a rebuild reads the field's annotation, the
    # class's __annotations__ or the field's saved original one, so set all three.
    info = model.model_fields[name]
    info.annotation = annotation
    class_annotations = model.__dict__.get("__annotations__")  # noqa: RUF063
    if class_annotations is not None and class_annotation is not _MISSING:
        class_annotations[name] = class_annotation
    if original_annotation is not _MISSING and hasattr(info, "_original_annotation"):
        info._original_annotation = original_annotation


def _rebuild(models: list[type[BaseModel]]) -> None:
    for model in models:
        model.model_rebuild(force=True)


class EncodedBody(bytes):
    """A pre-encoded JSON request body that remembers how to build the stock one.

    tinker's client sends ``bytes`` as they are, but merges ``extra_body`` only into
    a dict body. For such a request the ``_build_request`` hook swaps in the stock
    dict, so the merged body is the stock one.
    """

    _stock: Any

    def __new__(cls, body: bytes, stock: Any) -> EncodedBody:
        encoded = super().__new__(cls, body)
        encoded._stock = stock
        return encoded

    def stock(self) -> Any:
        """Return the dict that tinker's own ``model_dump`` builds for this body."""
        return self._stock()

    def __reduce__(self) -> Any:
        # Copies are plain bytes: the stock form is only for the merge above.
        return (bytes, (bytes(self),))


def _build_request_hook(original: Any) -> Any:
    """Return a stand-in for tinker's ``BaseClient._build_request`` that gives a
    request with ``extra_body`` its stock dict body back before the merge."""

    def build_request(self: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        body = getattr(options, "json_data", None)
        if isinstance(body, EncodedBody) and getattr(options, "extra_json", None) is not None:
            options = options.model_copy(update={"json_data": body.stock()})
        return original(self, options, *args, **kwargs)

    build_request.__wrapped__ = original  # type: ignore[attr-defined]
    return build_request


def _body_hook(original: Any) -> Any:
    """Return a stand-in for a resource module's ``model_dump`` that returns the JSON
    body as bytes, which tinker's client sends as they are."""

    def accelerated_model_dump(model: BaseModel, **options: Any) -> Any:
        if options.get("mode") != "json":
            return original(model, **options)
        stock_options = dict(options)
        options.pop("mode")
        # Only the options that tinker passes and pydantic's model_dump takes go through.
        dump_options = {
            key: options[key]
            for key in ("exclude", "exclude_unset", "exclude_defaults", "exclude_none", "warnings")
            if key in options
        }
        return EncodedBody(
            dumps_model(model, **dump_options), lambda: original(model, **stock_options)
        )

    accelerated_model_dump.__wrapped__ = original  # type: ignore[attr-defined]
    return accelerated_model_dump


def _httpx_version() -> str:
    import httpx

    return str(httpx.__version__)


def _httpx_sends_compact_json() -> bool:
    """Return whether httpx writes ``json=`` bodies in the compact form ``dumps_model``
    writes. httpx 0.28 switched from ``json.dumps`` defaults (spaces after separators,
    ASCII escapes, NaN allowed) to compact UTF-8 that rejects NaN."""
    parts = re.findall(r"\d+", _httpx_version())[:2]
    return tuple(int(part) for part in parts) >= (0, 28)


def is_enabled() -> bool:
    """Return whether the accelerator is on."""
    return _state is not None


# The tinker and pydantic releases that scripts/matrix.py has run this version with.
# The upper tinker bound is exclusive, so patch releases of the newest line pass.
SUPPORTED_TINKER = ((0, 10, 0), (0, 39, 0))
SUPPORTED_PYDANTIC = ((2, 7, 0), (3, 0, 0))
# Resource modules that build JSON bodies with a module-level `model_dump`: sampling
# in every release, training (forward, forward_backward, optim_step) up to 0.24.
_BODY_MODULES = ("tinker.resources.sampling", "tinker.resources.training")


def _base_client_class() -> Any:
    """Return tinker's ``BaseClient`` if it has the ``_build_request`` that the body
    hooks need for ``extra_body``, else None (and bodies stay with httpx)."""
    try:
        module = importlib.import_module("tinker._base_client")
    except ImportError:
        return None
    client = getattr(module, "BaseClient", None)
    if not isinstance(client, type) or not callable(vars(client).get("_build_request")):
        return None
    return client


# NOTE: only the release numbers are compared, so a pre-release of a lower bound
# (tinker 0.10.0rc1) passes the check.
def _version_tuple(version: str) -> tuple[int, int, int] | None:
    parts = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if parts is None:
        return None
    major, minor, patch = parts.groups()
    return int(major), int(minor), int(patch or 0)


def _format_range(bounds: tuple[tuple[int, int, int], tuple[int, int, int]]) -> str:
    low, high = bounds
    return f">= {'.'.join(map(str, low))}, < {'.'.join(map(str, high))}"


def _version_problems() -> list[str]:
    """Return why the installed tinker or pydantic is outside the tested range."""
    import pydantic

    allowed = os.environ.get("TINKER_ACCEL_ALLOW_UNTESTED", "").strip().lower()
    if allowed in {"1", "true", "yes", "on"}:
        return []
    problems = []
    for name, found, bounds in (
        ("tinker", _tinker_version(), SUPPORTED_TINKER),
        ("pydantic", pydantic.VERSION, SUPPORTED_PYDANTIC),
    ):
        version = _version_tuple(found)
        if version is None or not bounds[0] <= version < bounds[1]:
            problems.append(
                f"{name} {found} is outside the tested range ({_format_range(bounds)}); "
                "set TINKER_ACCEL_ALLOW_UNTESTED=1 to try it anyway"
            )
    return problems


def _patch_points() -> tuple[Any, list[Any], list[str]]:
    """Find what ``enable()`` changes in the installed tinker.

    Returns tinker's types module, the resource modules whose JSON bodies can be
    pre-encoded, and a list of problems that rule the accelerator out.
    """
    from tinker import types

    problems = _version_problems()
    chunk_class = getattr(types, "EncodedTextChunk", None)
    model_input = getattr(types, "ModelInput", None)
    if not (isinstance(chunk_class, type) and issubclass(chunk_class, BaseModel)):
        problems.append("tinker.types.EncodedTextChunk is missing or not a pydantic model")
    elif "tokens" not in chunk_class.model_fields:
        problems.append("EncodedTextChunk has no 'tokens' field")
    if not (isinstance(model_input, type) and issubclass(model_input, BaseModel)):
        problems.append("tinker.types.ModelInput is missing or not a pydantic model")
    elif "chunks" not in model_input.model_fields:
        problems.append("ModelInput has no 'chunks' field")
    try:
        _chunk_types()
    except (ImportError, IndexError, TypeError) as error:
        problems.append(f"the chunk union tinker.types.model_input_chunk is not readable: {error}")
    body_modules = []
    base_client = _base_client_class()
    for name in _BODY_MODULES if base_client is not None else ():
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if callable(getattr(module, "model_dump", None)):
            body_modules.append(module)
    return types, body_modules, problems


def forced_off() -> bool:
    """Return whether ``TINKER_ACCEL`` is set to 0, false, no or off, which keeps the
    accelerator off even where code calls ``enable()``."""
    return os.environ.get("TINKER_ACCEL", "").strip().lower() in {"0", "false", "no", "off"}


def _tinker_version() -> str:
    try:
        return metadata.version("tinker")
    except metadata.PackageNotFoundError:
        return "unknown"


def enable() -> None:
    """Switch the accelerator on for the tinker SDK in this process.

    Puts the encoder on ``EncodedTextChunk.tokens`` and rebuilds every tinker model
    that contains it, gives chunks a repr that shows the token count, and makes the
    sampling client (and the training client of tinker releases that send training
    requests as JSON) send pre-encoded request bodies. Calling it again does nothing.

    With ``TINKER_ACCEL`` set to 0, false, no or off it does nothing, so that a user
    can turn the accelerator off without editing code that calls it. On a tinker
    version whose classes do not look as expected, it changes nothing,
    emits a RuntimeWarning that names the version and the problem, and ``status()``
    reports the reason. Raises ImportError if tinker is not installed.
    """
    global _state, _last_problem
    with _lock:
        if _state is not None:
            return
        if forced_off():
            _last_problem = "TINKER_ACCEL is set to turn the accelerator off"
            logger.info("tinker-accel not enabled: %s", _last_problem)
            return
        types, body_modules, problems = _patch_points()
        if problems:
            _last_problem = f"tinker {_tinker_version()}: " + "; ".join(problems)
            warnings.warn(
                f"tinker-accel left tinker unchanged: {_last_problem}",
                RuntimeWarning,
                stacklevel=2,
            )
            return

        state = _State()
        try:
            _apply(state, types, body_modules)
        except Exception as error:
            # Undo what was changed, so that a failure leaves stock tinker working.
            _undo(state)
            _last_problem = f"tinker {_tinker_version()}: patching failed: {error!r}"
            warnings.warn(
                f"tinker-accel left tinker unchanged: {_last_problem}",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        _state = state
        _last_problem = None
        logger.info("tinker-accel enabled: %d tinker models rebuilt", len(state.rebuilt))


# TensorData fields that hold long lists of numbers, with their serializers: values
# are ints or floats, the sparse indices ints.
_TENSOR_FIELDS = {
    "data": serialize_tensor_values,
    "sparse_crow_indices": serialize_tensor_indices,
    "sparse_col_indices": serialize_tensor_indices,
}


def _tensor_classes(types: Any) -> list[type[BaseModel]]:
    """Return tinker's pydantic TensorData classes: the public one up to 0.19, and the
    wire copy in ``tinker.types._pydantic_types`` from 0.18.2 on."""
    candidates = [getattr(types, "TensorData", None)]
    try:
        wire = importlib.import_module("tinker.types._pydantic_types.tensor_data")
    except ImportError:
        pass
    else:
        candidates.append(getattr(wire, "TensorData", None))
    found: dict[type[BaseModel], None] = {}
    for candidate in candidates:
        if (
            isinstance(candidate, type)
            and issubclass(candidate, BaseModel)
            and "data" in candidate.model_fields
        ):
            found[candidate] = None
    return list(found)


def _apply(state: _State, types: Any, body_modules: list[Any]) -> None:
    """Make the changes of ``enable()``, recording each in ``state`` as it is made."""
    chunk_class = types.EncodedTextChunk
    model_input = types.ModelInput
    state.fields.append(_replace_annotation(chunk_class, "tokens", TokenIds))
    chunks_annotation = model_input.model_fields["chunks"].annotation
    state.fields.append(
        _replace_annotation(
            model_input,
            "chunks",
            Annotated[chunks_annotation, _make_chunks_serializer()],
        )
    )
    tensor_classes = _tensor_classes(types)
    for tensor_class in tensor_classes:
        for name, function in _TENSOR_FIELDS.items():
            info = tensor_class.model_fields.get(name)
            if info is None:
                continue
            if function is serialize_tensor_values:
                serializer = WrapSerializer(
                    function,
                    return_type=tensor_values_return_type(info.annotation),
                    when_used="json",
                )
            else:
                serializer = WrapSerializer(function, when_used="json")
            state.fields.append(
                _replace_annotation(tensor_class, name, Annotated[info.annotation, serializer])
            )
    for model in (chunk_class, model_input):
        state.reprs.append((model, model.__dict__.get("__repr_args__", _MISSING)))
        model.__repr_args__ = _chunk_repr_args
    patched = [chunk_class, model_input, *tensor_classes]
    state.rebuilt = [*patched, *_dependent_models(patched)]
    _rebuild(state.rebuilt)

    if not body_modules:
        logger.info("tinker-accel: no body hook in this tinker; bodies stay with httpx")
    elif _httpx_sends_compact_json():
        client = _base_client_class()
        state.build_request = (client, client.__dict__["_build_request"])
        client._build_request = _build_request_hook(state.build_request[1])
        for module in body_modules:
            original = getattr(module, "model_dump")  # noqa: B009
            state.body_hooks.append((module, original))
            setattr(module, "model_dump", _body_hook(original))  # noqa: B010
    else:
        logger.info(
            "tinker-accel: httpx %s writes JSON bodies with spaces, so request bodies "
            "stay with httpx; upgrade to httpx >= 0.28 for pre-encoded bodies",
            _httpx_version(),
        )


def status() -> dict[str, Any]:
    """Return what the accelerator does in this process, for diagnostics.

    The keys are:

    - ``backend``: "rust", or "python" when the native module cannot load.
    - ``enabled``: whether the switch is on.
    - ``tinker_version`` and ``pydantic_version``.
    - ``token_serializer``: whether the encoder is on ``EncodedTextChunk.tokens``.
    - ``tensor_serializer``: whether the encoders are on ``TensorData`` lists.
    - ``pre_encoded_bodies``: whether the sampling client sends pre-encoded bytes.
    - ``pre_encoded_resources``: the tinker resource modules that send pre-encoded
      bytes, such as ``["sampling", "training"]``.
    - ``list_reader``: "direct", "api" or "python", how list items are read.
    - ``problem``: why the last ``enable()`` changed nothing, or None.
    """
    import pydantic

    from tinker_accel import _backend

    state = _state
    hooked = [module for module, _ in state.body_hooks] if state is not None else []
    return {
        "backend": _backend.BACKEND,
        "enabled": state is not None,
        "tinker_version": _tinker_version(),
        "pydantic_version": pydantic.VERSION,
        "token_serializer": state is not None and bool(state.fields),
        "tensor_serializer": state is not None
        and any(patch.name in _TENSOR_FIELDS for patch in state.fields),
        "pre_encoded_bodies": any(
            module.__name__ == "tinker.resources.sampling" for module in hooked
        ),
        "pre_encoded_resources": [module.__name__.rsplit(".", 1)[-1] for module in hooked],
        "list_reader": _backend.list_reader(),
        "problem": _last_problem,
    }


def disable() -> None:
    """Switch the accelerator off and restore tinker's own behaviour."""
    global _state
    with _lock:
        state = _state
        if state is None:
            return
        _undo(state)
        _state = None
        logger.info("tinker-accel disabled")


def _undo(state: _State) -> None:
    """Reverse every change recorded in ``state``."""
    for module, original in reversed(state.body_hooks):
        setattr(module, "model_dump", original)  # noqa: B010
    if state.build_request is not None:
        client, original = state.build_request
        client._build_request = original
    for model, repr_args in state.reprs:
        if repr_args is _MISSING:
            del model.__repr_args__
        else:
            model.__repr_args__ = repr_args  # type: ignore[method-assign]
    for patch in reversed(state.fields):
        _set_annotation(
            patch.model,
            patch.name,
            patch.annotation,
            patch.class_annotation,
            patch.original_annotation,
        )
    # Models from tinker modules first imported while enabled contain the
    # accelerated serializer too, so look for dependents again.
    patched = [patch.model for patch in state.fields]
    dependents = _dependent_models(patched)
    _rebuild(patched + [model for model in dependents if model not in patched])


def request_body(request: BaseModel) -> bytes:
    """Return the JSON body the accelerated client sends for a tinker ``SampleRequest``."""
    return dumps_model(request, exclude_unset=False, exclude_none=True)
