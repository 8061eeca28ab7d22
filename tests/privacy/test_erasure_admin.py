"""The erasure record is readable by admins in the admin pages and cannot be edited there."""

from __future__ import annotations

from django.urls import reverse

from customers.models import ErasureRequest
from tests import factories


def test_admins_read_erasure_requests_but_cannot_change_them(client, db):
    root = factories.UserFactory(username="root", email="root@example.test", is_staff=True, is_superuser=True)
    client.force_login(root)
    admin_client = client
    request = ErasureRequest.objects.create(
        source=ErasureRequest.Source.META, status=ErasureRequest.Status.NO_MATCH, confirmation_code="c0de-1"
    )

    listing = admin_client.get(reverse("admin:customers_erasurerequest_changelist"), {"q": "c0de"})
    assert listing.status_code == 200
    assert "c0de-1" in listing.content.decode()
    assert admin_client.get(reverse("admin:customers_erasurerequest_add")).status_code == 403
    detail = admin_client.get(reverse("admin:customers_erasurerequest_change", args=[request.pk]))
    assert detail.status_code == 200
    assert 'name="status"' not in detail.content.decode()  # read-only: no form field to change it
    assert (
        admin_client.post(reverse("admin:customers_erasurerequest_delete", args=[request.pk])).status_code
        == 403
    )
    assert ErasureRequest.objects.filter(pk=request.pk).exists()
