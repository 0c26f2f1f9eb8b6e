/**
 * The samples' contracts (apps/shared/contracts) against their committed snapshot
 * (contracts.snapshot.json): a contract changed without `npm run contracts:snapshot` fails here, as
 * `sage contracts check` fails a deploy. And the evolution the samples show, order.confirmed v1 → v2
 * with an upcaster, passes the check it would face when v2 is introduced.
 */
import {
  buildContractSnapshot,
  diffContractSnapshots,
  parseContractSnapshot,
  type ContractSnapshot,
} from '@sage/saga-outbox';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { contracts, orderConfirmedV2 } from '../../apps/shared/contracts';

const SNAPSHOT = join(__dirname, '../../apps/shared/contracts/contracts.snapshot.json');

function committed(): ContractSnapshot {
  const parsed = parseContractSnapshot(JSON.parse(readFileSync(SNAPSHOT, 'utf8')) as unknown);
  if (!parsed.ok) throw new Error(`${SNAPSHOT} ${parsed.problem}`);
  return parsed.snapshot;
}

describe("the samples' contracts", () => {
  it('are what the committed snapshot records (else: npm run contracts:snapshot, after review)', () => {
    const diff = diffContractSnapshots(committed(), buildContractSnapshot(contracts));
    expect(diff.changes.filter((c) => c.breaking)).toEqual([]);
    expect(buildContractSnapshot(contracts)).toEqual(committed());
  });

  it('order.confirmed v2 is compatible with v1 (backward, through its upcaster)', () => {
    const beforeV2 = buildContractSnapshot(contracts.filter((c) => c !== orderConfirmedV2));
    const diff = diffContractSnapshots(beforeV2, buildContractSnapshot(contracts));
    expect(diff.compatible).toBe(true);
    expect(diff.changes).toContainEqual(
      expect.objectContaining({ type: 'order.confirmed', version: 2, breaking: false }),
    );
    // Without its upcaster, the same v2 would break v1's consumers.
    const { upcast: _upcast, ...bare } = orderConfirmedV2;
    const withoutUpcast = contracts.map((c) => (c === orderConfirmedV2 ? bare : c));
    expect(diffContractSnapshots(beforeV2, buildContractSnapshot(withoutUpcast)).compatible).toBe(
      false,
    );
  });
});
