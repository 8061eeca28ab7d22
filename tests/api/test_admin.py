"""The admin pages of tokens, webhook subscriptions and their delivery log."""

from __future__ import annotations

from django.contrib.messages import get_messages

from connectors import webhooks_out
from connectors.models import ApiToken, WebhookSubscription

from .conftest import session_client


def _admin_client(world):
    world.admin.is_superuser = True
    world.admin.save()
    return session_client(world.admin)


def test_admin_lists_render(world):
    client = _admin_client(world)
    webhooks_out.webhook_subscription_create(
        name="BI", url="https://bi.example.test/h", event_types=["case.created"], actor=world.admin
    )
    webhooks_out.emit("case.created", {"id": 1})
    for name in ("apitoken", "webhooksubscription", "webhookdelivery"):
        response = client.get(f"/admin/connectors/{name}/")
        assert response.status_code == 200, name
    token_page = client.get("/admin/connectors/apitoken/").content.decode()
    assert "clt_" in token_page and "key_hash" not in token_page


def test_adding_a_subscription_in_the_admin_shows_its_secret_once(world):
    client = _admin_client(world)
    response = client.post(
        "/admin/connectors/webhooksubscription/add/",
        {
            "name": "Ops",
            "url": "https://ops.example.test/hook",
            "event_types": ["sla.breached"],
            "is_active": "on",
        },
        follow=True,
    )
    assert response.status_code == 200
    subscription = WebhookSubscription.objects.get(name="Ops")
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert any(webhooks_out.subscription_secret(subscription) in text for text in shown)
    assert subscription.created_by == world.admin and subscription.event_types == ["sla.breached"]


def test_the_admin_revokes_tokens(world):
    client = _admin_client(world)
    ids = list(ApiToken.objects.values_list("pk", flat=True))
    client.post("/admin/connectors/apitoken/", {"action": "revoke", "_selected_action": ids}, follow=True)
    assert not ApiToken.objects.filter(revoked_at__isnull=True).exists()
