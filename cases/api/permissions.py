"""DRF permission classes: each asks ``cases.permissions`` (the one rule book) and decides nothing itself.

Object-level rules for cases live in the querysets (a case the user may not see is a 404,
never a 403 that would reveal it) and in the services (``NotPermitted`` -> 403 when the
user sees a case but may not act on it).
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from cases import permissions


class IsMember(BasePermission):
    """Anyone with a role: an agent or supervisor of some department, or an admin."""

    message = "Only members of a department can use this."

    def has_permission(self, request, view) -> bool:
        return permissions.role_of(request.user) != "none"


class IsAdmin(BasePermission):
    message = "Only admins can do this."

    def has_permission(self, request, view) -> bool:
        return permissions.is_admin(request.user)


class MembersReadAdminsWrite(BasePermission):
    """Configuration (departments, channels, promises...): members read, admins change."""

    message = "Only admins change the configuration."

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return permissions.role_of(request.user) != "none"
        return permissions.is_admin(request.user)


class CanMergeCustomers(BasePermission):
    """Merging customers rewrites whose cases are whose: supervisors and admins."""

    message = "Only supervisors and admins merge customers."

    def has_permission(self, request, view) -> bool:
        return permissions.can_merge_customers(request.user)


class CanLinkIdentities(BasePermission):
    """Link identities, accept or dismiss suggested links (for customers the user sees)."""

    message = "Only members of a department link identities."

    def has_permission(self, request, view) -> bool:
        return permissions.can_link_identities(request.user)


class SessionOnly(BasePermission):
    """Token management needs the signed-in person, not a token: a leaked key cannot mint more."""

    message = "Manage API tokens while signed in, not with a token."

    def has_permission(self, request, view) -> bool:
        from connectors.models import ApiToken

        return bool(request.user and request.user.is_authenticated) and not isinstance(request.auth, ApiToken)


class CanSeeReports(BasePermission):
    message = "Reports are for supervisors and admins."

    def has_permission(self, request, view) -> bool:
        return permissions.can_see_reports(request.user)
