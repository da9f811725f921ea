from ctrlplane.celery import app


def test_the_broker_carries_exactly_the_tasks_something_sends():
    """Task names are the contract between publishers and workers: each one here has a
    sender (the dispatcher, the sweeper's beat schedule, retention's beat schedule)."""
    app.loader.import_default_modules()
    ours = {name for name in app.tasks if name.startswith("webhooks.")}
    assert ours == {
        "webhooks.tasks.deliver_batch",
        "webhooks.tasks.sweep",
        "webhooks.tasks.purge_history",
    }


def test_a_batch_the_engine_has_no_room_for_is_retried_then_left_to_the_sweeper(monkeypatch):
    """Nothing was claimed, so nothing is lost: the message is retried (on any worker),
    and after the last retry the deliveries stay due for the sweeper to dispatch again."""
    from webhooks import tasks
    from webhooks.delivery.engine import EngineBusy

    class FullEngine:
        submits = 0

        def submit(self, ids: list[str]) -> int:
            self.submits += 1
            raise EngineBusy("no room")

    engine = FullEngine()
    monkeypatch.setattr(tasks, "get_engine", lambda: engine)

    result = tasks.deliver_batch.apply(args=[["d1", "d2"]])

    assert engine.submits == 1 + tasks.deliver_batch.max_retries
    assert isinstance(result.result, EngineBusy)
