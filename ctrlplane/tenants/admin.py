from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from ctrlplane.tenants.models import ApiKey, Tenant
from ctrlplane.tenants.services import api_key_create, api_key_revoke

KEY_FIELDS: tuple[str, ...] = (
    "prefix",
    "name",
    "created",
    "last_used_at",
    "revoked_at",
)


class ApiKeyInline(admin.TabularInline[ApiKey, Tenant]):
    model = ApiKey
    fields = KEY_FIELDS
    readonly_fields = KEY_FIELDS
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        return False


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin[Tenant]):
    list_display = ["slug", "name", "created"]
    search_fields = ["slug", "name"]
    inlines = [ApiKeyInline]
    actions = ["create_api_key"]

    @admin.action(description="Create an API key (shown once)", permissions=["create_api_key"])
    def create_api_key(
        self, request: HttpRequest, queryset: QuerySet[Tenant]
    ) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one tenant.", messages.ERROR)
            return None
        tenant = queryset.get()
        issued = api_key_create(tenant=tenant, name=f"admin:{request.user}")
        # Rendered straight into the response, never into messages or the session store.
        return TemplateResponse(
            request,
            "admin/tenants/api_key_created.html",
            {
                **self.admin_site.each_context(request),
                "tenant": tenant,
                "raw_key": issued.raw_key,
                "back_url": reverse("admin:tenants_tenant_changelist"),
            },
        )

    def has_create_api_key_permission(self, request: HttpRequest) -> bool:
        # A permission of its own: the key it prints reads every signing secret of the tenant.
        return request.user.has_perm("tenants.create_api_key")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    list_display = ["prefix", "tenant", "name", "created", "last_used_at", "revoked_at"]
    list_filter = ["tenant", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "tenant__slug"]
    readonly_fields = ["tenant", "prefix", "created", "last_used_at", "revoked_at"]
    fields = ["tenant", "name", "prefix", "created", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are created from a tenant, so the value can be shown once

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)
