/**
 * Production mode is `NODE_ENV=production` (the convention Node, Nest and most hosts follow). In
 * it Sage takes the least-privilege defaults: no DDL at startup (migrations are a deploy step, run
 * by a migrator role: `sage migrate`) and no embedded database.
 */
export function isProductionMode(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.NODE_ENV?.trim().toLowerCase() === 'production';
}

/**
 * Whether Sage runs its migrations at startup when the option (`runMigrations`,
 * `SAGE_RUN_MIGRATIONS`) is not given and Sage opens the database itself: yes, except in
 * production mode, where the runtime role should not own the schema.
 */
export function defaultRunMigrations(env: NodeJS.ProcessEnv = process.env): boolean {
  return !isProductionMode(env);
}
