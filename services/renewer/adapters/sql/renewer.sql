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

-- Set-based versions of the above for a group of one tenant's certificates
-- (Renewer.settle_many): one statement per step, same locks in the same order
-- (the enrolments by id, then their certificates), whatever the group's size.

-- name: lock_certificates(ids)
WITH e AS MATERIALIZED (
    SELECT e.id, e.status, e.user_id, e.org_unit_id, e.user_display_name
    FROM enrolments e
    WHERE e.id IN (SELECT c.enrolment_id FROM certificates c WHERE c.id = ANY(:ids::uuid[]))
    ORDER BY e.id
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
WHERE c.id = ANY(:ids::uuid[])
ORDER BY c.id
FOR UPDATE OF c;

-- name: request_renewals(ids, renewal_enrolment_ids, requested_at)
-- The certificates whose renewal this statement recorded (once each).
UPDATE certificates c
SET renewal_enrolment_id = u.renewal_enrolment_id, renewal_requested_at = :requested_at
FROM unnest(:ids::uuid[], :renewal_enrolment_ids::uuid[]) AS u(id, renewal_enrolment_id)
WHERE c.id = ANY(:ids::uuid[]) AND c.id = u.id AND c.renewal_enrolment_id IS NULL
RETURNING c.id;

-- name: expire_certificates(ids, expired_at)
-- The certificates this statement expired (those still active).
UPDATE certificates
SET status = 'expired', expired_at = :expired_at
WHERE id = ANY(:ids::uuid[]) AND status = 'active'
RETURNING id;

-- name: expire_enrolments(ids, previous_statuses, event_ids, event_types, decided_ats)!
-- As expire_enrolment, for many: each status change with its history entry.
WITH u AS (
    SELECT * FROM unnest(:ids::uuid[], :previous_statuses::text[], :event_ids::uuid[],
                         :event_types::text[], :decided_ats::timestamptz[])
         WITH ORDINALITY AS u(id, previous_status, event_id, event_type, decided_at, ord)
), changed AS (
    UPDATE enrolments SET status = 'expired', updated_at = now()
    WHERE id = ANY(:ids::uuid[])
)
INSERT INTO enrolment_history (tenant_id, enrolment_id, seq, status, previous_status, reason,
                               event_id, event_type, decided_at)
SELECT app_current_tenant(), u.id,
       COALESCE((SELECT max(h.seq) FROM enrolment_history h WHERE h.enrolment_id = u.id), 0)
           + row_number() OVER (PARTITION BY u.id ORDER BY u.ord),
       'expired', u.previous_status, 'certificate_expired', u.event_id, u.event_type,
       u.decided_at
FROM u
ORDER BY u.ord;

