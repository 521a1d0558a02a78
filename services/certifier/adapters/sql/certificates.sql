-- The certifier's queries, inside a tenant unit of work.

-- name: lock_enrolment(id)^
-- The enrolment with what a certificate needs, locked for the transaction.
SELECT id, status, completed_at, user_id, org_unit_id, programme_id, programme_version,
       user_display_name
FROM enrolments
WHERE id = :id
FOR UPDATE;

-- name: live_certificate(enrolment_id)^
SELECT id, issued_at, expires_at, public_token, status
FROM certificates
WHERE enrolment_id = :enrolment_id AND status <> 'revoked'
FOR UPDATE;

-- name: certificate_for_completion(completion_event_id)^
SELECT id FROM certificates WHERE completion_event_id = :completion_event_id;

-- name: insert_certificate(id, enrolment_id, user_id, org_unit_id, programme_id, programme_version, issued_at, public_token, holder_display_name, completion_event_id)^
-- Expiry: issued_at plus the pinned version's validity period (none without one),
-- computed here so that calendar units (P1Y) keep their meaning.
INSERT INTO certificates (tenant_id, id, enrolment_id, user_id, org_unit_id, programme_id,
                          programme_version, issued_at, expires_at, public_token,
                          holder_display_name, completion_event_id)
SELECT app_current_tenant(), :id, :enrolment_id, :user_id, :org_unit_id, :programme_id,
       :programme_version, :issued_at, :issued_at::timestamptz + v.validity_period, :public_token,
       :holder_display_name, :completion_event_id
FROM programme_versions v
WHERE v.programme_id = :programme_id AND v.version = :programme_version
RETURNING id, issued_at, expires_at, public_token, status;

-- name: revoke(id, reason, at)!
UPDATE certificates
SET status = 'revoked', revoked_at = :at, revoke_reason = :reason
WHERE id = :id AND status <> 'revoked';

-- name: set_enrolment_status(id, status, certified_at)!
UPDATE enrolments SET status = :status, certified_at = :certified_at, updated_at = now()
WHERE id = :id;

-- name: verify(token)^
-- The public lookup: no tenant context, display fields only.
SELECT * FROM verify_certificate(:token);

-- Set-based versions of the above, one statement per step for a whole group of
-- events (services/certifier/batch.py); same tenant transaction, same locks in
-- the same order (enrolments, then their live certificates), by id so that two
-- groups lock in one order.

-- name: lock_enrolments(ids)
SELECT id, status, completed_at, user_id, org_unit_id, programme_id, programme_version,
       user_display_name
FROM enrolments
WHERE id = ANY(:ids::uuid[])
ORDER BY id
FOR UPDATE;

-- name: live_certificates(enrolment_ids)
SELECT enrolment_id, id, issued_at, expires_at, public_token, status
FROM certificates
WHERE enrolment_id = ANY(:enrolment_ids::uuid[]) AND status <> 'revoked'
ORDER BY id
FOR UPDATE;

-- name: certificates_for_completions(completion_event_ids)
SELECT completion_event_id
FROM certificates
WHERE completion_event_id = ANY(:completion_event_ids::uuid[]);

-- name: revoke_many(ids, reasons, ats)!
UPDATE certificates c
SET status = 'revoked', revoked_at = u.at, revoke_reason = u.reason
FROM unnest(:ids::uuid[], :reasons::text[], :ats::timestamptz[]) AS u(id, reason, at)
WHERE c.id = ANY(:ids::uuid[]) AND c.id = u.id AND c.status <> 'revoked';

-- name: insert_certificates(ids, enrolment_ids, user_ids, org_unit_ids, programme_ids, programme_versions, issued_ats, public_tokens, holder_display_names, completion_event_ids)
-- As insert_certificate, for many: expiry from the pinned version's validity period.
INSERT INTO certificates (tenant_id, id, enrolment_id, user_id, org_unit_id, programme_id,
                          programme_version, issued_at, expires_at, public_token,
                          holder_display_name, completion_event_id)
SELECT app_current_tenant(), u.id, u.enrolment_id, u.user_id, u.org_unit_id, u.programme_id,
       u.programme_version, u.issued_at, u.issued_at + v.validity_period, u.public_token,
       u.holder_display_name, u.completion_event_id
FROM unnest(:ids::uuid[], :enrolment_ids::uuid[], :user_ids::uuid[], :org_unit_ids::uuid[],
            :programme_ids::uuid[], :programme_versions::integer[], :issued_ats::timestamptz[],
            :public_tokens::text[], :holder_display_names::text[],
            :completion_event_ids::uuid[])
     WITH ORDINALITY AS u(id, enrolment_id, user_id, org_unit_id, programme_id,
                          programme_version, issued_at, public_token, holder_display_name,
                          completion_event_id, ord)
JOIN programme_versions v ON v.programme_id = u.programme_id AND v.version = u.programme_version
ORDER BY u.ord
RETURNING id, issued_at, expires_at, public_token, status;

-- name: certify_enrolments(ids, previous_statuses, certified_ats, event_ids, event_types, decided_ats)!
-- Each enrolment certified, with its history entry (as record_status_change), in one statement.
WITH u AS (
    SELECT * FROM unnest(:ids::uuid[], :previous_statuses::text[], :certified_ats::timestamptz[],
                         :event_ids::uuid[], :event_types::text[], :decided_ats::timestamptz[])
         WITH ORDINALITY AS u(id, previous_status, certified_at, event_id, event_type,
                              decided_at, ord)
), changed AS (
    UPDATE enrolments e SET status = 'certified', certified_at = u.certified_at,
                            updated_at = now()
    FROM u
    -- = ANY: an index lookup per id, never a scan of the tenant's enrolments
    WHERE e.id = ANY(:ids::uuid[]) AND e.id = u.id
)
INSERT INTO enrolment_history (tenant_id, enrolment_id, seq, status, previous_status, reason,
                               event_id, event_type, decided_at)
SELECT app_current_tenant(), u.id,
       COALESCE((SELECT max(h.seq) FROM enrolment_history h WHERE h.enrolment_id = u.id), 0)
           + row_number() OVER (PARTITION BY u.id ORDER BY u.ord),
       'certified', u.previous_status, 'certified', u.event_id, u.event_type, u.decided_at
FROM u
ORDER BY u.ord;

-- name: verify_many(tokens)
-- verify for several tokens in one statement (concurrent requests share it): the
-- same narrow function per token, each row tagged with the token it answers.
SELECT t.token, v.*
FROM unnest(:tokens::text[]) AS t(token),
     LATERAL verify_certificate(t.token) AS v;
