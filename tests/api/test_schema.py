"""The OpenAPI schema: valid, free of warnings, identical to docs/openapi.yaml, and browsable offline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

COMMITTED = Path(django_settings.BASE_DIR) / "docs" / "openapi.yaml"


@pytest.fixture
def generated(schema_settings, tmp_path) -> str:
    """``manage.py spectacular --validate --fail-on-warn``: raises on any warning or invalid schema."""
    target = tmp_path / "openapi.yaml"
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--urlconf", "tests.api.urls", "--file", str(target)
    )
    return target.read_text()


def test_the_schema_has_no_warnings_and_matches_docs_openapi_yaml(generated):
    assert COMMITTED.exists(), "run: manage.py spectacular --file docs/openapi.yaml"
    assert generated == COMMITTED.read_text(), (
        "docs/openapi.yaml is out of date: regenerate it with "
        "`manage.py spectacular --file docs/openapi.yaml` and commit it"
    )


def test_the_schema_documents_every_error_and_both_ways_in(generated):
    assert "tokenAuth" in generated and "cookieAuth" in generated
    assert "$ref: '#/components/schemas/Error'" in generated


def test_schema_swagger_and_redoc_are_served_without_the_internet(client, schema_settings):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/cases/" in schema.content and b"/api/schema/" not in schema.content
    for page in ("/api/schema/swagger-ui/", "/api/schema/redoc/"):
        response = client.get(page)
        html = response.content.decode()
        assert response.status_code == 200, page
        assert "drf_spectacular_sidecar" in html, page
        assert not re.search(r"https?://(?!testserver)", html), f"{page} fetches from another host"
        assert "<script>" not in html, f"{page} has an inline script the CSP would block"
        policy = response["Content-Security-Policy"]
        assert "script-src 'self';" in policy + ";" and "'unsafe-inline'" in policy, page
    script = client.get("/api/schema/swagger-ui/?script=")
    assert script.status_code == 200 and b"SwaggerUIBundle" in script.content


def test_only_the_readers_relax_the_content_security_policy(client, world):
    client.force_login(world.agent)
    assert "'unsafe-inline'" not in client.get("/api/v1/departments/")["Content-Security-Policy"]
