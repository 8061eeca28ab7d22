"""Saved views: an agent's own named queue filters (``cases.models.SavedView``).

The services (``saved_view_create``, ``saved_view_rename``, ``saved_view_delete``) write; the
selectors (``saved_views_of``, ``saved_view_of``) read. A view belongs to one agent: another
agent's view is never found (pages answer 404), never renamed, never deleted.

What is stored is the queue's own query string, reduced to its filters (``QUERY_KEYS``, in
that order, empty values left out): a page cursor or any other parameter is not part of a
view. The query is not trusted when it is opened: the queue's filter form checks it again
(a department the agent has since left, a channel kind that no longer exists), so a stale
view shows what still applies and says what does not.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.db import IntegrityError, transaction
from django.http import QueryDict

from .errors import NotPermitted, ServiceError
from .models import SavedView

# The queue's filters, in the order a stored query lists them.
QUERY_KEYS = ("view", "kind", "priority", "status", "department", "q")
NAME_MAX_LENGTH = SavedView._meta.get_field("name").max_length
QUERY_MAX_LENGTH = SavedView._meta.get_field("query").max_length


def normalize_query(query: str | QueryDict | dict) -> str:
    """The queue filters of ``query`` (a query string or a mapping) as a stored view keeps them."""
    data = QueryDict(query) if isinstance(query, str) else query
    pairs = []
    for key in QUERY_KEYS:
        value = data.get(key)
        value = "" if value is None else str(value).strip()
        if value:
            pairs.append((key, value))
    return urlencode(pairs)


def _clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ServiceError("Name: give the view a name.", field="name")
    if len(name) > NAME_MAX_LENGTH:
        raise ServiceError(f"Name: at most {NAME_MAX_LENGTH} characters.", field="name")
    return name


def _taken(user, name: str, *, exclude: int | None = None) -> bool:
    others = SavedView.objects.filter(user=user, name=name)
    if exclude is not None:
        others = others.exclude(pk=exclude)
    return others.exists()


def _duplicate(name: str) -> ServiceError:
    return ServiceError(f"Name: you already have a view called “{name}”.", code="duplicate", field="name")


@transaction.atomic
def saved_view_create(*, user, name: str, query: str) -> SavedView:
    """Save the queue filters ``query`` under ``name`` for ``user``.

    Guarantees: the name is trimmed and required, unique among ``user``'s views (a
    concurrent save of the same name loses with the same error, by the unique constraint);
    the query is reduced to the queue's filters (:func:`normalize_query`). Errors name the
    field (``name`` or ``query``) and write nothing.
    """
    if not (user and user.is_authenticated):
        raise NotPermitted("Sign in to save a view.")
    name = _clean_name(name)
    query = normalize_query(query or "")
    if len(query) > QUERY_MAX_LENGTH:
        raise ServiceError("Query: these filters are too long to save; shorten the search.", field="query")
    if _taken(user, name):
        raise _duplicate(name)
    try:
        with transaction.atomic():
            return SavedView.objects.create(user=user, name=name, query=query)
    except IntegrityError:
        raise _duplicate(name) from None


def _own(view: SavedView, user) -> None:
    if user is None or view.user_id != user.pk:
        raise NotPermitted("That view is someone else's.")


@transaction.atomic
def saved_view_rename(*, view: SavedView, user, name: str) -> SavedView:
    """Rename ``user``'s own ``view``; the same rules for the name as :func:`saved_view_create`."""
    _own(view, user)
    name = _clean_name(name)
    if name == view.name:
        return view
    if _taken(user, name, exclude=view.pk):
        raise _duplicate(name)
    try:
        with transaction.atomic():
            SavedView.objects.filter(pk=view.pk).update(name=name)
    except IntegrityError:
        raise _duplicate(name) from None
    view.name = name
    return view


@transaction.atomic
def saved_view_delete(*, view: SavedView, user) -> None:
    """Delete ``user``'s own ``view``."""
    _own(view, user)
    SavedView.objects.filter(pk=view.pk, user=user).delete()


# --- Selectors -------------------------------------------------------------------------------------


def saved_views_of(*, user) -> list[SavedView]:
    """``user``'s saved views by name: one query."""
    if not (user and user.is_authenticated):
        return []
    return list(
        SavedView.objects.filter(user=user).only("id", "user_id", "name", "query").order_by("name", "id")
    )


def saved_view_of(*, user, pk: int) -> SavedView | None:
    """``user``'s view ``pk``, or None when there is none or it is another agent's (pages 404)."""
    if not (user and user.is_authenticated):
        return None
    return SavedView.objects.filter(user=user, pk=pk).first()
