from django.db import models

from ctrlplane.tenants.models import Tenant
from events.models import EventRecord
from webhooks.header_secrets import headers_redacted
from webhooks.ids import new_attempt_id, new_delivery_id, new_webhook_id


class Webhook(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_webhook_id, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=2048)
    description = models.CharField(max_length=500, blank=True)
    event_types = models.JSONField(
        default=list, blank=True, help_text="Exact types or globs (deploy.*); empty means all."
    )
    headers = models.JSONField(
        default=dict, blank=True, help_text="Extra request headers that are not sensitive."
    )
    # Sensitive headers (credentials): their names in the clear, for display; their values
    # encrypted like signing secrets, as a JSON object {name: value}.
    sensitive_headers = models.JSONField(
        default=list, blank=True, help_text="Names of the headers whose values are encrypted."
    )
    sensitive_headers_ciphertext = models.TextField(blank=True, default="", editable=False)
    active = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=500, blank=True)
    # Start of the current unbroken run of failures; cleared by any success.
    failing_since = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["tenant", "active"], name="webhook_tenant_active")]

    def __str__(self) -> str:
        return f"{self.url} ({self.id})"

    @property
    def status(self) -> str:
        return "active" if self.active else "disabled"

    def redacted_headers(self) -> dict[str, str]:
        """Every custom header, sensitive values shown as `<redacted>`."""
        return headers_redacted(self.headers or {}, self.sensitive_headers or [])


class WebhookSecret(models.Model):
    """A signing secret, encrypted at rest. Several are live during a rotation."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="secrets")
    ciphertext = models.TextField(editable=False)
    created = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["webhook", "expires_at"], name="secret_webhook_expiry")]

    def __str__(self) -> str:
        return f"secret #{self.pk} of {self.webhook_id}"

    def __repr__(self) -> str:
        return f"<WebhookSecret {self.pk} webhook={self.webhook_id} expires_at={self.expires_at}>"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed (will retry)"
    EXHAUSTED = "exhausted", "Exhausted"
    CANCELLED = "cancelled", "Cancelled"


class AttemptTrigger(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    MANUAL = "manual", "Manual"
    RECOVER = "recover", "Recover"


class Delivery(models.Model):
    """One event to one webhook, across all its attempts."""

    id = models.CharField(primary_key=True, max_length=40, default=new_delivery_id, editable=False)
    # No single-column FK indexes: the composite indexes below lead with each of these.
    # Every status change rewrites every index entry, so each index costs on the hot path.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    event = models.ForeignKey(
        EventRecord, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    webhook = models.ForeignKey(
        Webhook, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    event_type = models.CharField(max_length=100)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    next_trigger = models.CharField(
        max_length=16, choices=AttemptTrigger.choices, default=AttemptTrigger.SCHEDULED
    )
    # When the delivery's ID was last handed to the broker; the sweeper re-sends a due
    # delivery only when this is old, so a queued task is not sent twice.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Who holds the delivery while it is `sending`: a token per claim. Every write for the
    # claim is guarded by it and the attempt number (see webhooks.delivery.store).
    lease_token = models.CharField(max_length=32, null=True, blank=True, editable=False)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=False)
    updated = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created", "-id"]
        # Deliveries are a read-only log (nobody holds a working change permission), so
        # re-sending has a permission of its own.
        permissions = [("retry_delivery", "Can retry deliveries")]
        constraints = [
            models.UniqueConstraint(fields=["event", "webhook"], name="delivery_event_webhook")
        ]
        indexes = [
            # Partial: finished deliveries (nearly all rows) are in neither.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status__in=["pending", "failed"]),
                name="delivery_due",
            ),
            models.Index(
                fields=["lease_expires_at"],
                condition=models.Q(status="sending"),
                name="delivery_lease",
            ),
            models.Index(fields=["tenant", "-created", "-id"], name="delivery_tenant_created"),
            models.Index(
                fields=["tenant", "status", "-created", "-id"], name="delivery_tenant_status"
            ),
            models.Index(
                fields=["tenant", "event_type", "-created", "-id"], name="delivery_tenant_type"
            ),
            models.Index(fields=["webhook", "-created", "-id"], name="delivery_webhook_created"),
            models.Index(fields=["webhook", "status"], name="delivery_webhook_status"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.webhook_id} ({self.status})"


class ErrorKind(models.TextChoices):
    TIMEOUT = "timeout", "Timeout"
    CONNECTION = "connection", "Connection"
    DNS = "dns", "DNS"
    TLS = "tls", "TLS"
    BLOCKED_TARGET = "blocked_target", "Blocked target"
    HTTP = "http", "HTTP status"
    SECRET_UNAVAILABLE = "secret_unavailable", "Secret unavailable"
    RECORD_FAILED = "record_failed", "Record failed"


class Attempt(models.Model):
    """One HTTP try of a delivery."""

    id = models.CharField(primary_key=True, max_length=40, default=new_attempt_id, editable=False)
    delivery = models.ForeignKey(  # indexed by attempt_delivery
        Delivery, on_delete=models.CASCADE, related_name="attempt_log", db_index=False
    )
    attempt_number = models.PositiveIntegerField()
    trigger = models.CharField(max_length=16, choices=AttemptTrigger.choices)
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    request_headers = models.JSONField(default=dict)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict)
    response_body = models.TextField(blank=True)
    # Bytes of body received (up to WEBHOOKS_RESPONSE_BODY_LIMIT), before response_body
    # replaced what a text column cannot hold. Null on attempts recorded before it existed.
    response_body_bytes = models.PositiveIntegerField(null=True, blank=True)
    error_kind = models.CharField(max_length=20, choices=ErrorKind.choices, blank=True)
    error_message = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["delivery", "attempt_number"]
        indexes = [models.Index(fields=["delivery", "attempt_number"], name="attempt_delivery")]

    def __str__(self) -> str:
        return f"attempt {self.attempt_number} of {self.delivery_id}"

    @property
    def succeeded(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300


class RollupSpan(models.IntegerChoices):
    """The bucket sizes attempts are counted in, in seconds: one per dashboard window, so
    a week is 168 rows per webhook, not 10,080."""

    MINUTE = 60, "1 minute"
    QUARTER_HOUR = 900, "15 minutes"
    HOUR = 3600, "1 hour"


# Upper bounds (ms) of the attempt-latency histogram's buckets; the last bucket is open.
LATENCY_BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
LATENCY_FIELDS = tuple(f"latency_{i}" for i in range(len(LATENCY_BOUNDS_MS) + 1))


class AttemptRollup(models.Model):
    """Attempts of one webhook in one time bucket, counted as they are recorded
    (webhooks.rollups.attempts_rollup), so the dashboard reads a few thousand rows instead
    of millions of attempts. `exhausted` counts the failed attempts that were a delivery's
    last."""

    span = models.SmallIntegerField(choices=RollupSpan.choices)
    bucket = models.DateTimeField()
    # No single-column indexes: the unique key and rollup_webhook lead with what is asked.
    # Deleting a tenant scans this table for its rows; that is rare and its webhooks'
    # rows go first, through rollup_webhook.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="attempt_rollups", db_index=False
    )
    webhook = models.ForeignKey(
        Webhook, on_delete=models.CASCADE, related_name="attempt_rollups", db_index=False
    )
    succeeded = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    exhausted = models.IntegerField(default=0)
    duration_ms_sum = models.BigIntegerField(default=0)
    # Attempts per latency bucket, LATENCY_BOUNDS_MS[i] the upper bound of latency_i.
    latency_0 = models.IntegerField(default=0)
    latency_1 = models.IntegerField(default=0)
    latency_2 = models.IntegerField(default=0)
    latency_3 = models.IntegerField(default=0)
    latency_4 = models.IntegerField(default=0)
    latency_5 = models.IntegerField(default=0)
    latency_6 = models.IntegerField(default=0)
    latency_7 = models.IntegerField(default=0)
    latency_8 = models.IntegerField(default=0)
    latency_9 = models.IntegerField(default=0)
    latency_10 = models.IntegerField(default=0)
    latency_11 = models.IntegerField(default=0)
    latency_12 = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["span", "bucket", "tenant", "webhook"], name="rollup_key"
            )
        ]
        indexes = [models.Index(fields=["webhook", "span", "bucket"], name="rollup_webhook")]

    def __str__(self) -> str:
        return f"{self.webhook_id} at {self.bucket:%Y-%m-%d %H:%M} ({self.span} s)"
