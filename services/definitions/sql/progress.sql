-- An enrolment's progress as the operator reads it, inside a tenant unit of work.

-- name: enrolment(id)^
SELECT e.id, e.user_id, e.user_display_name, e.programme_id, e.programme_version, e.status,
       e.snapshot, e.enrolled_at, e.completed_at, e.certified_at, e.expires_at,
       e.renewal_of_enrolment_id, p.key AS programme_key, v.name AS programme_name
FROM enrolments e
JOIN programmes p ON p.tenant_id = e.tenant_id AND p.id = e.programme_id
JOIN programme_versions v
  ON v.tenant_id = e.tenant_id AND v.programme_id = e.programme_id
 AND v.version = e.programme_version
WHERE e.id = :id;

-- name: progress(enrolment_id)
-- Each ledger row with the evidence it rests on (when the submission was made).
SELECT pr.requirement_id, pr.status, pr.submission_id, pr.score_version, pr.score, pr.passed,
       pr.attempt_count, pr.completed_at, pr.last_updated_at, s.submitted_at
FROM progress pr
LEFT JOIN submissions s ON s.tenant_id = pr.tenant_id AND s.id = pr.submission_id
WHERE pr.enrolment_id = :enrolment_id;

-- name: assignments(enrolment_id)
SELECT requirement_id, status, assignment_id, attempts, last_error, requested_at, created_at
FROM assignments
WHERE enrolment_id = :enrolment_id;
