import { writeFileSync } from 'node:fs';
import { DataSubjects } from '../../core/protection/data-subjects';
import { CommandFailedError, EXIT_OK, UsageError } from '../cli-errors';
import { expectArgs, flag, stringOption, type CommandContext, type CommandSpec } from '../command';
import { CHANGE_OPTIONS, changeMode, confirmationRequired, count } from '../confirm-change';
import { cliDataProtection } from '../data-protection';
import { fields, json, table } from '../format';

const SUBJECT_NOTE = `The subject id is what the app's dataProtection \`subject\` reads (a customer id, say). If it
is personal data itself (an e-mail address), mind that command lines stay in shell history.`;

async function dataSubjects(ctx: CommandContext): Promise<DataSubjects> {
  const { protector, store } = await cliDataProtection(ctx);
  return new DataSubjects(protector, store);
}

function subjectArgument(ctx: CommandContext): string {
  const [subjectId] = expectArgs(ctx, ['<subjectId>']);
  if (!subjectId || subjectId.length > 512)
    throw new UsageError('<subjectId> must be 1-512 characters, as the app reads it');
  return subjectId;
}

export const gdprEraseCommand: CommandSpec = {
  path: ['gdpr', 'erase'],
  summary:
    'erase a data subject by destroying its key: every copy of its encrypted data becomes unreadable (needs --yes)',
  arguments: '<subjectId>',
  options: {
    ...CHANGE_OPTIONS,
    force: {
      type: 'boolean',
      description: 'erase even while sagas holding its data are unfinished (they then fail)',
    },
  },
  details: `Crypto-shredding: deletes the subject's key from the subject_key table. Everything encrypted
with it, in saga state, the outbox and its archive, inbox dead letters and messages already on the
brokers or in consumers' dead letters, can never be decrypted again. Services holding the key in
memory forget it within their dataProtection.subjectKeyCacheMs (default 30 s). Refused (exit 1)
while sagas holding the subject's data are unfinished: wait for them, or pass --force (those sagas
then end failed). Without --yes nothing changes: what would happen is shown and the command exits 2.
The audit log records the erasure under a keyed hash of the subject id, never the id.
Keys: SAGE_ENCRYPTION_KEYS (or _FILE) and SAGE_ENCRYPTION_ACTIVE_KEY, as for the app.
${SUBJECT_NOTE}

Examples:
  sage gdpr erase customer-4711 --dry-run
  sage gdpr erase customer-4711 --yes`,
  async run(ctx) {
    const mode = changeMode(ctx);
    const subjectId = subjectArgument(ctx);
    const force = flag(ctx, 'force');
    const subjects = await dataSubjects(ctx);
    if (mode !== 'apply') {
      const preview = await subjects.preview(subjectId);
      if (ctx.json) ctx.io.out(json({ dryRun: true, ...preview }));
      else
        ctx.io.out(
          (preview.keyIds.length
            ? fields([
                ['subject key', preview.keyIds.join(', ')],
                ['unfinished sagas', String(preview.unfinishedSagas.length)],
                ['unsent messages', String(preview.unsentMessages)],
              ]) + sagaTable(preview.unfinishedSagas)
            : 'the data subject has no key: nothing of it is encrypted here, nothing to erase\n') +
            'dry run: nothing changed\n',
        );
      if (mode === 'unconfirmed' && preview.keyIds.length)
        throw confirmationRequired(
          `destroy the data subject's key: its encrypted data becomes unreadable everywhere, for good${preview.unfinishedSagas.length ? ` (and ${count(preview.unfinishedSagas.length, 'unfinished saga')} would fail; needs --force)` : ''}`,
        );
      return EXIT_OK;
    }
    const erased = await subjects.erase(subjectId, { force });
    if (ctx.json) ctx.io.out(json(erased));
    else
      ctx.io.out(
        (erased.erasedKeyIds.length
          ? `erased: destroyed ${count(erased.erasedKeyIds.length, 'key')} (${erased.erasedKeyIds.join(', ')})\n`
          : 'the data subject had no key: nothing to erase\n') +
          (erased.unfinishedSagas.length
            ? `forced: ${count(erased.unfinishedSagas.length, 'unfinished saga')} can no longer continue and will fail:\n` +
              sagaTable(erased.unfinishedSagas)
            : '') +
          (erased.unsentMessages
            ? `${count(erased.unsentMessages, 'unsent message')} will reach consumers unreadable (dead-lettered as subject-erased)\n`
            : '') +
          `audit id: ${erased.auditSubjectId}\n`,
      );
    return EXIT_OK;
  },
};

export const gdprExportCommand: CommandSpec = {
  path: ['gdpr', 'export'],
  summary: 'everything still readable for a data subject, decrypted, as JSON',
  arguments: '<subjectId>',
  options: {
    out: {
      type: 'string',
      value: 'FILE',
      description:
        'write the export to FILE (created with mode 600; never overwritten) instead of stdout',
    },
  },
  details: `Finds the subject's data by its key id in saga inputs and step results, the outbox (every
status) and its archive, and inbox dead letters, and returns it decrypted: sagas (id, name, status,
input, step results), outbox messages (id, type, destination, status, payload) and dead letters
(consumer, message id, type, payload). Values that cannot be decrypted here are listed under
"unreadable". Format: docs/data-protection-keys.md#export. The scan reads every row of those tables
once. The output holds personal data: write it to a file with --out and handle it accordingly.
Keys: SAGE_ENCRYPTION_KEYS (or _FILE) and SAGE_ENCRYPTION_ACTIVE_KEY, as for the app.
${SUBJECT_NOTE}

Examples:
  sage gdpr export customer-4711 --out customer-4711.json`,
  async run(ctx) {
    const subjectId = subjectArgument(ctx);
    const file = stringOption(ctx, 'out');
    const subjects = await dataSubjects(ctx);
    const exported = await subjects.export(subjectId);
    if (file === undefined) {
      // Always JSON: the export is a document, not a table.
      ctx.io.out(json(exported));
      return EXIT_OK;
    }
    try {
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- reviewed: the operator's own --out path; created new (wx), never written over
      writeFileSync(file, JSON.stringify(exported, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
    } catch (error) {
      const code = (error as { code?: string }).code;
      throw new CommandFailedError(
        code === 'EEXIST'
          ? `${file} exists: the export is never written over a file; choose another --out or remove it`
          : `cannot write ${file}: ${code ?? String(error)}`,
      );
    }
    const summary = {
      file,
      sagas: exported.sagas.length,
      outboxMessages: exported.outboxMessages.length,
      inboxDeadLetters: exported.inboxDeadLetters.length,
      unreadable: exported.unreadable.length,
    };
    ctx.io.out(
      ctx.json
        ? json(summary)
        : `wrote ${file}: ${count(summary.sagas, 'saga')}, ${count(summary.outboxMessages, 'outbox message')}, ${count(summary.inboxDeadLetters, 'inbox dead letter')}, ${summary.unreadable} unreadable\n`,
    );
    return EXIT_OK;
  },
};

function sagaTable(sagas: readonly { id: string; name: string; status: string }[]): string {
  if (!sagas.length) return '';
  return table(
    ['SAGA ID', 'NAME', 'STATUS'],
    sagas.map((s) => [s.id, s.name, s.status]),
    { indent: '  ' },
  );
}
