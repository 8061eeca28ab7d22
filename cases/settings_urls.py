"""The admins' settings pages, mounted at ``/desk/settings/`` (``cases.settings_views``)."""

from django.urls import path

from . import department_settings_views
from . import settings_views as views

app_name = "settings"

urlpatterns = [
    path("", views.index, name="index"),
    path("channels/<int:pk>/", views.channel_settings, name="channel"),
    path("channels/<int:pk>/promise/", views.promise_save, name="promise_save"),
    path("channels/<int:pk>/preview/", views.promise_preview, name="preview"),
    path("channels/<int:pk>/ladder/", views.ladder_create, name="ladder_create"),
    path("channels/<int:pk>/ladder/<int:path_id>/", views.ladder_save, name="ladder_save"),
    path("calendars/new/", views.calendar_new, name="calendar_new"),
    path("calendars/<int:pk>/", views.calendar_settings, name="calendar"),
    path("departments/", department_settings_views.department_targets, name="departments"),
    path("departments/<int:pk>/", department_settings_views.department_target_save, name="department_target"),
]
