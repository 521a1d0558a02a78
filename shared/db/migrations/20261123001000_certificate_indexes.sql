-- migrate:up

-- certificates_active_expiry (expires_at, partial on active certificates with an
-- expiry) is a prefix of certificates_expiry_due (expires_at, tenant_id, id, same
-- predicate), which the renewer's scan reads: nothing needs the first any more,
-- and every certificate issued, revoked or expired paid for maintaining both.
DROP INDEX certificates_active_expiry;

-- migrate:down
CREATE INDEX certificates_active_expiry
    ON certificates (expires_at) WHERE status = 'active' AND expires_at IS NOT NULL;
