"""The encoder in use: the Rust extension, or the pure-Python one when it cannot load.

Set ``TINKER_ACCEL_BACKEND=python`` to use the pure-Python encoder on purpose, for
example to compare the two.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

encode_tokens: Callable[[Any], bytes]
encode_floats: Callable[[Any], bytes]
tokens_to_list: Callable[[Any], list[int]]
json_token_sequence: Callable[[Any], Sequence[int]]
list_reader: Callable[[], str]
dumps_document: Callable[[Any, str, list[bytes]], bytes | None]
encode_exact: Callable[[Any], bytes | None]
# The class that writes request bodies straight from models, or None without the
# native module.
PlainPlan: Any

if os.environ.get("TINKER_ACCEL_BACKEND", "").strip().lower() == "python":
    _native_error: ImportError | None = ImportError("TINKER_ACCEL_BACKEND=python is set")
else:
    try:
        from tinker_accel import _native
    except ImportError as error:
        _native_error = error
    else:
        _native_error = None

if _native_error is None:
    BACKEND = "rust"
    __version__: str = _native.__version__
    encode_tokens = _native.encode_tokens
    encode_floats = _native.encode_floats
    tokens_to_list = _native.tokens_to_list
    json_token_sequence = _native._json_token_sequence
    list_reader = _native._list_reader
    dumps_document = _native.dumps_document
    encode_exact = _native._encode_exact
    PlainPlan = _native.PlainPlan
else:
    from tinker_accel import _fallback

    BACKEND = "python"
    try:
        __version__ = metadata.version("tinker-accel")
    except metadata.PackageNotFoundError:
        __version__ = "unknown"
    encode_tokens = _fallback.encode_tokens
    encode_floats = _fallback.encode_floats
    tokens_to_list = _fallback.tokens_to_list
    json_token_sequence = _fallback._json_token_sequence
    list_reader = _fallback._list_reader
    dumps_document = _fallback.dumps_document
    encode_exact = _fallback.encode_exact
    PlainPlan = None
    if "TINKER_ACCEL_BACKEND" not in os.environ:
        _message = (
            "tinker-accel: the native module could not be loaded "
            f"({_native_error}); using the pure-Python encoder, which gives the same "
            "output much more slowly"
        )
        logging.getLogger("tinker_accel").warning("%s", _message)
        warnings.warn(_message, RuntimeWarning, stacklevel=2)
