"""Every write to customers and identities goes through here.

Who wrote a message is decided once, by ``identity_resolve``: a platform id seen
before always maps to the same Identity and so the same Customer. Customers are
never merged on a guess: ``identity_link`` and a merge are explicit acts (of an agent,
or of ingest when the platform itself proved the link); an address or number that a
customer writes and that is not theirs on file becomes an ``IdentitySuggestion`` for an
agent to accept or dismiss: someone else's identity (accepting links it), or nobody's
(accepting creates it on the customer).

Nothing here knows about cases: merging and unmerging customers is
``cases.services.customer_merge`` / ``customer_unmerge``, which call
``customer_merge_identities`` / ``customer_unmerge_identities`` for the customers' part
and move the cases themselves. Refusals are ``CustomerRefused`` (a ``ValidationError``
naming the field).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from config.rows import insert_linked, update_row

from .errors import CustomerRefused
from .identifiers import PHONE_KINDS, normalize_email, normalize_platform_id
from .models import Customer, CustomerMerge, Identity, IdentitySuggestion

# Addresses as people write them in a message (the identifier module validates them).
EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# Seven digits or more with separators between: the only texts worth phonenumbers' slower matcher.
PHONE_HINT_RE = re.compile(r"\d(?:[\s().\-/]*\d){6}")
# Suggestions looked at per message at most (a mail full of addresses is not a profile).
MAX_CANDIDATES = 20


@transaction.atomic(savepoint=False)
def identity_resolve(
    *,
    kind: str,
    platform_id: str,
    handle: str = "",
    display_name: str = "",
    follower_count: int | None = None,
    verified: bool | None = None,
    profile: dict | None = None,
    customer: Customer | None = None,
    link_source: str = Identity.LinkSource.VERIFIED,
) -> tuple[Identity, bool]:
    """The Identity for ``kind`` + ``platform_id``, created on first sight; ``(identity, created)``.

    A known identity keeps its customer (``customer`` is only used for a new one) and
    is refreshed with ``identity_refresh``. A new identity belongs to ``customer`` or
    to a new Customer named after it. Two concurrent first messages from one person
    create one identity and one customer: the loser of the insert race rolls back its
    savepoint and reads the winner's row. Raises ``ValidationError`` for an id that
    cannot be normalised.
    """
    canonical = normalize_platform_id(kind, platform_id)
    identity = Identity.objects.select_related("customer").filter(kind=kind, platform_id=canonical).first()
    if identity is None:
        try:
            with transaction.atomic():
                identity = identity_create(
                    kind=kind,
                    platform_id=canonical,
                    handle=handle,
                    display_name=display_name,
                    follower_count=follower_count,
                    verified=verified,
                    profile=profile,
                    customer=customer,
                    link_source=link_source,
                )
            return identity, True
        except IntegrityError:
            identity = Identity.objects.select_related("customer").get(kind=kind, platform_id=canonical)
    identity = identity_refresh(
        identity=identity,
        handle=handle,
        display_name=display_name,
        follower_count=follower_count,
        verified=verified,
        profile=profile,
    )
    return identity, False


def identity_create(**values) -> Identity:
    """Create the Identity ``identity_build(**values)`` describes, on its ``customer`` or on a
    new Customer named after it. No savepoint of its own: a second identity with the same id
    raises ``IntegrityError``, so call it inside a savepoint you roll back (``identity_resolve``
    does)."""
    identity = identity_build(**values)
    insert_linked([identity.customer, identity])
    return identity


def identity_build(
    *,
    kind: str,
    platform_id: str,
    handle: str = "",
    display_name: str = "",
    follower_count: int | None = None,
    verified: bool | None = None,
    profile: dict | None = None,
    customer: Customer | None = None,
    link_source: str = Identity.LinkSource.VERIFIED,
) -> Identity:
    """``identity_create`` without the writing: an unsaved Identity, on ``customer`` or on an
    unsaved new Customer named after it, for a caller that writes them together with what
    they lead to (``config.rows.insert_linked``: the inbox writes a new customer, identity,
    case and message in one statement)."""
    return Identity(
        customer=customer or Customer(name=(display_name or handle)[:200]),
        kind=kind,
        platform_id=normalize_platform_id(kind, platform_id),  # what Identity.save ensures
        handle=handle[:255],
        display_name=display_name[:255],
        follower_count=follower_count,
        verified=bool(verified),
        profile=profile or {},
        link_source=link_source,
    )


def identity_refresh(
    *,
    identity: Identity,
    handle: str = "",
    display_name: str = "",
    follower_count: int | None = None,
    verified: bool | None = None,
    profile: dict | None = None,
) -> Identity:
    """Store what the platform reports about ``identity`` now: handle, display name, follower
    count, verified flag and extra profile keys. Blank or unknown values never erase what we
    know. One UPDATE of the changed columns, none when nothing changed."""
    changed = []
    for field, value in (("handle", handle[:255]), ("display_name", display_name[:255])):
        if value and getattr(identity, field) != value:
            setattr(identity, field, value)
            changed.append(field)
    if follower_count is not None and identity.follower_count != follower_count:
        identity.follower_count = follower_count
        changed.append("follower_count")
    if verified is not None and identity.verified != bool(verified):
        identity.verified = bool(verified)
        changed.append("verified")
    if profile:
        merged = {**(identity.profile or {}), **profile}
        if merged != identity.profile:
            identity.profile = merged
            changed.append("profile")
    if changed:
        update_row(identity, [*changed, "updated_at"])
    return identity


@transaction.atomic
def identity_link(*, identity: Identity, customer: Customer, actor=None, source: str) -> Identity:
    """Move ``identity`` to ``customer``, recording how the link was made (verified, agent, suggested).

    Locks the identity row. The previous customer keeps its cases and other identities;
    linking never merges customers. Refuses a customer that was merged away.
    """
    if source not in Identity.LinkSource.values:
        raise CustomerRefused(f"'{source}' is not a link source.", field="source")
    if customer.merged_into_id is not None:
        raise CustomerRefused(
            f"{customer} was merged into another customer; link to that one.", field="customer"
        )
    identity = Identity.objects.select_for_update().get(pk=identity.pk)
    if identity.customer_id == customer.pk and identity.link_source == source:
        return identity
    identity.customer = customer
    identity.link_source = source
    identity.linked_by = actor
    identity.linked_at = timezone.now()
    identity.save(update_fields=["customer", "link_source", "linked_by", "linked_at", "updated_at"])
    return identity


# --- merges ------------------------------------------------------------------------------------


@transaction.atomic
def customer_merge_identities(*, source: Customer, target: Customer, actor) -> CustomerMerge:
    """The customers' part of a merge: ``source``'s identities move to ``target``, ``source`` is
    marked merged into it, and a ``CustomerMerge`` records what moved (with each identity's
    link as it was) so that ``customer_unmerge_identities`` can restore it.

    Locks both customer rows in id order (two opposite merges cannot deadlock). A VIP
    source makes the target VIP; a nameless target takes the source's name. Callers move
    the customer's cases (``cases.services.customer_merge``) in the same transaction.
    """
    if source.pk == target.pk:
        raise CustomerRefused("A customer cannot be merged into itself.", field="target")
    locked = {c.pk: c for c in Customer.objects.select_for_update().filter(pk__in=[source.pk, target.pk])}
    source, target = locked[source.pk], locked[target.pk]
    if source.merged_into_id is not None:
        raise CustomerRefused(f"{source} was already merged.", field="source")
    if target.merged_into_id is not None:
        raise CustomerRefused(f"{target} was merged into another customer.", field="target")

    moved = list(source.identities.select_for_update().order_by("pk"))
    merge = CustomerMerge.objects.create(
        source=source,
        target=target,
        actor=actor,
        identities=[
            {
                "id": i.pk,
                "link_source": i.link_source,
                "linked_by": i.linked_by_id,
                "linked_at": i.linked_at.isoformat() if i.linked_at else None,
            }
            for i in moved
        ],
        target_before={"name": target.name, "tier": target.tier},
    )
    now = timezone.now()
    Identity.objects.filter(pk__in=[i.pk for i in moved]).update(
        customer=target, link_source=Identity.LinkSource.AGENT, linked_by=actor, linked_at=now, updated_at=now
    )
    if not target.name and source.name:
        target.name = source.name
    if source.tier == Customer.Tier.VIP:
        target.tier = Customer.Tier.VIP
    target.save(update_fields=["name", "tier", "updated_at"])
    source.merged_into = target
    source.save(update_fields=["merged_into", "updated_at"])
    # Open suggestions between the two are settled by the merge.
    IdentitySuggestion.objects.filter(
        status=IdentitySuggestion.Status.OPEN,
        customer__in=[source, target],
        identity__customer=target,
    ).update(status=IdentitySuggestion.Status.ACCEPTED, decided_at=now, decided_by=actor)
    return merge


def customer_merge_record_cases(*, merge: CustomerMerge, case_ids: list[int]) -> CustomerMerge:
    """Note on ``merge`` the ids of the cases its caller moved (inside the merge's transaction)."""
    merge.case_ids = sorted(case_ids)
    merge.save(update_fields=["case_ids"])
    return merge


@transaction.atomic
def customer_unmerge_identities(*, source: Customer, actor) -> CustomerMerge:
    """Undo the customers' part of ``source``'s merge: its identities go back, with their links
    as they were, ``source`` is a customer of its own again, the target's name and tier are
    restored when the merge changed them. Returns the merge, marked undone.

    An identity linked elsewhere since the merge stays where it is. Locks both customers
    (id order). Refuses a customer that is not merged, or whose target was merged on since.
    """
    merge = (
        CustomerMerge.objects.select_for_update()
        .filter(source_id=source.pk, undone_at__isnull=True)
        .order_by("-id")
        .first()
    )
    if merge is None:
        raise CustomerRefused(f"{source} is not merged into another customer.", field="source")
    locked = {
        c.pk: c
        for c in Customer.objects.select_for_update().filter(pk__in=[merge.source_id, merge.target_id])
    }
    source, target = locked[merge.source_id], locked[merge.target_id]
    if target.merged_into_id is not None:
        raise CustomerRefused(
            f"{target} was merged into another customer since; undo that merge first.", field="source"
        )
    now = timezone.now()
    for row in merge.identities:
        Identity.objects.filter(pk=row["id"], customer=target).update(
            customer=source,
            link_source=row["link_source"],
            linked_by_id=row["linked_by"],
            linked_at=row["linked_at"] or now,
            updated_at=now,
        )
    before = merge.target_before or {}
    changed = []
    for name in ("name", "tier"):
        if name in before and getattr(target, name) != before[name]:
            setattr(target, name, before[name])
            changed.append(name)
    if changed:
        target.save(update_fields=[*changed, "updated_at"])
    source.merged_into = None
    source.save(update_fields=["merged_into", "updated_at"])
    merge.undone_at, merge.undone_by = now, actor
    merge.save(update_fields=["undone_at", "undone_by"])
    return merge


# --- suggestions -------------------------------------------------------------------------------


def contact_values(text: str) -> dict[tuple[str, str], str]:
    """E-mail addresses and phone numbers written in ``text``: ``{(kind, canonical): as written}``.

    A phone number is looked for as a phone and as a WhatsApp identity (the same E.164 id).
    """
    found: dict[tuple[str, str], str] = {}
    for raw in EMAIL_RE.findall(text or ""):
        try:
            found.setdefault(("email", normalize_email(raw.strip("."))), raw)
        except ValidationError:
            continue
    if PHONE_HINT_RE.search(text or ""):
        for match in phonenumbers.PhoneNumberMatcher(text, settings.DEFAULT_PHONE_REGION):
            number = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            for kind in sorted(PHONE_KINDS):
                found.setdefault((kind, number), match.raw_string)
    return dict(list(found.items())[:MAX_CANDIDATES])


def identity_suggestions_record(
    *,
    customer: Customer,
    text: str,
    source_message_id: int | None = None,
    author: Identity | None = None,
    before_lookup=None,
    returning: bool = True,
    ours: Callable[[], Collection[tuple[str, str]]] | None = None,
) -> list[IdentitySuggestion]:
    """Record a suggestion for each e-mail address or phone number in ``text`` that is not
    ``customer``'s identity already; returns the open suggestions this text gave (new or
    already open), or ``[]`` without ``returning``.

    An address or number that is another customer's identity is suggested as that identity
    (a phone number matches phone and WhatsApp identities alike); one that is nobody's is
    suggested as a new contact detail: an address as ``email``, a number once, as ``phone``.
    Never links, creates or merges anything. A value already suggested to the customer (open,
    accepted or dismissed, of either kind) is not suggested again.

    ``ours``, when given, returns the company's own (kind, canonical id) values, which are never
    suggested (``connectors.own_contacts.own_contact_values``: the support address, the hotline);
    it is called only when the text holds a value.

    Costs no query when the text holds no address or number other than the ``author``
    identity's own (and the company's list, read at most once a minute); otherwise one look-up of the identities, and, unless every value is the
    customer's own, one INSERT (values suggested before are skipped by the unique constraint)
    and, with ``returning``, one read of the open suggestions (ingest passes
    ``returning=False``). ``before_lookup``, when given, is called before identities are looked
    up (the inbox batch writes the rows it holds back then: the suggestion refers to the
    customer).
    """
    values = contact_values(text)
    if author is not None:
        # The author's own address or number (a caller's number in a call's text) is no news.
        for kind in PHONE_KINDS if author.kind in PHONE_KINDS else (author.kind,):
            values.pop((kind, author.platform_id), None)
    if values and ours is not None:
        own = ours()  # the support address, the hotline: never the customer's
        values = {key: raw for key, raw in values.items() if key not in own}
    if not values:
        return []
    if before_lookup is not None:
        before_lookup()  # a caller holding rows back writes them now (the inbox batch)
    by_kind: dict[str, list[str]] = {}
    for kind, platform_id in values:
        by_kind.setdefault(kind, []).append(platform_id)
    query = Identity.objects.none()
    for kind, ids in by_kind.items():
        query |= Identity.objects.filter(kind=kind, platform_id__in=ids)
    known = list(query.values_list("pk", "kind", "platform_id", "customer_id", "customer__merged_into_id"))
    known_keys = {(kind, platform_id) for _, kind, platform_id, _, _ in known}
    known_numbers = {platform_id for kind, platform_id in known_keys if kind in PHONE_KINDS}
    rows = [
        IdentitySuggestion(
            customer=customer,
            kind=kind,
            platform_id=platform_id,
            identity_id=pk,
            value=values[(kind, platform_id)][:255],
            source_message_id=source_message_id,
        )
        for pk, kind, platform_id, owner_id, merged_into_id in known
        if owner_id != customer.pk and merged_into_id is None
    ]
    for (kind, platform_id), raw in values.items():
        # Nobody's: a number once, as a phone (WhatsApp identities come from WhatsApp itself).
        if (kind, platform_id) in known_keys or kind == "whatsapp" or platform_id in known_numbers:
            continue
        rows.append(
            IdentitySuggestion(
                customer=customer,
                kind=kind,
                platform_id=platform_id,
                value=raw[:255],
                source_message_id=source_message_id,
            )
        )
    if not rows:
        return []
    IdentitySuggestion.objects.bulk_create(rows, ignore_conflicts=True)
    if not returning:
        return []
    match = Q()
    for row in rows:
        match |= Q(kind=row.kind, platform_id=row.platform_id)
    return list(
        IdentitySuggestion.objects.filter(match, customer=customer, status=IdentitySuggestion.Status.OPEN)
        .select_related("identity")
        .order_by("pk")
    )


@transaction.atomic
def identity_suggestion_accept(*, suggestion: IdentitySuggestion, actor) -> Identity:
    """An agent confirms a suggestion; returns the identity, now the suggested customer's (link
    source ``suggested``, linked by ``actor``, at the time of the decision).

    Another customer's identity is linked to the suggested customer (``identity_link``): its
    old customer keeps their cases; merging is a separate, explicit act. A new contact detail
    becomes an identity of the suggested customer; if it has become someone else's identity
    since, that identity is linked as above, and if it has become the customer's own, only the
    suggestion changes (it keeps ``identity`` empty: it names what was suggested then).
    Locks the suggestion (a second decision is refused: ``CustomerRefused`` naming
    ``suggestion``); refuses a customer merged away. Publishes nothing:
    ``cases.suggestions.suggestion_accept`` tells the pages of the customer's cases.
    """
    suggestion = (
        IdentitySuggestion.objects.select_for_update(of=("self",))
        .select_related("identity", "customer")
        .get(pk=suggestion.pk)
    )
    if suggestion.status != IdentitySuggestion.Status.OPEN:
        raise CustomerRefused(f"This suggestion was already {suggestion.status}.", field="suggestion")
    customer = suggestion.customer
    identity = suggestion.identity
    if identity is None:
        identity = _new_contact_identity(suggestion=suggestion, actor=actor)
    if identity.customer_id != customer.pk:
        identity = identity_link(
            identity=identity, customer=customer, actor=actor, source=Identity.LinkSource.SUGGESTED
        )
    suggestion.status = IdentitySuggestion.Status.ACCEPTED
    suggestion.decided_at, suggestion.decided_by = timezone.now(), actor
    suggestion.save(update_fields=["status", "decided_at", "decided_by"])
    return identity


def _new_contact_identity(*, suggestion: IdentitySuggestion, actor) -> Identity:
    """The identity a new-contact suggestion names: created on its customer, else (written since,
    by anyone) the one that exists now."""
    customer = suggestion.customer
    existing = Identity.objects.filter(kind=suggestion.kind, platform_id=suggestion.platform_id).first()
    if existing is not None:
        return existing
    if customer.merged_into_id is not None:
        raise CustomerRefused(
            f"{customer} was merged into another customer; link to that one.", field="customer"
        )
    try:
        with transaction.atomic():
            return Identity.objects.create(
                customer=customer,
                kind=suggestion.kind,
                platform_id=suggestion.platform_id,
                link_source=Identity.LinkSource.SUGGESTED,
                linked_by=actor,
            )
    except IntegrityError:  # the same value arrived meanwhile (a call from the number)
        return Identity.objects.get(kind=suggestion.kind, platform_id=suggestion.platform_id)


@transaction.atomic
def identity_suggestion_dismiss(*, suggestion: IdentitySuggestion, actor) -> IdentitySuggestion:
    """An agent says the suggestion is wrong; it is kept, dismissed, and never made again."""
    updated = IdentitySuggestion.objects.filter(
        pk=suggestion.pk, status=IdentitySuggestion.Status.OPEN
    ).update(status=IdentitySuggestion.Status.DISMISSED, decided_at=timezone.now(), decided_by=actor)
    suggestion.refresh_from_db()
    if not updated and suggestion.status != IdentitySuggestion.Status.DISMISSED:
        raise CustomerRefused(f"This suggestion was already {suggestion.status}.", field="suggestion")
    return suggestion
