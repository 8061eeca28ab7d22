"""The site's URLs plus the API's, for tests that run before ``config/urls.py`` mounts the API.

Once ``config/urls.py`` mounts them itself, this adds nothing.
"""

from django.urls import include, path

from config.urls import urlpatterns as site_urlpatterns

mounted = {str(pattern.pattern) for pattern in site_urlpatterns}

urlpatterns = list(site_urlpatterns)
if "api/v1/" not in mounted:
    urlpatterns.append(path("api/v1/", include("cases.api.urls")))
if "api/" not in mounted:
    urlpatterns.append(path("api/", include("cases.api.schema_urls")))
