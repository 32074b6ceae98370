"""Pure-Python encoder, used when the native module cannot be loaded.

It accepts the same inputs, writes the same bytes and raises the same exceptions with
the same messages as the Rust encoder, only much more slowly.
"""

from __future__ import annotations

import operator
import struct
import sys
from collections.abc import Iterable, Sequence
from typing import Any

ACCEPTED = "a list, tuple or range of ints, a sequence of ints, or a 1-D buffer of integers"
MAX_REPR_CHARS = 60

# struct codes with standard sizes, by item size in bytes and signedness.
_STRUCT_CODES = {
    (1, True): "b",
    (1, False): "B",
    (2, True): "h",
    (2, False): "H",
    (4, True): "i",
    (4, False): "I",
    (8, True): "q",
    (8, False): "Q",
}
_SIGNED_CODES = frozenset("bhilqn")
_UNSIGNED_CODES = frozenset("BHILQN")


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        return "<repr failed>"
    if len(text) <= MAX_REPR_CHARS:
        return text
    return text[:MAX_REPR_CHARS] + "..."


def _invalid_token(index: int, item: object) -> TypeError:
    return TypeError(
        f"invalid token at index {index}: expected an int, got "
        f"{type(item).__name__} {_short_repr(item)}"
    )


def _unsupported(tokens: object) -> TypeError:
    return TypeError(f"expected {ACCEPTED}, got {type(tokens).__name__}")


def _as_int(index: int, item: Any) -> int:
    if type(item) is int:
        return item
    if not hasattr(type(item), "__index__"):
        raise _invalid_token(index, item)
    return operator.index(item)


def _join(values: Iterable[int]) -> bytes:
    # str() raises ValueError past the interpreter's digit limit, as json.dumps does.
    return ("[" + ",".join(map(str, values)) + "]").encode()


def _list_or_tuple_ints(tokens: list[Any] | tuple[Any, ...]) -> list[int]:
    values = []
    index = 0
    # The length is read at every step, as Python's list iterator does.
    while index < len(tokens):
        values.append(_as_int(index, tokens[index]))
        index += 1
    return values


def _iterable_ints(tokens: Iterable[Any]) -> list[int]:
    return [_as_int(index, item) for index, item in enumerate(tokens)]


def _check_output_size(count: int) -> None:
    """Raise MemoryError at once when `count` items cannot have an output."""
    bytes_needed = 2 * count + 2
    if bytes_needed > sys.maxsize:
        raise MemoryError(f"cannot allocate {bytes_needed} bytes for the JSON output")
    try:
        bytearray(bytes_needed)
    except MemoryError:
        raise MemoryError(f"cannot allocate {bytes_needed} bytes for the JSON output") from None


def _parse_format(format_text: str) -> tuple[bool, str]:
    """Return (signed, byte order prefix for struct) or raise the encoder's TypeError."""
    prefix, code = ("", format_text) if len(format_text) == 1 else (format_text[0], format_text[1:])
    if len(code) != 1 or prefix not in ("", "@", "=", "<", ">", "!"):
        raise TypeError(f"unsupported buffer format {_quoted(format_text)}: expected integer items")
    order = {"": "=", "@": "=", "=": "=", "<": "<", ">": ">", "!": ">"}[prefix]
    if code in _SIGNED_CODES:
        return True, order
    if code in _UNSIGNED_CODES:
        return False, order
    if code == "?":
        detail = " (bool)"
    elif code in "efdg":
        detail = " (floating point)"
    else:
        detail = ""
    raise TypeError(
        f"unsupported buffer format {_quoted(format_text)}{detail}: expected integer items"
    )


def _quoted(text: str) -> str:
    """Quote as Rust's Debug formatting of a string does for plain ASCII text."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_one_dimensional(view: memoryview, items: str) -> None:
    if view.ndim != 1:
        shape = view.shape or ()
        shape_text = f"({shape[0]},)" if len(shape) == 1 else f"({', '.join(map(str, shape))})"
        raise ValueError(
            f"expected a 1-D buffer of {items}, got a {view.ndim}-D buffer of shape {shape_text}"
        )


def _buffer_ints(view: memoryview) -> list[int] | None:
    """Return the integers of a 1-D buffer, or None for a buffer of Python objects."""
    _check_one_dimensional(view, "token IDs")
    if view.format == "O":
        return None
    signed, order = _parse_format(view.format)
    code = _STRUCT_CODES.get((view.itemsize, signed))
    if code is None:
        raise TypeError(
            f"unsupported item size {view.itemsize} for buffer format {_quoted(view.format)}"
        )
    _check_output_size(len(view))
    return [value for (value,) in struct.iter_unpack(order + code, view.tobytes())]


def _reject_masked_values(tokens: Any) -> None:
    module = type(tokens).__module__
    if not isinstance(module, str) or not module.startswith("numpy.ma"):
        return
    if not hasattr(tokens, "count"):
        return
    size = int(tokens.size)
    unmasked = int(tokens.count())
    if unmasked != size:
        raise TypeError(
            f"cannot encode a masked array with masked entries ({size - unmasked} of {size}): "
            "fill them with tokens.filled(value) or drop them with tokens.compressed() first"
        )


def _is_sequence(tokens: object) -> bool:
    """Approximate CPython's PySequence_Check: a __getitem__ that is not a mapping's."""
    return hasattr(type(tokens), "__getitem__") and not isinstance(tokens, dict)


def _buffer_view(tokens: object) -> memoryview | None:
    try:
        return memoryview(tokens)  # type: ignore[arg-type]
    except (TypeError, ValueError, BufferError):
        return None


def _encode_view(tokens: object, view: memoryview) -> bytes:
    with view:
        values = _buffer_ints(view)
    if values is None:
        return _join(_iterable_ints(tokens))  # type: ignore[arg-type]
    return _join(values)


def encode_tokens(tokens: Any) -> bytes:
    """Encode token IDs as a compact JSON array, as the native encoder does."""
    kind = type(tokens)
    if kind is list or kind is tuple:
        return _join(_list_or_tuple_ints(tokens))
    if kind is range:
        try:
            count = len(tokens)
        except OverflowError:
            raise MemoryError(
                "cannot allocate the JSON output of a range longer than sys.maxsize"
            ) from None
        _check_output_size(count)
        return _join(tokens)
    if isinstance(tokens, str):
        raise _unsupported(tokens)
    _reject_masked_values(tokens)
    view = _buffer_view(tokens)
    if view is not None:
        return _encode_view(tokens, view)
    if hasattr(tokens, "__array__"):
        array = tokens.__array__()
        view = _buffer_view(array)
        if view is None:
            raise _unsupported(tokens)
        return _encode_view(array, view)
    if _is_sequence(tokens):
        return _join(_iterable_ints(tokens))
    raise _unsupported(tokens)


def tokens_to_list(tokens: Any) -> list[int]:
    """Return a new list of exact ints from a list or tuple of token IDs."""
    if type(tokens) is not list and type(tokens) is not tuple:
        raise _unsupported(tokens)
    return [_as_int(index, item) for index, item in enumerate(tokens)]


def _json_token_sequence(tokens: Any) -> Sequence[int]:
    """Return ``tokens`` itself if it is an exact list or tuple of exact ints, and
    otherwise what ``tokens_to_list`` returns."""
    if (type(tokens) is list or type(tokens) is tuple) and all(
        type(item) is int for item in tokens
    ):
        return tokens
    return tokens_to_list(tokens)


def _list_reader() -> str:
    return "python"


def dumps_document(data: Any, placeholder_prefix: str, fragments: list[bytes]) -> bytes | None:
    """Return None: without the native module, request bodies take the ``json`` path."""
    del data, placeholder_prefix, fragments
    return None


FLOATS_ACCEPTED = (
    "a list or tuple of floats, a sequence of real numbers, "
    "or a 1-D buffer of float32 or float64 values"
)
# struct codes of the float buffer formats, by item size.
_FLOAT_CODES = {4: "f", 8: "d"}


def _invalid_float(index: int, item: object) -> TypeError:
    return TypeError(
        f"invalid value at index {index}: expected a float, got "
        f"{type(item).__name__} {_short_repr(item)}"
    )


def _as_float(index: int, item: Any) -> float:
    if type(item) is float:
        value = item
    elif isinstance(item, (str, bytes, bytearray)):
        raise _invalid_float(index, item)
    else:
        try:
            value = float(item)
        except TypeError:
            raise _invalid_float(index, item) from None
    return value


def _join_floats(values: Iterable[float]) -> bytes:
    items = []
    for index, value in enumerate(values):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(
                f"Out of range float values are not JSON compliant: {value!r} at index {index}"
            )
        items.append(repr(value))
    return ("[" + ",".join(items) + "]").encode()


def _buffer_floats(view: memoryview) -> list[float] | None:
    """Return the values of a 1-D float buffer, or None for a buffer of Python objects."""
    _check_one_dimensional(view, "floats")
    if view.format == "O":
        return None
    format_text = view.format
    prefix, code = ("", format_text) if len(format_text) == 1 else (format_text[0], format_text[1:])
    order = {"": "=", "@": "=", "=": "=", "<": "<", ">": ">", "!": ">"}.get(prefix)
    if order is None or code not in ("f", "d") or _FLOAT_CODES.get(view.itemsize) != code:
        raise TypeError(
            f"unsupported buffer format {_quoted(format_text)}: expected float32 or float64 items"
        )
    return [value for (value,) in struct.iter_unpack(order + code, view.tobytes())]


def encode_floats(values: Any) -> bytes:
    """Encode floats as a compact JSON array, as the native encoder does."""
    if isinstance(values, str):
        raise TypeError(f"expected {FLOATS_ACCEPTED}, got {type(values).__name__}")
    kind = type(values)
    if kind is list or kind is tuple:
        return _join_floats(_as_float(index, item) for index, item in enumerate(values))
    _reject_masked_values(values)
    view = _buffer_view(values)
    if view is None and hasattr(values, "__array__"):
        values = values.__array__()
        view = _buffer_view(values)
    if view is not None:
        with view:
            floats = _buffer_floats(view)
        if floats is not None:
            return _join_floats(floats)
    if view is not None or _is_sequence(values):
        return _join_floats(_as_float(index, item) for index, item in enumerate(values))
    raise TypeError(f"expected {FLOATS_ACCEPTED}, got {type(values).__name__}")


def encode_exact(values: Any) -> bytes | None:
    """Return the JSON array of a list of only exact ints or only exact floats, else None."""
    if type(values) is not list or not values:
        return None
    kind = type(values[0])
    if kind not in (int, float) or not all(type(value) is kind for value in values):
        return None
    return encode_tokens(values) if kind is int else encode_floats(values)
