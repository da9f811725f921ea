import pytest
from django.db import connection, models, transaction

import events
from events.catalogue import EventType, UnknownEventType
from events.envelope import Event
from events.runtime import get_bus


class Server(models.Model):
    """A stand-in for a control-plane model; its table lives only for these tests."""

    objects: "models.Manager[Server]" = models.Manager()
    tenant_slug = models.CharField(max_length=63)
    name = models.CharField(max_length=50)

    class Meta:
        app_label = "tests_hooks"

    def __str__(self) -> str:
        return self.name


@pytest.fixture
def server_table(transactional_db):
    with connection.schema_editor() as editor:
        editor.create_model(Server)
    yield
    with connection.schema_editor() as editor:
        editor.delete_model(Server)


@pytest.fixture
def hooked(server_table, tenant):
    disconnect = events.emit_model_events(
        Server,
        tenant=lambda s: s.tenant_slug,
        created=EventType.INSTANCE_CREATED,
        updated=EventType.INSTANCE_SCALED,
        deleted=EventType.INSTANCE_DELETED,
        data=lambda s: {"name": s.name},
    )
    got: list[Event] = []
    sub = get_bus().subscribe(got.append)
    yield got
    sub.unsubscribe()
    disconnect()


def test_saves_and_deletes_become_events_after_commit(hooked):
    server = Server.objects.create(tenant_slug="acme", name="web-1")
    pk = str(server.pk)
    server.name = "web-2"
    server.save()
    server.delete()
    assert [(e.type, e.instance_id, dict(e.payload)) for e in hooked] == [
        ("instance.created", pk, {"name": "web-1"}),
        ("instance.scaled", pk, {"name": "web-2"}),
        ("instance.deleted", pk, {"name": "web-2"}),
    ]
    assert all(e.tenant_id == "acme" for e in hooked)


def test_nothing_is_published_before_the_transaction_commits(hooked):
    with transaction.atomic():
        Server.objects.create(tenant_slug="acme", name="web-1")
        assert hooked == []
    assert [e.type for e in hooked] == ["instance.created"]


def test_a_rolled_back_save_publishes_nothing(hooked):
    def save_then_fail() -> None:
        with transaction.atomic():
            Server.objects.create(tenant_slug="acme", name="web-1")
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        save_then_fail()
    assert hooked == []
    from events.models import EventRecord

    assert not EventRecord.objects.exists()


def test_disconnect_stops_the_events(hooked):
    Server.objects.create(tenant_slug="acme", name="a")
    events.emit_model_events(Server, tenant=lambda s: "acme", created="instance.created")()
    Server.objects.create(tenant_slug="acme", name="b")
    assert len(hooked) == 1


def test_unknown_event_types_are_refused_when_wiring(db):
    with pytest.raises(UnknownEventType):
        events.emit_model_events(Server, tenant=lambda s: "acme", created="server.born")


def test_service_notices_are_refused_when_wiring(db):
    with pytest.raises(ValueError, match="service notice"):
        events.emit_model_events(Server, tenant=lambda s: "acme", created="webhook.disabled")
