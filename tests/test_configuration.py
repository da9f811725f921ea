"""docs/configuration.md and the code agree: every variable read is documented, every
documented variable is read, and each documented default is the code's default."""

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

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


# --- One home for each default --------------------------------------------------------
# settings.py reads every variable from the environment with its default; the apps' conf
# modules read the settings and restate no default, so the two cannot drift apart.

CONF_MODULES = ("webhooks/conf.py", "events/conf.py")


def conf_reads() -> dict[str, set[str]]:
    """Reader function -> the settings it reads, for each conf module's top-level readers."""
    reads: dict[str, set[str]] = {}
    for path in CONF_MODULES:
        module = ast.parse((ROOT / path).read_text())
        for func in module.body:
            if not isinstance(func, ast.FunctionDef) or func.name.startswith("_"):
                continue
            names = set()
            for node in ast.walk(func):
                if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "settings":
                    names.add(node.attr)
                if isinstance(node, ast.Call) and ast.unparse(node.func) == "_get":
                    assert isinstance(node.args[0], ast.Constant)
                    assert isinstance(node.args[0].value, str)
                    names.add(node.args[0].value)
            if names:
                reads[f"{path[:-3].replace('/', '.')}.{func.name}"] = names
    return reads


def test_the_apps_conf_modules_restate_no_default():
    for path in CONF_MODULES:
        module = ast.parse((ROOT / path).read_text())
        for node in ast.walk(module):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "_get":
                assert len(node.args) == 1, f"{path}: {ast.unparse(node)} restates a default"
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "getattr":
                assert ast.unparse(node.args[0]) != "settings" or len(node.args) == 2, (
                    f"{path}: {ast.unparse(node)} restates a default"
                )
            if isinstance(node, ast.Assign):
                targets = [ast.unparse(t) for t in node.targets]
                assert not any(t.startswith("DEFAULT") for t in targets), f"{path}: {targets}"


def test_every_setting_the_apps_read_has_its_default_in_settings_and_the_docs():
    read = set().union(*conf_reads().values())
    assert {n for n in read if n.startswith(("WEBHOOKS_", "EVENTS_"))} == read
    assert sorted(read - set(read_in_code())) == []
    assert sorted(read - set(documented())) == []


def test_with_nothing_in_the_environment_the_apps_see_the_documented_defaults(tmp_path):
    readers = conf_reads()
    names = sorted(set().union(*readers.values()))
    code = (
        "import json, django; django.setup()\n"
        "from importlib import import_module\n"
        "from django.conf import settings\n"
        f"for reader in {sorted(readers)!r}:\n"
        "    module, _, name = reader.rpartition('.')\n"
        "    getattr(import_module(module), name)()\n"  # every reader works on the defaults
        f"print(json.dumps({{n: getattr(settings, n) for n in {names!r}}}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update(DJANGO_SETTINGS_MODULE="ctrlplane.settings", CTRLPLANE_VAR_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    values = json.loads(done.stdout)
    docs = documented()
    expected = {n: docs[n] for n in names}
    seen = {
        n: "(empty)" if isinstance(v, list | str) and not v else f"`{canonical(v)}`"
        for n, v in values.items()
    }
    assert seen == expected


# --- The documented production environment --------------------------------------------


def production_section() -> str:
    return DOC[DOC.index("\n## Production\n") :]


def run_documented(command: str, env: dict[str, str] | None = None) -> str:
    """Run a `python3 -c …` line from the docs with this interpreter, as an operator would."""
    argv = shlex.split(command)
    assert argv[0] == "python3", command
    done = subprocess.run(
        [sys.executable, *argv[1:]], capture_output=True, text=True, check=True, env=env
    )
    return done.stdout.strip()


def documented_production_env() -> dict[str, str]:
    block = re.search(r"```ini\n(.*?)```", production_section(), re.S)
    assert block, "docs/configuration.md has no production environment block"
    env = {}
    for line in block.group(1).splitlines():
        name, _, value = line.partition("=")
        generate = re.fullmatch(r"<generate: (.+)>", value)
        env[name] = run_documented(generate.group(1)) if generate else value
    return env


def test_the_documented_production_environment_passes_check_deploy(tmp_path):
    production = documented_production_env()
    assert production["DEBUG"] == "false"
    # Only the machine's basics from outside; no database or broker is contacted by checks.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    env.update(
        production,
        CTRLPLANE_VAR_DIR=str(tmp_path / "var"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_without_the_https_settings_check_deploy_warns(tmp_path):
    # The same environment minus the HTTPS settings is what a default install gets.
    production = documented_production_env()
    basics = {name: production[name] for name in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS",
                                                  "WEBHOOKS_ENCRYPTION_KEYS")}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update(basics, CTRLPLANE_VAR_DIR=str(tmp_path / "var"),
               PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"))  # fmt: skip
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in done.stderr


def test_the_documented_legacy_key_command_gives_the_key_older_versions_derived():
    from webhooks.conf import legacy_encryption_key

    command = re.search(r"SECRET_KEY='<the old SECRET_KEY>' (python3 .+)", production_section())
    assert command
    default = "insecure-local-development-key-change-me"
    derived = run_documented(command.group(1), env={**os.environ, "SECRET_KEY": default})
    assert derived.encode() == legacy_encryption_key(default)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("HTTP_X_FORWARDED_PROTO,https", "('HTTP_X_FORWARDED_PROTO', 'https')"), ("", "None")],
)
def test_the_proxy_ssl_header_is_read_as_a_pair(tmp_path, value, expected):
    env = {**os.environ, "SECURE_PROXY_SSL_HEADER": value,
           "CTRLPLANE_VAR_DIR": str(tmp_path / "var")}  # fmt: skip
    code = "from ctrlplane import settings; print(settings.SECURE_PROXY_SSL_HEADER)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.stdout.strip() == expected, done.stderr


def test_a_proxy_ssl_header_without_a_value_is_refused(tmp_path):
    env = {**os.environ, "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO",
           "CTRLPLANE_VAR_DIR": str(tmp_path / "var")}  # fmt: skip
    code = "from ctrlplane import settings"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER must be a header and a value" in done.stderr
