from django.db import models


class Role(models.TextChoices):
    WORKER = "worker", "Celery worker"
    BEAT = "beat", "Celery beat"


class Heartbeat(models.Model):
    """The last sign of life of one worker or beat process.

    Each process upserts its own row every HEARTBEAT_INTERVAL seconds and marks it stopped
    when it shuts down cleanly. A row not refreshed for STALE_AFTER_BEATS intervals is a
    process that died or hangs."""

    role = models.CharField(max_length=16, choices=Role.choices)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["role", "hostname", "pid"], name="heartbeat_one_row_per_process"
            )
        ]
        indexes = [models.Index(fields=["role", "-seen_at"], name="heartbeat_role_seen")]

    def __str__(self) -> str:
        return f"{self.role} {self.hostname} pid {self.pid}"
