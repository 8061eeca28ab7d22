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
    # Set when the customer's personal data was erased (``cases.privacy``): the row stays,
    # pseudonymised, so that their cases and the audit trail keep a customer to point at.
    erased_at = models.DateTimeField(null=True, blank=True)
    # The customer asked not to be sent satisfaction surveys (cases.csat honours it).
    surveys_opt_out = models.BooleanField(default=False)

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            # Customer search by name in the desk and the API.
            models.Index(Lower("name"), name="customer_name_lower_idx"),
        ]

    def __str__(self) -> str:
        return self.label(self.name, self.pk)

    @staticmethod
    def label(name: str, pk: int | None) -> str:
        """How a customer is printed: their name, else their number (for rows read as values)."""
        return name or f"Customer #{pk}"

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


class CustomerMerge(models.Model):
    """One merge of a customer into another, and what moved, so that it can be undone.

    ``customers.services`` records the identities (with how each was linked before);
    ``cases.services.customer_merge`` adds the cases it moved. An undone merge keeps its
    row, with who undid it and when.
    """

    source = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="merges_out")
    target = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="merges_in")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The moved identities as they were: [{"id", "link_source", "linked_by", "linked_at"}].
    identities = models.JSONField(default=list, blank=True)
    # Ids of the cases that moved from source to target.
    case_ids = models.JSONField(default=list, blank=True)
    # The target's name and tier before the merge (a merge may fill the name, raise the tier).
    target_before = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A customer is merged away at most once at a time: undo before merging it again.
            models.UniqueConstraint(
                fields=["source"], condition=models.Q(undone_at__isnull=True), name="customermerge_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"Customer #{self.source_id} into #{self.target_id}"


class IdentitySuggestion(models.Model):
    """A hint for the agent: a customer wrote an e-mail address or phone number that is not
    theirs on file. Never acted on by itself; an agent accepts or dismisses it.

    Two kinds, told apart by ``identity``:
    - it is another customer's identity (``identity`` set): accepting links that identity to
      the writer (source ``suggested``); its old customer keeps their cases;
    - it is nobody's (``identity`` empty, a new contact detail): accepting creates the identity
      on the writer (source ``suggested``), so what arrives from it later is theirs.
    ``kind`` and ``platform_id`` always name what was written, so one value is suggested to a
    customer once, whichever kind it was when written.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACCEPTED = "accepted", "Accepted"
        DISMISSED = "dismissed", "Dismissed"

    # Who wrote the address or number.
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identity_suggestions")
    # Kinds a written value can have: an address, a number (whatsapp only as another's identity).
    KINDS = (Identity.Kind.EMAIL, Identity.Kind.PHONE, Identity.Kind.WHATSAPP)

    # The identity kind of what was written.
    kind = models.CharField(max_length=16, choices=[(k.value, k.label) for k in KINDS])
    # Its canonical id (lower-cased address, E.164 number), as an Identity of that kind would hold it.
    platform_id = models.CharField(max_length=255)
    # The identity it matched, of another customer; empty when it was nobody's (a new contact detail).
    identity = models.ForeignKey(
        Identity, null=True, blank=True, on_delete=models.CASCADE, related_name="suggestions"
    )
    # The address or number as it was written.
    value = models.CharField(max_length=255)
    # The cases.Message it was found in (an id, not a key: customers know nothing of cases).
    source_message_id = models.PositiveBigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One suggestion per customer and value: a dismissed one does not come back with every
            # message, nor as the other kind once the value becomes someone's identity.
            models.UniqueConstraint(
                fields=["customer", "kind", "platform_id"], name="identitysuggestion_unique_value"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["open", "accepted", "dismissed"]),
                name="identitysuggestion_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=["email", "phone", "whatsapp"]),  # KINDS
                name="identitysuggestion_kind_contact",
            ),
        ]
        indexes = [
            # The customer panel: a customer's open suggestions.
            models.Index(
                fields=["customer", "-created_at"],
                name="identitysuggestion_open_idx",
                condition=models.Q(status="open"),
            ),
        ]

    def __str__(self) -> str:
        if self.identity_id is None:
            return f"{self.value}: a new {self.get_kind_display()} for customer #{self.customer_id}?"
        return f"{self.value}: customer #{self.customer_id} may be {self.identity}"

    @property
    def is_new_contact(self) -> bool:
        """Whether the value was nobody's identity when it was written."""
        return self.identity_id is None


class ErasureRequest(models.Model):
    """A request to erase someone's personal data, and what came of it.

    Made by an admin (desk or API) for a known customer, or by Meta's data-deletion
    callback for a platform user id, which may match no customer at all. The platform's
    user id is personal data, so only its keyed digest is kept (enough to recognise a
    repeated request). ``confirmation_code`` is the unguessable key of the public status page.
    """

    class Source(models.TextChoices):
        DESK = "desk", "Desk"
        API = "api", "API"
        META = "meta", "Meta data-deletion callback"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        COMPLETED = "completed", "Completed"
        # Nothing held matched the request: there was nothing to erase.
        NO_MATCH = "no_match", "No data held"
        FAILED = "failed", "Failed"

    source = models.CharField(max_length=8, choices=Source.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    confirmation_code = models.CharField(max_length=64, unique=True)
    # HMAC-SHA256 (keyed with SECRET_KEY) of the platform user id a platform asked about.
    subject_digest = models.CharField(max_length=64, blank=True)
    # The customers erased (ids only).
    customer_ids = models.JSONField(default=list, blank=True)
    # What was erased: {"cases": 2, "messages": 9, "attachments": 1, ...}.
    counts = models.JSONField(default=dict, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(source__in=["desk", "api", "meta"]), name="erasurerequest_source_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "completed", "no_match", "failed"]),
                name="erasurerequest_status_valid",
            ),
        ]
        indexes = [
            # The sweep that runs requests whose own task was lost.
            models.Index(
                fields=["created_at"], name="erasurerequest_pending_idx", condition=models.Q(status="pending")
            ),
        ]

    def __str__(self) -> str:
        return f"Erasure {self.confirmation_code[:8]}… ({self.status})"
