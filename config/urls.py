from allauth.account.decorators import secure_admin_login
from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from cases import csat_views, privacy_urls, report_views

# The admin signs in through the same flow as the desk (password, then the second factor).
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="desk:queue", permanent=False)),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    # The language chooser posts to set_language here (a cookie; no language prefix in URLs).
    path("i18n/", include("django.conf.urls.i18n")),
    path("desk/settings/", include("cases.settings_urls")),
    path("desk/reports/", report_views.overview, name="reports"),
    path("desk/reports/<slug:figure>.csv", report_views.figure_csv, name="report-csv"),
    path("desk/reports/csat/", csat_views.csat_report, name="report-csat"),
    path("desk/reports/csat/export.csv", csat_views.csat_report_csv, name="report-csat-csv"),
    path("desk/", include("cases.urls")),
    path("desk/reports/promises/", report_views.promises, name="report-promises"),
    # A satisfaction survey's short signed link (no sign-in).
    path("s/<str:token>/", csat_views.survey, name="csat-survey"),
    path("s/<str:token>/opt-out/", csat_views.opt_out, name="csat-opt-out"),
    path("webhooks/", include("connectors.urls")),
    path("privacy/", include("cases.privacy_urls")),
    # Before the API's own routes, which end with a catch-all 404.
    path("api/v1/", include((privacy_urls.api_urlpatterns, "privacy-api"))),
    path("api/v1/", include("cases.api.urls")),
    path("api/", include("cases.api.schema_urls")),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
