"""Personal API tokens: create (the key is shown once), list, revoke, and authenticate a key.

Only a SHA-256 digest of each key is stored; authentication is one indexed lookup of
that digest. ``last_used_at`` is written at most once a minute per token.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from cases import permissions
from cases.errors import NotPermitted, ServiceError

from .models import ApiToken

KEY_PREFIX = "clt_"
# Characters of the key kept in clear to tell tokens apart in a list ("clt_" + 8).
SHOWN_CHARS = 12
TOUCH_INTERVAL = timedelta(minutes=1)
MAX_ACTIVE_TOKENS = 50


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@transaction.atomic
def api_token_create(*, user, name: str, scope: str = ApiToken.Scope.WRITE) -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns ``(token, key)``. The key is never stored or shown again.

    Refuses a blank name, an unknown scope and more than ``MAX_ACTIVE_TOKENS`` live tokens.
    """
    name = (name or "").strip()
    if not name:
        raise ServiceError("Give the token a name.", field="name")
    if scope not in ApiToken.Scope.values:
        raise ServiceError(f"'{scope}' is not a token scope.", field="scope")
    if not (user and user.is_authenticated and user.is_active):
        raise NotPermitted("Only a signed-in user can create tokens.")
    if ApiToken.objects.filter(user=user, revoked_at__isnull=True).count() >= MAX_ACTIVE_TOKENS:
        raise ServiceError(
            f"You have {MAX_ACTIVE_TOKENS} active tokens; revoke one first.", code="too_many_tokens"
        )
    key = _new_key()
    token = ApiToken.objects.create(
        user=user, name=name[:120], scope=scope, prefix=key[:SHOWN_CHARS], key_hash=key_digest(key)
    )
    return token, key


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor) -> ApiToken:
    """Revoke ``token`` (its owner, or an admin); revoking twice keeps the first time."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if actor is None or (token.user_id != actor.pk and not permissions.is_admin(actor)):
        raise NotPermitted("You can revoke only your own tokens.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_token_authenticate(*, key: str) -> ApiToken | None:
    """The live token for ``key`` with its user, or None (unknown, revoked, or the user is inactive).

    Marks it used when its last use is more than a minute old (one conditional UPDATE).
    """
    if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=key_digest(key), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_INTERVAL:
        # Conditional, so concurrent requests write once and a stale read never moves it back.
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - TOUCH_INTERVAL)
        ).update(last_used_at=now)
        token.last_used_at = now
    return token
