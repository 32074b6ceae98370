from collections.abc import Sequence
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

def _json_token_sequence(tokens: list[Any] | tuple[Any, ...]) -> Sequence[int]:
    """Return ``tokens`` itself if it is an exact list or tuple of exact ints, and
    otherwise what ``tokens_to_list`` returns."""

def dumps_document(data: Any, placeholder_prefix: str, fragments: list[bytes]) -> bytes | None:
    """Return ``json.dumps(data, ensure_ascii=False, separators=(",", ":"),
    allow_nan=False).encode()`` with ``fragments[i]`` in place of the string
    ``placeholder_prefix + str(i)``, or None where only ``json`` gives the right
    output or error (subclasses, keys that are not strings, NaN, lone surrogates).
    """

def encode_floats(values: Any) -> bytes:
    """Encode floats as a compact JSON array, byte for byte as
    ``json.dumps([float(v) for v in values], separators=(",", ":"), allow_nan=False)``.

    Accepts lists, tuples and other sequences of real numbers, each converted as
    ``float()`` does except that text is rejected. Also accepts 1-D float32 or float64
    buffers of any byte order and stride, whose float32 values are widened as
    ``.tolist()`` widens them.
    Raises ValueError naming the index for NaN or infinity, TypeError for other items.
    """

def _encode_exact(values: Any) -> bytes | None:
    """Return the JSON array of a list of only exact ints or only exact floats, else None."""

def _force_float_path(path: str | None) -> None:
    """Make every later float encoding in this process take ``path``: "avx512",
    "avx2" or "scalar", or the fastest path this CPU has for None. Raises ValueError
    for an unknown path or one this CPU lacks. For tests and benchmarks."""

def _list_reader() -> str:
    """Return "direct" where list items are read from the object layout, else "api"."""

class PlainPlan:
    """How to write one pydantic model class as a JSON body straight from its fields."""

    def __new__(cls, tree: tuple[Any, ...]) -> PlainPlan: ...
    def dumps(self, model: Any, exclude_none: bool, exclude_unset: bool = False) -> bytes | None:
        """Return the JSON body of ``model``, or None where pydantic must write it.
        ``exclude_none`` and ``exclude_unset`` work as the ``model_dump`` options do."""
