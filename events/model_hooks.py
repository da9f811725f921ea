"""Turn saves and deletes of a control-plane model into lifecycle events."""

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from django.db import models, transaction
from django.db.models.signals import post_delete, post_save

from ctrlplane.tenants.models import Tenant

TenantGetter = Callable[[Any], "Tenant | str | int"]
InstanceIdGetter = Callable[[Any], str | None]
DataGetter = Callable[[Any], Mapping[str, Any]]


def _default_instance_id(obj: Any) -> str | None:
    return None if obj.pk is None else str(obj.pk)


def _default_data(obj: Any) -> Mapping[str, Any]:
    return {"model": obj._meta.label_lower, "pk": str(obj.pk)}


def emit_model_events(
    model: type[models.Model],
    *,
    tenant: TenantGetter,
    created: str | None = None,
    updated: str | None = None,
    deleted: str | None = None,
    instance_id: InstanceIdGetter = _default_instance_id,
    data: DataGetter = _default_data,
) -> Callable[[], None]:
    """Publish `created`/`updated`/`deleted` events for `model`; returns a disconnect function.

    Events are published only once the saving transaction commits, so a rolled-back save
    emits nothing. Values are captured at save time, because a deleted row is gone by then.
    """
    from events.catalogue import catalogue
    from events.services import event_publish

    for event_type in (created, updated, deleted):
        # Fail at wiring time, not after a commit.
        if event_type is not None and catalogue.get(event_type).service_only:
            raise ValueError(f"{event_type!r} is a service notice; it cannot be published")

    def publish_on_commit(event_type: str, obj: Any) -> None:
        publish = partial(
            event_publish,
            event_type,
            tenant=tenant(obj),
            instance_id=instance_id(obj),
            data=dict(data(obj)),
        )
        transaction.on_commit(publish)

    def on_save(sender: Any, instance: Any, created: bool, raw: bool = False, **_: Any) -> None:
        if raw:  # loaddata: fixtures are not lifecycle changes
            return
        event_type = created_type if created else updated
        if event_type is not None:
            publish_on_commit(event_type, instance)

    def on_delete(sender: Any, instance: Any, **_: Any) -> None:
        if deleted is not None:
            publish_on_commit(deleted, instance)

    created_type = created
    uid = f"events.emit_model_events:{model._meta.label}"
    post_save.connect(on_save, sender=model, weak=False, dispatch_uid=uid + ":save")
    post_delete.connect(on_delete, sender=model, weak=False, dispatch_uid=uid + ":delete")

    def disconnect() -> None:
        post_save.disconnect(sender=model, dispatch_uid=uid + ":save")
        post_delete.disconnect(sender=model, dispatch_uid=uid + ":delete")

    return disconnect
