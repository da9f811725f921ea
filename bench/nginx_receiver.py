"""One nginx on 127.0.0.1 that answers every POST with 204, for side-by-side benchmarks.

Debian's `nginx-light` (`apt-get install -y nginx-light`) is enough: it has the
`stub_status` module, whose request counter is how a benchmark counts what arrived without
an access log. The benchmark writes its own config into a directory of its own (pid file,
error log, temp paths), runs nginx in the foreground as its child and stops it at the end;
the system's /etc/nginx is never read.

With `access_log` set, nginx also logs one line per request (`$msec $uri <delivery key>`,
buffered) for a verification run: what arrived, where, and whether anything arrived twice.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

STATUS_PATH = "/nginx_status"
# The delivery key: ctrlplane's `webhook-id` (one per event; unique per path) or, for
# django-webhook, which sends no per-delivery ID, its signature header (an HMAC over the
# timestamp and a body that holds the object's ID, so one per delivery and second).
LOG_FORMAT = "$msec $uri $http_webhook_id$http_django_webhook_signature_v1"

CONFIG = """\
worker_processes {workers};
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    {access_log}
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    # Clients keep their connections: nginx's default closes one after 1,000 requests.
    keepalive_requests 1000000;
    keepalive_timeout 75s;

    server {{
        listen 127.0.0.1:{port};
        location = {status} {{
            stub_status;
        }}
        location / {{
            return 204;
        }}
    }}
}}
"""


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise SystemExit("nginx not found: apt-get install -y nginx-light")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nginx:
    """nginx answering 204 on 127.0.0.1:<port>, with a counter of the requests it served."""

    def __init__(self, directory: Path, *, workers: str = "auto", verify: bool = False) -> None:
        self.dir = directory
        self.workers = workers
        self.access_log = directory / "access.log" if verify else None
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._status_polls = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.access_log is not None:
            self.access_log.unlink(missing_ok=True)
            access = (
                f"log_format bench '{LOG_FORMAT}';\n"
                f"    access_log {self.access_log} bench buffer=256k flush=1s;"
            )
        else:
            access = "access_log off;"
        self.port = free_port()
        config = self.dir / "nginx.conf"
        config.write_text(
            CONFIG.format(
                workers=self.workers, dir=self.dir, port=self.port, access_log=access,
                status=STATUS_PATH,
            )
        )  # fmt: skip
        binary = nginx_binary()
        check = subprocess.run(
            [binary, "-t", "-q", "-p", str(self.dir), "-c", str(config)],
            capture_output=True,
            text=True,
        )
        if check.returncode != 0:
            raise SystemExit(f"nginx rejected {config}:\n{check.stderr}")
        self.process = subprocess.Popen([binary, "-p", str(self.dir), "-c", str(config)])
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.requests()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"nginx did not start; see {self.dir}/error.log") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Graceful stop (SIGQUIT): the workers finish, flush the access log and exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def requests(self) -> int:
        """Requests served so far, not counting this counter's own status requests."""
        with urllib.request.urlopen(self.base_url + STATUS_PATH, timeout=5) as response:  # noqa: S310 - our own loopback nginx
            text = response.read().decode()
        self._status_polls += 1
        # "Active connections: 1\nserver accepts handled requests\n 3 3 7 \nReading: …"
        served = int(text.splitlines()[2].split()[2])
        return served - self._status_polls

    def log_lines(self) -> list[tuple[float, str, str]]:
        """(arrival, path, delivery key) per request; after `stop`, in a verification run."""
        if self.access_log is None:
            raise RuntimeError("nginx was started without an access log (verify=False)")
        lines = []
        for line in self.access_log.read_text().splitlines():
            at, path, *key = line.split(" ", 2)
            if path == STATUS_PATH:
                continue
            lines.append((float(at), path, key[0] if key else ""))
        return lines
