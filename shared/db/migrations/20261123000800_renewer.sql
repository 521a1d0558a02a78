-- migrate:up

-- The renewer: recertification before expiry, expiry after it.
--
-- A certificate records the renewal it asked for (renewal_enrolment_id and
-- renewal_requested_at), set once by a conditional UPDATE in the same
-- transaction as the outbox row announcing the renewal enrolment: two passes
-- racing on one certificate cannot both win.
--
-- renewal_opens_at (expires_at minus the renewal window of the pinned version)
-- is stored so that "due for renewal" is one range over one partial index,
-- whatever each programme's window. Versions never change, so neither does it.

ALTER TABLE certificates
    ADD COLUMN renewal_opens_at     timestamptz,
    ADD COLUMN renewal_enrolment_id uuid,
    ADD COLUMN renewal_requested_at timestamptz,
    ADD CONSTRAINT certificates_renewal_requested_once
        CHECK ((renewal_enrolment_id IS NULL) = (renewal_requested_at IS NULL));

-- Calendar arithmetic (P1M, P1Y) in UTC, so the answer does not depend on the
-- session's TimeZone: the scans and the per-certificate decision agree.
CREATE FUNCTION renewal_opens_at(p_expires_at timestamptz, p_window interval)
    RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT ((p_expires_at AT TIME ZONE 'UTC') - p_window) AT TIME ZONE 'UTC'
$$;

-- Kept by the database, not by whoever issues certificates: it runs as the
-- inserting role, inside its tenant, where the pinned version is visible.
CREATE FUNCTION certificates_set_renewal_opens_at() RETURNS trigger
    LANGUAGE plpgsql SET search_path = public, pg_temp
AS $$
BEGIN
    NEW.renewal_opens_at := (
        SELECT renewal_opens_at(NEW.expires_at, v.renewal_window)
        FROM programme_versions v
        WHERE v.tenant_id = NEW.tenant_id AND v.programme_id = NEW.programme_id
          AND v.version = NEW.programme_version);
    RETURN NEW;
END
$$;

-- Certificates issued before this migration: the owner is subject to the
-- forced tenant policies, so they are lifted for this one statement, inside the
-- migration's transaction (nobody sees the tables unforced).
ALTER TABLE certificates NO FORCE ROW LEVEL SECURITY;
ALTER TABLE programme_versions NO FORCE ROW LEVEL SECURITY;
UPDATE certificates c
SET renewal_opens_at = renewal_opens_at(c.expires_at, v.renewal_window)
FROM programme_versions v
WHERE v.tenant_id = c.tenant_id AND v.programme_id = c.programme_id
  AND v.version = c.programme_version AND c.expires_at IS NOT NULL;
ALTER TABLE programme_versions FORCE ROW LEVEL SECURITY;
ALTER TABLE certificates FORCE ROW LEVEL SECURITY;

CREATE TRIGGER certificates_renewal_opens_at
    BEFORE INSERT OR UPDATE OF expires_at, programme_id, programme_version ON certificates
    FOR EACH ROW EXECUTE FUNCTION certificates_set_renewal_opens_at();

-- The scans read these in key order and stop at the first row not yet due;
-- rows leave them as they are handled (renewal requested, certificate expired).
CREATE INDEX certificates_renewal_due
    ON certificates (renewal_opens_at, tenant_id, id)
    WHERE status = 'active' AND renewal_enrolment_id IS NULL AND renewal_opens_at IS NOT NULL;
CREATE INDEX certificates_expiry_due
    ON certificates (expires_at, tenant_id, id)
    WHERE status = 'active' AND expires_at IS NOT NULL;

-- The renewer's cross-tenant scans: the keys of due certificates and nothing
-- else, in (instant, tenant, id) order after a cursor, so a pass pages through
-- them and always ends. Each certificate is then decided and changed in its
-- own tenant unit of work, which checks everything again.
GRANT programmes_system TO CURRENT_USER;
GRANT CREATE ON SCHEMA public TO programmes_system;

GRANT SELECT (tenant_id, id, programme_id, status, expires_at, renewal_opens_at,
              renewal_enrolment_id)
    ON certificates TO programmes_system;
GRANT SELECT (tenant_id, id, status) ON programmes TO programmes_system;
CREATE POLICY system_renew ON certificates FOR SELECT TO programmes_system USING (true);
CREATE POLICY system_renew ON programmes FOR SELECT TO programmes_system USING (true);

-- Certificates whose renewal window is open at p_now and that have asked for
-- no renewal yet (programme not archived).
CREATE FUNCTION renewals_due(p_now timestamptz, p_after_at timestamptz, p_after_tenant uuid,
                             p_after_id uuid, p_limit integer)
    RETURNS TABLE (tenant_id uuid, certificate_id uuid, due_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT c.tenant_id, c.id, c.renewal_opens_at
    FROM certificates c
    JOIN programmes p ON p.tenant_id = c.tenant_id AND p.id = c.programme_id
    WHERE c.status = 'active' AND c.renewal_enrolment_id IS NULL
      AND c.renewal_opens_at IS NOT NULL AND c.renewal_opens_at <= p_now
      AND (c.renewal_opens_at, c.tenant_id, c.id) > (p_after_at, p_after_tenant, p_after_id)
      AND p.status = 'active'
    ORDER BY c.renewal_opens_at, c.tenant_id, c.id
    LIMIT p_limit
$$;

-- Active certificates whose expiry is at or before p_now.
CREATE FUNCTION expiries_due(p_now timestamptz, p_after_at timestamptz, p_after_tenant uuid,
                             p_after_id uuid, p_limit integer)
    RETURNS TABLE (tenant_id uuid, certificate_id uuid, due_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT c.tenant_id, c.id, c.expires_at
    FROM certificates c
    WHERE c.status = 'active' AND c.expires_at IS NOT NULL AND c.expires_at <= p_now
      AND (c.expires_at, c.tenant_id, c.id) > (p_after_at, p_after_tenant, p_after_id)
    ORDER BY c.expires_at, c.tenant_id, c.id
    LIMIT p_limit
$$;

ALTER FUNCTION renewals_due(timestamptz, timestamptz, uuid, uuid, integer)
    OWNER TO programmes_system;
ALTER FUNCTION expiries_due(timestamptz, timestamptz, uuid, uuid, integer)
    OWNER TO programmes_system;
REVOKE CREATE ON SCHEMA public FROM programmes_system;
REVOKE programmes_system FROM CURRENT_USER;

REVOKE ALL ON FUNCTION renewals_due(timestamptz, timestamptz, uuid, uuid, integer),
    expiries_due(timestamptz, timestamptz, uuid, uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION renewals_due(timestamptz, timestamptz, uuid, uuid, integer),
    expiries_due(timestamptz, timestamptz, uuid, uuid, integer) TO programmes_app;

-- migrate:down
DROP FUNCTION expiries_due(timestamptz, timestamptz, uuid, uuid, integer);
DROP FUNCTION renewals_due(timestamptz, timestamptz, uuid, uuid, integer);
DROP POLICY system_renew ON programmes;
DROP POLICY system_renew ON certificates;
REVOKE SELECT (status) ON programmes FROM programmes_system;
REVOKE SELECT (id) ON certificates FROM programmes_system;
DROP INDEX certificates_expiry_due;
DROP INDEX certificates_renewal_due;
DROP TRIGGER certificates_renewal_opens_at ON certificates;
DROP FUNCTION certificates_set_renewal_opens_at();
ALTER TABLE certificates
    DROP CONSTRAINT certificates_renewal_requested_once,
    DROP COLUMN renewal_requested_at,
    DROP COLUMN renewal_enrolment_id,
    DROP COLUMN renewal_opens_at;
DROP FUNCTION renewal_opens_at(timestamptz, interval);
