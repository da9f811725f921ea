"""The launcher's web command binds the web port: WEB_PORT, else PORT (what platforms
set), else 8000."""

import pytest

from ctrlplane.process import command


def bind_of(env: dict[str, str]) -> str:
    args = command("web", env)
    return args[args.index("--bind") + 1]


@pytest.mark.parametrize(
    ("env", "bind"),
    [
        ({}, "127.0.0.1:8000"),
        ({"PORT": "5000"}, "127.0.0.1:5000"),  # the Docker image, a Procfile host
        ({"PORT": "5000", "WEB_PORT": "8000"}, "127.0.0.1:8000"),  # honcho under dev.py run
        ({"PORT": "5000", "WEB_PORT": ""}, "127.0.0.1:5000"),
        ({"WEB_PORT": "8100", "WEB_HOST": "0.0.0.0"}, "0.0.0.0:8100"),  # noqa: S104
    ],
)
def test_the_web_process_binds_web_port_then_port_then_8000(env, bind):
    assert bind_of(env) == bind
