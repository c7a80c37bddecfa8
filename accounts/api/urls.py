from django.urls import path

from accounts.api.views import TokenView

urlpatterns = [path("api/v1/auth/token", TokenView.as_view(), name="auth-token")]
