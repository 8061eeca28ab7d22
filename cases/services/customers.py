"""The cases' part of merging and unmerging customers (``customers.services`` does the rest).

Merging moves the source customer's cases to the target; unmerging moves back the cases
the merge moved; each case is announced.
"""

from __future__ import annotations

from django.db import transaction

from customers import services as customer_services
from customers.errors import CustomerRefused

from ..errors import ServiceError
from ..models import Case, CaseEvent
from .events import _announce, _now

# --- customers: merge and unmerge (the cases' part; customers.services does the rest) ----------


@transaction.atomic
def customer_merge(*, source, target, actor):
    """Merge customer ``source`` into ``target``: identities and cases move, ``source.merged_into`` is set.

    The customers' part (identities, the merge record) is
    ``customers.services.customer_merge_identities``; here each of ``source``'s cases
    is locked (id order), moved, and gets a ``merged`` CaseEvent naming both customers and
    the moved identities; the moved cases are noted on the merge record so
    ``customer_unmerge`` can put them back. Live ``case.changed`` events after commit.
    Refusals are ``ServiceError`` naming the field. Returns the target.
    """
    try:
        merge = customer_services.customer_merge_identities(source=source, target=target, actor=actor)
    except CustomerRefused as exc:
        raise ServiceError(exc.reason, field=exc.field) from exc
    identity_ids = [row["id"] for row in merge.identities]
    cases = list(Case.objects.select_for_update().filter(customer_id=merge.source_id).order_by("pk"))
    CaseEvent.objects.bulk_create(
        CaseEvent(
            case=case,
            kind=CaseEvent.Kind.MERGED,
            actor=actor,
            before={"customer": merge.source_id},
            after={"customer": merge.target_id, "identities": identity_ids},
            reason=f"Customer #{merge.source_id} merged into customer #{merge.target_id}.",
        )
        for case in cases
    )
    Case.objects.filter(pk__in=[c.pk for c in cases]).update(customer_id=merge.target_id, updated_at=_now())
    customer_services.customer_merge_record_cases(merge=merge, case_ids=[c.pk for c in cases])
    for case in cases:
        _announce(case, "customer")
    return merge.target


@transaction.atomic
def customer_unmerge(*, source, actor, reason: str = ""):
    """Undo ``source``'s merge: its identities and the cases the merge moved go back to it.

    The customers' part is ``customers.services.customer_unmerge_identities``; each case
    the merge moved that is still on the target is locked, moved back and gets a
    ``merged`` CaseEvent (before: the target, after: ``source``) with ``reason``. Cases
    the target opened since stay with the target. Returns ``source``, a customer of its
    own again. Refusals are ``ServiceError`` naming the field.
    """
    try:
        merge = customer_services.customer_unmerge_identities(source=source, actor=actor)
    except CustomerRefused as exc:
        raise ServiceError(exc.reason, field=exc.field) from exc
    cases = list(
        Case.objects.select_for_update()
        .filter(pk__in=merge.case_ids, customer_id=merge.target_id)
        .order_by("pk")
    )
    note = f"Merge of customer #{merge.source_id} into customer #{merge.target_id} undone."
    CaseEvent.objects.bulk_create(
        CaseEvent(
            case=case,
            kind=CaseEvent.Kind.MERGED,
            actor=actor,
            before={"customer": merge.target_id},
            after={"customer": merge.source_id, "identities": [row["id"] for row in merge.identities]},
            reason=f"{note} {reason}".strip(),
        )
        for case in cases
    )
    Case.objects.filter(pk__in=[c.pk for c in cases]).update(customer_id=merge.source_id, updated_at=_now())
    for case in cases:
        _announce(case, "customer")
    return merge.source
