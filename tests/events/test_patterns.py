import fnmatch
import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from events.patterns import CharSet, TypeFilter, parse, sql_regex
from tests.events.glob_cases import GLOB_CASES


@pytest.mark.parametrize(
    ("terms", "event_type", "expected"),
    [
        ((), "deploy.started", True),
        (("*",), "health.failed", True),
        (("deploy.started",), "deploy.started", True),
        (("deploy.started",), "deploy.succeeded", False),
        (("deploy.*",), "deploy.rolled_back", True),
        (("deploy.*",), "instance.started", False),
        (("*.failed",), "instance.failed", True),
        (("*.failed",), "health.failed", True),
        (("*.failed",), "health.passed", False),
        (("instance.s*",), "instance.scaled", True),
        (("instance.s*",), "instance.deleted", False),
        (("health.passed", "deploy.*"), "deploy.failed", True),
        (("health.passed", "deploy.*"), "health.failed", False),
        (("deploy.started",), "deploy.startedX", False),
        (("deploy.?tarted",), "deploy.started", True),
        (("[z-a]", "deploy.*"), "deploy.x", True),  # a term that matches nothing is dropped
        (("[z-a]",), "z", False),
    ],
)
def test_type_filter(terms, event_type, expected):
    assert TypeFilter(terms).matches(event_type) is expected


@pytest.mark.parametrize(("pattern", "event_type", "expected"), GLOB_CASES)
def test_the_python_matcher_and_the_sql_regex_agree_on_every_case(pattern, event_type, expected):
    assert TypeFilter([pattern]).matches(event_type) is expected
    regex = sql_regex(pattern)
    assert (regex is not None and re.match(regex, event_type) is not None) is expected


@pytest.mark.parametrize(("pattern", "event_type", "expected"), GLOB_CASES)
def test_the_grammar_is_fnmatchs(pattern, event_type, expected):
    assert fnmatch.fnmatchcase(event_type, pattern) is expected


# Few characters, so that patterns and types collide often; the glob and regex syntax
# characters, SQL's LIKE wildcards and a non-ASCII letter among them.
_ALPHABET = "ab.-]![*?%_\\^é"


@settings(max_examples=3000, deadline=None)
@given(
    pattern=st.text(alphabet=_ALPHABET, min_size=1, max_size=8),
    event_type=st.text(alphabet=_ALPHABET.replace("*", "").replace("?", ""), max_size=8),
)
def test_both_renderings_match_what_fnmatch_matches(pattern, event_type):
    # An empty range (`?-.`) holds nothing here. fnmatch agrees, except that it removes
    # the range from its regex text, which can turn a following `!` into a negation
    # (`[?-.!]` matches any character there): a quirk we do not copy.
    assume(
        not any(isinstance(t, CharSet) and len(t.members) < len(t.ranges) for t in parse(pattern))
    )
    expected = fnmatch.fnmatchcase(event_type, pattern)
    assert TypeFilter([pattern]).matches(event_type) is expected
    regex = sql_regex(pattern)
    assert (regex is not None and re.match(regex, event_type) is not None) is expected


def test_many_stars_cannot_make_matching_slow():
    import time

    hostile = TypeFilter(["*a" * 40 + "*b"])
    started = time.perf_counter()
    assert not hostile.matches("a" * 100)
    assert time.perf_counter() - started < 0.5


def test_an_empty_range_holds_nothing_even_before_a_bang():
    assert TypeFilter(["[?-.!]"]).matches("!")
    assert not TypeFilter(["[?-.!]"]).matches("[")
    assert sql_regex("[?-.]") is None


def test_stars_collapse_and_unclosed_brackets_are_literal():
    assert parse("a**b") == parse("a*b")
    assert parse("a[b") == ("a", "[", "b")
