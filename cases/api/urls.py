"""Routes of ``/api/v1/`` (mounted by ``config/urls.py``)."""

from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from . import views

app_name = "api"

router = SimpleRouter(use_regex_path=False)
router.register("customers", views.CustomerViewSet, basename="customer")
router.register("identities", views.IdentityViewSet, basename="identity")
router.register("identity-suggestions", views.IdentitySuggestionViewSet, basename="identity-suggestion")
router.register("cases", views.CaseViewSet, basename="case")
router.register("messages", views.MessageViewSet, basename="message")
router.register("case-events", views.CaseEventViewSet, basename="case-event")
router.register("departments", views.DepartmentViewSet, basename="department")
router.register("memberships", views.MembershipViewSet, basename="membership")
router.register("channels", views.ChannelViewSet, basename="channel")
router.register("calendars", views.CalendarViewSet, basename="calendar")
router.register("service-promises", views.ServicePromiseViewSet, basename="service-promise")
router.register("escalation-paths", views.EscalationPathViewSet, basename="escalation-path")
router.register("canned-replies", views.CannedReplyViewSet, basename="canned-reply")
router.register("incidents", views.IncidentViewSet, basename="incident")
router.register("tokens", views.ApiTokenViewSet, basename="token")
router.register("webhooks", views.WebhookSubscriptionViewSet, basename="webhook")

urlpatterns = [
    path("cases/<int:id>/timeline/", views.CaseTimelineView.as_view(), name="case-timeline"),
    path(
        "customers/<int:id>/suggestions/",
        views.CustomerSuggestionsView.as_view(),
        name="customer-suggestions",
    ),
    path(
        "webhooks/<int:id>/deliveries/",
        views.WebhookDeliveryListView.as_view(),
        name="webhook-deliveries",
    ),
    path("reports/promises/", views.PromiseReportView.as_view(), name="report-promises"),
    path("reports/figures/<str:figure>/", views.FigureReportView.as_view(), name="report-figure"),
    *router.urls,
    # Anything else under /api/v1/ is a 404 in the API's own shape, not the site's HTML page.
    re_path(r"^.*$", views.not_found),
]
