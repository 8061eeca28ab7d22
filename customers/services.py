"""Every write to customers and identities goes through here.

Who wrote a message is decided once, by ``identity_resolve``: a platform id seen
before always maps to the same Identity and so the same Customer. Customers are
never merged on a guess: ``identity_link`` and ``customer_merge`` are explicit acts
(of an agent, or of ingest when the platform itself proved the link).
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from cases.errors import ServiceError
from cases.models import Case, CaseEvent
from channels_app import groups
from channels_app.publish import publish_on_commit

from .identifiers import normalize_platform_id
from .models import Customer, Identity


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


def identity_create(
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
    """Create the Identity for ``kind`` + ``platform_id``, on ``customer`` or on a new Customer
    named after it. No savepoint of its own: a second identity with the same id raises
    ``IntegrityError``, so call it inside a savepoint you roll back (``identity_resolve``
    does; the inbox batch retries the event)."""
    owner = customer or Customer.objects.create(name=(display_name or handle)[:200])
    return Identity.objects.create(
        customer=owner,
        kind=kind,
        platform_id=platform_id,
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
        identity.save(update_fields=[*changed, "updated_at"])
    return identity


@transaction.atomic
def identity_link(*, identity: Identity, customer: Customer, actor=None, source: str) -> Identity:
    """Move ``identity`` to ``customer``, recording how the link was made (verified, agent, suggested).

    Locks the identity row. The previous customer keeps its cases and other identities;
    linking never merges customers. Refuses a customer that was merged away.
    """
    if source not in Identity.LinkSource.values:
        raise ServiceError(f"'{source}' is not a link source.", field="source")
    if customer.merged_into_id is not None:
        raise ServiceError(
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


@transaction.atomic
def customer_merge(*, source: Customer, target: Customer, actor) -> Customer:
    """Merge ``source`` into ``target``: its identities and cases move, ``source.merged_into`` is set.

    Locks both customer rows (in id order, so two opposite merges cannot deadlock) and
    each moved case gets a ``merged`` CaseEvent naming both customers and the moved
    identities, so the merge can be read back (and undone) from the record. Returns
    the target.
    """
    if source.pk == target.pk:
        raise ServiceError("A customer cannot be merged into itself.", field="target")
    locked = {c.pk: c for c in Customer.objects.select_for_update().filter(pk__in=[source.pk, target.pk])}
    source, target = locked[source.pk], locked[target.pk]
    if source.merged_into_id is not None:
        raise ServiceError(f"{source} was already merged.", field="source")
    if target.merged_into_id is not None:
        raise ServiceError(f"{target} was merged into another customer.", field="target")

    identity_ids = list(source.identities.order_by("pk").values_list("pk", flat=True))
    now = timezone.now()
    Identity.objects.filter(pk__in=identity_ids).update(
        customer=target, link_source=Identity.LinkSource.AGENT, linked_by=actor, linked_at=now, updated_at=now
    )
    cases = list(Case.objects.select_for_update().filter(customer=source).order_by("pk"))
    CaseEvent.objects.bulk_create(
        CaseEvent(
            case=case,
            kind=CaseEvent.Kind.MERGED,
            actor=actor,
            before={"customer": source.pk},
            after={"customer": target.pk, "identities": identity_ids},
            reason=f"Customer #{source.pk} merged into customer #{target.pk}.",
        )
        for case in cases
    )
    Case.objects.filter(pk__in=[c.pk for c in cases]).update(customer=target, updated_at=now)
    if not target.name and source.name:
        target.name = source.name
    if source.tier == Customer.Tier.VIP:
        target.tier = Customer.Tier.VIP
    target.save(update_fields=["name", "tier", "updated_at"])
    source.merged_into = target
    source.save(update_fields=["merged_into", "updated_at"])
    for case in cases:
        publish_on_commit(
            event={
                "type": "case.changed",
                "change": "customer",
                "case_id": case.pk,
                "reference": case.reference,
            },
            groups=[groups.case_group(case.pk), groups.department_group(case.department_id)],
        )
    return target
