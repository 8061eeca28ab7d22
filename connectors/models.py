"""The company's accounts on each platform, and the durable inbox of webhooks."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured
from django.db import models


class Channel(models.Model):
    """A company account on one platform: an X account, a Facebook page, a mailbox, a phone line.

    Secrets never live in the database: ``secret_env`` maps a secret's role
    (``consumer_secret``, ``app_secret``, ``access_token``...) to the name of the
    environment variable that holds it.
    """

    class Kind(models.TextChoices):
        X = "x", "X"
        FACEBOOK = "facebook", "Facebook"
        INSTAGRAM = "instagram", "Instagram"
        WHATSAPP = "whatsapp", "WhatsApp"
        EMAIL = "email", "E-mail"
        PHONE = "phone", "Phone"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=120)
    # Part of the webhook URL: /webhooks/<slug>/
    slug = models.SlugField(max_length=60, unique=True)
    department = models.ForeignKey("cases.Department", on_delete=models.PROTECT, related_name="channels")
    # Our own id on the platform: X user id, page id, Instagram account id, WhatsApp
    # phone number id, support address, phone number. Used to route webhooks and to
    # recognise our own outbound echoes.
    account_id = models.CharField(max_length=255, blank=True)
    handle = models.CharField(max_length=255, blank=True)
    secret_env = models.JSONField(default=dict, blank=True)
    # Base URL of the platform API; blank for the platform's real one (tests point it
    # at a fake server on 127.0.0.1).
    api_base_url = models.URLField(blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["x", "facebook", "instagram", "whatsapp", "email", "phone"]),
                name="channel_kind_valid",
            ),
        ]
        indexes = [models.Index(fields=["kind", "account_id"], name="channel_kind_account_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def is_social(self) -> bool:
        return self.kind in {self.Kind.X, self.Kind.FACEBOOK, self.Kind.INSTAGRAM, self.Kind.WHATSAPP}

    def secret(self, role: str) -> str:
        """The value of the secret ``role``, read from the environment variable named for it."""
        var = (self.secret_env or {}).get(role)
        if not var:
            raise ImproperlyConfigured(f"Channel {self.slug!r} names no environment variable for {role!r}.")
        value = os.environ.get(var, "")
        if not value:
            raise ImproperlyConfigured(f"Environment variable {var} ({self.slug} {role}) is not set.")
        return value


class InboundEvent(models.Model):
    """One webhook delivery (or fetched mail) exactly as it arrived: the durable inbox.

    Stored before anything is parsed, so nothing a platform sends is ever lost; the
    processing task moves it from pending to processed, ignored or failed.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"
        IGNORED = "ignored", "Ignored"

    provider = models.CharField(max_length=32)
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound_events"
    )
    # The platform's delivery id where it gives one, else a digest of the body.
    delivery_id = models.CharField(max_length=255)
    body = models.BinaryField()
    headers = models.JSONField(default=dict, blank=True)
    content_type = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "delivery_id"], name="inboundevent_unique_delivery"),
        ]
        indexes = [
            # replay_inbox and the pending sweep: oldest pending/failed first.
            models.Index(fields=["status", "received_at"], name="inboundevent_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.delivery_id} ({self.status})"

    @property
    def body_text(self) -> str:
        return bytes(self.body).decode("utf-8", errors="replace")
