-- migrate:up

-- Phases 2 and 3 of the roadmap: enrolments pinned to a programme version, the
-- progress ledger (one row per requirement), its append-only decision history,
-- the submissions and score versions this system has seen, and the assignment
-- links requested from the delivery engine.

CREATE TABLE enrolments (
    tenant_id               uuid NOT NULL REFERENCES tenants (id),
    id                      uuid NOT NULL,
    user_id                 uuid NOT NULL,
    org_unit_id             uuid,
    programme_id            uuid NOT NULL,
    programme_version       integer NOT NULL,
    status                  text NOT NULL DEFAULT 'in_progress'
                            CHECK (status IN ('in_progress', 'completed', 'certified',
                                              'expired', 'cancelled')),
    -- Frozen copy of the requirements and rules in force at enrolment.
    snapshot                jsonb NOT NULL,
    user_display_name       text CHECK (length(user_display_name) <= 500),
    enrolled_at             timestamptz NOT NULL,
    completed_at            timestamptz,
    certified_at            timestamptz,
    expires_at              timestamptz,
    renewal_of_enrolment_id uuid,
    created_by_event_id     uuid NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    metadata                jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, id, programme_id, programme_version),
    -- RESTRICT: a programme (or version) with enrolments cannot be deleted.
    FOREIGN KEY (tenant_id, programme_id) REFERENCES programmes (tenant_id, id)
        ON DELETE RESTRICT,
    FOREIGN KEY (tenant_id, programme_id, programme_version)
        REFERENCES programme_versions (tenant_id, programme_id, version) ON DELETE RESTRICT,
    FOREIGN KEY (tenant_id, renewal_of_enrolment_id) REFERENCES enrolments (tenant_id, id),
    CHECK (renewal_of_enrolment_id IS DISTINCT FROM id),
    CHECK (status NOT IN ('completed', 'certified') OR completed_at IS NOT NULL),
    CHECK (status <> 'certified' OR certified_at IS NOT NULL)
);

-- At most one renewal enrolment per enrolment, whatever races the renewer has.
CREATE UNIQUE INDEX enrolments_one_renewal
    ON enrolments (tenant_id, renewal_of_enrolment_id)
    WHERE renewal_of_enrolment_id IS NOT NULL;
CREATE INDEX enrolments_user ON enrolments (tenant_id, user_id, programme_id);

CREATE FUNCTION refuse_programme_delete_with_enrolments() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF EXISTS (SELECT FROM enrolments e
               WHERE e.tenant_id = OLD.tenant_id AND e.programme_id = OLD.id) THEN
        RAISE EXCEPTION 'programme % has enrolments: archive it instead of deleting it', OLD.key
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN OLD;
END
$$;

CREATE TRIGGER programmes_delete_guard BEFORE DELETE ON programmes
    FOR EACH ROW EXECUTE FUNCTION refuse_programme_delete_with_enrolments();

-- The progress ledger: the canonical, persisted state of each requirement of an
-- enrolment. Composite keys tie each row to a requirement of the very version
-- the enrolment is pinned to.
CREATE TABLE progress (
    tenant_id         uuid NOT NULL,
    enrolment_id      uuid NOT NULL,
    requirement_id    uuid NOT NULL,
    programme_id      uuid NOT NULL,
    programme_version integer NOT NULL,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'met', 'failed')),
    -- Evidence: the submission and score version that satisfied the requirement.
    submission_id     uuid,
    score_version     integer,
    score             numeric(6, 3),
    passed            boolean,
    attempt_count     integer NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    completed_at      timestamptz,
    last_updated_at   timestamptz NOT NULL DEFAULT now(),
    -- Sequence number of the history entry that explains the current state.
    decision_seq      integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, enrolment_id, requirement_id),
    FOREIGN KEY (tenant_id, enrolment_id, programme_id, programme_version)
        REFERENCES enrolments (tenant_id, id, programme_id, programme_version)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, programme_id, programme_version, requirement_id)
        REFERENCES programme_requirements (tenant_id, programme_id, version, id),
    CHECK (status <> 'met' OR (submission_id IS NOT NULL AND score_version IS NOT NULL
                               AND completed_at IS NOT NULL))
);

-- Every decision about a requirement, in order, with the event that caused it
-- and the evidence it rests on. Append-only.
CREATE TABLE progress_history (
    tenant_id       uuid NOT NULL,
    enrolment_id    uuid NOT NULL,
    requirement_id  uuid NOT NULL,
    seq             integer NOT NULL CHECK (seq >= 1),
    status          text NOT NULL CHECK (status IN ('pending', 'met', 'failed')),
    previous_status text CHECK (previous_status IN ('pending', 'met', 'failed')),
    reason          text NOT NULL,
    submission_id   uuid,
    score_version   integer,
    score           numeric(6, 3),
    passed          boolean,
    attempt_count   integer NOT NULL,
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    decided_at      timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, enrolment_id, requirement_id, seq),
    FOREIGN KEY (tenant_id, enrolment_id, requirement_id)
        REFERENCES progress (tenant_id, enrolment_id, requirement_id)
);

CREATE TRIGGER progress_history_append_only BEFORE UPDATE OR DELETE ON progress_history
    FOR EACH ROW EXECUTE FUNCTION forbid_change();

-- A progress row never changes identity, and its status or evidence never
-- changes without a new history entry that records exactly the new state.
CREATE FUNCTION guard_progress_update() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF (NEW.tenant_id, NEW.enrolment_id, NEW.requirement_id, NEW.programme_id,
        NEW.programme_version)
       IS DISTINCT FROM
       (OLD.tenant_id, OLD.enrolment_id, OLD.requirement_id, OLD.programme_id,
        OLD.programme_version) THEN
        RAISE EXCEPTION 'progress rows never change enrolment or requirement'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF (NEW.status, NEW.submission_id, NEW.score_version, NEW.score, NEW.passed)
       IS DISTINCT FROM
       (OLD.status, OLD.submission_id, OLD.score_version, OLD.score, OLD.passed)
       AND (NEW.decision_seq <= OLD.decision_seq OR NOT EXISTS (
            SELECT FROM progress_history h
            WHERE h.tenant_id = NEW.tenant_id
              AND h.enrolment_id = NEW.enrolment_id
              AND h.requirement_id = NEW.requirement_id
              AND h.seq = NEW.decision_seq
              AND (h.status, h.submission_id, h.score_version, h.score, h.passed)
                  IS NOT DISTINCT FROM
                  (NEW.status, NEW.submission_id, NEW.score_version, NEW.score, NEW.passed)))
    THEN
        RAISE EXCEPTION 'progress of enrolment % requirement % changed without a history entry',
            NEW.enrolment_id, NEW.requirement_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER progress_guard BEFORE UPDATE ON progress
    FOR EACH ROW EXECUTE FUNCTION guard_progress_update();

-- Submissions seen on submission.created (whether or not they are linked to a
-- programme yet: the assignment link may be recorded after the submission).
CREATE TABLE submissions (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    id            uuid NOT NULL,
    assignment_id uuid NOT NULL,
    user_id       uuid NOT NULL,
    evaluation_id uuid NOT NULL,
    submitted_at  timestamptz NOT NULL,
    event_id      uuid NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

CREATE INDEX submissions_assignment ON submissions (tenant_id, assignment_id);

-- Every score version of a submission, from submission.created (version 1) and
-- score.remediated (2+). Append-only; only the highest version counts. No
-- foreign key to submissions: a remediation may arrive before its submission.
CREATE TABLE submission_scores (
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    submission_id       uuid NOT NULL,
    score_version       integer NOT NULL CHECK (score_version >= 1),
    score               numeric(6, 3) CHECK (score BETWEEN 0 AND 100),
    passed              boolean,
    correction_batch_id uuid,
    effective_at        timestamptz NOT NULL,
    event_id            uuid NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, submission_id, score_version)
);

CREATE TRIGGER submission_scores_append_only BEFORE UPDATE OR DELETE ON submission_scores
    FOR EACH ROW EXECUTE FUNCTION forbid_change();

-- One assignment per (enrolment, requirement, user), requested from the delivery
-- engine. The row is written (status 'requested') in the transaction that
-- decides the assignment is due, and sent afterwards by the dispatcher.
CREATE TABLE assignments (
    tenant_id       uuid NOT NULL,
    enrolment_id    uuid NOT NULL,
    requirement_id  uuid NOT NULL,
    user_id         uuid NOT NULL,
    idempotency_key text NOT NULL,
    evaluation_id   uuid NOT NULL,
    org_unit_id     uuid,
    status          text NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'created')),
    assignment_id   uuid,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz,
    PRIMARY KEY (tenant_id, enrolment_id, requirement_id, user_id),
    UNIQUE (tenant_id, idempotency_key),
    UNIQUE (tenant_id, assignment_id),
    FOREIGN KEY (tenant_id, enrolment_id, requirement_id)
        REFERENCES progress (tenant_id, enrolment_id, requirement_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, evaluation_id) REFERENCES evaluations (tenant_id, id),
    CHECK ((status = 'created') = (assignment_id IS NOT NULL))
);

CREATE INDEX assignments_due ON assignments (next_attempt_at) WHERE status = 'requested';

SELECT apply_tenant_isolation(t) FROM unnest(ARRAY[
    'enrolments', 'progress', 'progress_history', 'submissions', 'submission_scores',
    'assignments'
]::regclass[]) AS t;

GRANT SELECT, INSERT, UPDATE ON enrolments, progress, submissions, assignments
    TO programmes_app;
GRANT SELECT, INSERT ON progress_history, submission_scores TO programmes_app;

-- migrate:down
DROP TABLE assignments;
DROP TABLE submission_scores;
DROP TABLE submissions;
DROP TABLE progress_history;
DROP TABLE progress;
DROP FUNCTION guard_progress_update();
DROP TRIGGER programmes_delete_guard ON programmes;
DROP FUNCTION refuse_programme_delete_with_enrolments();
DROP TABLE enrolments;
