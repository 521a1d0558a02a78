-- migrate:up

-- Every status change of an enrolment (completed, reopened, certified, ...),
-- with the event that caused it. Append-only, like progress_history.
CREATE TABLE enrolment_history (
    tenant_id       uuid NOT NULL,
    enrolment_id    uuid NOT NULL,
    seq             integer NOT NULL CHECK (seq >= 1),
    status          text NOT NULL,
    previous_status text NOT NULL,
    reason          text NOT NULL,
    requirement_id  uuid,
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    decided_at      timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, enrolment_id, seq),
    FOREIGN KEY (tenant_id, enrolment_id) REFERENCES enrolments (tenant_id, id)
        ON DELETE CASCADE
);

CREATE TRIGGER enrolment_history_append_only BEFORE UPDATE OR DELETE ON enrolment_history
    FOR EACH ROW EXECUTE FUNCTION forbid_change();

SELECT apply_tenant_isolation('enrolment_history');
GRANT SELECT, INSERT ON enrolment_history TO programmes_app;

-- Lookups by the platform's ids alone, for the cross-tenant probe below.
CREATE INDEX enrolments_by_id ON enrolments (id);
CREATE INDEX assignments_by_assignment_id ON assignments (assignment_id)
    WHERE assignment_id IS NOT NULL;
CREATE INDEX submissions_by_id ON submissions (id);
CREATE INDEX programmes_by_id ON programmes (id);

-- Does this id belong to ANOTHER tenant? Asked only after a lookup in the
-- current tenant found nothing, so that a message naming another tenant's row
-- is dead-lettered (and investigated) rather than silently ignored. Answers a
-- yes/no and nothing else.
GRANT programmes_system TO CURRENT_USER;
GRANT CREATE ON SCHEMA public TO programmes_system;
GRANT SELECT (tenant_id, id) ON enrolments, submissions, programmes TO programmes_system;
CREATE POLICY system_probe ON enrolments FOR SELECT TO programmes_system USING (true);
CREATE POLICY system_probe ON submissions FOR SELECT TO programmes_system USING (true);
CREATE POLICY system_probe ON programmes FOR SELECT TO programmes_system USING (true);

CREATE FUNCTION foreign_reference(p_kind text, p_id uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT CASE p_kind
        WHEN 'enrolment' THEN EXISTS (
            SELECT FROM enrolments WHERE id = p_id
              AND tenant_id IS DISTINCT FROM app_current_tenant())
        WHEN 'assignment' THEN EXISTS (
            SELECT FROM assignments WHERE assignment_id = p_id
              AND tenant_id IS DISTINCT FROM app_current_tenant())
        WHEN 'submission' THEN EXISTS (
            SELECT FROM submissions WHERE id = p_id
              AND tenant_id IS DISTINCT FROM app_current_tenant())
        WHEN 'programme' THEN EXISTS (
            SELECT FROM programmes WHERE id = p_id
              AND tenant_id IS DISTINCT FROM app_current_tenant())
    END
$$;

ALTER FUNCTION foreign_reference(text, uuid) OWNER TO programmes_system;
REVOKE CREATE ON SCHEMA public FROM programmes_system;
REVOKE programmes_system FROM CURRENT_USER;
REVOKE ALL ON FUNCTION foreign_reference(text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION foreign_reference(text, uuid) TO programmes_app;

-- migrate:down
DROP FUNCTION foreign_reference(text, uuid);
DROP POLICY system_probe ON programmes;
DROP POLICY system_probe ON submissions;
DROP POLICY system_probe ON enrolments;
DROP INDEX programmes_by_id;
DROP INDEX submissions_by_id;
DROP INDEX assignments_by_assignment_id;
DROP INDEX enrolments_by_id;
DROP TABLE enrolment_history;
