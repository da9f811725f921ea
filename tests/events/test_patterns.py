import pytest

from events.patterns import TypeFilter


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
    ],
)
def test_type_filter(terms, event_type, expected):
    assert TypeFilter(terms).matches(event_type) is expected
