"""The dispatcher thread: coalescing hand-overs, and flushing."""

import threading

from webhooks.delivery.dispatch import Dispatcher


def test_ids_handed_over_while_a_send_is_under_way_go_out_together():
    sent: list[list[str]] = []
    first_send_started, release = threading.Event(), threading.Event()

    def send(ids: list[str]) -> None:
        sent.append(ids)
        first_send_started.set()
        release.wait(5)

    dispatcher = Dispatcher(send=send)
    dispatcher.dispatch_soon(["a"])
    assert first_send_started.wait(5)
    for n in range(20):
        dispatcher.dispatch_soon([f"b{n}", f"c{n}"])
    release.set()
    assert dispatcher.flush(timeout=5)
    assert sent[0] == ["a"]
    assert sent[1:] == [[pk for n in range(20) for pk in (f"b{n}", f"c{n}")]]


def test_a_failing_send_is_logged_and_does_not_stop_the_thread(caplog):
    calls: list[list[str]] = []

    def send(ids: list[str]) -> None:
        calls.append(ids)
        if len(calls) == 1:
            raise RuntimeError("broker on fire")

    dispatcher = Dispatcher(send=send)
    dispatcher.dispatch_soon(["a"])
    assert dispatcher.flush(timeout=5)
    dispatcher.dispatch_soon(["b"])
    assert dispatcher.flush(timeout=5)
    assert calls == [["a"], ["b"]]
    assert "dispatching 1 deliveries failed" in caplog.text
