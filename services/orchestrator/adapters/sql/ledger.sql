-- The orchestrator's queries. Every one runs inside a tenant unit of work:
-- row-level security scopes them to that tenant.

-- name: lock_key(key)$
-- Serialise work on one submission or assignment across processes (released at commit).
SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))::text;

-- name: foreign_reference(kind, id)$
SELECT foreign_reference(:kind, :id);

-- name: pinned_version(programme_id, enrolled_at)^
-- The programme and its version published latest at or before the enrolment.
SELECT p.status, v.version, v.definition
FROM programmes p
LEFT JOIN LATERAL (
    SELECT pv.version, pv.definition
    FROM programme_versions pv
    WHERE pv.tenant_id = p.tenant_id AND pv.programme_id = p.id
      AND pv.published_at <= :enrolled_at
    ORDER BY pv.published_at DESC, pv.version DESC
    LIMIT 1
) v ON true
WHERE p.id = :programme_id;

-- name: enrolment_exists(enrolment_id)$
SELECT EXISTS (SELECT FROM enrolments WHERE id = :enrolment_id);

-- name: insert_enrolment(id, user_id, org_unit_id, programme_id, programme_version, snapshot, user_display_name, enrolled_at, renewal_of_enrolment_id, event_id)$
INSERT INTO enrolments (tenant_id, id, user_id, org_unit_id, programme_id, programme_version,
                        snapshot, user_display_name, enrolled_at, renewal_of_enrolment_id,
                        created_by_event_id)
VALUES (app_current_tenant(), :id, :user_id, :org_unit_id, :programme_id, :programme_version,
        :snapshot, :user_display_name, :enrolled_at, :renewal_of_enrolment_id, :event_id)
ON CONFLICT (tenant_id, id) DO NOTHING
RETURNING true;

-- name: insert_progress(enrolment_id, programme_id, programme_version, requirement_ids)!
INSERT INTO progress (tenant_id, enrolment_id, requirement_id, programme_id, programme_version)
SELECT app_current_tenant(), :enrolment_id, r, :programme_id, :programme_version
FROM unnest(:requirement_ids::uuid[]) AS r;

-- name: request_assignments(enrolment_id, user_id, org_unit_id, requirement_ids, evaluation_ids, keys)$
-- Record assignment requests (sent later by the dispatcher); returns how many are new.
WITH requested AS (
    INSERT INTO assignments (tenant_id, enrolment_id, requirement_id, user_id, idempotency_key,
                             evaluation_id, org_unit_id)
    SELECT app_current_tenant(), :enrolment_id, r, :user_id, k, e, :org_unit_id
    FROM unnest(:requirement_ids::uuid[], :evaluation_ids::uuid[], :keys::text[]) AS t (r, e, k)
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT count(*)::integer FROM requested;

-- name: record_submission(id, assignment_id, user_id, evaluation_id, submitted_at, event_id)$
INSERT INTO submissions (tenant_id, id, assignment_id, user_id, evaluation_id, submitted_at,
                         event_id)
VALUES (app_current_tenant(), :id, :assignment_id, :user_id, :evaluation_id, :submitted_at,
        :event_id)
ON CONFLICT (tenant_id, id) DO NOTHING
RETURNING true;

-- name: record_score(submission_id, score_version, score, passed, correction_batch_id, effective_at, event_id)$
-- Append a score version; returns whether it is now the highest known.
WITH recorded AS (
    INSERT INTO submission_scores (tenant_id, submission_id, score_version, score, passed,
                                   correction_batch_id, effective_at, event_id)
    VALUES (app_current_tenant(), :submission_id, :score_version, :score, :passed,
            :correction_batch_id, :effective_at, :event_id)
    ON CONFLICT DO NOTHING
    RETURNING score_version
)
SELECT EXISTS (SELECT FROM recorded)
   AND NOT EXISTS (SELECT FROM submission_scores
                   WHERE submission_id = :submission_id AND score_version > :score_version);

-- name: submission(id)^
SELECT assignment_id, user_id FROM submissions WHERE id = :id;

-- name: assignment_by_id(assignment_id)^
SELECT enrolment_id, requirement_id, user_id FROM assignments
WHERE assignment_id = :assignment_id;

-- name: lock_enrolment(id)^
SELECT id, user_id, org_unit_id, programme_id, programme_version, status, snapshot,
       completed_at
FROM enrolments WHERE id = :id
FOR UPDATE;

-- name: attempts(assignment_id)
-- Every submission for the assignment, at its highest known score version.
SELECT s.id AS submission_id, s.submitted_at, v.score_version, v.score, v.passed,
       v.effective_at
FROM submissions s
CROSS JOIN LATERAL (
    SELECT sc.score_version, sc.score, sc.passed, sc.effective_at
    FROM submission_scores sc
    WHERE sc.tenant_id = s.tenant_id AND sc.submission_id = s.id
    ORDER BY sc.score_version DESC
    LIMIT 1
) v
WHERE s.assignment_id = :assignment_id;

-- name: progress(enrolment_id)
SELECT requirement_id, status, submission_id, score_version, score, passed, attempt_count,
       completed_at AS met_at, decision_seq
FROM progress WHERE enrolment_id = :enrolment_id;

-- name: append_progress_history(enrolment_id, requirement_id, seq, status, previous_status, reason, submission_id, score_version, score, passed, attempt_count, event_id, event_type, decided_at)!
INSERT INTO progress_history (tenant_id, enrolment_id, requirement_id, seq, status,
                              previous_status, reason, submission_id, score_version, score,
                              passed, attempt_count, event_id, event_type, decided_at)
VALUES (app_current_tenant(), :enrolment_id, :requirement_id, :seq, :status, :previous_status,
        :reason, :submission_id, :score_version, :score, :passed, :attempt_count, :event_id,
        :event_type, :decided_at);

-- name: update_progress(enrolment_id, requirement_id, seq, status, submission_id, score_version, score, passed, attempt_count, met_at)!
UPDATE progress
SET status = :status, submission_id = :submission_id, score_version = :score_version,
    score = :score, passed = :passed, attempt_count = :attempt_count, completed_at = :met_at,
    decision_seq = :seq, last_updated_at = now()
WHERE enrolment_id = :enrolment_id AND requirement_id = :requirement_id;

-- name: set_enrolment_status(id, status, completed_at)!
UPDATE enrolments
SET status = :status, completed_at = :completed_at,
    certified_at = CASE WHEN :status = 'in_progress' THEN NULL ELSE certified_at END,
    updated_at = now()
WHERE id = :id;

-- name: assignment_request(enrolment_id, requirement_id, user_id)^
-- A pending assignment request, with what the delivery engine needs to create it.
SELECT a.idempotency_key, a.evaluation_id, a.org_unit_id, a.attempts
FROM assignments a
WHERE a.enrolment_id = :enrolment_id AND a.requirement_id = :requirement_id
  AND a.user_id = :user_id AND a.status = 'requested';

-- name: link_assignment(enrolment_id, requirement_id, user_id, assignment_id)$
UPDATE assignments
SET status = 'created', assignment_id = :assignment_id, created_at = now(),
    attempts = attempts + 1, last_error = NULL
WHERE enrolment_id = :enrolment_id AND requirement_id = :requirement_id
  AND user_id = :user_id AND status = 'requested'
RETURNING true;

-- name: defer_assignment(enrolment_id, requirement_id, user_id, error, delay_seconds)!
UPDATE assignments
SET attempts = attempts + 1, last_error = :error,
    next_attempt_at = now() + make_interval(secs => :delay_seconds)
WHERE enrolment_id = :enrolment_id AND requirement_id = :requirement_id
  AND user_id = :user_id AND status = 'requested';

-- name: assignments_claim(now, limit, lease_seconds)
-- Requests of every tenant due for (re)sending that no other dispatcher holds, leased to
-- this one for `lease_seconds`: keys only (a SECURITY DEFINER claim).
SELECT * FROM assignments_claim(:now, :limit, :lease_seconds);

-- name: assignments_pending()$
SELECT assignments_pending();
