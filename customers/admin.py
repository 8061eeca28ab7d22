from django.contrib import admin

from .models import Customer, Identity


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
