"""Who a customer is, on every platform they write from."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from .identifiers import normalize_platform_id


class Customer(models.Model):
    """One person (or organisation) behind any number of platform identities."""

    class Tier(models.TextChoices):
        STANDARD = "standard", "Standard"
        VIP = "vip", "VIP"

    name = models.CharField(max_length=200, blank=True)
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.STANDARD)
    notes = models.TextField(blank=True)
    # Set when this customer was merged into another; kept so a merge can be undone.
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_from"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            # Customer search by name in the desk and the API.
            models.Index(Lower("name"), name="customer_name_lower_idx"),
        ]

    def __str__(self) -> str:
        return self.name or f"Customer #{self.pk}"

    @property
    def is_vip(self) -> bool:
        return self.tier == self.Tier.VIP


class Identity(models.Model):
    """One account of a customer on one platform, and how we came to link it.

    ``platform_id`` is the platform's stable id (X user id, page-scoped id, WhatsApp id,
    e-mail address, E.164 phone number); ``handle`` is what people see (``@name``).
    """

    class Kind(models.TextChoices):
        X = "x", "X"
        FACEBOOK = "facebook", "Facebook"
        INSTAGRAM = "instagram", "Instagram"
        WHATSAPP = "whatsapp", "WhatsApp"
        EMAIL = "email", "E-mail"
        PHONE = "phone", "Phone"

    class LinkSource(models.TextChoices):
        # The platform proved it (the same person wrote from it on a thread we know).
        VERIFIED = "verified", "Verified"
        # An agent linked it by hand.
        AGENT = "agent", "Linked by an agent"
        # Caseline guessed it (same e-mail, same phone); an agent should confirm.
        SUGGESTED = "suggested", "Suggested"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    platform_id = models.CharField(max_length=255)
    handle = models.CharField(max_length=255, blank=True)
    display_name = models.CharField(max_length=255, blank=True)
    # Reach and badges as the platform reported them at the last contact.
    follower_count = models.PositiveIntegerField(null=True, blank=True)
    verified = models.BooleanField(default=False)
    # Anything else the platform told us about the profile (avatar URL, locale...).
    profile = models.JSONField(default=dict, blank=True)
    link_source = models.CharField(max_length=16, choices=LinkSource.choices, default=LinkSource.VERIFIED)
    linked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    linked_at = models.DateTimeField(auto_now_add=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "identities"
        ordering = ["kind", "handle", "platform_id"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "platform_id"], name="identity_unique_kind_platform_id"),
        ]
        indexes = [
            # Desk search by handle ("@name") across platforms.
            models.Index(Lower("handle"), name="identity_handle_lower_idx"),
        ]

    def __str__(self) -> str:
        label = self.handle or self.display_name or self.platform_id
        return f"{self.get_kind_display()}: {label}"

    def save(self, *args, **kwargs):
        # Canonical ids are the database's invariant, whichever code path writes.
        self.platform_id = normalize_platform_id(self.kind, self.platform_id)
        super().save(*args, **kwargs)
