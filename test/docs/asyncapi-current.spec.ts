/**
 * docs/asyncapi/ holds the sample services' AsyncAPI documents, generated from their contracts
 * (apps/<service>/src/asyncapi.ts). A contract, a destination or the generator changed without
 * regenerating them fails here; so does a document the official parser finds an error in, or one
 * that leaves out a channel or a message the samples use.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { asyncApiDocument, type AsyncApiService } from '@sage/saga-outbox';
import { asyncapi as orderService } from '../../apps/order-service/src/asyncapi';
import { asyncapi as paymentService } from '../../apps/payment-service/src/asyncapi';
import { asyncapi as shippingService } from '../../apps/shipping-service/src/asyncapi';
import {
  orderServiceContracts,
  paymentServiceContracts,
  shippingServiceContracts,
} from '../../apps/shared/contracts';
import { sampleTopology } from '../../apps/shared/sample-topology';
import { asyncApiProblems } from '../../libs/saga-outbox/src/cli/asyncapi-validation';
import { asyncApiText } from '../../libs/saga-outbox/src/cli/commands/asyncapi.command';

const root = join(__dirname, '..', '..');
const REGENERATE = 'npm run docs:asyncapi';

const samples: {
  file: string;
  service: AsyncApiService;
  contracts: readonly { type: string; version: number }[];
  /** The destinations it must list, by their sampleTopology() name. */
  channels: (keyof ReturnType<typeof sampleTopology>)[];
}[] = [
  {
    file: 'docs/asyncapi/order-service.json',
    service: orderService,
    contracts: [...orderServiceContracts.publishes, ...orderServiceContracts.consumes],
    channels: ['orderEvents', 'paymentCommands', 'orderReplies'],
  },
  {
    file: 'docs/asyncapi/payment-service.json',
    service: paymentService,
    contracts: [...paymentServiceContracts.publishes, ...paymentServiceContracts.consumes],
    channels: ['orderEvents', 'paymentCommands', 'orderReplies'],
  },
  {
    file: 'docs/asyncapi/shipping-service.json',
    service: shippingService,
    contracts: [...shippingServiceContracts.publishes, ...shippingServiceContracts.consumes],
    channels: ['orderEvents', 'shippingEvents'],
  },
];

describe.each(samples)('$file', ({ file, service, contracts, channels }) => {
  const generated = asyncApiText(asyncApiDocument(service));

  it(`is current (else run: ${REGENERATE})`, () => {
    const committed = readFileSync(join(root, file), 'utf8');
    if (committed !== generated)
      throw new Error(
        `${file} differs from what the contracts generate: run "${REGENERATE}" and commit it`,
      );
  });

  it('parses without errors or warnings with @asyncapi/parser', async () => {
    expect(await asyncApiProblems(JSON.parse(generated) as object)).toEqual([]);
  });

  it('lists every channel and message the service uses', () => {
    const doc = JSON.parse(generated) as {
      channels: Record<string, { address: string | null; messages: Record<string, unknown> }>;
      components: { messages: Record<string, { name: string }> };
    };
    const topology = sampleTopology();
    const addresses = Object.values(doc.channels).map((c) => c.address);
    expect(addresses).toEqual(expect.arrayContaining(channels.map((name) => topology[name])));
    const names = Object.values(doc.components.messages).map((m) => m.name);
    for (const c of contracts) expect(names).toContain(`${c.type}.v${c.version}`);
    // Each saga command's reply, and nothing on a channel without its message definition.
    const commands = contracts.filter((c) => (c as { kind?: string }).kind === 'command');
    for (const c of commands)
      expect(Object.keys(doc.components.messages)).toContain(`${c.type}.v${c.version}.reply`);
    for (const channel of Object.values(doc.channels))
      for (const key of Object.keys(channel.messages))
        expect(doc.components.messages[key]).toBeDefined();
  });
});
