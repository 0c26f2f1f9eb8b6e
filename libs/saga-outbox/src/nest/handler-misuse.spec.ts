import 'reflect-metadata';
import { Controller, Injectable } from '@nestjs/common';
import { DiscoveryModule, DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { EventPattern, MessagePattern } from '@nestjs/microservices';
import { PATTERN_HANDLER_METADATA, PATTERN_METADATA } from '@nestjs/microservices/constants';
import { Test } from '@nestjs/testing';
import { InvalidOptionsError } from '../core/errors';
import { discoverDecoratedMethods } from './discover-methods';
import { NEST_PATTERN_HANDLER_METADATA, NEST_PATTERN_METADATA } from './handler-misuse';
import {
  IDEMPOTENT_HANDLER_METADATA,
  IdempotentHandler,
} from './inbox/idempotent-handler.decorator';
import {
  SAGA_COMMAND_HANDLER_METADATA,
  SagaCommandHandler,
} from './remote/saga-command-handler.decorator';

@Controller()
class EventAndInbox {
  @IdempotentHandler('orders', { consumer: 'payments.on-order-placed' })
  @EventPattern('orders')
  onOrderPlaced(): Promise<void> {
    return Promise.resolve();
  }
}

@Controller()
class MessageAboveInbox {
  // The other order of decorators: still found.
  @MessagePattern({ cmd: 'orders' })
  @IdempotentHandler('orders')
  onOrder(): Promise<void> {
    return Promise.resolve();
  }
}

@Injectable()
class CommandAndEvent {
  @SagaCommandHandler('payment.authorize', { destination: 'payment.commands' })
  @EventPattern('payment.commands')
  authorize(): Promise<unknown> {
    return Promise.resolve({});
  }
}

@Controller()
class InboxOnly {
  @IdempotentHandler('orders')
  onOrder(): Promise<void> {
    return Promise.resolve();
  }

  @EventPattern('orders')
  plainNest(): void {}
}

async function discover(
  classes: { controllers?: unknown[]; providers?: unknown[] },
  metadataKey: string,
  decorator: '@IdempotentHandler' | '@SagaCommandHandler',
) {
  const moduleRef = await Test.createTestingModule({
    imports: [DiscoveryModule],
    controllers: (classes.controllers ?? []) as never[],
    providers: (classes.providers ?? []) as never[],
  }).compile();
  try {
    return discoverDecoratedMethods(
      moduleRef.get(DiscoveryService),
      moduleRef.get(MetadataScanner),
      moduleRef.get(Reflector),
      metadataKey,
      decorator,
      { controllers: true },
    );
  } finally {
    await moduleRef.close();
  }
}

describe('a Sage message handler that also carries a Nest pattern fails startup', () => {
  it('reads Nest’s own metadata keys (spelled out so the root entry never loads @nestjs/microservices)', () => {
    expect(NEST_PATTERN_METADATA).toBe(PATTERN_METADATA);
    expect(NEST_PATTERN_HANDLER_METADATA).toBe(PATTERN_HANDLER_METADATA);
  });

  it('@IdempotentHandler + @EventPattern: names Class.method, both decorators and the fix', async () => {
    const found = discover(
      { controllers: [EventAndInbox] },
      IDEMPOTENT_HANDLER_METADATA,
      '@IdempotentHandler',
    );
    await expect(found).rejects.toThrow(InvalidOptionsError);
    await expect(found).rejects.toThrow(
      `Invalid Sage option "@IdempotentHandler": EventAndInbox.onOrderPlaced also has @EventPattern('orders'), so it would run twice per message (once from Sage's broker subscription through the inbox, once from the Nest transport without it). Keep one: @IdempotentHandler alone (Sage consumes through its broker, deduplicated by the inbox), or @EventPattern alone with InboxService.handle(consumer, ctx, ...) inside for deduplication (docs/inbox.md).`,
    );
  });

  it('@MessagePattern above @IdempotentHandler: found in either order, named @MessagePattern', async () => {
    await expect(
      discover(
        { controllers: [MessageAboveInbox] },
        IDEMPOTENT_HANDLER_METADATA,
        '@IdempotentHandler',
      ),
    ).rejects.toThrow(
      `Invalid Sage option "@IdempotentHandler": MessageAboveInbox.onOrder also has @MessagePattern({"cmd":"orders"}), so it would run twice per message`,
    );
  });

  it('@SagaCommandHandler + @EventPattern: the fix is to remove the Nest pattern', async () => {
    await expect(
      discover(
        { providers: [CommandAndEvent] },
        SAGA_COMMAND_HANDLER_METADATA,
        '@SagaCommandHandler',
      ),
    ).rejects.toThrow(
      `Invalid Sage option "@SagaCommandHandler": CommandAndEvent.authorize also has @EventPattern('payment.commands'), so it would run twice per message (once from Sage's broker subscription through the inbox, with the reply to the saga, once from the Nest transport without inbox or reply). Remove @EventPattern: @SagaCommandHandler already receives the command through Sage's broker and inbox and sends the saga its reply (docs/sagas.md).`,
    );
  });

  it('each on its own method is fine: the Sage handler is found, the Nest one left to Nest', async () => {
    const found = await discover(
      { controllers: [InboxOnly] },
      IDEMPOTENT_HANDLER_METADATA,
      '@IdempotentHandler',
    );
    expect(found.map((f) => f.name)).toEqual(['InboxOnly.onOrder']);
  });
});
