-- migrate:up

-- The cross-tenant probe of 20261123000500 for many ids at once, for the
-- orchestrator's batches: which of these ids belong to ANOTHER tenant? Asked
-- only for ids the current tenant does not have; answers ids and nothing else.
GRANT programmes_system TO CURRENT_USER;
GRANT CREATE ON SCHEMA public TO programmes_system;

CREATE FUNCTION foreign_ids(p_kind text, p_ids uuid[]) RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT COALESCE(array_agg(DISTINCT found.id), '{}')
    FROM (
        SELECT id FROM enrolments
        WHERE p_kind = 'enrolment' AND id = ANY(p_ids)
          AND tenant_id IS DISTINCT FROM app_current_tenant()
        UNION ALL
        SELECT assignment_id FROM assignments
        WHERE p_kind = 'assignment' AND assignment_id = ANY(p_ids)
          AND tenant_id IS DISTINCT FROM app_current_tenant()
        UNION ALL
        SELECT id FROM submissions
        WHERE p_kind = 'submission' AND id = ANY(p_ids)
          AND tenant_id IS DISTINCT FROM app_current_tenant()
        UNION ALL
        SELECT id FROM programmes
        WHERE p_kind = 'programme' AND id = ANY(p_ids)
          AND tenant_id IS DISTINCT FROM app_current_tenant()
    ) AS found
$$;

ALTER FUNCTION foreign_ids(text, uuid[]) OWNER TO programmes_system;
REVOKE CREATE ON SCHEMA public FROM programmes_system;
REVOKE programmes_system FROM CURRENT_USER;
REVOKE ALL ON FUNCTION foreign_ids(text, uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION foreign_ids(text, uuid[]) TO programmes_app;

-- migrate:down
DROP FUNCTION foreign_ids(text, uuid[]);
