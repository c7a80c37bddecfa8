"""Therapist dashboard routes (spec: therapist-dashboard-api.md, plus the session collection of issue 13).
A session in the path is `<ses_id:...>` (core.ids), so `/api/session/progress` never matches the detail route."""

from django.urls import path

from sessions_analytics.api import views

urlpatterns = [
    path("api/session", views.SessionListView.as_view(), name="td-sessions"),
    path("api/session/progress", views.ProgressView.as_view(), name="td-progress"),
    path("api/session/snapshots", views.SnapshotsView.as_view(), name="td-snapshots"),
    path("api/session/skills", views.SkillsView.as_view(), name="td-skills"),
    path("api/session/analytics", views.AnalyticsView.as_view(), name="td-analytics"),
    path("api/session/comparison", views.ComparisonView.as_view(), name="td-comparison"),
    path("api/session/<ses_id:session_id>", views.SessionDetailView.as_view(), name="td-session"),
    path("api/evaluation", views.EvaluationView.as_view(), name="td-evaluation"),
]
