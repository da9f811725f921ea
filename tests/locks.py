"""Hold row locks in another connection, as a worker or sweeper mid-transaction would."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from django.db import connection, transaction

T = TypeVar("T")


@contextmanager
def held_elsewhere(lock: Callable[[], T]) -> Iterator[T]:
    """Run `lock` in a transaction on another thread (its own connection) and keep that
    transaction open until the block ends; yields what `lock` returned."""
    holding, release = threading.Event(), threading.Event()
    got: list[T] = []

    def hold() -> None:
        try:
            with transaction.atomic():
                got.append(lock())
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(10), "the other connection did not take its locks"
    try:
        yield got[0]
    finally:
        release.set()
        thread.join(10)
