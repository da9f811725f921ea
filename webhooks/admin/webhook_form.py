"""The webhook form: every change goes through the service's own validation."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from events.catalogue import catalogue
from events.patterns import is_pattern
from webhooks.header_secrets import REDACTED, RULE, is_sensitive
from webhooks.models import Webhook
from webhooks.services import (
    webhook_changes_apply,
)
from webhooks.validation import (
    clean_event_types,
    clean_headers,
    clean_sensitive_headers,
    clean_url,
)


class WebhookAdminForm(forms.ModelForm[Webhook]):
    url = forms.CharField(
        max_length=2048, help_text="http or https; private addresses are refused."
    )
    event_types = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None selected (and no patterns) means every event.",
    )
    event_patterns = forms.CharField(
        required=False,
        help_text="Glob patterns, one per line, e.g. deploy.* or *.failed.",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    headers = forms.JSONField(
        required=False,
        help_text=format_html(  # the admin renders help texts as HTML
            "A JSON object of header names to values. Sensitive values show as {0}: keep {0} "
            "to keep a value, replace it to change it, remove the header to delete it. Always "
            "sensitive: {1}.",
            REDACTED,
            RULE,
        ),
    )
    sensitive_headers = forms.CharField(
        required=False,
        label="Further sensitive headers",
        help_text="Header names, one per line, whose values are encrypted and never shown.",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    class Meta:
        model = Webhook
        fields = [
            "tenant", "url", "description", "event_types", "headers", "sensitive_headers",
            "active",
        ]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices_field = self.fields["event_types"]
        assert isinstance(choices_field, forms.MultipleChoiceField)
        choices_field.choices = [(t.name, t.name) for t in catalogue]
        current = list(self.instance.event_types or []) if self.instance.pk else []
        self.initial["event_types"] = [t for t in current if not is_pattern(t)]
        self.initial["event_patterns"] = "\n".join(t for t in current if is_pattern(t))
        if self.instance.pk:  # a saved sensitive value is never sent to the browser
            self.initial["headers"] = self.instance.redacted_headers()
            chosen = [n for n in self.instance.sensitive_headers if not is_sensitive(n)]
            self.initial["sensitive_headers"] = "\n".join(chosen)

    def clean_url(self) -> str:
        return str(_field(clean_url, self.cleaned_data["url"]))

    def clean_headers(self) -> dict[str, str]:
        return dict(_field(clean_headers, self.cleaned_data.get("headers") or {}))

    def clean_sensitive_headers(self) -> list[str]:
        names = (self.cleaned_data.get("sensitive_headers") or "").replace(",", "\n")
        return list(_field(clean_sensitive_headers, [n.strip() for n in names.split() if n]))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        patterns = [
            p.strip() for p in (cleaned.get("event_patterns") or "").splitlines() if p.strip()
        ]
        try:
            cleaned["event_types"] = clean_event_types([*cleaned.get("event_types", []), *patterns])
        except ValidationError as exc:
            self.add_error("event_patterns", exc.message_dict["event_types"])
        self._check_with_the_service(cleaned)
        return cleaned

    def _check_with_the_service(self, cleaned: dict[str, Any]) -> None:
        """Run the service's own validation of the whole change on a copy, so every refusal
        (a URL moved to another origin with kept secrets, a sensitive mark on a removed
        header, a kept value that was never stored) is a form error, not a failed save."""
        if self.errors:
            return
        if self.instance._state.adding:  # its ID is made before it is saved
            probe = Webhook(tenant=cleaned.get("tenant"))
        else:
            probe = Webhook.objects.get(pk=self.instance.pk)
        names = ("url", "description", "event_types", "headers", "sensitive_headers")
        try:
            webhook_changes_apply(webhook=probe, **{k: cleaned[k] for k in names if k in cleaned})
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)

    def _post_clean(self) -> None:
        # The model instance is written by the services, not by ModelForm.
        pass


def _field(cleaner: Any, value: Any) -> Any:
    try:
        return cleaner(value)
    except ValidationError as exc:
        raise forms.ValidationError(
            [m for msgs in exc.message_dict.values() for m in msgs]
        ) from None


class RecoverForm(forms.Form):
    since = forms.DateTimeField(
        input_formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"]
    )
