"""Meta's data-deletion callback: a signed_request verified with the Meta channels' app secret,
the matching customer erased, Meta answered with the status page URL and a confirmation code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from cases import privacy
from customers.models import Customer, ErasureRequest
from tests.faults import traffic

from .seed import DANA, messenger, seed

pytestmark = pytest.mark.django_db

URL = "/webhooks/meta/data-deletion/"
APP_SECRET = traffic.SECRET_VALUES[traffic.META_SECRETS["app_secret"]]


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed_request(payload, secret: str = APP_SECRET, *, raw: bytes | None = None) -> str:
    """Meta's format: base64url(HMAC-SHA256(secret, encoded payload)) + "." + base64url(JSON)."""
    encoded = b64url(raw if raw is not None else json.dumps(payload).encode())
    return b64url(hmac.new(secret.encode(), encoded.encode(), hashlib.sha256).digest()) + "." + encoded


def payload(user_id) -> dict:
    return {"algorithm": "HMAC-SHA256", "expires": 0, "issued_at": 1_700_000_000, "user_id": user_id}


def test_a_matching_customer_is_erased_and_meta_gets_the_status_page(
    client, platform_channels, media_root, admin_user, django_capture_on_commit_callbacks
):
    dana = seed(client, django_capture_on_commit_callbacks, DANA, actor=admin_user)
    client.logout()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, {"signed_request": signed_request(payload(DANA.fb_psid))})

    assert response.status_code == 200, response.content
    answer = response.json()
    erasure = ErasureRequest.objects.get(confirmation_code=answer["confirmation_code"])
    assert answer["url"] == f"{traffic.PUBLIC_URL}/privacy/deletion/{erasure.confirmation_code}/"
    assert erasure.source == "meta" and erasure.status == "completed" and erasure.customer_ids == [dana.pk]
    assert erasure.subject_digest == privacy.subject_digest("meta", DANA.fb_psid)
    assert DANA.fb_psid not in json.dumps([erasure.subject_digest, erasure.counts])
    assert Customer.objects.get(pk=dana.pk).erased_at is not None

    page = client.get(answer["url"].removeprefix(traffic.PUBLIC_URL))
    assert page.status_code == 200
    assert b"the personal data we held was erased" in page.content
    assert DANA.marker.encode() not in page.content and DANA.fb_psid.encode() not in page.content


def test_a_user_we_know_nothing_about_is_recorded_with_nothing_to_erase(client, platform_channels):
    response = client.post(URL, {"signed_request": signed_request(payload(123456789012))})

    assert response.status_code == 200
    erasure = ErasureRequest.objects.get(confirmation_code=response.json()["confirmation_code"])
    assert erasure.status == "no_match" and erasure.customer_ids == [] and erasure.completed_at
    page = client.get(f"/privacy/deletion/{erasure.confirmation_code}/")
    assert b"We hold no personal data for this account" in page.content
    assert client.get("/privacy/deletion/not-a-code/").status_code == 404


def test_a_forged_signature_is_refused_and_nothing_is_recorded(
    client, platform_channels, django_capture_on_commit_callbacks
):
    seeded = messenger(DANA)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            seeded.path,
            data=seeded.body,
            content_type="application/json",
            headers={k: v for k, v in seeded.headers.items() if k != "content-type"},
        )
    response = client.post(
        URL, {"signed_request": signed_request(payload(DANA.fb_psid), secret="not-our-secret")}
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_signature"
    assert not ErasureRequest.objects.exists()
    assert Customer.objects.filter(identities__platform_id=DANA.fb_psid, erased_at__isnull=True).exists()


GOOD = signed_request(payload("42"))


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({}, "signed_request", "signed_request is required."),
        ({"signed_request": ""}, "signed_request", "signed_request is required."),
        ({"signed_request": "no-dot-here"}, "signed_request", "must be '<signature>.<payload>'"),
        ({"signed_request": "a.b.c"}, "signed_request", "must be '<signature>.<payload>'"),
        ({"signed_request": GOOD.split(".")[0] + "."}, "signed_request", "must be '<signature>.<payload>'"),
        (
            {"signed_request": "abc*.def"},
            "signed_request",
            "signature part of signed_request is not base64url",
        ),
        (
            {"signed_request": b64url(b"short") + "." + GOOD.split(".")[1]},
            "signed_request",
            "not an HMAC-SHA256",
        ),
        (
            {"signed_request": signed_request(None, raw=b"\xff{not json")},
            "signed_request",
            "payload of signed_request is not JSON",
        ),
        ({"signed_request": signed_request(["a", "list"])}, "signed_request", "not a JSON object"),
        ({"signed_request": signed_request({"algorithm": "HMAC-SHA256"})}, "user_id", "user_id must be"),
        ({"signed_request": signed_request(payload(""))}, "user_id", "user_id must be"),
        ({"signed_request": signed_request(payload({"id": 1}))}, "user_id", "user_id must be"),
        (
            {"signed_request": signed_request({**payload("42"), "algorithm": "MD5"})},
            "algorithm",
            "Unsupported algorithm",
        ),
    ],
)
def test_malformed_requests_get_a_400_naming_the_field(client, platform_channels, form, field, message):
    response = client.post(URL, form)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field and message in error["message"]
    assert not ErasureRequest.objects.exists()


def test_bodies_that_are_not_forms_are_a_400_not_a_500(client, platform_channels):
    assert client.post(URL, data=b"\xff\xfe\x00", content_type="application/octet-stream").status_code == 400
    assert (
        client.post(
            URL, data=b"signed_request=%FF%FE.%00", content_type="application/x-www-form-urlencoded"
        ).status_code
        == 400
    )
    assert (
        client.post(URL, data=b"--x\r\nbroken", content_type="multipart/form-data; boundary=x").status_code
        == 400
    )
    assert client.get(URL).status_code == 405


def test_without_a_meta_app_secret_the_callback_is_unavailable(client, department):
    response = client.post(URL, {"signed_request": GOOD})
    assert response.status_code == 503 and response.json()["error"]["code"] == "not_configured"


def test_a_request_whose_task_was_lost_is_run_by_the_sweep(
    client, platform_channels, django_capture_on_commit_callbacks
):
    seeded = messenger(DANA)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            seeded.path,
            data=seeded.body,
            content_type="application/json",
            headers={k: v for k, v in seeded.headers.items() if k != "content-type"},
        )
    # the callback commits, but its queued task never runs (the capture drops it)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(URL, {"signed_request": signed_request(payload(DANA.fb_psid))})
    erasure = ErasureRequest.objects.get(confirmation_code=response.json()["confirmation_code"])
    assert erasure.status == "pending"
    page = client.get(f"/privacy/deletion/{erasure.confirmation_code}/")
    assert b"In progress" in page.content

    assert privacy.erasure_requests_sweep() == 0  # too recent: its task may still run
    assert privacy.erasure_requests_sweep(now=timezone.now() + timedelta(minutes=10)) == 1

    erasure.refresh_from_db()
    assert erasure.status == "completed" and erasure.counts["identities"] == 1
    assert Customer.objects.get(pk=erasure.customer_ids[0]).erased_at is not None
