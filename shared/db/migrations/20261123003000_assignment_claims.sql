-- migrate:up

-- Dispatchers claim the assignment requests they send instead of only reading
-- them. Every orchestrator process runs a dispatcher; with a plain read, N
-- processes sent each due request N times (harmless thanks to the
-- Idempotency-Key, but N times the load on the delivery engine). A claim takes
-- due rows that no other dispatcher holds (FOR UPDATE SKIP LOCKED) and leases
-- them: their next attempt moves `p_lease_seconds` ahead, so that no other
-- dispatcher takes them meanwhile. The dispatcher then links the assignment
-- (status 'created') or defers the request with its backoff; if it dies, the
-- lease runs out and any dispatcher retries. Keys only, as before.
GRANT programmes_system TO CURRENT_USER;
GRANT CREATE ON SCHEMA public TO programmes_system;
GRANT UPDATE (next_attempt_at) ON assignments TO programmes_system;
CREATE POLICY system_dispatch_claim ON assignments FOR UPDATE TO programmes_system
    USING (true) WITH CHECK (true);

CREATE FUNCTION assignments_claim(p_now timestamptz, p_limit integer, p_lease_seconds double precision)
    RETURNS TABLE (tenant_id uuid, enrolment_id uuid, requirement_id uuid, user_id uuid)
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    WITH due AS (
        SELECT a.tenant_id, a.enrolment_id, a.requirement_id, a.user_id
        FROM assignments a
        WHERE a.status = 'requested' AND a.next_attempt_at <= p_now
        ORDER BY a.next_attempt_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE assignments a
    SET next_attempt_at = p_now + make_interval(secs => p_lease_seconds)
    FROM due
    WHERE a.tenant_id = due.tenant_id AND a.enrolment_id = due.enrolment_id
      AND a.requirement_id = due.requirement_id AND a.user_id = due.user_id
    RETURNING a.tenant_id, a.enrolment_id, a.requirement_id, a.user_id
$$;

ALTER FUNCTION assignments_claim(timestamptz, integer, double precision) OWNER TO programmes_system;
DROP FUNCTION assignments_due(timestamptz, integer);
REVOKE CREATE ON SCHEMA public FROM programmes_system;
REVOKE programmes_system FROM CURRENT_USER;
REVOKE ALL ON FUNCTION assignments_claim(timestamptz, integer, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION assignments_claim(timestamptz, integer, double precision)
    TO programmes_app;

-- migrate:down
GRANT programmes_system TO CURRENT_USER;
GRANT CREATE ON SCHEMA public TO programmes_system;
CREATE FUNCTION assignments_due(p_now timestamptz, p_limit integer)
    RETURNS TABLE (tenant_id uuid, enrolment_id uuid, requirement_id uuid, user_id uuid)
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT a.tenant_id, a.enrolment_id, a.requirement_id, a.user_id
    FROM assignments a
    WHERE a.status = 'requested' AND a.next_attempt_at <= p_now
    ORDER BY a.next_attempt_at
    LIMIT p_limit
$$;
ALTER FUNCTION assignments_due(timestamptz, integer) OWNER TO programmes_system;
DROP FUNCTION assignments_claim(timestamptz, integer, double precision);
REVOKE CREATE ON SCHEMA public FROM programmes_system;
REVOKE programmes_system FROM CURRENT_USER;
REVOKE ALL ON FUNCTION assignments_due(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION assignments_due(timestamptz, integer) TO programmes_app;
DROP POLICY system_dispatch_claim ON assignments;
REVOKE UPDATE (next_attempt_at) ON assignments FROM programmes_system;
