"""The site's URLs plus the API's, for tests that run before ``config/urls.py`` mounts the API.

Once ``config/urls.py`` mounts them itself, this adds nothing.
"""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config.urls import urlpatterns as site_urlpatterns

mounted = {str(pattern.pattern) for pattern in site_urlpatterns}

urlpatterns = list(site_urlpatterns)
if "api/v1/" not in mounted:
    urlpatterns.append(path("api/v1/", include("cases.api.urls")))
if "api/schema/" not in mounted:
    urlpatterns += [
        path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
        path("api/schema/swagger-ui/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
        path("api/schema/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    ]
