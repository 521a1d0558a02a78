-- Reading and retiring programmes, inside a tenant unit of work.

-- name: list_programmes()
-- Every programme with its latest version and how many enrolments it has.
SELECT p.id, p.key, p.status, v.version, v.name, v.published_at,
       (SELECT count(*) FROM enrolments e
        WHERE e.tenant_id = p.tenant_id AND e.programme_id = p.id) AS enrolments
FROM programmes p
LEFT JOIN LATERAL (
    SELECT pv.version, pv.name, pv.published_at
    FROM programme_versions pv
    WHERE pv.tenant_id = p.tenant_id AND pv.programme_id = p.id
    ORDER BY pv.version DESC
    LIMIT 1
) v ON true
ORDER BY p.key;

-- name: programme(key)^
SELECT p.id, p.key, p.status, p.created_at, p.created_by, p.updated_at, p.updated_by,
       p.archived_at,
       (SELECT count(*) FROM enrolments e
        WHERE e.tenant_id = p.tenant_id AND e.programme_id = p.id) AS enrolments
FROM programmes p
WHERE p.key = :key;

-- name: versions(programme_id)
SELECT version, name, published_at, published_by
FROM programme_versions
WHERE programme_id = :programme_id
ORDER BY version;

-- name: version(programme_id, version)^
-- The durations as written in the file (the interval columns lose P1Y vs P365D).
SELECT version, name, description, badge_image_url, definition_hash, published_at,
       published_by, definition ->> 'validity_period' AS validity_period,
       definition ->> 'renewal_window' AS renewal_window
FROM programme_versions
WHERE programme_id = :programme_id AND version = :version;

-- name: version_requirements(programme_id, version)
SELECT r.key, r.name, r.evaluation_id, ev.type AS evaluation_type,
       ev.title AS evaluation_title, r.min_score, r.is_mandatory, r.elective_group,
       ARRAY(
           SELECT pr.key
           FROM requirement_prerequisites rp
           JOIN programme_requirements pr
             ON pr.tenant_id = rp.tenant_id AND pr.id = rp.prerequisite_id
           WHERE rp.tenant_id = r.tenant_id AND rp.requirement_id = r.id
           ORDER BY pr.sort_order
       ) AS prerequisites
FROM programme_requirements r
JOIN evaluations ev ON ev.tenant_id = r.tenant_id AND ev.id = r.evaluation_id
WHERE r.programme_id = :programme_id AND r.version = :version
ORDER BY r.sort_order;

-- name: version_groups(programme_id, version)
SELECT key, name, min_met
FROM programme_elective_groups
WHERE programme_id = :programme_id AND version = :version
ORDER BY key;

-- name: archive_programme(key, actor, archived_at)$
-- Archive an active programme; NULL when there is no active programme by that key.
UPDATE programmes
SET status = 'archived', archived_at = :archived_at, updated_at = now(), updated_by = :actor
WHERE key = :key AND status = 'active'
RETURNING id;

-- name: delete_programme(key)$
-- Its versions, requirements, groups and edges go with it (ON DELETE CASCADE);
-- the delete guard refuses while enrolments exist. NULL when nothing was deleted.
DELETE FROM programmes WHERE key = :key RETURNING id;

-- name: programme_for_enrolment(key)^
-- The programme and its latest published version, for a new enrolment.
SELECT p.id, p.status,
       (SELECT max(pv.version) FROM programme_versions pv
        WHERE pv.tenant_id = p.tenant_id AND pv.programme_id = p.id) AS version
FROM programmes p
WHERE p.key = :key;

-- name: enrolment_exists(id)$
SELECT EXISTS (SELECT FROM enrolments WHERE id = :id);
