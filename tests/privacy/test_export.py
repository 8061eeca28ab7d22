"""Exporting everything held about a customer: JSON and ZIP, from the API and the desk, for
the roles allowed, in a fixed number of queries."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from cases import permissions, privacy, services
from cases.models import Attachment
from connectors import api_tokens
from tests import factories

from .seed import DANA, OTHER, seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def dana(client, platform_channels, media_root, admin_user, django_capture_on_commit_callbacks):
    return seed(client, django_capture_on_commit_callbacks, DANA, actor=admin_user)


def test_the_json_export_holds_everything_of_theirs_and_nothing_of_others(client, dana, admin_user):
    client.force_login(admin_user)
    response = client.get(f"/api/v1/customers/{dana.pk}/export/")

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    document = response.json()
    assert document["format"] == "caseline-customer-export" and document["customer"]["id"] == dana.pk
    assert len(document["merged_customers"]) == 4
    assert {i["kind"] for i in document["identities"]} == {"x", "facebook", "whatsapp", "email", "phone"}
    assert all(i["provenance"]["link_source"] for i in document["identities"])
    assert len(document["messages"]) == 5 and len(document["inbound_events"]) == 6
    assert {m["kind"] for m in document["messages"]} == {"dm", "email", "call"}
    call = next(m for m in document["messages"] if m["kind"] == "call")
    assert f"RE{DANA.marker}" in call["recording_url"]
    (attachment,) = [a for m in document["messages"] for a in m["attachments"]]
    assert attachment["filename"] == f"{DANA.marker}-passport.txt"
    assert len(document["case_events"]) >= len(document["cases"]) >= 1
    assert len(document["merges"]) == 4 and document["identity_suggestions"]
    (survey,) = document["satisfaction_surveys"]
    assert survey["rating"] == 4 and survey["comment"] == f"{DANA.marker} says thanks"
    text = json.dumps(document)
    assert DANA.marker in text and OTHER.marker not in text


def test_the_zip_export_carries_the_attachment_files(client, dana, admin_user):
    client.force_login(admin_user)
    response = client.get(f"/api/v1/customers/{dana.pk}/export/?format=zip")

    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert f"customer-{dana.pk}-export-" in response["Content-Disposition"]
    bundle = zipfile.ZipFile(io.BytesIO(response.content))
    document = json.loads(bundle.read("customer.json"))
    (path,) = [a["file"] for m in document["messages"] for a in m["attachments"]]
    assert path.startswith("attachments/") and path in bundle.namelist()
    assert bundle.read(path) == f"{DANA.marker} passport number 12345".encode()
    assert "missing_files.txt" not in bundle.namelist()


def test_an_unknown_format_is_refused_naming_the_field(client, dana, admin_user):
    client.force_login(admin_user)
    response = client.get(f"/api/v1/customers/{dana.pk}/export/?format=xml")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_choice",
        "message": "'xml' is not one of json, zip.",
        "field": "format",
    }


def test_who_may_export(client, customer, channel, identity, agent, supervisor, admin_user, other_department):
    case = services.case_open(customer=customer, channel=channel, subject="Router")
    elsewhere = factories.CustomerFactory(name="Elsewhere")
    services.case_open(customer=elsewhere, channel=channel, department=other_department)
    _, read_key = api_tokens.api_token_create(user=supervisor, name="DSAR", scope="read")

    def status(user, customer_id):
        client.force_login(user)
        return client.get(f"/api/v1/customers/{customer_id}/export/").status_code

    assert case.customer_id == customer.pk
    assert status(admin_user, customer.pk) == 200
    assert status(admin_user, elsewhere.pk) == 200
    assert status(supervisor, customer.pk) == 200
    assert status(supervisor, elsewhere.pk) == 404  # a customer they cannot see is not there
    assert status(agent, customer.pk) == 403
    client.logout()
    assert client.get(f"/api/v1/customers/{customer.pk}/export/").status_code in (401, 403)
    by_token = client.get(f"/api/v1/customers/{customer.pk}/export/", HTTP_AUTHORIZATION=f"Token {read_key}")
    assert by_token.status_code == 200
    assert permissions.can_export_customer(supervisor, customer) and not permissions.can_export_customer(
        agent, customer
    )


def _customer_with(cases: int, channel, department) -> object:
    customer = factories.CustomerFactory()
    identity = factories.IdentityFactory(
        customer=customer, kind="x", platform_id=str(7_000_000 + customer.pk)
    )
    for n in range(cases):
        case = services.case_open(customer=customer, channel=channel, department=department)
        for m in range(3):
            message = services.message_add(
                case=case, direction="in", kind="dm", channel=channel, identity=identity, text=f"m{n}.{m}"
            )
            Attachment.objects.create(
                message=message, filename=f"a{n}.{m}.png", external_url="https://x.test/a.png"
            )
    return customer


def test_the_export_costs_the_same_queries_for_one_case_or_many(
    channel, department, django_assert_num_queries
):
    small = _customer_with(1, channel, department)
    large = _customer_with(6, channel, department)
    with django_assert_num_queries(10):
        privacy.customer_export(customer=small)
    with django_assert_num_queries(10):
        document = privacy.customer_export(customer=large)
    assert len(document["cases"]) == 6 and len(document["messages"]) == 18


def test_the_desk_page_offers_export_to_supervisors_and_erasure_to_admins(
    client, customer, channel, identity, agent, supervisor, admin_user
):
    services.case_open(customer=customer, channel=channel)
    client.force_login(supervisor)
    page = client.get(f"/privacy/customers/{customer.pk}/")
    assert page.status_code == 200
    assert b"Export as ZIP" in page.content and b"Erase personal data" not in page.content
    download = client.get(f"/privacy/customers/{customer.pk}/export/?format=json")
    assert download.status_code == 200 and json.loads(download.content)["customer"]["id"] == customer.pk
    assert client.get(f"/privacy/customers/{customer.pk}/export/?format=pdf").status_code == 400
    assert (
        client.post(f"/privacy/customers/{customer.pk}/erase/", {"confirm": customer.pk}).status_code == 403
    )

    client.force_login(agent)
    assert client.get(f"/privacy/customers/{customer.pk}/").status_code == 403

    client.force_login(admin_user)
    page = client.get(f"/privacy/customers/{customer.pk}/")
    assert b"Erase personal data" in page.content
    wrong = client.post(f"/privacy/customers/{customer.pk}/erase/", {"confirm": "999999"})
    assert wrong.status_code == 400 and f"Type {customer.pk} to confirm".encode() in wrong.content
    done = client.post(f"/privacy/customers/{customer.pk}/erase/", {"confirm": f"#{customer.pk}"})
    assert done.status_code == 302
    customer.refresh_from_db()
    assert customer.erased_at is not None and customer.name == f"Erased customer #{customer.pk}"
    page = client.get(done["Location"])
    assert b"was erased on" in page.content and b"Erase personal data" not in page.content


def test_the_desk_page_costs_the_same_queries_however_many_erasures_it_lists(
    client, channel, department, admin_user, django_assert_num_queries
):
    customer = _customer_with(2, channel, department)
    client.force_login(admin_user)
    client.get(f"/privacy/customers/{customer.pk}/")  # session and user warmed
    with django_assert_num_queries(8):
        assert client.get(f"/privacy/customers/{customer.pk}/").status_code == 200
    privacy.customer_erase(customer=customer, actor=admin_user)
    with django_assert_num_queries(8):
        page = client.get(f"/privacy/customers/{customer.pk}/")
    assert b"Erasures" in page.content and b"confirmation" in page.content


def test_the_api_reads_only_json_bodies(client, customer, channel, admin_user):
    services.case_open(customer=customer, channel=channel)
    client.force_login(admin_user)
    response = client.post(f"/api/v1/customers/{customer.pk}/erase/", {"confirm": customer.pk})
    assert response.status_code == 415
    customer.refresh_from_db()
    assert customer.erased_at is None
