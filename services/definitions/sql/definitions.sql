-- Programme definitions, inside a tenant unit of work.

-- name: known_evaluations(ids)
SELECT id FROM evaluations WHERE id = ANY (:ids::uuid[]);

-- name: programme_by_key(key)^
SELECT id, status FROM programmes WHERE key = :key;

-- name: latest_version(programme_id)^
SELECT version, definition_hash FROM programme_versions
WHERE programme_id = :programme_id
ORDER BY version DESC LIMIT 1;

-- name: insert_programme(id, key, actor)!
INSERT INTO programmes (tenant_id, id, key, created_by, updated_by)
VALUES (app_current_tenant(), :id, :key, :actor, :actor);

-- name: touch_programme(id, actor)!
UPDATE programmes SET updated_at = now(), updated_by = :actor WHERE id = :id;

-- name: insert_version(programme_id, version, name, description, badge_image_url, validity_period, renewal_window, definition, definition_hash, published_at, actor)!
INSERT INTO programme_versions (tenant_id, programme_id, version, name, description,
                                badge_image_url, validity_period, renewal_window, definition,
                                definition_hash, published_at, published_by)
VALUES (app_current_tenant(), :programme_id, :version, :name, :description, :badge_image_url,
        :validity_period::text::interval, :renewal_window::text::interval, :definition,
        :definition_hash, :published_at, :actor);

-- name: insert_groups(programme_id, version, keys, names, min_mets)!
INSERT INTO programme_elective_groups (tenant_id, programme_id, version, key, name, min_met)
SELECT app_current_tenant(), :programme_id, :version, k, n, m
FROM unnest(:keys::text[], :names::text[], :min_mets::integer[]) AS t (k, n, m);

-- name: insert_requirements(programme_id, version, ids, keys, names, evaluation_ids, min_scores, mandatory, groups, orders)!
INSERT INTO programme_requirements (tenant_id, id, programme_id, version, key, name,
                                    evaluation_id, min_score, is_mandatory, elective_group,
                                    sort_order)
SELECT app_current_tenant(), i, :programme_id, :version, k, n, e, s, m, g, o
FROM unnest(:ids::uuid[], :keys::text[], :names::text[], :evaluation_ids::uuid[],
            :min_scores::numeric[], :mandatory::boolean[], :groups::text[], :orders::integer[])
     AS t (i, k, n, e, s, m, g, o);

-- name: insert_prerequisites(programme_id, version, requirement_ids, prerequisite_ids)!
INSERT INTO requirement_prerequisites (tenant_id, programme_id, version, requirement_id,
                                       prerequisite_id)
SELECT app_current_tenant(), :programme_id, :version, r, p
FROM unnest(:requirement_ids::uuid[], :prerequisite_ids::uuid[]) AS t (r, p);

-- name: ensure_tenant()!
INSERT INTO tenants (id) VALUES (app_current_tenant()) ON CONFLICT DO NOTHING;

-- name: add_evaluation(id, type, title)$
INSERT INTO evaluations (tenant_id, id, type, title)
VALUES (app_current_tenant(), :id, :type, :title)
ON CONFLICT (tenant_id, id) DO NOTHING
RETURNING true;

-- name: tenant_known()$
-- True when the tenant of the current transaction is registered (RLS shows only it).
SELECT EXISTS (SELECT FROM tenants WHERE id = app_current_tenant());

-- name: set_tenant(holder_name_rule)^
-- Register the current tenant or change its privacy rule; a NULL rule keeps the
-- current one (the default 'initials' for a new tenant).
INSERT INTO tenants (id, holder_name_rule)
VALUES (app_current_tenant(), COALESCE(:holder_name_rule::text, 'initials'))
ON CONFLICT (id) DO UPDATE
    SET holder_name_rule = COALESCE(:holder_name_rule::text, tenants.holder_name_rule),
        updated_at = now()
RETURNING holder_name_rule, (xmax = 0) AS created;
