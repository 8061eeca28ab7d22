"""The API's OpenAPI schema and its two readers, Swagger UI and ReDoc, served from this machine
(drf-spectacular-sidecar) under the site's Content-Security-Policy. Mounted at ``/api/``.

Swagger UI is the split variant (its start-up script is a separate file, not inline).
Both readers style their pages at run time, so these pages alone allow inline styles;
ReDoc's search runs in a blob: worker. Nothing is fetched from another host (ReDoc's stock
page links web fonts; this one does not).
"""

from __future__ import annotations

from csp.decorators import csp_update
from django.http import HttpResponse
from django.urls import path
from django.utils.html import format_html
from drf_spectacular.utils import extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

READER_CSP = {"style-src": ["'unsafe-inline'"], "worker-src": ["blob:"]}

hidden = extend_schema_view(get=extend_schema(exclude=True))


@hidden
class SchemaView(SpectacularAPIView):
    """The schema itself, as YAML (``?format=json`` for JSON); kept out of its own content."""


@hidden
class SwaggerView(SpectacularSwaggerSplitView):
    url_name = "api-schema"


@hidden
class RedocView(SpectacularRedocView):
    url_name = "api-schema"

    def get(self, request, *args, **kwargs):
        page = format_html(
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{}</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
            '<body><redoc spec-url="{}"></redoc><script src="{}"></script></body></html>',
            self.title,
            self._get_schema_url(request),
            self._redoc_standalone(),
        )
        return HttpResponse(page)


urlpatterns = [
    path("schema/", SchemaView.as_view(), name="api-schema"),
    path("schema/swagger-ui/", csp_update(READER_CSP)(SwaggerView.as_view()), name="api-swagger-ui"),
    path("schema/redoc/", csp_update(READER_CSP)(RedocView.as_view()), name="api-redoc"),
]
