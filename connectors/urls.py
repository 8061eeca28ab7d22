from django.urls import path

from . import views

app_name = "webhooks"

urlpatterns = [
    path("<slug:slug>/", views.webhook, name="webhook"),
]
