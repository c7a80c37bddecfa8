from django.urls import path

from patients.api import views

urlpatterns = [
    path("api/v1/patients", views.PatientListView.as_view(), name="mark-patients"),
    path("api/v1/patients/<pat_id:patient_id>", views.PatientDetailView.as_view(), name="mark-patient"),
]
