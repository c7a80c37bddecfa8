"""The project's URLs plus the benchmark's floor routes under /api/integration/_floor/, and the real caseload
views with the body cache off under /api/integration/_uncached/ (the LoveRescue family's prefix, so the same
envelope, rate policy and access log apply)."""

from django.test.utils import override_settings
from django.urls import include, path

from bench._loverescue_floor import FloorView
from integration.api.partner_views import ClientListView, OutcomesView


def _cache_off(view):
    """The view answering with the body cache off, as the first read after a write does (gunicorn's sync
    workers serve one request at a time, so the override cannot leak into another request)."""

    def uncached(request, *args, **kwargs):
        with override_settings(BODY_CACHE_SECONDS=0):
            return view(request, *args, **kwargs)

    return uncached


urlpatterns = [
    path("api/integration/_floor/clients", FloorView.as_view(), {"endpoint": "clients"}),
    path("api/integration/_floor/clients/<uuid:client_id>/progress", FloorView.as_view(), {"endpoint": "progress"}),
    path("api/integration/_floor/outcomes", FloorView.as_view(), {"endpoint": "outcomes"}),
    path("api/integration/_uncached/clients", _cache_off(ClientListView.as_view())),
    path("api/integration/_uncached/outcomes", _cache_off(OutcomesView.as_view())),
    path("", include("config.urls")),
]
