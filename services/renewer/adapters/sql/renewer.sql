-- The renewer's queries. The two scans run without a tenant (they call the
-- SECURITY DEFINER functions of the renewer migration and get keys only);
-- everything else runs inside one tenant unit of work.

-- name: renewals_due(now, after_at, after_tenant, after_id, limit)
SELECT tenant_id, certificate_id, due_at
FROM renewals_due(:now, :after_at, :after_tenant, :after_id, :limit);

-- name: expiries_due(now, after_at, after_tenant, after_id, limit)
SELECT tenant_id, certificate_id, due_at
FROM expiries_due(:now, :after_at, :after_tenant, :after_id, :limit);

-- name: lock_certificate(id)^
-- The certificate with its enrolment and programme, both rows locked for the
-- transaction. The enrolment is locked first (the materialised CTE is read
-- before the outer row lock is taken): the certifier locks an enrolment before
-- its certificate, and so must we, or the two could deadlock.
WITH e AS MATERIALIZED (
    SELECT e.id, e.status, e.user_id, e.org_unit_id, e.user_display_name
    FROM enrolments e
    WHERE e.id = (SELECT c.enrolment_id FROM certificates c WHERE c.id = :id)
    FOR UPDATE
)
SELECT c.id, c.enrolment_id, c.user_id, c.programme_id, c.status, c.issued_at, c.expires_at,
       c.renewal_opens_at, c.renewal_enrolment_id, c.public_token,
       p.status = 'archived' AS programme_archived,
       e.status AS enrolment_status, e.user_id AS enrolment_user_id,
       e.org_unit_id AS enrolment_org_unit_id, e.user_display_name
FROM certificates c
JOIN e ON e.id = c.enrolment_id
JOIN programmes p ON p.id = c.programme_id
WHERE c.id = :id
FOR UPDATE OF c;

-- name: request_renewal(id, renewal_enrolment_id, requested_at)$
-- Once per certificate: a second pass finds it already set and changes nothing.
UPDATE certificates
SET renewal_enrolment_id = :renewal_enrolment_id, renewal_requested_at = :requested_at
WHERE id = :id AND renewal_enrolment_id IS NULL
RETURNING true;

-- name: expire_certificate(id, expired_at)$
UPDATE certificates
SET status = 'expired', expired_at = :expired_at
WHERE id = :id AND status = 'active'
RETURNING true;

-- name: expire_enrolment(id, previous_status, event_id, event_type, decided_at)!
-- The status change and its history entry, in one statement.
WITH changed AS (
    UPDATE enrolments SET status = 'expired', updated_at = now()
    WHERE id = :id
    RETURNING id
)
INSERT INTO enrolment_history (tenant_id, enrolment_id, seq, status, previous_status, reason,
                               event_id, event_type, decided_at)
SELECT app_current_tenant(), changed.id,
       COALESCE((SELECT max(h.seq) FROM enrolment_history h WHERE h.enrolment_id = changed.id),
                0) + 1,
       'expired', :previous_status, 'certificate_expired', :event_id, :event_type, :decided_at
FROM changed;
