import { keyRingFromEnv } from '../../core/keys/key-ring';
import { PostgresAuditLog } from '../../persistence/postgres/postgres-audit-log';
import { EXIT_FAILURE, EXIT_OK } from '../cli-errors';
import { expectArgs, flag, intOption, type CommandContext, type CommandSpec } from '../command';
import { fields, json } from '../format';

/**
 * HMAC keys for verifying (and sealing) HMAC entries: SAGE_AUDIT_HMAC_KEYS (or _KEYS_FILE) as
 * `id=base64` pairs, SAGE_AUDIT_HMAC_ACTIVE_KEY for sealing; the app's `audit.hmacKeys`.
 */
async function auditLog(ctx: CommandContext): Promise<PostgresAuditLog> {
  const hmacKeys = keyRingFromEnv(ctx.io.env, {
    option: 'audit.hmacKeys',
    env: 'SAGE_AUDIT_HMAC',
    minBytes: 32,
  });
  const db = await ctx.db();
  return new PostgresAuditLog(db.dataSource, { schema: db.schema, hmacKeys });
}

export const auditVerifyCommand: CommandSpec = {
  path: ['audit', 'verify'],
  summary:
    'walk the audit hash chain and name the first entry edited, deleted, inserted or reordered',
  options: {
    'batch-size': {
      type: 'string',
      value: 'N',
      description: 'entries read per query, 1-10000 (default 1000)',
    },
    'require-hmac': {
      type: 'boolean',
      description: 'fail on any entry sealed without HMAC (needs SAGE_AUDIT_HMAC_KEYS)',
    },
  },
  details: `Starts at the latest retention checkpoint (or the first entry) and checks every entry's
seq, hash and link to the previous entry. Exit 0 when the chain is intact, 1 at the first break
(named by seq). Entries still pending (written, not sealed yet) are counted, not checked: run
"sage audit seal" first to include them. HMAC entries need their keys in SAGE_AUDIT_HMAC_KEYS
(or SAGE_AUDIT_HMAC_KEYS_FILE): id=base64 pairs, as the app's audit.hmacKeys.
Record the head it prints somewhere else (a ticket, another system): a later run whose chain does
not reach that head with the same hash means the log was rewritten (docs/audit-log.md).

Examples:
  sage audit verify
  sage audit verify --json | jq .head`,
  async run(ctx) {
    expectArgs(ctx, []);
    const batchSize = intOption(ctx, 'batch-size', 1000, { min: 1, max: 10_000 });
    const log = await auditLog(ctx);
    const result = await log.verify({ batchSize, requireHmac: flag(ctx, 'require-hmac') });
    if (ctx.json) ctx.io.out(json(result));
    else
      ctx.io.out(
        fields([
          ['chain', result.ok ? 'intact' : `BROKEN: ${result.break!.message}`],
          ['verified', `${result.verified} entries`],
          [
            'from',
            result.from.seq === 0 ? 'the first entry' : `checkpoint at entry ${result.from.seq}`,
          ],
          ['head', result.head.seq === 0 ? '-' : `entry ${result.head.seq} ${result.head.hash}`],
          ['pending', `${result.pending} entries not sealed yet`],
        ]),
      );
    return result.ok ? EXIT_OK : EXIT_FAILURE;
  },
};

export const auditSealCommand: CommandSpec = {
  path: ['audit', 'seal'],
  summary: 'seal pending audit entries into the hash chain now',
  options: {},
  details: `The app seals pending entries on its own (audit.sealIntervalMs); this does it now, e.g. before
"sage audit verify". Seals with HMAC when SAGE_AUDIT_HMAC_KEYS is set (the active key:
SAGE_AUDIT_HMAC_ACTIVE_KEY, else the last pair). Exit 1 when another process is sealing.

Example:
  sage audit seal && sage audit verify`,
  async run(ctx) {
    expectArgs(ctx, []);
    const log = await auditLog(ctx);
    const sealed = await log.sealAll();
    if (ctx.json) ctx.io.out(json({ sealed, busy: sealed === null }));
    else
      ctx.io.out(
        sealed === null
          ? 'another process is sealing right now; nothing sealed here\n'
          : `sealed ${sealed} entries\n`,
      );
    return sealed === null ? EXIT_FAILURE : EXIT_OK;
  },
};
