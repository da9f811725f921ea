"""What a receiver sent, made storable: valid text, and headers within a size limit."""

import json

from webhooks.delivery.storable import TRUNCATED, Withheld, storable_headers, storable_text


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


def test_a_withheld_value_is_redacted_as_sent_and_as_receivers_write_it_back():
    withheld = Withheld.of(["Bearer tok/abc+def==xyz"])
    echoes = [
        "Bearer tok/abc+def==xyz",  # whole
        "tok/abc+def==xyz",  # the credentials without the scheme
        '"tok\\/abc+def==xyz"',  # in JSON, `/` escaped as PHP does
        "Bearer%20tok%2Fabc%2Bdef%3D%3Dxyz",  # percent-encoded
    ]
    for echo in echoes:
        assert "tok" not in withheld.scrub(f"refused {echo} here"), echo
    assert withheld.scrub("Bearer is the scheme") == "Bearer is the scheme"


def test_basic_credentials_and_cookie_values_are_withheld_in_their_parts():
    withheld = Withheld.of(["Basic dXNlcjpodW50ZXIyLXBhc3N3b3Jk", "sid=session-value-9; lang=en"])
    assert withheld.scrub("user:hunter2-password") == "<redacted>"
    assert withheld.scrub("password hunter2-password") == "password <redacted>"
    assert withheld.scrub("your session session-value-9, lang=en") == (
        "your session <redacted>, lang=en"
    )


def test_a_short_value_is_redacted_only_where_it_stands_alone():
    withheld = Withheld.of(["42"])
    assert withheld.scrub('{"pin": "42", "count": 142, "id": "a42b"}') == (
        '{"pin": "<redacted>", "count": 142, "id": "a42b"}'
    )
    assert Withheld.of(["x"]).scrub("the box: x") == "the box: <redacted>"
    assert Withheld.of([]).scrub("anything") == "anything"


def test_a_value_cut_off_at_the_end_is_redacted_from_its_start_only_when_cut():
    withheld = Withheld.of(["tok-abcdef-123456"])
    assert withheld.scrub("... tok-abc", cut=True) == "... <redacted>"
    assert withheld.scrub("... tok-abc") == "... tok-abc"  # whole answers are not guessed at
    assert withheld.scrub("... tok", cut=True) == "... tok"  # too short to be the value
