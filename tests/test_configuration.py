"""docs/configuration.md and the code agree: every variable read is documented, every
documented variable is read, and each documented default is the code's default."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "configuration.md").read_text()
ENV_READERS = {"env_str", "env_bool", "env_int", "env_float", "env_list"}


def documented() -> dict[str, str]:
    rows = re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \| ([^|]+) \|", DOC, re.M)
    return {name: cell.strip() for name, cell in rows}


def read_in_code() -> dict[str, ast.expr | None]:
    """Variable name -> default expression, from settings, the process launcher, the
    metrics module, dev.py and the test-service rules."""
    found: dict[str, ast.expr | None] = {}
    for path in ["ctrlplane/settings.py", "ctrlplane/process.py", "ctrlplane/metrics.py", "dev.py",
                 "tests/services.py"]:  # fmt: skip
        for node in ast.walk(ast.parse((ROOT / path).read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            is_env_get = name in ("get", "setdefault") and _is_environ(func)
            is_variable = re.fullmatch(r"[A-Z][A-Z0-9_]+", first.value) is not None
            # The first file to read a variable (settings.py) owns its default; dev.py's
            # local-run overrides come later and do not count.
            if (name in ENV_READERS or is_env_get) and is_variable and first.value not in found:
                found[first.value] = node.args[1] if len(node.args) > 1 else None
    return found


def _is_environ(func: ast.expr) -> bool:
    target = getattr(func, "value", None)
    text = ast.unparse(target) if target is not None else ""
    return text in ("env", "os.environ", "environ")


def canonical(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return ",".join(canonical(v) for v in value)
    return str(value)


def test_every_variable_the_code_reads_is_documented():
    system = {"DJANGO_SETTINGS_MODULE", "PATH"}
    missing = sorted(set(read_in_code()) - set(documented()) - system)
    assert missing == []


def test_every_documented_variable_is_read_by_the_code():
    stale = sorted(set(documented()) - set(read_in_code()) - {"CI"})
    assert stale == []
    assert 'os.environ.get("CI"' in (ROOT / "tests" / "services.py").read_text()


def test_documented_defaults_match_the_code():
    docs = documented()
    mismatched = {}
    for name, expr in read_in_code().items():
        if expr is None or name not in docs:
            continue
        try:
            value = ast.literal_eval(expr)
        except ValueError:
            continue  # computed defaults (paths, derived keys) are described in words
        if isinstance(value, list | tuple | str) and not value:
            expected = "(empty)"
        else:
            expected = f"`{canonical(value)}`"
        if docs[name] != expected:
            mismatched[name] = (docs[name], expected)
    assert mismatched == {}


def test_computed_defaults_are_checked_against_settings(settings):
    # Defaults written as expressions in settings.py, compared through their values.
    assert canonical(settings.WEBHOOKS_RETRY_SCHEDULE) == documented()[
        "WEBHOOKS_RETRY_SCHEDULE"
    ].strip("`")
    assert documented()["WEBHOOKS_DISABLE_AFTER"] == f"`{5 * 24 * 3600}`"
    assert documented()["EVENTS_MAX_PAYLOAD_BYTES"] == f"`{256 * 1024}`"
