"""Pattern cases shared by the tests of every place that matches event types: the bus and
the webhook fan-out (in Python) and the API's history filter (in SQL) must agree on each.
"""

# (pattern, event type, matches)
GLOB_CASES: list[tuple[str, str, bool]] = [
    ("deploy.*", "deploy.started", True),
    ("deploy.*", "deploy.", True),
    ("deploy.*", "deployXstarted", False),  # `.` is a dot, not any character
    ("*.failed", "health.failed", True),
    ("*.failed", "health.passed", False),
    ("*.*", "deploy", False),
    ("deploy.**", "deploy.a.b", True),
    ("deploy.?tarted", "deploy.started", True),
    ("deploy.?tarted", "deploy.tarted", False),
    ("Deploy.*", "deploy.started", False),  # case-sensitive
    ("deploy.[sf]*", "deploy.started", True),
    ("deploy.[sf]*", "deploy.failed", True),
    ("deploy.[sf]*", "deploy.rolled_back", False),
    ("deploy.[!s]*", "deploy.failed", True),
    ("deploy.[!s]*", "deploy.started", False),
    ("[a-d]*", "deploy.started", True),
    ("[a-d]*", "health.failed", False),
    ("[z-a]*", "zeta", False),  # an empty range holds nothing
    ("[!z-a]eta", "zeta", True),  # and its negation everything
    ("[]]x*", "]x1", True),
    ("[!]]x*", "]x1", False),
    ("[[]x*", "[x", True),
    ("[a-]x", "-x", True),
    ("a[b", "a[b", True),  # a `[` never closed is itself
    ("a[b*", "a[bc", True),
    ("a[b*", "ab", False),
    ("%*", "%done", True),
    ("%*", "done", False),  # `%` is a percent sign, never SQL's wildcard
    ("*%", "50%", True),
    ("d%*", "deploy", False),
    ("_*", "_private", True),
    ("_*", "a", False),  # `_` is an underscore, never SQL's one-character wildcard
    ("a_b*", "axb", False),
    ("a_b*", "a_b.c", True),
    ("a\\*", "a\\b", True),  # backslash is itself
    ("a\\*", "ab", False),
    ("a^$*", "a^$", True),
    ("(a|b)*", "a", False),  # regex syntax means nothing
    ("(a|b)*", "(a|b)", True),
    ("a+?", "a+b", True),
    ("a+?", "aab", False),
    ("[.]*", ".x", True),
    ("[.]*", "x", False),
    ("é*", "été", True),
    ("*ü", "grün", False),
]
