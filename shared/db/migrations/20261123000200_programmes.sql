-- migrate:up

-- Phase 1 of the roadmap: the evaluation catalogue and programme definitions.
-- A programme is a stable identity (key); its content lives in immutable,
-- numbered versions. Requirements, elective groups and prerequisite edges belong
-- to one version, and composite foreign keys keep every reference inside one
-- tenant and one version.

CREATE TABLE evaluations (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    id         uuid NOT NULL,
    type       text NOT NULL CHECK (type IN ('knowledge', 'observation', 'evidence')),
    title      text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE programmes (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    id          uuid NOT NULL,
    key         text NOT NULL CHECK (key ~ '^[a-z0-9][a-z0-9._-]{0,99}$'),
    org_unit_id uuid,
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL,
    archived_at timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, key),
    CHECK ((status = 'archived') = (archived_at IS NOT NULL))
);

CREATE TABLE programme_versions (
    tenant_id       uuid NOT NULL,
    programme_id    uuid NOT NULL,
    version         integer NOT NULL CHECK (version >= 1),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 500),
    description     text NOT NULL DEFAULT '',
    badge_image_url text,
    validity_period interval CHECK (validity_period > interval '0'),
    renewal_window  interval NOT NULL DEFAULT interval '30 days'
                    CHECK (renewal_window >= interval '0'),
    -- The normalised definition this version was published from: the snapshot
    -- copied onto every enrolment pinned to it.
    definition      jsonb NOT NULL,
    definition_hash text NOT NULL,
    published_at    timestamptz NOT NULL,
    published_by    text NOT NULL,
    PRIMARY KEY (tenant_id, programme_id, version),
    FOREIGN KEY (tenant_id, programme_id) REFERENCES programmes (tenant_id, id)
        ON DELETE CASCADE
);

CREATE INDEX programme_versions_published
    ON programme_versions (tenant_id, programme_id, published_at DESC);

-- "At least N of these": requirements that name a group count towards it.
CREATE TABLE programme_elective_groups (
    tenant_id    uuid NOT NULL,
    programme_id uuid NOT NULL,
    version      integer NOT NULL,
    key          text NOT NULL,
    name         text NOT NULL,
    min_met      integer NOT NULL CHECK (min_met >= 1),
    PRIMARY KEY (tenant_id, programme_id, version, key),
    FOREIGN KEY (tenant_id, programme_id, version)
        REFERENCES programme_versions (tenant_id, programme_id, version) ON DELETE CASCADE
);

CREATE TABLE programme_requirements (
    tenant_id      uuid NOT NULL,
    id             uuid NOT NULL,
    programme_id   uuid NOT NULL,
    version        integer NOT NULL,
    key            text NOT NULL,
    name           text NOT NULL,
    evaluation_id  uuid NOT NULL,
    -- NULL: a pass/fail requirement, satisfied by `passed`.
    min_score      numeric(5, 2) CHECK (min_score BETWEEN 0 AND 100),
    is_mandatory   boolean NOT NULL DEFAULT true,
    elective_group text,
    sort_order     integer NOT NULL,
    metadata       jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, programme_id, version, key),
    UNIQUE (tenant_id, programme_id, version, id),
    FOREIGN KEY (tenant_id, programme_id, version)
        REFERENCES programme_versions (tenant_id, programme_id, version) ON DELETE CASCADE,
    -- A requirement can only name an evaluation of its own tenant's catalogue.
    FOREIGN KEY (tenant_id, evaluation_id) REFERENCES evaluations (tenant_id, id),
    FOREIGN KEY (tenant_id, programme_id, version, elective_group)
        REFERENCES programme_elective_groups (tenant_id, programme_id, version, key)
        ON DELETE CASCADE,
    CHECK (elective_group IS NULL OR NOT is_mandatory)
);

-- The requirement graph: edge (requirement -> prerequisite), within one version.
CREATE TABLE requirement_prerequisites (
    tenant_id       uuid NOT NULL,
    programme_id    uuid NOT NULL,
    version         integer NOT NULL,
    requirement_id  uuid NOT NULL,
    prerequisite_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, requirement_id, prerequisite_id),
    FOREIGN KEY (tenant_id, programme_id, version, requirement_id)
        REFERENCES programme_requirements (tenant_id, programme_id, version, id)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, programme_id, version, prerequisite_id)
        REFERENCES programme_requirements (tenant_id, programme_id, version, id)
        ON DELETE CASCADE,
    CHECK (requirement_id <> prerequisite_id)
);

-- A published version never changes: publishing again makes a new version.
CREATE TRIGGER programme_versions_immutable BEFORE UPDATE ON programme_versions
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
CREATE TRIGGER programme_elective_groups_immutable BEFORE UPDATE ON programme_elective_groups
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
CREATE TRIGGER programme_requirements_immutable BEFORE UPDATE ON programme_requirements
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
CREATE TRIGGER requirement_prerequisites_immutable BEFORE UPDATE ON requirement_prerequisites
    FOR EACH ROW EXECUTE FUNCTION forbid_change();

SELECT apply_tenant_isolation(t) FROM unnest(ARRAY[
    'evaluations', 'programmes', 'programme_versions', 'programme_elective_groups',
    'programme_requirements', 'requirement_prerequisites'
]::regclass[]) AS t;

GRANT SELECT, INSERT ON evaluations TO programmes_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON programmes TO programmes_app;
GRANT SELECT, INSERT ON programme_versions, programme_elective_groups,
    programme_requirements, requirement_prerequisites TO programmes_app;
-- Deleting a programme cascades to its versions; only possible without enrolments.
GRANT DELETE ON programme_versions, programme_elective_groups,
    programme_requirements, requirement_prerequisites TO programmes_app;

-- migrate:down
DROP TABLE requirement_prerequisites;
DROP TABLE programme_requirements;
DROP TABLE programme_elective_groups;
DROP TABLE programme_versions;
DROP TABLE programmes;
DROP TABLE evaluations;
