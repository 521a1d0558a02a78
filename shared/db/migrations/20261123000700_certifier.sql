-- migrate:up

-- The public verification lookup. Anyone holding a token may see a handful of
-- fields of one certificate, without any tenant context: that is the one place
-- the services read across tenants for a stranger, so it is one narrow
-- SECURITY DEFINER function that returns exactly those fields and nothing else
-- (no ids, no tenant, no user). Owned by the NOLOGIN role programmes_system,
-- whose policies see only what this function selects.
GRANT programmes_system TO CURRENT_USER;
GRANT CREATE ON SCHEMA public TO programmes_system;

GRANT SELECT (tenant_id, enrolment_id, programme_id, programme_version, status, issued_at,
              expires_at, public_token, holder_display_name)
    ON certificates TO programmes_system;
GRANT SELECT (tenant_id, programme_id, version, name, badge_image_url)
    ON programme_versions TO programmes_system;
GRANT SELECT (id, holder_name_rule) ON tenants TO programmes_system;
CREATE POLICY system_verify ON certificates FOR SELECT TO programmes_system USING (true);
CREATE POLICY system_verify ON programme_versions FOR SELECT TO programmes_system USING (true);
CREATE POLICY system_verify ON tenants FOR SELECT TO programmes_system USING (true);

CREATE FUNCTION verify_certificate(p_token text)
    RETURNS TABLE (programme_name text, badge_image_url text, holder_display_name text,
                   holder_name_rule text, issued_at timestamptz, expires_at timestamptz,
                   status text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT v.name, v.badge_image_url, c.holder_display_name, t.holder_name_rule,
           c.issued_at, c.expires_at, c.status
    FROM certificates c
    JOIN programme_versions v
      ON v.tenant_id = c.tenant_id AND v.programme_id = c.programme_id
     AND v.version = c.programme_version
    JOIN tenants t ON t.id = c.tenant_id
    WHERE c.public_token = p_token
$$;

COMMENT ON FUNCTION verify_certificate(text) IS
    'Public certificate verification: the only cross-tenant read on behalf of a stranger. '
    'Returns display fields only; reviewed with every change to its column list.';

ALTER FUNCTION verify_certificate(text) OWNER TO programmes_system;
REVOKE CREATE ON SCHEMA public FROM programmes_system;
REVOKE programmes_system FROM CURRENT_USER;
REVOKE ALL ON FUNCTION verify_certificate(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION verify_certificate(text) TO programmes_app;

-- migrate:down
DROP FUNCTION verify_certificate(text);
DROP POLICY system_verify ON tenants;
DROP POLICY system_verify ON programme_versions;
DROP POLICY system_verify ON certificates;
