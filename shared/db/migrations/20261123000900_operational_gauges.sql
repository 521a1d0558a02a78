-- migrate:up

-- How many assignment requests wait for the delivery engine, across tenants: a
-- number for the pending-assignments gauge, nothing else.
GRANT programmes_system TO CURRENT_USER;
GRANT CREATE ON SCHEMA public TO programmes_system;

CREATE FUNCTION assignments_pending() RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT count(*) FROM assignments WHERE status = 'requested'
$$;

ALTER FUNCTION assignments_pending() OWNER TO programmes_system;
REVOKE CREATE ON SCHEMA public FROM programmes_system;
REVOKE programmes_system FROM CURRENT_USER;
REVOKE ALL ON FUNCTION assignments_pending() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION assignments_pending() TO programmes_app;

-- migrate:down
DROP FUNCTION assignments_pending();
