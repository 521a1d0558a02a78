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

-- name: open_policies()
-- Permissive policies the current role is subject to on a tenant table that are
-- anything but the exact tenant isolation expression. Permissive policies are
-- OR-ed: any other one (`USING (true)`, `... OR true`) opens other tenants' rows.
-- Restrictive policies only narrow access and are not listed.
WITH tenant_tables AS (
    SELECT c.relname
    FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace
      AND c.relkind IN ('r', 'p')
      AND (c.relname = 'tenants' OR EXISTS (
          SELECT FROM pg_attribute a
          WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped))
)
SELECT p.tablename AS name, p.policyname AS policy
FROM pg_policies p
JOIN tenant_tables t ON t.relname = p.tablename
WHERE p.schemaname = 'public'
  AND p.permissive = 'PERMISSIVE'
  AND EXISTS (
      SELECT FROM unnest(p.roles) AS r (role)
      -- (programmes_system's policies are open by design; acting as it is a
      -- problem of its own, reported by system_role_member)
      WHERE CASE WHEN r.role = 'public' THEN true
                 WHEN r.role = 'programmes_system' THEN false
                 ELSE pg_has_role(current_user, r.role, 'USAGE') END)
  AND NOT (
      p.qual IN ('(tenant_id = app_current_tenant())', '(id = app_current_tenant())')
      AND (p.with_check = p.qual OR (p.with_check IS NULL AND p.cmd IN ('SELECT', 'DELETE')))
  )
ORDER BY 1, 2;
