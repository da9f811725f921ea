"""Tenant API views: each parses input, calls one service or selector, shapes output."""

from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils.cache import add_never_cache_headers
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ctrlplane.api import EventCursorPagination
from events.catalogue import catalogue
from events.envelope import EventSource
from events.models import EventRecord
from events.serializers import event_output
from events.services import event_publish_or_replay
from webhooks import selectors
from webhooks.api import serializers as s
from webhooks.api.filters import DeliveryFilter, EventFilter
from webhooks.explain import event_explain
from webhooks.models import Delivery, Webhook
from webhooks.recovery import delivery_retry, webhook_recover, webhook_send_test
from webhooks.services import (
    webhook_create,
    webhook_secret_current,
    webhook_secret_rotate,
    webhook_update,
)

ERRORS = {
    400: OpenApiResponse(description="Invalid input: a JSON object of field messages."),
    401: OpenApiResponse(s.ErrorOutput, description="Missing, invalid or revoked API key."),
    404: OpenApiResponse(s.ErrorOutput, description="Not found for this tenant."),
    429: OpenApiResponse(s.ErrorOutput, description="Rate limit exceeded."),
}
READ_ERRORS = {k: v for k, v in ERRORS.items() if k != 400}
CONFLICT = {409: OpenApiResponse(s.ErrorOutput, description="Not possible in the current state.")}


def tenant_of(request: Request) -> Any:
    return request.user.tenant  # type: ignore[union-attr]


@extend_schema_view(
    list=extend_schema(
        summary="List webhooks", responses={200: s.WebhookOutput(many=True), **READ_ERRORS}
    ),
    retrieve=extend_schema(
        summary="Get a webhook", responses={200: s.WebhookOutput, **READ_ERRORS}
    ),
    create=extend_schema(
        summary="Register a webhook",
        request=s.WebhookCreateInput,
        responses={201: s.WebhookOutput, **ERRORS},
    ),
    partial_update=extend_schema(
        summary="Change a webhook (PATCH active=true re-enables it)",
        request=s.WebhookUpdateInput,
        responses={200: s.WebhookOutput, **ERRORS},
    ),
    destroy=extend_schema(summary="Delete a webhook", responses={204: None, **READ_ERRORS}),
)
class WebhookViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[Webhook],
):
    queryset = Webhook.objects.none()  # the real one is per tenant: get_queryset
    serializer_class = s.WebhookOutput
    lookup_value_regex = "[A-Za-z0-9_]+"

    def get_queryset(self) -> QuerySet[Webhook]:
        return selectors.webhooks_for_tenant(tenant=tenant_of(self.request))

    def create(self, request: Request) -> Response:
        data = _valid(s.WebhookCreateInput, request.data)
        webhook = webhook_create(tenant=tenant_of(request), **data)
        return Response(s.WebhookOutput(webhook).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        data = _valid(s.WebhookUpdateInput, request.data)
        webhook = webhook_update(webhook=self.get_object(), **data)
        return Response(s.WebhookOutput(webhook).data)

    @extend_schema(
        summary="Reveal the signing secret", responses={200: s.WebhookSecretOutput, **READ_ERRORS}
    )
    @action(detail=True, methods=["get"])
    def secret(self, request: Request, pk: str | None = None) -> Response:
        return _secret_response(webhook_secret_current(webhook=self.get_object()))

    @extend_schema(
        summary="Rotate the signing secret",
        description=(
            "The new secret signs at once; the old one keeps signing until the grace period ends."
        ),
        request=s.RotateSecretInput,
        responses={200: s.WebhookSecretOutput, **ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        data = _valid(s.RotateSecretInput, request.data)
        grace = data.get("grace_period_seconds")
        secret = webhook_secret_rotate(
            webhook=self.get_object(),
            grace_period=None if grace is None else timedelta(seconds=grace),
        )
        return _secret_response(secret)

    @extend_schema(
        summary="Send a webhook.test event to this webhook alone",
        request=None,
        responses={202: s.EventOutput, **READ_ERRORS, **CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        event = webhook_send_test(webhook=self.get_object(), source=EventSource.API)
        return Response(event_output(event.id), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Re-send what the webhook missed",
        description=(
            "Re-sends every event in [since, until] (at most 14 days back) that this webhook "
            "subscribes to and has not received successfully, including events published "
            "while it was disabled."
        ),
        request=s.RecoverInput,
        responses={202: s.RecoverOutput, **ERRORS, **CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def recover(self, request: Request, pk: str | None = None) -> Response:
        data = _valid(s.RecoverInput, request.data)
        count = webhook_recover(
            webhook=self.get_object(), since=data["since"], until=data.get("until")
        )
        return Response({"deliveries": count}, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(
        summary="List events, newest first", responses={200: s.EventOutput(many=True), **ERRORS}
    ),
    retrieve=extend_schema(
        summary="Get an event with a summary of its deliveries",
        responses={200: s.EventDetailOutput, **READ_ERRORS},
    ),
)
class EventViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[EventRecord]
):
    queryset = EventRecord.objects.none()
    pagination_class = EventCursorPagination
    serializer_class = s.EventOutput
    filterset_class = EventFilter
    lookup_value_regex = "[A-Za-z0-9_]+"

    def get_queryset(self) -> QuerySet[EventRecord]:
        return selectors.events_for_tenant(tenant=tenant_of(self.request))

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        event = self.get_object()
        summary = selectors.event_delivery_summary(event=event)
        return Response(s.EventDetailOutput(event, context={"delivery_summary": summary}).data)

    @extend_schema(
        summary="Why each webhook did or did not receive the event",
        description=(
            "Every webhook of the tenant: those the event was delivered to, with the "
            "delivery's outcome, then the others with the reason each did not get it."
        ),
        responses={200: s.EventExplanationOutput, **READ_ERRORS},
    )
    @action(detail=True, methods=["get"])
    def explain(self, request: Request, pk: str | None = None) -> Response:
        explanation = event_explain(event=self.get_object())
        return Response(s.EventExplanationOutput(explanation).data)

    @extend_schema(
        summary="Publish an event",
        description=(
            "Send an `Idempotency-Key` header to make retries safe. The same key with the "
            "same request answers with the event it made the first time, marked "
            "`Idempotent-Replayed: true`, and publishes nothing; the same key with a "
            "different request (type, instance_id, actor_id or data) is a 409. A key is "
            "remembered for as long as its event is kept (`WEBHOOKS_RETENTION_DAYS`, 30 "
            "days by default, after the event), and each tenant's keys are its own."
        ),
        request=s.EventPublishInput,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="1 to 255 characters, chosen by the client.",
            ),
            OpenApiParameter(
                "Idempotent-Replayed",
                str,
                OpenApiParameter.HEADER,
                enum=["true"],
                response=[202],
                description="Present when the Idempotency-Key replayed an earlier event.",
            ),
        ],
        responses={
            202: s.EventOutput,
            409: OpenApiResponse(
                s.ErrorOutput, description="The Idempotency-Key was used for another request."
            ),
            413: OpenApiResponse(s.ErrorOutput, description="Payload over the size limit."),
            **ERRORS,
        },
    )
    def create(self, request: Request) -> Response:
        data = _valid(s.EventPublishInput, request.data)
        published = event_publish_or_replay(
            data["type"],
            tenant=tenant_of(request),
            instance_id=data.get("instance_id"),
            actor_id=data.get("actor_id"),
            data=data["data"],
            idempotency_key=request.headers.get("Idempotency-Key"),
            source=EventSource.API,
        )
        response = Response(event_output(published.event.id), status=status.HTTP_202_ACCEPTED)
        if published.replayed:
            response["Idempotent-Replayed"] = "true"
        return response


@extend_schema_view(
    list=extend_schema(
        summary="List deliveries, newest first",
        responses={200: s.DeliveryOutput(many=True), **ERRORS},
    ),
    retrieve=extend_schema(
        summary="Get a delivery with its attempts",
        responses={200: s.DeliveryDetailOutput, **READ_ERRORS},
    ),
)
class DeliveryViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Delivery]
):
    queryset = Delivery.objects.none()
    serializer_class = s.DeliveryOutput
    filterset_class = DeliveryFilter
    lookup_value_regex = "[A-Za-z0-9_]+"

    def get_queryset(self) -> QuerySet[Delivery]:
        tenant = tenant_of(self.request)
        if self.action == "list":
            return selectors.deliveries_for_tenant(tenant=tenant)
        return selectors.delivery_with_attempts(tenant=tenant)

    def get_serializer_class(self) -> type[Any]:
        return s.DeliveryDetailOutput if self.action == "retrieve" else s.DeliveryOutput

    @extend_schema(
        summary="Re-send now",
        description="One extra attempt, recorded with trigger `manual`.",
        request=None,
        responses={202: s.DeliveryOutput, **READ_ERRORS, **CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        delivery = delivery_retry(delivery=self.get_object())
        return Response(s.DeliveryOutput(delivery).data, status=status.HTTP_202_ACCEPTED)


class EventTypeListView(APIView):
    @extend_schema(
        summary="The event type catalogue",
        responses={200: s.EventTypeOutput(many=True), **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        rows = [
            {
                "name": t.name,
                "description": t.description,
                "schema": t.schema,
                "service_only": t.service_only,
            }
            for t in catalogue
        ]
        return Response(s.EventTypeOutput(rows, many=True).data)


def _valid(serializer_class: type[Any], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _secret_response(secret: str) -> Response:
    """A response that reveals a signing secret: no browser, proxy or CDN may keep a copy."""
    response = Response({"secret": secret})
    add_never_cache_headers(response)
    return response


@extend_schema(exclude=True)
class NotFoundView(APIView):
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise NotFound()

    post = put = patch = delete = get
