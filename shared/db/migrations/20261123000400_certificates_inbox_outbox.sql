-- migrate:up

-- Phase 4: certificates. Plus the messaging tables every service shares: the
-- inbox of processed event ids and the transactional outbox.

CREATE TABLE certificates (
    tenant_id           uuid NOT NULL,
    id                  uuid NOT NULL,
    enrolment_id        uuid NOT NULL,
    user_id             uuid NOT NULL,
    org_unit_id         uuid,
    programme_id        uuid NOT NULL,
    programme_version   integer NOT NULL,
    status              text NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'expired', 'revoked')),
    issued_at           timestamptz NOT NULL,
    expires_at          timestamptz,
    -- At least 128 bits from a CSPRNG, base64url: 22 characters or more.
    public_token        text NOT NULL CHECK (public_token ~ '^[A-Za-z0-9_-]{22,128}$'),
    holder_display_name text,
    completion_event_id uuid NOT NULL,
    revoked_at          timestamptz,
    revoke_reason       text,
    expired_at          timestamptz,
    metadata            jsonb NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (public_token),
    -- The same completion never issues twice, even on replay.
    UNIQUE (tenant_id, completion_event_id),
    FOREIGN KEY (tenant_id, enrolment_id, programme_id, programme_version)
        REFERENCES enrolments (tenant_id, id, programme_id, programme_version),
    CHECK (expires_at IS NULL OR expires_at > issued_at),
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL)),
    CHECK ((status = 'expired') = (expired_at IS NOT NULL))
);

-- Exactly one live (not revoked) certificate per enrolment. A revoked
-- certificate keeps its record and token; a later completion may issue anew.
CREATE UNIQUE INDEX certificates_one_live_per_enrolment
    ON certificates (tenant_id, enrolment_id) WHERE status <> 'revoked';
CREATE INDEX certificates_active_expiry
    ON certificates (expires_at) WHERE status = 'active' AND expires_at IS NOT NULL;

-- Processed event ids, per consumer: written in the same transaction as the
-- effects of the event, so that a redelivery changes nothing.
CREATE TABLE inbox (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    consumer     text NOT NULL,
    event_id     uuid NOT NULL,
    event_type   text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, consumer, event_id)
);

-- Events to publish, written in the same transaction as the change they
-- report. The relay publishes rows whose published_at is NULL, in id order but
-- without a high-water mark, so rows committed out of order are never skipped.
CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    topic        text NOT NULL,
    message_key  text,
    event_id     uuid NOT NULL,
    event        jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    UNIQUE (tenant_id, event_id)
);

CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

SELECT apply_tenant_isolation(t) FROM unnest(ARRAY[
    'certificates', 'inbox', 'outbox'
]::regclass[]) AS t;

GRANT SELECT, INSERT, UPDATE ON certificates TO programmes_app;
GRANT SELECT, INSERT ON inbox, outbox TO programmes_app;

-- Cross-tenant work of the fleet (the outbox relay, the assignment dispatcher,
-- the renewer's scan) goes through a few SECURITY DEFINER functions owned by
-- the NOLOGIN role programmes_system, the only role with policies that see
-- across tenants, and only on the columns those functions return. The services
-- keep no such power of their own: they may only EXECUTE these functions.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'programmes_system') THEN
        CREATE ROLE programmes_system NOLOGIN NOINHERIT;
    END IF;
END
$$;
-- The migrating role must be a member of programmes_system to hand functions
-- over to it; the membership is revoked again below, so that the owner, too,
-- stays subject to the tenant policies.
GRANT programmes_system TO CURRENT_USER;
GRANT USAGE ON SCHEMA public TO programmes_system;

GRANT SELECT, UPDATE (published_at) ON outbox TO programmes_system;
CREATE POLICY system_relay ON outbox TO programmes_system USING (true) WITH CHECK (true);
GRANT SELECT ON assignments TO programmes_system;
CREATE POLICY system_dispatch ON assignments FOR SELECT TO programmes_system USING (true);

-- Claim a batch of unpublished outbox rows (locked until the caller's
-- transaction ends; concurrent relays skip each other's rows).
CREATE FUNCTION outbox_claim(p_limit integer)
    RETURNS TABLE (id bigint, topic text, message_key text, event_id uuid, event jsonb,
                   created_at timestamptz)
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT o.id, o.topic, o.message_key, o.event_id, o.event, o.created_at
    FROM outbox o
    WHERE o.published_at IS NULL
    ORDER BY o.id
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED
$$;

CREATE FUNCTION outbox_mark_published(p_ids bigint[]) RETURNS integer
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    WITH done AS (
        UPDATE outbox SET published_at = now()
        WHERE id = ANY (p_ids) AND published_at IS NULL
        RETURNING 1
    )
    SELECT count(*)::integer FROM done
$$;

CREATE FUNCTION outbox_backlog() RETURNS bigint
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT count(*) FROM outbox WHERE published_at IS NULL
$$;

-- Assignment requests due for (re)sending, across tenants: keys only.
CREATE FUNCTION assignments_due(p_now timestamptz, p_limit integer)
    RETURNS TABLE (tenant_id uuid, enrolment_id uuid, requirement_id uuid, user_id uuid)
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT a.tenant_id, a.enrolment_id, a.requirement_id, a.user_id
    FROM assignments a
    WHERE a.status = 'requested' AND a.next_attempt_at <= p_now
    ORDER BY a.next_attempt_at
    LIMIT p_limit
$$;

-- Handing a function over needs CREATE on its schema for the new owner, but
-- only for the moment of the hand-over.
GRANT CREATE ON SCHEMA public TO programmes_system;
ALTER FUNCTION outbox_claim(integer) OWNER TO programmes_system;
ALTER FUNCTION outbox_mark_published(bigint[]) OWNER TO programmes_system;
ALTER FUNCTION outbox_backlog() OWNER TO programmes_system;
ALTER FUNCTION assignments_due(timestamptz, integer) OWNER TO programmes_system;
REVOKE CREATE ON SCHEMA public FROM programmes_system;
REVOKE programmes_system FROM CURRENT_USER;

REVOKE ALL ON FUNCTION outbox_claim(integer), outbox_mark_published(bigint[]),
    outbox_backlog(), assignments_due(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION outbox_claim(integer), outbox_mark_published(bigint[]),
    outbox_backlog(), assignments_due(timestamptz, integer) TO programmes_app;

-- migrate:down
DROP FUNCTION assignments_due(timestamptz, integer);
DROP FUNCTION outbox_backlog();
DROP FUNCTION outbox_mark_published(bigint[]);
DROP FUNCTION outbox_claim(integer);
DROP POLICY system_dispatch ON assignments;
DROP TABLE outbox;
DROP TABLE inbox;
DROP TABLE certificates;
