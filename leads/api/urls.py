from django.urls import path

from leads.api import views

urlpatterns = [
    # CareOS leads API (spec: careos-leads-api.md)
    path("api/leads/ingest", views.LeadIngestView.as_view(), name="careos-leads-ingest"),
]
