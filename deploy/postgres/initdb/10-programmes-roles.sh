#!/usr/bin/env bash
# Run once by the postgres image on an empty data directory (docker-entrypoint-initdb.d),
# as the superuser. Mirrors devstack/bootstrap.py, least privilege:
#   programmes_owner  runs the migrations, owns the database and every object in it;
#                     CREATEROLE because the migrations create the NOLOGIN role
#                     programmes_system that owns the SECURITY DEFINER functions.
#                     (devstack also grants CREATEDB, for the tests' template copies;
#                     a deployment has no use for it.)
#   programmes_app    what the services log in as: owns nothing, no BYPASSRLS; table
#                     privileges come only from the migrations' GRANTs. The services
#                     refuse to start if this role could bypass row-level security.
# Passwords come from the environment (docker-compose.yml) and reach SQL through psql
# variables (:'name' quotes them as literals), never through shell interpolation.
set -euo pipefail

: "${PROGRAMMES_OWNER_PASSWORD:?must be set}"
: "${PROGRAMMES_APP_PASSWORD:?must be set}"

psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v owner_password="$PROGRAMMES_OWNER_PASSWORD" \
    -v app_password="$PROGRAMMES_APP_PASSWORD" <<'SQL'
CREATE ROLE programmes_owner
    LOGIN NOSUPERUSER NOCREATEDB CREATEROLE NOBYPASSRLS PASSWORD :'owner_password';
CREATE ROLE programmes_app
    LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE INHERIT PASSWORD :'app_password';
CREATE DATABASE programmes OWNER programmes_owner;
-- Only the owner and the app role may connect. Schema privileges (REVOKE CREATE ON
-- SCHEMA public ...) are the owner's, in the migrations.
REVOKE ALL ON DATABASE programmes FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE programmes TO programmes_app;
SQL
