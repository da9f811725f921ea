"""The network rule holds in this process (tests/conftest.py): sockets reach loopback
addresses only, IP literals included, whatever client opens them."""

import asyncio
import socket

import aiohttp
import pytest


def test_a_socket_cannot_reach_an_address_outside_loopback():
    with socket.socket() as sock:
        with pytest.raises(ConnectionRefusedError, match="loopback"):
            sock.connect(("192.0.2.1", 9))
        assert sock.connect_ex(("10.1.2.3", 9)) != 0


def test_the_http_client_cannot_reach_an_ip_literal_outside_loopback():
    async def get() -> None:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorError):
                await session.get("http://192.0.2.1:9/", timeout=aiohttp.ClientTimeout(total=5))

    asyncio.run(get())


def test_loopback_still_connects():
    with socket.socket() as server, socket.socket() as client:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client.connect(server.getsockname())
