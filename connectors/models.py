"""The company's accounts on each platform, the durable inbox of webhooks, API tokens and
outbound webhook subscriptions with their delivery log."""

from __future__ import annotations

import os
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.validators import MaxValueValidator
from django.db import models


class Channel(models.Model):
    """A company account on one platform: an X account, a Facebook page, a mailbox, a phone line.

    Secrets never live in the database: ``secret_env`` maps a secret's role
    (``consumer_secret``, ``app_secret``, ``access_token``...) to the name of the
    environment variable that holds it.
    """

    class EmailProvider(models.TextChoices):
        """Who posts an e-mail channel's inbound webhook, and so how it is checked and read."""

        RAW = "raw", "Raw MIME (message/rfc822 posts, IMAP)"
        MAILGUN = "mailgun", "Mailgun"
        SENDGRID = "sendgrid", "SendGrid"
        POSTMARK = "postmark", "Postmark"
        AMAZON_SES = "amazon_ses", "Amazon SES"

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
    # E-mail channels: the ESP whose inbound webhook posts to /webhooks/<slug>/ (its
    # django-anymail view checks and reads the request), or raw MIME. Mail the IMAP
    # poller fetches is raw MIME whatever this says. Other kinds keep "raw".
    email_provider = models.CharField(
        max_length=16,
        choices=EmailProvider.choices,
        default=EmailProvider.RAW,
        help_text="E-mail channels: the ESP that posts inbound mail to this channel's webhook.",
    )
    is_active = models.BooleanField(default=True)
    # How long after a case was resolved or closed a customer writing on this channel
    # reopens it instead of starting a new case; blank for CASE_REOPEN_WINDOW_DAYS.
    reopen_window_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(3650)],
        help_text=(
            "Days after a case was resolved or closed during which a new message from its customer "
            "on this channel reopens it. Leave blank to use the site-wide setting "
            "(CASE_REOPEN_WINDOW_DAYS); 0 never reopens an ended case."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["x", "facebook", "instagram", "whatsapp", "email", "phone"]),
                name="channel_kind_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    email_provider__in=["raw", "mailgun", "sendgrid", "postmark", "amazon_ses"]
                )
                & (models.Q(kind="email") | models.Q(email_provider="raw")),
                name="channel_email_provider_valid",
            ),
        ]
        indexes = [models.Index(fields=["kind", "account_id"], name="channel_kind_account_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def is_social(self) -> bool:
        return self.kind in {self.Kind.X, self.Kind.FACEBOOK, self.Kind.INSTAGRAM, self.Kind.WHATSAPP}

    @property
    def reopen_window(self) -> timedelta:
        """The reopen window of this channel: its own, else the site-wide setting."""
        days = self.reopen_window_days
        return timedelta(days=settings.CASE_REOPEN_WINDOW_DAYS if days is None else days)

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


class ApiToken(models.Model):
    """A personal key for the REST API, sent as ``Authorization: Token <key>``.

    The key is shown once, when it is created; only its SHA-256 digest is kept, so a
    copy of the database gives nobody a working key. Keys are 256-bit random strings,
    so a plain digest (not a slow password hash) is enough and keeps the lookup one
    indexed equality. A read-scoped token may only read (reporting tools); revoking
    sets ``revoked_at`` and the key stops working at once.
    """

    class Scope(models.TextChoices):
        READ = "read", "Read only"
        WRITE = "write", "Read and write"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=120, help_text="What the token is for, e.g. 'BI export'.")
    # The key's first characters: enough to recognise it in a list, useless to authenticate.
    prefix = models.CharField(max_length=16, editable=False)
    # Hex SHA-256 of the whole key.
    key_hash = models.CharField(max_length=64, editable=False)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.WRITE)
    created_at = models.DateTimeField(auto_now_add=True)
    # Updated at most once a minute, so busy integrations do not write on every request.
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["key_hash"], name="apitoken_unique_key_hash"),
            models.CheckConstraint(
                condition=models.Q(scope__in=["read", "write"]), name="apitoken_scope_valid"
            ),
        ]
        indexes = [
            # "My tokens": a user's tokens, newest first.
            models.Index(fields=["user", "-created_at"], name="apitoken_user_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def read_only(self) -> bool:
        return self.scope == self.Scope.READ


class WebhookEvent(models.TextChoices):
    """Events an outbound webhook subscription may ask for."""

    CASE_CREATED = "case.created", "Case created"
    CASE_ASSIGNED = "case.assigned", "Case assigned"
    CASE_ESCALATED = "case.escalated", "Case escalated"
    CASE_MERGED = "case.merged", "Cases merged"
    CASE_SPLIT = "case.split", "Message split off into a new case"
    SLA_AT_RISK = "sla.at_risk", "Service promise at risk"
    SLA_BREACHED = "sla.breached", "Service promise breached"
    MESSAGE_RECEIVED = "message.received", "Customer message received"
    MESSAGE_SENT = "message.sent", "Reply sent"
    ONCALL_PAGED = "oncall.paged", "Person on call paged"


class WebhookSubscription(models.Model):
    """An integrator's URL that receives signed POSTs for the events it asked for.

    The signing secret is not stored: it is derived from the deployment's SECRET_KEY
    and the random ``signing_salt`` (HMAC-SHA256), shown once on creation or rotation,
    and recomputed to sign each delivery. A database copy alone signs nothing; rotating
    SECRET_KEY changes every subscription's secret (rotate and share them again).
    After ``connectors.webhooks_out.DISABLE_AFTER_FAILURES`` consecutive failed attempts the subscription is
    switched off with ``disabled_at`` set; an admin turns it back on.
    """

    name = models.CharField(max_length=120)
    url = models.URLField(max_length=500)
    # A list of WebhookEvent values.
    event_types = models.JSONField(default=list)
    # Random per subscription; with SECRET_KEY it yields the signing secret. Never shown.
    signing_salt = models.CharField(max_length=64, editable=False)
    is_active = models.BooleanField(default=True)
    # Failed delivery attempts in a row; any success sets it back to zero.
    failure_count = models.PositiveIntegerField(default=0)
    # Set when failures switched the subscription off (not when an admin did).
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(disabled_at__isnull=True) | models.Q(is_active=False),
                name="webhooksubscription_disabled_inactive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} → {self.url}"


class WebhookDelivery(models.Model):
    """One event sent (or being sent) to one subscription: the delivery log and the retry queue.

    The row is written in the transaction that produced the event, so an event is
    never lost between commit and queueing; a task sends it after commit and retries
    with backoff while it is pending.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    # One id per event, shared by its deliveries to every subscription: receivers dedupe on it.
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=32, choices=WebhookEvent.choices)
    # The JSON body exactly as it is sent.
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The last attempt's HTTP status (null when no response came) and the start of its body.
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["subscription", "event_id"], name="webhookdelivery_unique_event"),
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "delivered", "failed"]),
                name="webhookdelivery_status_valid",
            ),
        ]
        indexes = [
            # The delivery log of a subscription, newest first.
            models.Index(fields=["subscription", "-created_at"], name="webhookdelivery_log_idx"),
            # The retry sweep: pending deliveries whose next attempt is due.
            models.Index(
                fields=["next_attempt_at"],
                name="webhookdelivery_due_idx",
                condition=models.Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.subscription_id} ({self.status})"
