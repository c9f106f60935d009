"""The atomic-file check: headers, fields per row (also across block boundaries), non-numeric values."""

import pytest

from recbole_disentangle.data import atomic_check
from recbole_disentangle.data.atomic_check import count_rows, find_bad_value
from recbole_disentangle.errors import DatasetError

HEADER = "user_id:token\titem_id:token\trating:float\n"
ROWS = "".join(f"u{u}\ti{u % 7}\t{u % 5 + 1}\n" for u in range(100))


def write(tmp_path, text, name="d.inter"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_a_good_file_counts_its_rows(tmp_path):
    assert count_rows(write(tmp_path, HEADER + ROWS)) == 100


def test_blank_lines_crlf_and_a_missing_last_newline_are_accepted(tmp_path):
    lines = ROWS.splitlines(keepends=True)
    text = HEADER + "".join(lines[:30]) + "\n\r\n" + "".join(lines[30:]).replace("\n", "\r\n").rstrip("\r\n")
    assert count_rows(write(tmp_path, text)) == 100


@pytest.mark.parametrize("block", [7, 64, 1 << 20])
def test_a_truncated_last_line_is_found_whatever_the_block_size(tmp_path, monkeypatch, block):
    monkeypatch.setattr(atomic_check, "BLOCK_BYTES", block)
    path = write(tmp_path, HEADER + ROWS + "12\t20")
    with pytest.raises(DatasetError, match=r"d\.inter, line 102: 2 field\(s\), but the header has 3: '12\\t20'"):
        count_rows(path)


@pytest.mark.parametrize("block", [5, 1 << 20])
def test_a_row_with_too_many_fields_is_found(tmp_path, monkeypatch, block):
    monkeypatch.setattr(atomic_check, "BLOCK_BYTES", block)
    lines = ROWS.splitlines(keepends=True)
    path = write(tmp_path, HEADER + "".join(lines[:50]) + "u1\ti2\t3\t4\n" + "".join(lines[50:]))
    with pytest.raises(DatasetError, match=r"line 52: 4 field\(s\)"):
        count_rows(path)


def test_a_multi_character_separator_is_checked_too(tmp_path):
    path = write(tmp_path, "a:token::b:token\nx::y\nz\n")
    with pytest.raises(DatasetError, match=r"line 3: 1 field"):
        count_rows(path, separator="::")


@pytest.mark.parametrize("header, problem", [
    ("user_id:token\titem_id\n", r"column 2: 'item_id' is not name:type"),
    ("user_id:token\titem_id:int\n", r"column 2: 'item_id:int' is not name:type"),
    ("user_id:token\tuser_id:float\n", r"'user_id' appears twice \(columns 1 and 2\)"),
    ("\n", "the header is empty"),
])
def test_bad_headers_are_named(tmp_path, header, problem):
    with pytest.raises(DatasetError, match=problem):
        count_rows(write(tmp_path, header + "1\t2\n"))


def test_a_header_only_file_has_no_rows(tmp_path):
    assert count_rows(write(tmp_path, HEADER)) == 0


def test_the_first_non_numeric_value_of_a_float_field_is_named(tmp_path):
    lines = ROWS.splitlines(keepends=True)
    path = write(tmp_path, HEADER + "".join(lines[:5]) + "u9\ti9\tfive\n" + "".join(lines[5:]))
    message = find_bad_value(path, "\t", " ", "utf-8")
    assert "line 7, field 'rating' (float): 'five' is not a number" in message
    assert find_bad_value(path, "\t", " ", "utf-8", fields=["user_id", "item_id"]) is None  # rating not loaded
    assert find_bad_value(write(tmp_path, HEADER + ROWS + "u1\ti1\t\n", "ok.inter"), "\t", " ", "utf-8") is None


def test_float_sequences_are_checked_element_by_element(tmp_path):
    path = write(tmp_path, "item_id:token\tvec:float_seq\ni1\t1 2 3\ni2\t1 x 3\n")
    assert "line 3, field 'vec' (float_seq): 'x'" in find_bad_value(path, "\t", " ", "utf-8")
