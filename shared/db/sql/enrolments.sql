-- The enrolment status history every service appends to (inside a tenant unit of work).

-- name: append_enrolment_history(enrolment_id, status, previous_status, reason, requirement_id, event_id, event_type, decided_at)!
INSERT INTO enrolment_history (tenant_id, enrolment_id, seq, status, previous_status, reason,
                               requirement_id, event_id, event_type, decided_at)
SELECT app_current_tenant(), :enrolment_id, COALESCE(max(seq), 0) + 1, :status,
       :previous_status, :reason, :requirement_id, :event_id, :event_type, :decided_at
FROM enrolment_history WHERE enrolment_id = :enrolment_id;
