"""Prompts for the benchmark: built-in default prompts and prompt files supplied by the user.

The default prompts imitate the sampling calls of a reinforcement learning loop. They form
one multi-turn conversation whose prompts grow from 1K to 128K tokens, and each prompt is
the previous one plus the assistant's answer and the next user turn. In every turn the user
shows a Python function from the standard library without its docstring and asks what it
does, and the assistant answers with the docstring. The text therefore mixes real code and
real prose, and it exists offline wherever CPython is installed.

Token IDs come from the o200k_base encoding of the bpe-openai package, which ships its
vocabulary inside the wheel and needs no network access.
"""

from __future__ import annotations

import ast
import functools
import json
import sysconfig
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENCODING_NAME = "o200k_base"

# The first default prompt has this many tokens, and each later one doubles it.
_FIRST_PROMPT_TOKENS = 1024

# tiktoken stores token IDs as 32-bit unsigned integers, so no valid ID reaches 2**32.
_TOKEN_ID_LIMIT = 2**32

# How many upcoming turns the prompt builder considers when it looks for one that still
# fits under a prompt's length. A larger window fills prompts closer to their length.
_LOOKAHEAD_TURNS = 64

# Functions longer than this many characters are skipped, so that a single turn stays well
# below the 1K tokens of the first prompt.
_MAX_CODE_CHARS = 3000

# Standard library files in reading order, relative to the stdlib directory. All of them are
# pure Python modules in CPython 3.11. Later versions may move some, and missing files are
# skipped.
_SOURCE_FILES = (
    "textwrap.py",
    "functools.py",
    "heapq.py",
    "bisect.py",
    "statistics.py",
    "fractions.py",
    "random.py",
    "difflib.py",
    "argparse.py",
    "shutil.py",
    "contextlib.py",
    "dataclasses.py",
    "pathlib.py",
    "subprocess.py",
    "json/encoder.py",
    "json/decoder.py",
    "collections/__init__.py",
    "inspect.py",
    "typing.py",
    "calendar.py",
    "ipaddress.py",
    "tempfile.py",
    "threading.py",
    "queue.py",
    "urllib/parse.py",
    "email/message.py",
    "http/client.py",
    "zipfile.py",
    "tarfile.py",
    "configparser.py",
    "pickle.py",
    "enum.py",
    "ast.py",
    "tokenize.py",
    "doctest.py",
    "pydoc.py",
)

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"

_SYSTEM_TEXT = (
    "System: You are a careful Python reviewer. The user shows you functions from the Python "
    "standard library with their docstrings removed. Explain what each function does, the "
    "way its docstring would."
)


@dataclass(frozen=True)
class _Turn:
    """One question from the user and the assistant's answer, as text and as token IDs."""

    question_text: str
    question_tokens: list[int]
    answer_text: str
    answer_tokens: list[int]


@dataclass(frozen=True)
class _Conversation:
    """Default prompts and the exact text that each one encodes."""

    prompts: list[list[int]]
    texts: list[str]


def default_prompts(max_tokens: int = 131072) -> list[list[int]]:
    """Build the default prompts: one growing conversation, as o200k_base token IDs.

    The prompt lengths are close to 1024, 2048, 4096 and so on, doubling while below
    `max_tokens`, and the last prompt is close to `max_tokens` itself. No prompt exceeds
    the length it aims for, and each prompt starts with all the tokens of the previous one.
    The output is the same on every run with the same Python version, because the text is
    read from that version's standard library. Results are cached within the process.

    Raises ValueError if `max_tokens` is below 1024, ImportError if bpe-openai is not
    installed, and RuntimeError if the standard library sources found are too short for
    `max_tokens`.
    """
    conversation = _build_conversation(max_tokens)
    # Copies keep the cached prompts intact when a caller changes the lists.
    return [list(prompt) for prompt in conversation.prompts]


def load_prompts(path: str) -> list[list[int]]:
    """Read prompts of token IDs from a JSONL or .npy file.

    In a JSONL file, each non-blank line is either a JSON list of token IDs or a JSON
    object whose "tokens" key contains that list. A .npy file contains a 1-D integer array,
    read as one prompt, or a 2-D integer array, read as one prompt per row. A file is read
    as .npy if its name ends with .npy or it starts with the NumPy magic string, and as
    JSONL otherwise. Token IDs must be integers in [0, 2**32). A .npz archive is rejected.

    Raises ValueError naming the file and, for JSONL, the line when the content is invalid
    or contains no prompt, and OSError when the file cannot be read.
    """
    file_path = Path(path)
    with file_path.open("rb") as file:
        head = file.read(6)

    if file_path.suffix.lower() == ".npz" or head.startswith(_ZIP_MAGIC):
        raise ValueError(
            f"{path}: .npz archives are not supported. Save one array with numpy.save() "
            "to a .npy file instead."
        )
    if file_path.suffix.lower() == ".npy" or head == _NPY_MAGIC:
        prompts = _load_npy(file_path)
    else:
        prompts = _load_jsonl(file_path)

    if not prompts:
        raise ValueError(f"{path}: the file contains no prompts")
    return prompts


def _load_jsonl(path: Path) -> list[list[int]]:
    prompts: list[list[int]] = []
    with path.open("rb") as file:
        for line_number, raw_line in enumerate(file, start=1):
            where = f"{path}, line {line_number}"
            try:
                line = raw_line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{where}: invalid UTF-8 ({exc.reason})") from exc
            if not line.strip():
                continue

            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: invalid JSON: {exc.msg} at column {exc.colno}") from exc

            if isinstance(value, dict):
                if "tokens" not in value:
                    raise ValueError(f'{where}: the JSON object has no "tokens" key')
                value = value["tokens"]
            elif not isinstance(value, list):
                raise ValueError(
                    f"{where}: expected a JSON list of token IDs or an object with a "
                    f'"tokens" list, got {type(value).__name__}'
                )
            prompts.append(_validate_tokens(value, where))
    return prompts


def _validate_tokens(value: Any, where: str) -> list[int]:
    if not isinstance(value, list):
        raise ValueError(f'{where}: "tokens" must be a list, got {type(value).__name__}')
    if not value:
        raise ValueError(f"{where}: the token list is empty")

    for index, token in enumerate(value):
        # bool is a subclass of int, but true and false are not token IDs.
        if not isinstance(token, int) or isinstance(token, bool):
            raise ValueError(
                f"{where}: token {index} is {json.dumps(token)}, expected an integer token ID"
            )
        if not 0 <= token < _TOKEN_ID_LIMIT:
            raise ValueError(f"{where}: token {index} is {token}, outside [0, 2**32)")
    return value


def _load_npy(path: Path) -> list[list[int]]:
    try:
        import numpy as np
    except ImportError as exc:
        raise ImportError(
            f"reading {path} needs numpy, which is not installed. "
            "Install it with `pip install numpy`."
        ) from exc

    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        # np.load raises ValueError for object arrays and damaged headers.
        raise ValueError(f"{path}: not a valid .npy file of integers: {exc}") from exc

    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{path}: expected an integer array, got dtype {array.dtype}")
    if array.ndim not in (1, 2):
        raise ValueError(
            f"{path}: expected a 1-D array (one prompt) or a 2-D array (one prompt per row), "
            f"got shape {array.shape}"
        )
    if array.size == 0:
        raise ValueError(f"{path}: the array is empty, shape {array.shape}")

    low = int(array.min())
    high = int(array.max())
    if low < 0 or high >= _TOKEN_ID_LIMIT:
        bad = low if low < 0 else high
        raise ValueError(f"{path}: token ID {bad} is outside [0, 2**32)")

    rows = array.reshape(1, -1) if array.ndim == 1 else array
    return [row.tolist() for row in rows]


@functools.lru_cache(maxsize=1)
def _encoding() -> Any:
    try:
        import bpe_openai
    except ImportError as exc:
        raise ImportError(
            "the default prompts need the bpe-openai tokenizer, which is not installed. "
            "Install it with `pip install 'bpe-openai>=0.1.4'` "
            "(or `pip install 'tinker-accel[bench]'`), or load your own prompts with "
            "load_prompts() (--data on the command line)."
        ) from exc
    return bpe_openai.get_encoding(ENCODING_NAME)


def _encode(text: str) -> list[int]:
    # encode_ordinary encodes text such as "<|endoftext|>" as plain text, not as a special
    # token, so the prompts never contain special tokens.
    tokens: list[int] = _encoding().encode_ordinary(text)
    return tokens


@functools.lru_cache(maxsize=4)
def _build_conversation(max_tokens: int) -> _Conversation:
    if max_tokens < _FIRST_PROMPT_TOKENS:
        raise ValueError(f"max_tokens must be at least {_FIRST_PROMPT_TOKENS}, got {max_tokens}")

    tokens = _encode(_SYSTEM_TEXT)
    text_parts = [_SYSTEM_TEXT]
    turns = _iter_turns()
    upcoming: list[_Turn] = []
    # The answer to the last question of the previous prompt. The next prompt starts with it.
    pending: _Turn | None = None

    prompts: list[list[int]] = []
    texts: list[str] = []
    for target in _prompt_lengths(max_tokens):
        while True:
            while len(upcoming) < _LOOKAHEAD_TURNS:
                turn = next(turns, None)
                if turn is None:
                    break
                upcoming.append(turn)

            answer_length = len(pending.answer_tokens) if pending else 0
            room = target - len(tokens) - answer_length
            index = next(
                (
                    i
                    for i, candidate in enumerate(upcoming)
                    if len(candidate.question_tokens) <= room
                ),
                None,
            )
            if index is None:
                break

            turn = upcoming.pop(index)
            if pending:
                tokens.extend(pending.answer_tokens)
                text_parts.append(pending.answer_text)
            tokens.extend(turn.question_tokens)
            text_parts.append(turn.question_text)
            pending = turn

        # A prompt that fell far short of its target means the source text ran out.
        if len(tokens) < target * 0.9:
            raise RuntimeError(
                f"the standard library sources found gave only {len(tokens)} tokens of text, "
                f"short of the {target} needed. Pass a smaller max_tokens, or load your own "
                "prompts with load_prompts() (--data on the command line)."
            )
        prompts.append(list(tokens))
        texts.append("".join(text_parts))

    return _Conversation(prompts=prompts, texts=texts)


def _prompt_lengths(max_tokens: int) -> list[int]:
    lengths = []
    length = _FIRST_PROMPT_TOKENS
    while length < max_tokens:
        lengths.append(length)
        length *= 2
    lengths.append(max_tokens)
    return lengths


def _iter_turns() -> Iterator[_Turn]:
    for module, qualname, code, docstring in _iter_documented_functions():
        question_text = (
            f"\n\nUser: What does `{module}.{qualname}` do?\n\n```python\n{code}\n```\n\nAssistant:"
        )
        answer_text = f" {docstring}"
        yield _Turn(
            question_text=question_text,
            question_tokens=_encode(question_text),
            answer_text=answer_text,
            answer_tokens=_encode(answer_text),
        )


def _iter_documented_functions() -> Iterator[tuple[str, str, str, str]]:
    """Yield module name, qualified name, code without docstring, and docstring.

    Functions and methods come in source order. Those without a docstring, with nothing
    but a docstring, or longer than _MAX_CODE_CHARS are skipped. Files are parsed with
    ast rather than imported, so no module code runs, and `python -OO` does not strip
    the docstrings.
    """
    stdlib = Path(sysconfig.get_path("stdlib"))
    for relative_path in _SOURCE_FILES:
        path = stdlib / relative_path
        # NOTE: a missing file is skipped, so a Python installed without some stdlib
        # sources gets different default prompts.
        if not path.is_file():
            continue
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        module = relative_path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for qualname, node in _iter_functions(ast.parse(source), ""):
            docstring = ast.get_docstring(node)
            if not docstring or len(node.body) < 2:
                continue

            # Decorators belong to the code shown, and they start before the def line.
            first_line = min([node.lineno] + [d.lineno for d in node.decorator_list])
            docstring_node = node.body[0]
            if docstring_node.lineno == node.lineno:
                continue  # a one-line def whose docstring cannot be cut out by lines
            docstring_end = docstring_node.end_lineno or docstring_node.lineno
            code_lines = (
                lines[first_line - 1 : docstring_node.lineno - 1]
                + lines[docstring_end : node.end_lineno]
            )
            code = textwrap.dedent("\n".join(code_lines))
            if len(code) > _MAX_CODE_CHARS:
                continue
            yield module, qualname, code, docstring


def _iter_functions(
    node: ast.AST, prefix: str
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + child.name, child
        elif isinstance(child, ast.ClassDef):
            yield from _iter_functions(child, f"{prefix}{child.name}.")
