/**
 * migrations/schema.sql is the schema Sage's migrations create (scripts/schema-snapshot.ts). This
 * test regenerates it from the migrations, on embedded PGlite in this process, and fails when the
 * committed file differs: a migration changed the schema without the snapshot (review the diff and
 * run `npm run schema:snapshot`), or someone edited the snapshot by hand.
 */
import {
  generateSchemaSnapshot,
  readSchemaSnapshot,
  snapshotDiff,
  STALE_SNAPSHOT_MESSAGE,
} from '../../scripts/schema-snapshot';

const VM_MODULES = '--experimental-vm-modules';

describe('migrations/schema.sql', () => {
  it('is the schema the migrations create', async () => {
    // PGlite loads its WASM with a dynamic import(), which jest's VM allows only with this flag;
    // without it PGlite's rejection escapes as an uncaught error that takes the whole run down.
    if (!`${process.env.NODE_OPTIONS ?? ''} ${process.execArgv.join(' ')}`.includes(VM_MODULES)) {
      throw new Error(`run jest with NODE_OPTIONS=${VM_MODULES} (as npm test and test:unit do)`);
    }
    const actual = await generateSchemaSnapshot();
    const expected = readSchemaSnapshot();
    const diff = snapshotDiff(expected, actual);
    if (diff !== undefined) throw new Error(`${STALE_SNAPSHOT_MESSAGE}\n${diff}`);
    expect(actual).toBe(expected);
  }, 30_000);
});

describe('snapshotDiff', () => {
  it('is undefined for equal text and shows a changed line as - committed / + generated', () => {
    const committed = 'a\nb\nc\nd\ne\n';
    expect(snapshotDiff(committed, committed)).toBeUndefined();
    expect(snapshotDiff(committed, 'a\nb\nC\nd\ne\n')).toBe(
      [
        '--- migrations/schema.sql',
        '+++ generated from the migrations',
        '@@ -1 +1 @@',
        ' a',
        ' b',
        '-c',
        '+C',
        ' d',
        ' e',
      ].join('\n'),
    );
  });
});
