"""The shared table reader (talas.data.tables): line handling of JSON-lines files."""

import json

from talas.data.tables import read_table


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path):
    # JSON allows U+2028, U+2029 and U+0085 raw inside strings, and json.dumps(ensure_ascii=False) writes them so;
    # only "\n" ends a JSON-lines record. CRLF line ends are fine too.
    texts = ["first\u2028second", "next\u0085line", "para\u2029graph", "plain"]
    path = tmp_path / "data.jsonl"
    lines = [json.dumps({"text": t, "label": i}, ensure_ascii=False) for i, t in enumerate(texts)]
    path.write_bytes(("\r\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:]) + "\n").encode("utf-8"))
    table = read_table(str(path))
    assert [row["text"] for row in table.rows] == texts
    assert table.line_numbers == [1, 2, 4, 5]  # the blank line 3 is skipped, numbering follows the file
