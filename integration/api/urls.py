from django.urls import path

from integration.api import app_views, auth_views, partner_views

urlpatterns = [
    # Partner API (spec: loverescue-integration-api.md)
    path("api/integration/auth", auth_views.IntegrationAuthView.as_view(), name="lr-auth"),
    path("api/integration/clients", partner_views.ClientListView.as_view(), name="lr-clients"),
    path(
        "api/integration/clients/<uuid:client_id>/progress",
        partner_views.ClientProgressView.as_view(),
        name="lr-client-progress",
    ),
    path(
        "api/integration/clients/<uuid:client_id>/session-prep",
        partner_views.SessionPrepView.as_view(),
        name="lr-client-session-prep",
    ),
    path(
        "api/integration/clients/<uuid:client_id>/assign", partner_views.AssignView.as_view(), name="lr-client-assign"
    ),
    path(
        "api/integration/couples/<uuid:couple_id>/dynamics",
        partner_views.CoupleDynamicsView.as_view(),
        name="lr-couple-dynamics",
    ),
    path("api/integration/alerts", partner_views.AlertListView.as_view(), name="lr-alerts"),
    path("api/integration/alerts/<uuid:alert_id>/read", partner_views.AlertReadView.as_view(), name="lr-alert-read"),
    path("api/integration/outcomes", partner_views.OutcomesView.as_view(), name="lr-outcomes"),
    path("api/integration/webhook/register", partner_views.WebhookRegisterView.as_view(), name="lr-webhook-register"),
    # The LoveRescue app, as the client (platform token)
    path("api/app/checkins", app_views.CheckInView.as_view(), name="lr-app-checkins"),
    path("api/app/ratios", app_views.RatioView.as_view(), name="lr-app-ratios"),
    path("api/app/activities", app_views.ActivityView.as_view(), name="lr-app-activities"),
    path("api/app/assessments", app_views.AssessmentView.as_view(), name="lr-app-assessments"),
    path("api/app/journal", app_views.JournalView.as_view(), name="lr-app-journal"),
    path("api/app/therapist-links", app_views.TherapistLinkListView.as_view(), name="lr-app-links"),
    path("api/app/therapist-links/<uuid:link_id>", app_views.TherapistLinkView.as_view(), name="lr-app-link"),
    path("api/app/tasks", app_views.TaskListView.as_view(), name="lr-app-tasks"),
    path("api/app/tasks/<uuid:task_id>/complete", app_views.TaskCompleteView.as_view(), name="lr-app-task-complete"),
]
