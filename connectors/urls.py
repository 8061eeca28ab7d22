from django.urls import path

from . import alerts, meta_deletion, views

app_name = "webhooks"

urlpatterns = [
    # Meta's data-deletion callback (not a channel's webhook: one per Meta app).
    path("meta/data-deletion/", meta_deletion.data_deletion, name="meta-data-deletion"),
    # Monitoring systems' alerts (per alert source, not a channel).
    path("alerts/<slug:slug>/", alerts.alert_webhook, name="alerts"),
    path("<slug:slug>/", views.webhook, name="webhook"),
]
