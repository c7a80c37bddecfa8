"""The project's URLs plus the benchmark's floor routes under /api/integration/_floor/ (the LoveRescue
family's prefix, so the same envelope, rate policy and access log apply)."""

from django.urls import include, path

from bench._loverescue_floor import FloorView

urlpatterns = [
    path("api/integration/_floor/clients", FloorView.as_view(), {"endpoint": "clients"}),
    path("api/integration/_floor/clients/<uuid:client_id>/progress", FloorView.as_view(), {"endpoint": "progress"}),
    path("api/integration/_floor/outcomes", FloorView.as_view(), {"endpoint": "outcomes"}),
    path("", include("config.urls")),
]
