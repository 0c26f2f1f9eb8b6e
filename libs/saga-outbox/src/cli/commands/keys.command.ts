import { KeyRotation, type KeyRotationReport } from '../../core/protection/key-rotation';
import { signingKeysFromEnv } from '../../core/signing/signing-keys';
import { EXIT_FAILURE, EXIT_OK } from '../cli-errors';
import { expectArgs, flag, intOption, type CommandSpec } from '../command';
import { cliDataProtection } from '../data-protection';
import { json, table } from '../format';

export const keysRotateCommand: CommandSpec = {
  path: ['keys', 'rotate'],
  summary:
    'move stored encrypted data and data-subject keys onto the active master key (resumable, safe under load)',
  options: {
    'batch-size': {
      type: 'string',
      value: 'N',
      description: 'rows read and rewritten per batch, 1-10000 (default 200)',
    },
    'dry-run': {
      type: 'boolean',
      description: 'count what would be rewritten; change nothing (exit 0)',
    },
  },
  details: `Run it after the new key was added everywhere and made active everywhere
(SAGE_ENCRYPTION_ACTIVE_KEY / dataProtection.keys), with the same keys in the environment:
SAGE_ENCRYPTION_KEYS (or SAGE_ENCRYPTION_KEYS_FILE) holding the old and the new key, and
SAGE_ENCRYPTION_ACTIVE_KEY the new one. Signed messages are signed again after re-encryption:
set SAGE_SIGNING_KEYS (or _FILE) and SAGE_SIGNING_ACTIVE_KEY as for the app, or they are left
as they are and reported.

It rewraps data-subject keys, then re-encrypts every value under another master key in saga
inputs, step results, the outbox (every status), the outbox archive and inbox dead letters, in
batches, each row only if no one changed it meanwhile. Running it again resumes; nothing is
deleted and no status changes, so sagas and the relay go on. Exit 0 when everything found is
under the active key, 1 when something is left (rows a writer kept changing, values that cannot
be decrypted, signed rows without signing keys): run it again, or see docs/data-protection-keys.md.
Each batch reads the tables in primary-key order and matches the stored JSON as text: a full
pass reads every row once.

Examples:
  sage keys rotate --dry-run
  sage keys rotate --batch-size 500`,
  async run(ctx) {
    expectArgs(ctx, []);
    const batchSize = intOption(ctx, 'batch-size', 200, { min: 1, max: 10_000 });
    const dryRun = flag(ctx, 'dry-run');
    const signingKeys = signingKeysFromEnv(ctx.io.env);
    const { protector, store } = await cliDataProtection(ctx);
    const report = await new KeyRotation(protector, store, {
      batchSize,
      dryRun,
      ...(signingKeys ? { signingKeys } : {}),
    }).rotate();
    ctx.io.out(ctx.json ? json(report) : rotationText(report));
    return dryRun || report.complete ? EXIT_OK : EXIT_FAILURE;
  },
};

function rotationText(r: KeyRotationReport): string {
  const verb = r.dryRun ? 'would rewrite' : 'rewritten';
  const rows = Object.entries(r.sources).map(([source, s]) => [
    source,
    String(s.scanned),
    String(s.rewritten),
    String(s.envelopes),
    String(s.conflicts),
    String(s.unreadable),
    String(s.needsSigningKeys),
  ]);
  const keys = r.subjectKeys;
  const head =
    `active key: ${r.activeKeyId}${r.dryRun ? ' (dry run: nothing changed)' : ''}\n` +
    `data-subject keys: ${keys.scanned} found under other keys, ${keys.rewrapped} ${r.dryRun ? 'would be rewrapped' : 'rewrapped'}` +
    `, ${keys.conflicts} changed meanwhile, ${keys.unreadable} unreadable\n`;
  const body = table(
    [
      'WHERE',
      'FOUND',
      verb.toUpperCase(),
      'ENVELOPES',
      'CHANGED MEANWHILE',
      'UNREADABLE',
      'NEED SIGNING KEYS',
    ],
    rows,
    { right: [1, 2, 3, 4, 5, 6] },
  );
  const tail = r.dryRun
    ? ''
    : r.complete
      ? 'done: everything found is under the active key\n'
      : `not complete: run "sage keys rotate" again; unreadable values need their key in SAGE_ENCRYPTION_KEYS, signed rows need SAGE_SIGNING_KEYS${r.aborted ? ' (stopped early)' : ''}\n`;
  return head + body + tail;
}
