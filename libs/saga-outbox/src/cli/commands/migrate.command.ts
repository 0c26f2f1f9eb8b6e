import { runMigrationsLocked } from '../../persistence/postgres/data-source';
import { pendingSageMigrations } from '../../persistence/postgres/sage-schema-status';
import { EXIT_FAILURE, EXIT_OK } from '../cli-errors';
import { expectArgs, flag, type CommandSpec } from '../command';
import { json } from '../format';

export const migrateCommand: CommandSpec = {
  path: ['migrate'],
  summary:
    "run Sage's pending migrations (serialised by an advisory lock), or --check for pending ones",
  options: {
    check: {
      type: 'boolean',
      description: 'change nothing; exit 1 when a Sage migration is pending',
    },
    'migrations-table': {
      type: 'string',
      value: 'NAME',
      description:
        "TypeORM's migrations table, if your DataSource sets migrationsTableName (default migrations)",
    },
  },
  details: `Runs only Sage's own migrations (for --schema), in TypeORM's migrations table in schema public,
the same way an app's DataSource records them, so apps and this command agree on what ran. Safe
while apps run and while another instance migrates: they take turns on the migration lock.

Examples:
  sage migrate --check        # in CI / a deploy gate: exit 1 when the database is behind
  sage migrate`,
  async run(ctx) {
    expectArgs(ctx, []);
    const db = await ctx.db();
    if (flag(ctx, 'check')) {
      // Reads TypeORM's migrations table only (never creates it): safe on a read-only role. The
      // same check the module runs at startup.
      const names = await pendingSageMigrations(db.dataSource, { schema: db.schema });
      ctx.io.out(
        ctx.json
          ? json({ upToDate: names.length === 0, pending: names })
          : names.length
            ? `${names.length} Sage migration(s) pending in schema "${db.schema}":\n${names.map((n) => `  ${n}\n`).join('')}run: sage migrate\n`
            : `up to date: no Sage migration pending in schema "${db.schema}"\n`,
      );
      return names.length ? EXIT_FAILURE : EXIT_OK;
    }
    const ran = (await runMigrationsLocked(db.dataSource)).map((m) => m.name);
    ctx.io.out(
      ctx.json
        ? json({ ran })
        : ran.length
          ? `ran ${ran.length} migration(s) in schema "${db.schema}":\n${ran.map((n) => `  ${n}\n`).join('')}`
          : `nothing to run: schema "${db.schema}" is up to date\n`,
    );
    return EXIT_OK;
  },
};
