import { randomBytes } from 'node:crypto';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { InMemoryOutboxStore } from '../../testing/in-memory-outbox-store';
import { InMemoryTx } from '../../testing/in-memory-saga-store';
import { InMemorySubjectKeyStore } from '../../testing/in-memory-subject-key-store';
import { ajvSchemaCompiler } from '../contracts/ajv-schema-compiler';
import { ContractViolationError } from '../contracts/contract-errors';
import { ContractRegistry } from '../contracts/contract-registry';
import { DATASCHEMA_HEADER, dataschemaOf } from '../contracts/message-contract';
import { validateDataProtection } from '../protection/data-protection-options';
import { DataProtector } from '../protection/data-protector';
import { encryptionKeys } from '../protection/encryption-keys';
import { OutboxMessageTooLargeError } from './outbox-errors';
import { OutboxPublisher } from './outbox-publisher';

const contracts = new ContractRegistry(
  [
    {
      type: 'customer.registered',
      version: 1,
      schema: {
        type: 'object',
        required: ['customerId', 'email'],
        properties: { customerId: { type: 'string' }, email: { type: 'string', format: 'email' } },
      },
    },
  ],
  ajvSchemaCompiler(() => ({ Ajv2020: Ajv2020 as never, addFormats: addFormats as never })),
);

const protector = new DataProtector<InMemoryTx>(
  validateDataProtection({
    keys: encryptionKeys({ active: 'k1', keys: { k1: randomBytes(32) } }),
    subjectKeys: new InMemorySubjectKeyStore(),
    messages: { 'customer.registered': { fields: ['email'] } },
  })!,
);

const valid = {
  destination: 'customers',
  type: 'customer.registered',
  payload: { customerId: 'c-1', email: 'ada@example.test' },
};

describe('OutboxPublisher with contracts', () => {
  it('writes nothing of a batch with one invalid message, before encrypting anything', async () => {
    const writer = new InMemoryOutboxStore();
    const insert = jest.spyOn(writer, 'insert');
    const seal = jest.spyOn(protector, 'sealMessage');
    const publisher = new OutboxPublisher<InMemoryTx>({ writer, contracts, protector });
    const tx = new InMemoryTx();
    const invalid = { ...valid, payload: { customerId: 'c-2', email: 'not an email' } };
    const error = await publisher
      .publish([valid, invalid], { manager: tx })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ContractViolationError);
    expect((error as Error).message).toMatch(
      /^Outbox message #1 of type "customer.registered" does not match its contract \(version 1\): payload \/email must match format "email"/,
    );
    expect((error as Error).message).not.toContain('not an email');
    expect(seal).not.toHaveBeenCalled();
    expect(insert).not.toHaveBeenCalled();
    tx.commit();
    expect(writer.all()).toEqual([]);
    seal.mockRestore();
  });

  it('validates the plaintext, then encrypts; the row names its contract version', async () => {
    const writer = new InMemoryOutboxStore();
    const publisher = new OutboxPublisher<InMemoryTx>({ writer, contracts, protector });
    await writer.transaction((tx) =>
      publisher.publish({ ...valid, headers: { trace: 't' } }, { manager: tx }),
    );
    const [row] = writer.all();
    expect(row?.headers).toMatchObject({
      trace: 't',
      [DATASCHEMA_HEADER]: dataschemaOf('customer.registered', 1),
      'sage-encrypted': expect.any(String) as string,
    });
    // Encrypted after the check: the stored email is an envelope, which the schema would refuse.
    expect(JSON.stringify(row?.payload)).not.toContain('ada@example.test');
  });

  it('leaves types without a contract as they are', async () => {
    const writer = new InMemoryOutboxStore();
    const publisher = new OutboxPublisher<InMemoryTx>({ writer, contracts });
    await writer.transaction((tx) =>
      publisher.publish(
        { destination: 'x', type: 'other', payload: 'anything', headers: { a: 'b' } },
        { manager: tx },
      ),
    );
    expect(writer.all()[0]?.headers).toEqual({ a: 'b' });
  });

  it('counts the ce-dataschema header toward maxMessageBytes', async () => {
    const writer = new InMemoryOutboxStore();
    const size = JSON.stringify(valid.payload).length + JSON.stringify({}).length;
    const publisher = new OutboxPublisher<InMemoryTx>({
      writer,
      contracts,
      maxMessageBytes: size,
    });
    await expect(
      writer.transaction((tx) => publisher.publish(valid, { manager: tx })),
    ).rejects.toBeInstanceOf(OutboxMessageTooLargeError);
    expect(writer.all()).toEqual([]);
  });
});
