-- The orchestrator's set-based queries for a batch of one tenant (see
-- working_set.py). Every one runs inside that tenant's unit of work: row-level
-- security scopes them. Locks are taken in one global order (submissions, then
-- assignments, then enrolments; by key within each kind), the same order the
-- one-message path takes them in, so batches and single messages cannot deadlock.

-- name: load(submission_ids, assignment_ids)
-- Every lock and row a batch about these submissions (and assignments) needs, in
-- one round trip: see working_set_load (migration 20261203000000) for the kinds
-- of rows and the order the locks are taken in.
SELECT * FROM working_set_load(:submission_ids::uuid[], :assignment_ids::uuid[]);

-- name: snapshots_of(ids)
-- The snapshot of each programme version these enrolments are pinned to (all
-- enrolments pinned to one version have the same, immutable, snapshot).
SELECT DISTINCT ON (programme_id, programme_version) programme_id, programme_version, snapshot
FROM enrolments WHERE id = ANY(:ids::uuid[]);

-- name: write_batch(ids, assignment_ids, user_ids, evaluation_ids, submitted_ats, event_ids, score_submission_ids, score_versions, scores, passed, correction_batch_ids, effective_ats, score_event_ids, history_enrolment_ids, history_requirement_ids, history_seqs, history_statuses, history_previous_statuses, history_reasons, history_submission_ids, history_score_versions, history_scores, history_passed, history_attempt_counts, history_event_ids, history_event_types, history_decided_ats, changed_ids, changed_statuses, changed_completed_ats, changed_reopened, status_enrolment_ids, status_statuses, status_previous_statuses, status_reasons, status_requirement_ids, status_event_ids, status_event_types, status_decided_ats, request_enrolment_ids, request_requirement_ids, request_user_ids, request_keys, request_evaluation_ids, request_org_unit_ids, progress_enrolment_ids, progress_requirement_ids, progress_seqs, progress_statuses, progress_submission_ids, progress_score_versions, progress_scores, progress_passed, progress_attempt_counts, progress_met_ats, outbox_topics, outbox_message_keys, outbox_event_ids, outbox_events)!
-- Everything a batch wrote, in one statement (each round trip costs two wake-ups
-- on a busy machine): new submissions and score versions, the decisions' history
-- entries and the progress rows they explain, the changed enrolments with their
-- history, the assignment requests, and the outbox events. No part reads what
-- another writes (they share the statement's snapshot), so their order does not
-- matter. The progress guard runs AFTER UPDATE (migration 20261203100000), once
-- the whole statement has written: it sees the history entries of `decided`.
-- Empty arrays make a part a no-op.
WITH submitted AS (
    INSERT INTO submissions (tenant_id, id, assignment_id, user_id, evaluation_id,
                             submitted_at, event_id)
    SELECT app_current_tenant(), s.*
    FROM unnest(:ids::uuid[], :assignment_ids::uuid[], :user_ids::uuid[],
                :evaluation_ids::uuid[], :submitted_ats::timestamptz[], :event_ids::uuid[]) AS s
), scored AS (
    INSERT INTO submission_scores (tenant_id, submission_id, score_version, score, passed,
                                   correction_batch_id, effective_at, event_id)
    SELECT app_current_tenant(), s.*
    FROM unnest(:score_submission_ids::uuid[], :score_versions::integer[], :scores::numeric[],
                :passed::boolean[], :correction_batch_ids::uuid[],
                :effective_ats::timestamptz[], :score_event_ids::uuid[]) AS s
), decided AS (
    INSERT INTO progress_history (tenant_id, enrolment_id, requirement_id, seq, status,
                                  previous_status, reason, submission_id, score_version,
                                  score, passed, attempt_count, event_id, event_type,
                                  decided_at)
    SELECT app_current_tenant(), h.*
    FROM unnest(:history_enrolment_ids::uuid[], :history_requirement_ids::uuid[],
                :history_seqs::integer[], :history_statuses::text[],
                :history_previous_statuses::text[], :history_reasons::text[],
                :history_submission_ids::uuid[], :history_score_versions::integer[],
                :history_scores::numeric[], :history_passed::boolean[],
                :history_attempt_counts::integer[], :history_event_ids::uuid[],
                :history_event_types::text[], :history_decided_ats::timestamptz[]) AS h
), progressed AS (
    UPDATE progress p
    SET status = u.status, submission_id = u.submission_id, score_version = u.score_version,
        score = u.score, passed = u.passed, attempt_count = u.attempt_count,
        completed_at = u.met_at, decision_seq = u.seq, last_updated_at = now()
    FROM unnest(:progress_enrolment_ids::uuid[], :progress_requirement_ids::uuid[],
                :progress_seqs::integer[], :progress_statuses::text[],
                :progress_submission_ids::uuid[], :progress_score_versions::integer[],
                :progress_scores::numeric[], :progress_passed::boolean[],
                :progress_attempt_counts::integer[], :progress_met_ats::timestamptz[])
         AS u (enrolment_id, requirement_id, seq, status, submission_id, score_version, score,
               passed, attempt_count, met_at)
    WHERE p.enrolment_id = u.enrolment_id AND p.requirement_id = u.requirement_id
), changed AS (
    -- Each changed enrolment's final status. `reopened`: it went back in progress
    -- in this batch, which clears certified_at, as each change does on the
    -- one-message path.
    UPDATE enrolments e
    SET status = u.status, completed_at = u.completed_at,
        certified_at = CASE WHEN u.reopened THEN NULL ELSE e.certified_at END,
        updated_at = now()
    FROM unnest(:changed_ids::uuid[], :changed_statuses::text[],
                :changed_completed_ats::timestamptz[], :changed_reopened::boolean[])
         AS u (id, status, completed_at, reopened)
    WHERE e.id = u.id
), logged AS (
    -- Every status change in order in its enrolment's history (each enrolment's
    -- entries follow its last one).
    INSERT INTO enrolment_history (tenant_id, enrolment_id, seq, status, previous_status,
                                   reason, requirement_id, event_id, event_type, decided_at)
    SELECT app_current_tenant(), h.enrolment_id,
           COALESCE(last.seq, 0)
               + row_number() OVER (PARTITION BY h.enrolment_id ORDER BY h.n),
           h.status, h.previous_status, h.reason, h.requirement_id, h.event_id, h.event_type,
           h.decided_at
    FROM unnest(:status_enrolment_ids::uuid[], :status_statuses::text[],
                :status_previous_statuses::text[], :status_reasons::text[],
                :status_requirement_ids::uuid[], :status_event_ids::uuid[],
                :status_event_types::text[], :status_decided_ats::timestamptz[])
         WITH ORDINALITY AS h (enrolment_id, status, previous_status, reason, requirement_id,
                               event_id, event_type, decided_at, n)
    LEFT JOIN LATERAL (
        SELECT max(seq) AS seq FROM enrolment_history x WHERE x.enrolment_id = h.enrolment_id
    ) last ON true
), requested AS (
    INSERT INTO assignments (tenant_id, enrolment_id, requirement_id, user_id,
                             idempotency_key, evaluation_id, org_unit_id)
    SELECT app_current_tenant(), a.*
    FROM unnest(:request_enrolment_ids::uuid[], :request_requirement_ids::uuid[],
                :request_user_ids::uuid[], :request_keys::text[],
                :request_evaluation_ids::uuid[], :request_org_unit_ids::uuid[]) AS a
    ON CONFLICT DO NOTHING
)
-- As messaging.sql's enqueue_events: in order, an event id already written skipped.
INSERT INTO outbox (tenant_id, topic, message_key, event_id, event)
SELECT app_current_tenant(), u.topic, u.message_key, u.event_id, u.event::jsonb
FROM unnest(:outbox_topics::text[], :outbox_message_keys::text[], :outbox_event_ids::uuid[],
            :outbox_events::text[])
     WITH ORDINALITY AS u (topic, message_key, event_id, event, ord)
ORDER BY u.ord
ON CONFLICT (tenant_id, event_id) DO NOTHING;
