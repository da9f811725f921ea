"""What a receiver sent, made storable: valid text, and headers within a size limit."""

import json

from webhooks.storable import TRUNCATED, storable_headers, storable_text


def stored_size(headers: dict[str, str]) -> int:
    return len(json.dumps(headers, ensure_ascii=False).encode())


def test_text_loses_nul_surrogates_and_bytes_that_are_not_utf8():
    assert storable_text(b"ok\x00 caf\xe9") == "ok\ufffd caf\ufffd"
    assert storable_text("a\udce9b") == "a\ufffdb"


def test_headers_within_the_limit_are_kept_as_they_are_lower_cased():
    headers = {"Content-Type": "text/plain", "X-Odd": "caf\udce9"}
    assert storable_headers(headers, limit=1_000) == {
        "content-type": "text/plain",
        "x-odd": "caf\ufffd",
    }
    assert storable_headers({"X-Big": "b" * 50_000}) == {"x-big": "b" * 50_000}  # no limit


def test_over_the_limit_the_smallest_headers_are_kept_in_their_order_with_a_note():
    headers = {
        "X-Huge": "h" * 900,
        "Retry-After": "30",
        "X-Large": "l" * 300,
        "Content-Type": "application/json",
        "X-Larger": "L" * 400,
    }
    stored = storable_headers(headers, limit=600)
    assert list(stored) == ["retry-after", "x-large", "content-type", TRUNCATED]
    assert stored[TRUNCATED] == "2 of 5 headers left out: stored headers are limited to 600 bytes"
    assert stored_size(stored) <= 600


def test_the_limit_counts_bytes_of_json_not_characters():
    headers = {f"x-{n}": "é" * 100 for n in range(10)}  # 2 bytes each in UTF-8
    stored = storable_headers(headers, limit=1_000)
    assert stored_size(stored) <= 1_000
    assert len(stored) - 1 == 4  # 213 bytes each: 4 fit with the note, not 7


def test_no_header_can_pose_as_the_note():
    """The note's name is not a valid header name, so a receiver cannot send it; were it
    let through anyway, it is dropped, never taken for the note."""
    assert storable_headers({"(Truncated)": "nothing", "x-a": "a"}, limit=200) == {"x-a": "a"}
    stored = storable_headers({"(truncated)": "nothing", "x-big": "b" * 500}, limit=200)
    assert stored == {TRUNCATED: "1 of 1 headers left out: stored headers are limited to 200 bytes"}
