# Production image: gunicorn for web; the same image runs `celery -A config worker` and `celery -A config beat`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# psycopg[binary] ships its own libpq: no compiler or system packages needed.
COPY requirements.txt .
RUN pip install -r requirements.txt

RUN useradd --create-home --uid 10001 app
COPY . .

# Code stays root-owned (read-only to the app user); settings create .local/ at import, so it is theirs.
# Static files are collected at build time (WhiteNoise serves them). Production settings use the
# manifest storage, so collect under APP_ENV=production too; the values below are build-only dummies
# that exist for this one command and are not in the image's environment.
RUN APP_ENV=production \
    SECRET_KEY=collectstatic-build-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz \
    FIELD_ENCRYPTION_KEYS=Y29sbGVjdHN0YXRpYy1idWlsZC1vbmx5LWR1bW15LWs= \
    BLIND_INDEX_KEY=collectstatic-build-only \
    ALLOWED_HOSTS=localhost \
    REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput \
    && mkdir -p .local media/mark media/private && chown app:app .local media media/mark media/private

USER app

# HOST: the address gunicorn binds. In a container that is every interface (the port is published, or
# reached by the proxy over the container network); `make run` outside a container binds 127.0.0.1.
ENV APP_ENV=production \
    PORT=8000 \
    HOST=0.0.0.0
EXPOSE 8000

# WEB_CONCURRENCY: gunicorn worker processes (gunicorn's own convention; default 3).
CMD ["sh", "-c", "exec gunicorn config.wsgi:application --bind ${HOST}:${PORT:-8000} --workers ${WEB_CONCURRENCY:-3} --timeout 60 --access-logfile -"]
