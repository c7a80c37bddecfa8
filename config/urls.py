from django.contrib import admin
from django.http import HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path

from core.ids import register_path_converters
from core.views import DeepHealthView, DocsView, HealthView, RedocView, RootView, SchemaView

register_path_converters()  # before any app's urls: they may use <org_id:...>, <pat_id:...>, ...


def favicon(request):
    # Browsers ask for /favicon.ico on every page whatever it links (a 404 is a console error): the static file,
    # by its current (hashed, in production) name, so a temporary redirect.
    return HttpResponseRedirect(static("core/favicon.ico"))


urlpatterns = [
    path("", RootView.as_view(), name="root"),
    path("health", HealthView.as_view(), name="health"),
    path("favicon.ico", favicon, name="favicon"),
    path("ops/health/", DeepHealthView.as_view(), name="deep-health"),
    path("admin/", admin.site.urls),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("docs", DocsView.as_view(url_name="schema"), name="docs"),
    path("redoc", RedocView.as_view(url_name="schema"), name="redoc"),
    path("", include("accounts.api.urls")),
    path("", include("messaging.api.urls")),
    path("", include("integration.api.urls")),
    path("", include("leads.api.urls")),
    path("", include("patients.api.urls")),
    path("", include("sync.api.urls")),
    path("", include("sessions_analytics.api.urls")),
]
