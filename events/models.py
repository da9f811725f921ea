from django.db import models

from ctrlplane.tenants.models import Tenant
from events.envelope import Event, EventSource


class EventRecord(models.Model):
    """The event log: every event published through `events.publish`."""

    id = models.CharField(primary_key=True, max_length=40, editable=False)
    tenant = models.ForeignKey(  # indexed by event_tenant_time
        Tenant, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    type = models.CharField(max_length=100)
    instance_id = models.CharField(max_length=200, null=True, blank=True)
    actor_id = models.CharField(max_length=200, null=True, blank=True)
    source = models.CharField(
        max_length=20, choices=[(s.value, s.value) for s in EventSource], default=EventSource.SYSTEM
    )
    # Shown as `data`, the name the API and webhook bodies use; the column keeps its name.
    payload = models.JSONField(default=dict, verbose_name="data")
    metadata = models.JSONField(default=dict)
    timestamp = models.DateTimeField()
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    # SHA-256 of the request that made the event (events.idempotency), to refuse the key's
    # reuse for a different one. Empty for events recorded before it was kept.
    idempotency_fingerprint = models.CharField(max_length=64, null=True, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "events_event"
        verbose_name = "event"
        ordering = ["-timestamp", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-timestamp"], name="event_tenant_time"),
            models.Index(fields=["tenant", "type", "-timestamp"], name="event_tenant_type_time"),
            models.Index(
                fields=["tenant", "instance_id", "-timestamp"], name="event_tenant_inst_time"
            ),
            models.Index(fields=["timestamp"], name="event_time"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="event_unique_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"

    def to_envelope(self) -> Event:
        return Event(
            id=self.id,
            type=self.type,
            tenant_id=self.tenant.slug,
            instance_id=self.instance_id,
            actor_id=self.actor_id,
            payload=self.payload,
            timestamp=self.timestamp,
            source=self.source,
            metadata=self.metadata,
        )
