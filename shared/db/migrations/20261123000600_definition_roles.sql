-- migrate:up

-- Who may define programmes. Only an actor acting as `admin` or `author` may
-- create or change programmes, their versions, requirements, elective groups,
-- prerequisite edges and the evaluation catalogue. The unit of work sets the
-- role per transaction (`app.actor_role`, transaction-local like the tenant);
-- the services that only read definitions set none and keep reading.
--
-- The policies are RESTRICTIVE: they AND with the permissive tenant_isolation
-- policy instead of OR-ing with it, so a role never widens what a tenant sees.
-- INSERT and UPDATE check the new row (WITH CHECK), which makes a refused write
-- fail loudly with "new row violates row-level security policy"; DELETE can
-- only filter (USING), so a refused delete removes nothing.
DO $$
DECLARE
    tbl regclass;
    may_define constant text :=
        '(current_setting(''app.actor_role'', true) IN (''admin'', ''author''))';
BEGIN
    FOREACH tbl IN ARRAY ARRAY[
        'programmes', 'programme_versions', 'programme_requirements',
        'programme_elective_groups', 'requirement_prerequisites', 'evaluations'
    ]::regclass[] LOOP
        EXECUTE format(
            'CREATE POLICY definition_authors_insert ON %s AS RESTRICTIVE FOR INSERT '
            'TO programmes_app WITH CHECK %s', tbl, may_define);
        EXECUTE format(
            'CREATE POLICY definition_authors_update ON %s AS RESTRICTIVE FOR UPDATE '
            'TO programmes_app USING (true) WITH CHECK %s', tbl, may_define);
        EXECUTE format(
            'CREATE POLICY definition_authors_delete ON %s AS RESTRICTIVE FOR DELETE '
            'TO programmes_app USING %s', tbl, may_define);
    END LOOP;
END
$$;

-- migrate:down
DO $$
DECLARE
    tbl regclass;
BEGIN
    FOREACH tbl IN ARRAY ARRAY[
        'programmes', 'programme_versions', 'programme_requirements',
        'programme_elective_groups', 'requirement_prerequisites', 'evaluations'
    ]::regclass[] LOOP
        EXECUTE format('DROP POLICY definition_authors_insert ON %s', tbl);
        EXECUTE format('DROP POLICY definition_authors_update ON %s', tbl);
        EXECUTE format('DROP POLICY definition_authors_delete ON %s', tbl);
    END LOOP;
END
$$;
