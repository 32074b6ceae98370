"""Fast request bodies for the tinker SDK: token ID and float arrays encoded to JSON in Rust.

Set the environment variable ``TINKER_ACCEL=1`` to switch the accelerator on when
this package is imported, or call :func:`enable`.
"""

from __future__ import annotations

import os
import warnings

from tinker_accel._backend import __version__, encode_floats, encode_tokens
from tinker_accel._serialize import TokenIds, dumps_model, stock_dumps, token_fragment
from tinker_accel._tinker import disable, enable, is_enabled, request_body, status

__all__ = [
    "TokenIds",
    "__version__",
    "disable",
    "dumps_model",
    "enable",
    "encode_floats",
    "encode_tokens",
    "is_enabled",
    "request_body",
    "status",
    "stock_dumps",
    "token_fragment",
]

if os.environ.get("TINKER_ACCEL", "").strip().lower() in {"1", "true", "yes", "on"}:
    try:
        enable()
    except ImportError as error:
        warnings.warn(
            f"TINKER_ACCEL is set but the accelerator could not be enabled: {error}",
            RuntimeWarning,
            stacklevel=2,
        )
