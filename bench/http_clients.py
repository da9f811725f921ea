"""CPU per POST for the HTTP clients the transport could use, against the fast receiver.

    .venv/bin/python bench/http_clients.py --requests 6000

Why the transport sends with aiohttp on one event loop: the same keep-alive POST costs
this process far less CPU there than with requests, or with urllib3 from a pool of
threads (each blocking call hands the GIL to another thread and back). Process CPU time
(all threads) per request; the receiver runs in its own process and is not counted.
"""

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import requests
import urllib3

from bench.harness import start_receiver, stop_receiver, temp_path

BODY = b'{"id":"evt_01","type":"deploy.succeeded","data":{"version":"1.2.3","replicas":3}}' * 3
HEADERS = {
    "content-type": "application/json",
    "webhook-id": "evt_01",
    "webhook-timestamp": "1767225600",
    "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
    "user-agent": "ctrlplane-webhooks/bench",
}


def measure(count: int, run: Callable[[int], None]) -> tuple[float, float]:
    """(CPU µs per request, requests per second) for `run(count)` after a warm-up."""
    run(200)
    cpu, wall = time.process_time(), time.perf_counter()
    run(count)
    return (time.process_time() - cpu) / count * 1e6, count / (time.perf_counter() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    out = temp_path()
    receiver, port = start_receiver(out)
    url = f"http://127.0.0.1:{port}/wh/0"
    rows: list[tuple[str, float, float]] = []

    session = requests.Session()

    def with_requests(n: int) -> None:
        for _ in range(n):
            session.post(url, data=BODY, headers=HEADERS, timeout=(5, 15)).close()

    rows.append(("requests.Session, 1 thread", *measure(args.requests, with_requests)))

    pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=64, retries=False)

    def urllib3_post(_: int = 0) -> None:
        response = pool.urlopen(
            "POST", "/wh/0", body=BODY, headers=HEADERS, preload_content=False, retries=False
        )
        response.read()
        response.release_conn()

    def with_urllib3(n: int) -> None:
        for _ in range(n):
            urllib3_post()

    rows.append(("urllib3, 1 thread", *measure(args.requests, with_urllib3)))
    with ThreadPoolExecutor(args.concurrency) as threads:

        def with_urllib3_threads(n: int) -> None:
            list(threads.map(urllib3_post, range(n)))

        label = f"urllib3, {args.concurrency} threads"
        rows.append((label, *measure(args.requests, with_urllib3_threads)))

    loop = asyncio.new_event_loop()
    client = loop.run_until_complete(_client())

    async def batch(n: int) -> None:
        slots = asyncio.Semaphore(args.concurrency)

        async def one() -> None:
            async with slots, client.post(url, data=BODY, headers=HEADERS) as response:
                await response.read()

        await asyncio.gather(*(one() for _ in range(n)))

    def with_aiohttp(n: int) -> None:
        loop.run_until_complete(batch(n))

    label = f"aiohttp, one event loop, {args.concurrency} in flight"
    rows.append((label, *measure(args.requests, with_aiohttp)))
    loop.run_until_complete(client.close())
    loop.close()
    received = stop_receiver(receiver, out)
    expected = 4 * (args.requests + 200)
    assert len(received) == expected, f"the receiver saw {len(received)} of {expected}"

    print(
        f"# http_clients: {args.requests} keep-alive POSTs each to bench/fast_receiver.py; "
        f"{time.strftime('%Y-%m-%d')}\n"
    )
    print("| client | CPU µs per request (this process) | requests/s |")
    print("|---|---:|---:|")
    for label, cpu, rate in rows:
        print(f"| {label} | {cpu:.0f} | {rate:.0f} |")


async def _client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


if __name__ == "__main__":
    main()
