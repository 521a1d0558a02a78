-- migrate:up

-- Tenancy primitives shared by every tenant table.
--
-- The services connect as `programmes_app`: no table owner, no BYPASSRLS. Every
-- tenant table carries `tenant_id`, is `ENABLE` + `FORCE ROW LEVEL SECURITY`, and
-- its policy compares `tenant_id` with the transaction-local setting
-- `app.tenant_id` (set by the unit of work with set_config(..., true)).
-- With no tenant set the setting is NULL or '' and every comparison is NULL:
-- nothing is visible and nothing can be written (fail closed).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'programmes_app') THEN
        -- Normally created by whoever provisions the database (devstack, DBA);
        -- created here NOLOGIN so that the grants below always have a grantee.
        CREATE ROLE programmes_app NOLOGIN;
    END IF;
END
$$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO programmes_app;

CREATE FUNCTION app_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid
$$;

COMMENT ON FUNCTION app_current_tenant() IS
    'The tenant of the current transaction (app.tenant_id), NULL when unset: RLS fails closed.';

-- Append-only tables refuse UPDATE and DELETE for everybody, owner included.
CREATE FUNCTION forbid_change() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Every tenant table gets the same three statements; one function keeps them
-- identical (and lets the catalogue check in shared/db/catalogue.sql rely on it).
CREATE FUNCTION apply_tenant_isolation(tbl regclass) RETURNS void
    LANGUAGE plpgsql
AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format(
        'CREATE POLICY tenant_isolation ON %s '
        'USING (tenant_id = app_current_tenant()) '
        'WITH CHECK (tenant_id = app_current_tenant())', tbl);
END
$$;

-- Tenants known to the system, with their privacy rule for names on verification
-- pages. Visible only to a transaction running as that tenant.
CREATE TABLE tenants (
    id               uuid PRIMARY KEY,
    holder_name_rule text NOT NULL DEFAULT 'initials'
                     CHECK (holder_name_rule IN ('full', 'initials', 'hidden')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (id = app_current_tenant())
    WITH CHECK (id = app_current_tenant());
GRANT SELECT, INSERT, UPDATE ON tenants TO programmes_app;

-- migrate:down
DROP TABLE tenants;
DROP FUNCTION apply_tenant_isolation(regclass);
DROP FUNCTION forbid_change();
DROP FUNCTION app_current_tenant();
