-- The orchestrator's set-based queries for a batch of one tenant (see
-- working_set.py). Every one runs inside that tenant's unit of work: row-level
-- security scopes them. Locks are taken in one global order (submissions, then
-- assignments, then enrolments; by key within each kind), the same order the
-- one-message path takes them in, so batches and single messages cannot deadlock.

-- name: lock_keys(keys)$
-- The advisory locks of ledger.sql's lock_key, for many keys, in key order.
SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0)))::integer
FROM (SELECT DISTINCT k COLLATE "C" AS k FROM unnest(:keys::text[]) AS k ORDER BY 1) AS ordered;

-- name: submissions_by_id(ids)
-- These submissions of this tenant, and (foreign) those of these ids that belong
-- to another tenant (see foreign_reference): one round trip for both.
SELECT id, assignment_id, submitted_at, false AS foreign
FROM submissions WHERE id = ANY(:ids::uuid[])
UNION ALL
SELECT f, NULL, NULL, true FROM unnest(foreign_ids('submission', :ids::uuid[])) AS f;

-- name: links_of(assignment_ids)
-- The links of these assignments, and (foreign) those that are another tenant's.
SELECT assignment_id, enrolment_id, requirement_id, user_id, false AS foreign
FROM assignments WHERE assignment_id = ANY(:assignment_ids::uuid[])
UNION ALL
SELECT f, NULL, NULL, NULL, true
FROM unnest(foreign_ids('assignment', :assignment_ids::uuid[])) AS f;

-- name: attempts_of(assignment_ids, submission_ids)
-- Every submission of these assignments with each of its score versions, and
-- the score versions of these submissions that are not (yet) among them.
WITH attempts AS (
    SELECT id, assignment_id, submitted_at FROM submissions
    WHERE assignment_id = ANY(:assignment_ids::uuid[])
)
SELECT a.id AS submission_id, a.assignment_id, a.submitted_at, sc.score_version, sc.score,
       sc.passed, sc.effective_at
FROM attempts a
LEFT JOIN submission_scores sc ON sc.submission_id = a.id
UNION ALL
SELECT sc.submission_id, NULL, NULL, sc.score_version, sc.score, sc.passed, sc.effective_at
FROM submission_scores sc
WHERE sc.submission_id = ANY(:submission_ids::uuid[])
  AND sc.submission_id NOT IN (SELECT id FROM attempts);

-- name: lock_enrolments(ids)
SELECT tenant_id, id, user_id, org_unit_id, programme_id, programme_version, status,
       completed_at
FROM enrolments WHERE id = ANY(:ids::uuid[])
ORDER BY id
FOR UPDATE;

-- name: snapshots_of(ids)
-- The snapshot of each programme version these enrolments are pinned to (all
-- enrolments pinned to one version have the same, immutable, snapshot).
SELECT DISTINCT ON (programme_id, programme_version) programme_id, programme_version, snapshot
FROM enrolments WHERE id = ANY(:ids::uuid[]);

-- name: ledger_of(enrolment_ids)
-- The progress rows of these enrolments, and (requested_by set) the assignments
-- already requested for them: one round trip for both.
SELECT enrolment_id, requirement_id, status, submission_id, score_version, score, passed,
       attempt_count, completed_at AS met_at, decision_seq, NULL::uuid AS requested_by
FROM progress WHERE enrolment_id = ANY(:enrolment_ids::uuid[])
UNION ALL
SELECT enrolment_id, requirement_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, user_id
FROM assignments WHERE enrolment_id = ANY(:enrolment_ids::uuid[]);

-- name: insert_submissions_and_scores(ids, assignment_ids, user_ids, evaluation_ids, submitted_ats, event_ids, score_submission_ids, score_versions, scores, passed, correction_batch_ids, effective_ats, score_event_ids)!
WITH submitted AS (
    INSERT INTO submissions (tenant_id, id, assignment_id, user_id, evaluation_id,
                             submitted_at, event_id)
    SELECT app_current_tenant(), s.*
    FROM unnest(:ids::uuid[], :assignment_ids::uuid[], :user_ids::uuid[],
                :evaluation_ids::uuid[], :submitted_ats::timestamptz[], :event_ids::uuid[]) AS s
)
INSERT INTO submission_scores (tenant_id, submission_id, score_version, score, passed,
                               correction_batch_id, effective_at, event_id)
SELECT app_current_tenant(), s.*
FROM unnest(:score_submission_ids::uuid[], :score_versions::integer[], :scores::numeric[],
            :passed::boolean[], :correction_batch_ids::uuid[], :effective_ats::timestamptz[],
            :score_event_ids::uuid[]) AS s;

-- name: append_progress_history(enrolment_ids, requirement_ids, seqs, statuses, previous_statuses, reasons, submission_ids, score_versions, scores, passed, attempt_counts, event_ids, event_types, decided_ats)!
INSERT INTO progress_history (tenant_id, enrolment_id, requirement_id, seq, status,
                              previous_status, reason, submission_id, score_version, score,
                              passed, attempt_count, event_id, event_type, decided_at)
SELECT app_current_tenant(), h.*
FROM unnest(:enrolment_ids::uuid[], :requirement_ids::uuid[], :seqs::integer[],
            :statuses::text[], :previous_statuses::text[], :reasons::text[],
            :submission_ids::uuid[], :score_versions::integer[], :scores::numeric[],
            :passed::boolean[], :attempt_counts::integer[], :event_ids::uuid[],
            :event_types::text[], :decided_ats::timestamptz[]) AS h;

-- name: update_progress(enrolment_ids, requirement_ids, seqs, statuses, submission_ids, score_versions, scores, passed, attempt_counts, met_ats)!
UPDATE progress p
SET status = u.status, submission_id = u.submission_id, score_version = u.score_version,
    score = u.score, passed = u.passed, attempt_count = u.attempt_count,
    completed_at = u.met_at, decision_seq = u.seq, last_updated_at = now()
FROM unnest(:enrolment_ids::uuid[], :requirement_ids::uuid[], :seqs::integer[],
            :statuses::text[], :submission_ids::uuid[], :score_versions::integer[],
            :scores::numeric[], :passed::boolean[], :attempt_counts::integer[],
            :met_ats::timestamptz[])
     AS u (enrolment_id, requirement_id, seq, status, submission_id, score_version, score,
           passed, attempt_count, met_at)
WHERE p.enrolment_id = u.enrolment_id AND p.requirement_id = u.requirement_id;

-- name: change_enrolments(ids, statuses, completed_ats, reopened, enrolment_ids, history_statuses, previous_statuses, reasons, requirement_ids, event_ids, event_types, decided_ats)!
-- Each changed enrolment's final status, and every change in order in its history
-- (each enrolment's entries follow its last one). `reopened`: the enrolment went
-- back in progress in this batch, which clears certified_at, as each change does
-- on the one-message path.
WITH changed AS (
    UPDATE enrolments e
    SET status = u.status, completed_at = u.completed_at,
        certified_at = CASE WHEN u.reopened THEN NULL ELSE e.certified_at END,
        updated_at = now()
    FROM unnest(:ids::uuid[], :statuses::text[], :completed_ats::timestamptz[],
                :reopened::boolean[]) AS u (id, status, completed_at, reopened)
    WHERE e.id = u.id
)
INSERT INTO enrolment_history (tenant_id, enrolment_id, seq, status, previous_status, reason,
                               requirement_id, event_id, event_type, decided_at)
SELECT app_current_tenant(), h.enrolment_id,
       COALESCE(last.seq, 0) + row_number() OVER (PARTITION BY h.enrolment_id ORDER BY h.n),
       h.status, h.previous_status, h.reason, h.requirement_id, h.event_id, h.event_type,
       h.decided_at
FROM unnest(:enrolment_ids::uuid[], :history_statuses::text[], :previous_statuses::text[],
            :reasons::text[], :requirement_ids::uuid[], :event_ids::uuid[],
            :event_types::text[], :decided_ats::timestamptz[])
     WITH ORDINALITY AS h (enrolment_id, status, previous_status, reason, requirement_id,
                           event_id, event_type, decided_at, n)
LEFT JOIN LATERAL (
    SELECT max(seq) AS seq FROM enrolment_history x WHERE x.enrolment_id = h.enrolment_id
) last ON true;

-- name: request_assignments(enrolment_ids, requirement_ids, user_ids, keys, evaluation_ids, org_unit_ids)!
INSERT INTO assignments (tenant_id, enrolment_id, requirement_id, user_id, idempotency_key,
                         evaluation_id, org_unit_id)
SELECT app_current_tenant(), a.*
FROM unnest(:enrolment_ids::uuid[], :requirement_ids::uuid[], :user_ids::uuid[],
            :keys::text[], :evaluation_ids::uuid[], :org_unit_ids::uuid[]) AS a
ON CONFLICT DO NOTHING;
