from typing import Any

__version__: str

def encode_tokens(tokens: Any) -> bytes:
    """Encode token IDs as a compact JSON array, such as ``b"[151643,872,25]"``.

    Accepts lists, tuples and ranges of ints, other sequences of ints, and 1-D
    buffers of any integer type, byte order and stride (``array.array``,
    ``memoryview``, numpy arrays). Items convert as ``operator.index`` does.
    Raises TypeError for non-integer items or buffer formats and ValueError for
    buffers that are not one-dimensional.
    """

def tokens_to_list(tokens: list[Any] | tuple[Any, ...]) -> list[int]:
    """Return a new list of exact ints from a list or tuple of token IDs."""

def dumps_document(data: Any, placeholder_prefix: str, fragments: list[bytes]) -> bytes | None:
    """Return ``json.dumps(data, ensure_ascii=False, separators=(",", ":"),
    allow_nan=False).encode()`` with ``fragments[i]`` in place of the string
    ``placeholder_prefix + str(i)``, or None where only ``json`` gives the right
    output or error (subclasses, keys that are not strings, NaN, lone surrogates).
    """

def _list_reader() -> str:
    """Return "direct" where list items are read from the object layout, else "api"."""
