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
SELECT id, assignment_id, submitted_at FROM submissions WHERE id = ANY(:ids::uuid[]);

-- name: submissions_by_assignment(assignment_ids)
SELECT id, assignment_id, submitted_at FROM submissions
WHERE assignment_id = ANY(:assignment_ids::uuid[]);

-- name: scores_of(submission_ids)
SELECT submission_id, score_version, score, passed, effective_at FROM submission_scores
WHERE submission_id = ANY(:submission_ids::uuid[]);

-- name: links_of(assignment_ids)
SELECT assignment_id, enrolment_id, requirement_id, user_id FROM assignments
WHERE assignment_id = ANY(:assignment_ids::uuid[]);

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

-- name: progress_of(enrolment_ids)
SELECT enrolment_id, requirement_id, status, submission_id, score_version, score, passed,
       attempt_count, completed_at AS met_at, decision_seq
FROM progress WHERE enrolment_id = ANY(:enrolment_ids::uuid[]);

-- name: requested_of(enrolment_ids)
SELECT enrolment_id, requirement_id, user_id FROM assignments
WHERE enrolment_id = ANY(:enrolment_ids::uuid[]);

-- name: foreign_ids(kind, ids)$
-- Which of these ids belong to ANOTHER tenant (see foreign_reference).
SELECT foreign_ids(:kind, :ids::uuid[]);

-- name: insert_submissions(ids, assignment_ids, user_ids, evaluation_ids, submitted_ats, event_ids)!
INSERT INTO submissions (tenant_id, id, assignment_id, user_id, evaluation_id, submitted_at,
                         event_id)
SELECT app_current_tenant(), s.*
FROM unnest(:ids::uuid[], :assignment_ids::uuid[], :user_ids::uuid[], :evaluation_ids::uuid[],
            :submitted_ats::timestamptz[], :event_ids::uuid[]) AS s;

-- name: insert_scores(submission_ids, score_versions, scores, passed, correction_batch_ids, effective_ats, event_ids)!
INSERT INTO submission_scores (tenant_id, submission_id, score_version, score, passed,
                               correction_batch_id, effective_at, event_id)
SELECT app_current_tenant(), s.*
FROM unnest(:submission_ids::uuid[], :score_versions::integer[], :scores::numeric[],
            :passed::boolean[], :correction_batch_ids::uuid[], :effective_ats::timestamptz[],
            :event_ids::uuid[]) AS s;

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

-- name: update_enrolments(ids, statuses, completed_ats, reopened)!
-- `reopened`: the enrolment went back in progress in this batch, which clears
-- certified_at (as set_enrolment_status does for each change).
UPDATE enrolments e
SET status = u.status, completed_at = u.completed_at,
    certified_at = CASE WHEN u.reopened THEN NULL ELSE e.certified_at END,
    updated_at = now()
FROM unnest(:ids::uuid[], :statuses::text[], :completed_ats::timestamptz[],
            :reopened::boolean[]) AS u (id, status, completed_at, reopened)
WHERE e.id = u.id;

-- name: append_enrolment_history(enrolment_ids, statuses, previous_statuses, reasons, requirement_ids, event_ids, event_types, decided_ats)!
-- In the given order; each enrolment's entries follow its last one.
INSERT INTO enrolment_history (tenant_id, enrolment_id, seq, status, previous_status, reason,
                               requirement_id, event_id, event_type, decided_at)
SELECT app_current_tenant(), h.enrolment_id,
       COALESCE(last.seq, 0) + row_number() OVER (PARTITION BY h.enrolment_id ORDER BY h.n),
       h.status, h.previous_status, h.reason, h.requirement_id, h.event_id, h.event_type,
       h.decided_at
FROM unnest(:enrolment_ids::uuid[], :statuses::text[], :previous_statuses::text[],
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

-- name: enqueue_events(topics, message_keys, event_ids, events)!
INSERT INTO outbox (tenant_id, topic, message_key, event_id, event)
SELECT app_current_tenant(), o.*
FROM unnest(:topics::text[], :message_keys::text[], :event_ids::uuid[], :events::jsonb[]) AS o
ON CONFLICT (tenant_id, event_id) DO NOTHING;
