-- Inbox and outbox, shared by every consumer. Run inside a tenant unit of work.

-- name: tenant_known()$
-- True when the tenant of the current transaction exists (RLS shows only it).
SELECT EXISTS (SELECT FROM tenants WHERE id = app_current_tenant());

-- name: claim_event(consumer, event_id, event_type)$
-- Record an event as processed by a consumer; NULL when it already was.
INSERT INTO inbox (tenant_id, consumer, event_id, event_type)
VALUES (app_current_tenant(), :consumer, :event_id, :event_type)
ON CONFLICT DO NOTHING
RETURNING true;

-- name: enqueue_event(topic, message_key, event_id, event)$
-- Write an event to the outbox (a replayed decision re-derives the same id:
-- then nothing is written and NULL is returned).
INSERT INTO outbox (tenant_id, topic, message_key, event_id, event)
VALUES (app_current_tenant(), :topic, :message_key, :event_id, :event)
ON CONFLICT (tenant_id, event_id) DO NOTHING
RETURNING id;

-- name: enqueue_events(topics, message_keys, event_ids, events)
-- As enqueue_event, for many, in order: the ids of the events written (an event id
-- already in the outbox is skipped).
INSERT INTO outbox (tenant_id, topic, message_key, event_id, event)
SELECT app_current_tenant(), u.topic, u.message_key, u.event_id, u.event::jsonb
FROM unnest(:topics::text[], :message_keys::text[], :event_ids::uuid[], :events::text[])
     WITH ORDINALITY AS u(topic, message_key, event_id, event, ord)
ORDER BY u.ord
ON CONFLICT (tenant_id, event_id) DO NOTHING
RETURNING event_id;

-- name: outbox_claim(limit)
-- Unpublished rows of every tenant, locked until the relay's transaction ends: the
-- event as the text to publish, and the two attributes the Kafka headers repeat.
SELECT id, topic, message_key, event::text AS body, event_id,
       event->>'traceparent' AS traceparent, created_at
FROM outbox_claim(:limit);

-- name: outbox_mark_published(ids)$
SELECT outbox_mark_published(:ids::bigint[]);

-- name: outbox_backlog()$
SELECT outbox_backlog();

-- name: claim_events(consumer, event_ids, event_types)
-- Record many events as processed by a consumer; returns the ids that were not
-- yet (each once, even when it appears twice in the list).
INSERT INTO inbox (tenant_id, consumer, event_id, event_type)
SELECT app_current_tenant(), :consumer, e.id, e.type
FROM unnest(:event_ids::uuid[], :event_types::text[]) AS e (id, type)
ON CONFLICT DO NOTHING
RETURNING event_id;
