from django.urls import path

from . import views

app_name = "desk"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("cases/<str:reference>/", views.case_detail, name="case"),
    path("cases/<str:reference>/claim/", views.case_claim, name="case_claim"),
    path("cases/<str:reference>/notes/", views.case_note, name="case_note"),
    path("cases/<str:reference>/status/", views.case_status, name="case_status"),
    path("cases/<str:reference>/priority/", views.case_priority, name="case_priority"),
]
