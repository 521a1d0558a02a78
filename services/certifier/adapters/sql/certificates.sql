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
