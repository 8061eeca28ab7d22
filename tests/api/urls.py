"""The site's URLs plus the API's, for tests that run before ``config/urls.py`` mounts the API.

Once ``config/urls.py`` mounts them itself, this adds nothing. The schema views are kept
out of the schema whatever the import order (drf-spectacular reads SERVE_INCLUDE_SCHEMA
once, when its views module is first imported).
"""

from django.urls import include, path
from drf_spectacular.utils import extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config.urls import urlpatterns as site_urlpatterns

hidden = extend_schema_view(get=extend_schema(exclude=True))

mounted = {str(pattern.pattern) for pattern in site_urlpatterns}

urlpatterns = list(site_urlpatterns)
if "api/v1/" not in mounted:
    urlpatterns.append(path("api/v1/", include("cases.api.urls")))
if "api/schema/" not in mounted:
    urlpatterns += [
        path("api/schema/", hidden(type("SchemaView", (SpectacularAPIView,), {})).as_view(), name="schema"),
        path(
            "api/schema/swagger-ui/",
            hidden(type("SwaggerView", (SpectacularSwaggerView,), {})).as_view(url_name="schema"),
            name="swagger-ui",
        ),
        path(
            "api/schema/redoc/",
            hidden(type("RedocView", (SpectacularRedocView,), {})).as_view(url_name="schema"),
            name="redoc",
        ),
    ]
