"""The web process opens no gunicorn control socket in the user's home, which every
gunicorn of that user would share."""

import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from ctrlplane.process import ROOT, command


def test_the_web_command_turns_the_control_socket_off():
    assert "--no-control-socket" in command("web", {})


def test_a_running_web_process_leaves_the_home_directory_alone(tmp_path: Path):
    # Given a home of its own and no XDG_RUNTIME_DIR (gunicorn's other default place)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    env.update(HOME=str(home), CTRLPLANE_VAR_DIR=str(tmp_path / "var"))
    args = command("web", {"PORT": "0", "WEB_CONCURRENCY": "1"})
    log = tmp_path / "web.log"

    # When the web process is up and answering
    with log.open("w") as out:
        web = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = _wait_for_listening(log, web)
        # (the socket is bound before the worker boots; the request waits in the backlog)
        assert requests.get(f"{url}/healthz", timeout=30).status_code == 200
    finally:
        web.send_signal(signal.SIGINT)
        web.wait(30)

    # Then it created nothing in the home directory, and said of no control socket
    assert list(home.iterdir()) == []
    assert "Control socket" not in log.read_text()


def _wait_for_listening(log: Path, web: subprocess.Popen[bytes], timeout: float = 30) -> str:
    """gunicorn's bound address, from its "Listening at: http://127.0.0.1:N (pid)" line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if "Listening at: " in line:
                return line.split("Listening at: ")[1].split()[0]
        if web.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"gunicorn did not start:\n{log.read_text()}")
