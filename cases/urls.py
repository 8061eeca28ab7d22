from django.urls import path

from . import customer_panel_views, handoff_views, incident_views, search_views, views

app_name = "desk"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("search/", search_views.search, name="search"),
    path("board/", views.board, name="board"),
    path("board/reassign/", views.board_reassign, name="board_reassign"),
    path("incidents/", incident_views.incident_list, name="incidents"),
    path("incidents/<int:pk>/", incident_views.incident_detail, name="incident"),
    path("incidents/<int:pk>/reply/", incident_views.incident_reply, name="incident_reply"),
    path("incidents/<int:pk>/close/", incident_views.incident_close, name="incident_close"),
    path("customers/<int:pk>/", views.customer_detail, name="customer"),
    path("customers/<int:pk>/link/", views.customer_link, name="customer_link"),
    path("customers/<int:pk>/merge/", views.customer_merge, name="customer_merge"),
    path("customers/<int:pk>/unmerge/", views.customer_unmerge, name="customer_unmerge"),
    path(
        "customers/<int:pk>/suggestions/<int:suggestion_id>/accept/",
        views.customer_suggestion_accept,
        name="customer_suggestion_accept",
    ),
    path(
        "customers/<int:pk>/suggestions/<int:suggestion_id>/dismiss/",
        views.customer_suggestion_dismiss,
        name="customer_suggestion_dismiss",
    ),
    path("cases/<str:reference>/", views.case_detail, name="case"),
    path("cases/<str:reference>/live/", views.case_live, name="case_live"),
    path("cases/<str:reference>/claim/", views.case_claim, name="case_claim"),
    path("cases/<str:reference>/assign/", views.case_assign, name="case_assign"),
    path("cases/<str:reference>/reply/", views.case_reply, name="case_reply"),
    path("cases/<str:reference>/notes/", views.case_note, name="case_note"),
    path("cases/<str:reference>/calls/", views.case_call, name="case_call"),
    path("cases/<str:reference>/status/", views.case_status, name="case_status"),
    path("cases/<str:reference>/priority/", views.case_priority, name="case_priority"),
    path("cases/<str:reference>/transfer/", views.case_transfer, name="case_transfer"),
    path("cases/<str:reference>/escalate/", views.case_escalate, name="case_escalate"),
    path("cases/<str:reference>/accept/", handoff_views.case_accept, name="case_accept"),
    path("cases/<str:reference>/hand-back/", handoff_views.case_hand_back, name="case_hand_back"),
    path("cases/<str:reference>/monitor/", views.case_monitor, name="case_monitor"),
    path("cases/<str:reference>/respond/", views.case_respond, name="case_respond"),
    path("cases/<str:reference>/move-to-private/", views.case_move_private, name="case_move_private"),
    path("cases/<str:reference>/reply-lock/take/", views.case_take_over, name="case_take_over"),
    path(
        "cases/<str:reference>/suggestions/<int:suggestion_id>/accept/",
        customer_panel_views.case_suggestion_accept,
        name="case_suggestion_accept",
    ),
    path(
        "cases/<str:reference>/suggestions/<int:suggestion_id>/dismiss/",
        customer_panel_views.case_suggestion_dismiss,
        name="case_suggestion_dismiss",
    ),
]
