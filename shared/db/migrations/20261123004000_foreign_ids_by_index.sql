-- migrate:up

-- foreign_ids (20261123002000) filtered each table by `id = ANY(p_ids)`. For a
-- few hundred ids the planner then preferred a sequential scan of the whole
-- table (seen with auto_explain under the orchestrator benchmark: 16 ms a call,
-- 74 µs of database time per submission.created, the costliest statement of a
-- batch). The probe now looks each id up on its own, through the by-id indexes,
-- whatever the table's size or statistics; same answer, same privileges.
GRANT programmes_system TO CURRENT_USER;
GRANT CREATE ON SCHEMA public TO programmes_system;

CREATE OR REPLACE FUNCTION foreign_ids(p_kind text, p_ids uuid[]) RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT COALESCE(array_agg(DISTINCT q.id), '{}')
    FROM unnest(p_ids) AS q (id)
    CROSS JOIN LATERAL (
        -- LIMIT keeps this a per-id lookup: it cannot be flattened into a join.
        SELECT 1 FROM enrolments
        WHERE p_kind = 'enrolment' AND id = q.id
          AND tenant_id IS DISTINCT FROM app_current_tenant()
        UNION ALL
        SELECT 1 FROM assignments
        WHERE p_kind = 'assignment' AND assignment_id = q.id
          AND tenant_id IS DISTINCT FROM app_current_tenant()
        UNION ALL
        SELECT 1 FROM submissions
        WHERE p_kind = 'submission' AND id = q.id
          AND tenant_id IS DISTINCT FROM app_current_tenant()
        UNION ALL
        SELECT 1 FROM programmes
        WHERE p_kind = 'programme' AND id = q.id
          AND tenant_id IS DISTINCT FROM app_current_tenant()
        LIMIT 1
    ) AS found
$$;

REVOKE CREATE ON SCHEMA public FROM programmes_system;
REVOKE programmes_system FROM CURRENT_USER;

-- migrate:down
GRANT programmes_system TO CURRENT_USER;
GRANT CREATE ON SCHEMA public TO programmes_system;

CREATE OR REPLACE FUNCTION foreign_ids(p_kind text, p_ids uuid[]) RETURNS uuid[]
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

REVOKE CREATE ON SCHEMA public FROM programmes_system;
REVOKE programmes_system FROM CURRENT_USER;
