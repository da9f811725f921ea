"""A minimal HTTP/1.1 receiver for benchmarks: keep-alive, answers 204, records requests.

    python bench/fast_receiver.py --port 0 --out received.jsonl

`--mode hang` never answers and `--mode error` answers 500, for isolation runs.
Prints `listening <port>` once ready. On SIGTERM it writes one JSON line per request
(path, webhook headers, body, arrival time) to --out and exits. Verification happens
afterwards, so the receiver costs the same for the pipeline and for the bare ceiling.
"""

import argparse
import asyncio
import json
import signal
import sys
import time

Record = tuple[str, dict[str, str], bytes, float]


RESPONSES = {
    "ok": b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
    "error": b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
}


async def handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: list[Record], mode: str
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            kept = {k: v for k, v in headers.items() if k.startswith("webhook-")}
            log.append((path, kept, body, time.time()))
            if mode == "hang":  # never answer: the sender must time out
                await asyncio.sleep(3600)
            writer.write(RESPONSES[mode])
    except (
        asyncio.IncompleteReadError,
        ConnectionError,
        asyncio.LimitOverrunError,
        asyncio.CancelledError,  # shutting down with connections open
    ):
        pass
    finally:
        writer.close()


async def main(port: int, out: str, mode: str) -> None:
    log: list[Record] = []
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, log, mode), "127.0.0.1", port, backlog=1024
    )
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    server.close()
    with open(out, "w") as f:
        for path, headers, body, at in log:
            f.write(
                json.dumps({"path": path, "headers": headers, "body": body.decode(), "at": at})
                + "\n"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--mode", choices=["ok", "hang", "error"], default="ok")
    args = parser.parse_args()
    asyncio.run(main(args.port, args.out, args.mode))
    sys.exit(0)
