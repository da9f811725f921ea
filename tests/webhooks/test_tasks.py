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
