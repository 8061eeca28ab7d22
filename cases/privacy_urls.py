"""Privacy routes: the desk pages (mounted at ``/privacy/``) and the API's
(``api_urlpatterns``, mounted at ``/api/v1/`` before the API's own catch-all)."""

from django.urls import path

from . import privacy_views

app_name = "privacy"

urlpatterns = [
    path("customers/<int:pk>/", privacy_views.customer_privacy, name="customer"),
    path("customers/<int:pk>/export/", privacy_views.customer_export, name="export"),
    path("customers/<int:pk>/erase/", privacy_views.customer_erase, name="erase"),
    path("deletion/<str:code>/", privacy_views.deletion_status, name="deletion-status"),
]

api_urlpatterns = [
    path("customers/<int:id>/export/", privacy_views.CustomerExportApiView.as_view(), name="customer-export"),
    path("customers/<int:id>/erase/", privacy_views.CustomerEraseApiView.as_view(), name="customer-erase"),
]
