-- migrate:up

-- The orchestrator's batch load (services/orchestrator/adapters/working_set.py) in
-- one round trip instead of about eight. It takes the same locks in the same order
-- as the one-message path (submissions, then assignments, then enrolments; by key
-- within a kind) and reads what each lock protects only after taking it: in a
-- VOLATILE function every statement takes a fresh snapshot, so a read sees what
-- the previous holder of a lock committed, exactly as the separate statements did.
-- SECURITY INVOKER: row-level security scopes every read to the caller's tenant;
-- only foreign_ids (SECURITY DEFINER) looks across tenants, and answers ids only.
--
-- One row per fact, told apart by `kind`; each kind fills its own columns:
--   submission          id, assignment_id, submitted_at
--   foreign_submission  id (of these submission ids, one another tenant has)
--   link                assignment_id, enrolment_id, requirement_id, user_id
--   foreign_assignment  assignment_id (another tenant's)
--   attempt             submission_id, assignment_id (NULL: a score of a submission
--                       not stored yet), submitted_at, score_version, score, passed,
--                       effective_at (score columns NULL: a submission without scores)
--   enrolment           tenant_id, id, user_id, org_unit_id, programme_id,
--                       programme_version, status, completed_at (locked FOR UPDATE)
--   progress            enrolment_id, requirement_id, status, submission_id,
--                       score_version, score, passed, attempt_count, met_at, decision_seq
--   requested           enrolment_id, requirement_id, requested_by (an assignment
--                       already requested for that user)
CREATE FUNCTION working_set_load(p_submission_ids uuid[], p_assignment_ids uuid[])
    RETURNS TABLE (
        kind              text,
        id                uuid,
        tenant_id         uuid,
        assignment_id     uuid,
        enrolment_id      uuid,
        requirement_id    uuid,
        user_id           uuid,
        org_unit_id       uuid,
        programme_id      uuid,
        programme_version integer,
        status            text,
        completed_at      timestamptz,
        submitted_at      timestamptz,
        submission_id     uuid,
        score_version     integer,
        score             numeric,
        passed            boolean,
        effective_at      timestamptz,
        attempt_count     integer,
        met_at            timestamptz,
        decision_seq      integer,
        requested_by      uuid
    )
    LANGUAGE plpgsql VOLATILE SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_assignments uuid[];
    v_enrolments  uuid[];
BEGIN
    -- The advisory locks of ledger.sql's lock_key, in the byte order of the keys'
    -- text, so that two batches take them in one order.
    PERFORM count(pg_advisory_xact_lock(hashtextextended(k, 0)))
    FROM (SELECT DISTINCT 'submission:' || s::text COLLATE "C" AS k
          FROM unnest(p_submission_ids) AS s ORDER BY 1) AS ordered;

    RETURN QUERY
    SELECT 'submission', s.id, NULL::uuid, s.assignment_id, NULL::uuid, NULL::uuid, NULL::uuid,
           NULL::uuid, NULL::uuid, NULL::integer, NULL::text, NULL::timestamptz, s.submitted_at,
           NULL::uuid, NULL::integer, NULL::numeric, NULL::boolean, NULL::timestamptz,
           NULL::integer, NULL::timestamptz, NULL::integer, NULL::uuid
    FROM submissions s WHERE s.id = ANY(p_submission_ids)
    UNION ALL
    SELECT 'foreign_submission', f, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM unnest(foreign_ids('submission', p_submission_ids)) AS f;

    -- The assignments of these events and of the stored submissions among them.
    SELECT array_agg(DISTINCT a) INTO v_assignments
    FROM (SELECT unnest(p_assignment_ids)
          UNION ALL
          SELECT s.assignment_id FROM submissions s WHERE s.id = ANY(p_submission_ids)) AS x (a);
    v_assignments := COALESCE(v_assignments, '{}');
    PERFORM count(pg_advisory_xact_lock(hashtextextended(k, 0)))
    FROM (SELECT DISTINCT 'assignment:' || a::text COLLATE "C" AS k
          FROM unnest(v_assignments) AS a ORDER BY 1) AS ordered;

    RETURN QUERY
    SELECT 'link', NULL::uuid, NULL::uuid, a.assignment_id, a.enrolment_id, a.requirement_id,
           a.user_id, NULL::uuid, NULL::uuid, NULL::integer, NULL::text, NULL::timestamptz,
           NULL::timestamptz, NULL::uuid, NULL::integer, NULL::numeric, NULL::boolean,
           NULL::timestamptz, NULL::integer, NULL::timestamptz, NULL::integer, NULL::uuid
    FROM assignments a WHERE a.assignment_id = ANY(v_assignments)
    UNION ALL
    SELECT 'foreign_assignment', NULL, NULL, f, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM unnest(foreign_ids('assignment', v_assignments)) AS f;

    -- Every submission of these assignments with each of its score versions, and the
    -- score versions of these submissions that are not (yet) among them.
    RETURN QUERY
    WITH attempts AS (
        SELECT s.id, s.assignment_id, s.submitted_at FROM submissions s
        WHERE s.assignment_id = ANY(v_assignments)
    )
    SELECT 'attempt', NULL::uuid, NULL::uuid, t.assignment_id, NULL::uuid, NULL::uuid,
           NULL::uuid, NULL::uuid, NULL::uuid, NULL::integer, NULL::text, NULL::timestamptz,
           t.submitted_at, t.id, sc.score_version, sc.score::numeric, sc.passed, sc.effective_at,
           NULL::integer, NULL::timestamptz, NULL::integer, NULL::uuid
    FROM attempts t
    LEFT JOIN submission_scores sc ON sc.submission_id = t.id
    UNION ALL
    SELECT 'attempt', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           sc.submission_id, sc.score_version, sc.score::numeric, sc.passed, sc.effective_at,
           NULL, NULL, NULL, NULL
    FROM submission_scores sc
    WHERE sc.submission_id = ANY(p_submission_ids)
      AND sc.submission_id NOT IN (SELECT t.id FROM attempts t);

    -- The enrolments these assignments serve, locked, and their ledgers.
    SELECT array_agg(DISTINCT a.enrolment_id) INTO v_enrolments
    FROM assignments a WHERE a.assignment_id = ANY(v_assignments);
    IF v_enrolments IS NULL THEN
        RETURN;
    END IF;

    RETURN QUERY
    SELECT 'enrolment', e.id, e.tenant_id, NULL::uuid, NULL::uuid, NULL::uuid, e.user_id,
           e.org_unit_id, e.programme_id, e.programme_version, e.status, e.completed_at,
           NULL::timestamptz, NULL::uuid, NULL::integer, NULL::numeric, NULL::boolean,
           NULL::timestamptz, NULL::integer, NULL::timestamptz, NULL::integer, NULL::uuid
    FROM enrolments e WHERE e.id = ANY(v_enrolments)
    ORDER BY e.id
    FOR UPDATE;

    RETURN QUERY
    SELECT 'progress', NULL::uuid, NULL::uuid, NULL::uuid, p.enrolment_id, p.requirement_id,
           NULL::uuid, NULL::uuid, NULL::uuid, NULL::integer, p.status, NULL::timestamptz,
           NULL::timestamptz, p.submission_id, p.score_version, p.score::numeric, p.passed,
           NULL::timestamptz, p.attempt_count, p.completed_at, p.decision_seq, NULL::uuid
    FROM progress p WHERE p.enrolment_id = ANY(v_enrolments)
    UNION ALL
    SELECT 'requested', NULL, NULL, NULL, a.enrolment_id, a.requirement_id, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, a.user_id
    FROM assignments a WHERE a.enrolment_id = ANY(v_enrolments);
END
$$;

REVOKE ALL ON FUNCTION working_set_load(uuid[], uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION working_set_load(uuid[], uuid[]) TO programmes_app;

-- migrate:down
DROP FUNCTION working_set_load(uuid[], uuid[]);
