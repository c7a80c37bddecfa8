#!/bin/sh
# Creates the platform's database roles and its database on a fresh PostgreSQL data directory
# (docker-entrypoint-initdb.d runs it once, as the image's superuser). docs/operations.md, "Database roles":
#   platform_owner  owns the database and every table; runs migrations only (compose's `migrate` service)
#   platform_app    web and workers; owns nothing; SELECT/INSERT only on the audit tables
#   platform_purge  the audit retention purge only; may DELETE audit rows older than six years
# Grants on tables are applied by `manage.py migrate` (DATABASE_APP_ROLE / DATABASE_PURGE_ROLE).
set -eu
: "${DB_OWNER_PASSWORD:?set DB_OWNER_PASSWORD}"
: "${DB_APP_PASSWORD:?set DB_APP_PASSWORD}"
: "${DB_PURGE_PASSWORD:?set DB_PURGE_PASSWORD}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v owner_password="$DB_OWNER_PASSWORD" -v app_password="$DB_APP_PASSWORD" \
    -v purge_password="$DB_PURGE_PASSWORD" <<'SQL'
CREATE ROLE platform_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'owner_password';
CREATE ROLE platform_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'app_password';
CREATE ROLE platform_purge LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'purge_password';
CREATE DATABASE platform OWNER platform_owner;
REVOKE ALL ON DATABASE platform FROM PUBLIC;
GRANT CONNECT ON DATABASE platform TO platform_app, platform_purge;
\connect platform
-- PostgreSQL 15+: public belongs to pg_database_owner (platform_owner here) and PUBLIC may not CREATE.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
