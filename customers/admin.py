from django.contrib import admin

from .models import Customer, ErasureRequest, Identity


class IdentityInline(admin.TabularInline):
    model = Identity
    extra = 0
    fields = ("kind", "platform_id", "handle", "display_name", "follower_count", "verified", "link_source")


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("__str__", "tier", "created_at")
    list_filter = ("tier",)
    search_fields = ("name", "identities__handle", "identities__platform_id")
    inlines = [IdentityInline]


@admin.register(Identity)
class IdentityAdmin(admin.ModelAdmin):
    list_display = ("__str__", "kind", "platform_id", "customer", "link_source", "follower_count")
    list_filter = ("kind", "link_source", "verified")
    search_fields = ("handle", "platform_id", "display_name", "customer__name")
    raw_id_fields = ("customer", "linked_by")


@admin.register(ErasureRequest)
class ErasureRequestAdmin(admin.ModelAdmin):
    """The record of erasures: read-only, it is evidence of what was done and when."""

    list_display = ("confirmation_code", "source", "status", "requested_by", "created_at")
    list_filter = ("source", "status")
    search_fields = ("confirmation_code",)
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
