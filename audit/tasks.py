from celery import shared_task

from audit.services import audit_purge_expired


@shared_task(time_limit=3600, soft_time_limit=3500)
def purge_expired_audit_rows() -> dict:
    return audit_purge_expired()
