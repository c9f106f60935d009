"""Checks on atomic files (``.inter``, ``.item``, ``.user``, ...) before RecBole reads them.

RecBole reads atomic files with pandas' python engine, which turns a truncated row into one with
NaN fields and a row with fields in the wrong place into a bogus interaction. Here, before RecBole
reads anything:

- the header must be ``name:type`` columns with a type RecBole knows, no name twice;
- every row must have as many fields as the header.

The row check is one vectorised pass over the raw bytes in blocks (numpy), a small fraction of
RecBole's own read (benchmarks/atomic_check_timing.py measures it). Values are checked only
when RecBole's read fails (a float field that is not a number): :func:`find_bad_value` then
finds the line, so a good file pays nothing for it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recbole_disentangle.errors import DatasetError

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
BLOCK_BYTES = 1 << 25  # 32 MiB per block: memory stays bounded for any file size
_SHOWN = 120  # characters of a bad line quoted in a message


def parse_header(path: Path, separator: str, encoding: str) -> list[tuple[str, str]]:
    """``[(name, type), ...]`` of an atomic file's first line; a DatasetError for a bad header."""
    with open(path, encoding=encoding, newline="") as f:
        line = f.readline().rstrip("\r\n")
    if not line:
        raise DatasetError(f"{path}, line 1: the header is empty; atomic files start with name:type columns, "
                           f"e.g. user_id:token{separator}item_id:token{separator}rating:float.")
    columns = []
    for number, column in enumerate(line.split(separator), start=1):
        parts = column.split(":")
        if len(parts) != 2 or not parts[0] or parts[1] not in FIELD_TYPES:
            raise DatasetError(
                f"{path}, line 1 (header), column {number}: {column!r} is not name:type with a type of "
                f"{', '.join(FIELD_TYPES)} (columns are separated by field_separator={separator!r})."
            )
        columns.append((parts[0], parts[1]))
    seen: dict[str, int] = {}
    for number, (name, _) in enumerate(columns, start=1):
        if name in seen:
            raise DatasetError(f"{path}, line 1 (header): the field '{name}' appears twice (columns {seen[name]} "
                               f"and {number}); rename or drop one.")
        seen[name] = number
    return columns


def _bad_row_message(path: Path, line_number: int, raw: bytes, found: int, expected: int, encoding: str) -> str:
    text = raw.decode(encoding, errors="replace").rstrip("\r\n")
    shown = text if len(text) <= _SHOWN else text[:_SHOWN] + "..."
    return (
        f"{path}, line {line_number}: {found} field(s), but the header has {expected}: {shown!r}. "
        f"A truncated or merged row would load as a wrong interaction; fix or delete the line."
    )


def count_rows(path: str | Path, separator: str = "\t", encoding: str = "utf-8") -> int:
    """Check the header and that every non-blank row has the header's number of fields.

    Returns the number of data rows; raises a DatasetError naming the file and line otherwise.
    """
    path = Path(path)
    expected = len(parse_header(path, separator, encoding))
    sep = separator.encode(encoding)
    if len(sep) != 1:
        return _count_rows_slowly(path, separator, encoding, expected)
    sep_byte = sep[0]
    rows = 0
    line_number = 1  # lines before the current block (the header is line 1)
    with open(path, "rb") as f:
        f.readline()
        carry = b""
        while True:
            block = f.read(BLOCK_BYTES)
            at_end = not block
            data = carry + block
            if at_end:
                if not data:
                    break
                data += b"\n"  # a last line without its newline
            buf = np.frombuffer(data, dtype=np.uint8)
            newlines = np.flatnonzero(buf == 10)
            if newlines.size == 0:
                carry = data
                continue
            end = int(newlines[-1]) + 1
            carry = data[end:]
            starts = np.concatenate(([0], newlines[:-1] + 1))
            # Separators per line: one sum per line over the block's separator mask (reduceat reads the
            # mask once; every line, even an empty one, spans at least its newline byte).
            counts = np.add.reduceat(buf[:end] == sep_byte, starts, dtype=np.int32)
            lengths = newlines - starts
            # A blank line ("" or a lone "\r") is skipped by RecBole's reader as well.
            blank = (lengths == 0) | ((lengths == 1) & (buf[starts] == 13))
            bad = np.flatnonzero((counts != expected - 1) & ~blank)
            if bad.size:
                i = int(bad[0])
                raw = data[int(starts[i]) : int(newlines[i])]
                raise DatasetError(_bad_row_message(path, line_number + i + 1, raw, int(counts[i]) + 1, expected, encoding))
            rows += int(newlines.size - blank.sum())
            line_number += int(newlines.size)
            if at_end:
                break
    return rows


def _count_rows_slowly(path: Path, separator: str, encoding: str, expected: int) -> int:
    """:func:`count_rows` for a separator of several bytes (rare): a plain loop over lines."""
    rows = 0
    with open(path, "rb") as f:
        f.readline()
        for line_number, raw in enumerate(f, start=2):
            text = raw.decode(encoding, errors="replace").rstrip("\r\n")
            if not text:
                continue
            found = len(text.split(separator))
            if found != expected:
                raise DatasetError(_bad_row_message(path, line_number, raw, found, expected, encoding))
            rows += 1
    return rows


def find_bad_value(path: str | Path, separator: str, seq_separator: str, encoding: str, fields=None) -> str | None:
    """The first value of a float / float_seq field that is not a number, as a message (None if all are).

    ``fields``: the field names RecBole loads from this file (None: all). Run only after RecBole's
    read failed, so its cost (a Python loop) is paid by broken files alone.
    """
    path = Path(path)
    columns = parse_header(path, separator, encoding)
    numeric = [(i, name, ftype) for i, (name, ftype) in enumerate(columns)
               if ftype in ("float", "float_seq") and (fields is None or name in fields)]
    if not numeric:
        return None
    with open(path, encoding=encoding, errors="replace", newline="") as f:
        f.readline()
        for line_number, line in enumerate(f, start=2):
            values = line.rstrip("\r\n").split(separator)
            for i, name, ftype in numeric:
                if i >= len(values):
                    continue
                value = values[i]
                parts = [p for p in value.split(seq_separator) if p] if ftype == "float_seq" else [value]
                for part in parts:
                    if not part.strip():
                        continue  # an empty value is a missing one, which RecBole allows
                    try:
                        float(part)
                    except ValueError:
                        return (f"{path}, line {line_number}, field '{name}' ({ftype}): {part!r} is not a number. "
                                f"Fix the value, or declare the field as token in the header if it is a label.")
    return None
