-- The security catalogue check: what the services' role may and may not do.
-- Run as that role at every service start and in CI.

-- name: role_attributes()^
SELECT r.rolname AS role, r.rolsuper AS superuser, r.rolbypassrls AS bypass_rls
FROM pg_roles r
WHERE r.rolname = current_user;

-- name: owned_objects()
-- Anything in the public schema owned by the current role (should be nothing).
SELECT c.relname AS name, 'relation' AS kind
FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace
  AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
UNION ALL
SELECT p.proname, 'function'
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
  AND p.proowner = (SELECT oid FROM pg_roles WHERE rolname = current_user);

-- name: system_role_member()$
-- Whether the current role can act as programmes_system (it must not).
SELECT COALESCE(
    (SELECT pg_has_role(current_user, oid, 'USAGE') FROM pg_roles
     WHERE rolname = 'programmes_system'),
    false);

-- name: tenant_tables()
-- Every table of the public schema that holds tenant data, with its RLS state
-- and whether it has a tenant policy for all commands with USING and WITH CHECK.
SELECT c.relname AS name,
       c.relrowsecurity AS rls_enabled,
       c.relforcerowsecurity AS rls_forced,
       EXISTS (
           SELECT FROM pg_policies p
           WHERE p.schemaname = 'public' AND p.tablename = c.relname
             AND p.cmd = 'ALL' AND 'public' = ANY (p.roles)
             AND p.qual IS NOT NULL AND p.with_check IS NOT NULL
             AND p.qual LIKE '%app_current_tenant()%'
             AND p.with_check LIKE '%app_current_tenant()%'
       ) AS tenant_policy
FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace
  AND c.relkind IN ('r', 'p')
  AND (c.relname = 'tenants' OR EXISTS (
      SELECT FROM pg_attribute a
      WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped))
ORDER BY c.relname;
