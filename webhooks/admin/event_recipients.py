"""The event page's "who received it", contributed to the events app's admin."""

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from events.admin import event_page_section
from events.models import EventRecord
from webhooks.explain import event_explain


@event_page_section
def event_recipients(request: HttpRequest, event: EventRecord) -> SafeString:
    """The event page's "who received it": `event_explain`, as the API's explain gives it."""
    if not request.user.has_perm("webhooks.view_webhook"):
        return SafeString("")
    explanation = event_explain(event=event)
    return render_to_string(
        "admin/webhooks/event_recipients.html",
        {
            "explanation": explanation,
            "can_see_deliveries": request.user.has_perm("webhooks.view_delivery"),
        },
        request=request,
    )
