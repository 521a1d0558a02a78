-- migrate:up

-- The progress guard (20261123000300) ran BEFORE UPDATE, so it saw only history
-- entries committed by earlier statements: a batch had to write its history
-- entries in one statement and its progress rows in a second one, a round trip
-- of its own on every cycle. AFTER UPDATE it runs once the whole statement has
-- written, sibling data-modifying CTEs included, and sees their rows: a batch
-- writes both in one statement. The rule is the same and is still checked for
-- every row as it is written; a refused row still fails its statement.
DROP TRIGGER progress_guard ON progress;
CREATE TRIGGER progress_guard AFTER UPDATE ON progress
    FOR EACH ROW EXECUTE FUNCTION guard_progress_update();

-- migrate:down
DROP TRIGGER progress_guard ON progress;
CREATE TRIGGER progress_guard BEFORE UPDATE ON progress
    FOR EACH ROW EXECUTE FUNCTION guard_progress_update();
