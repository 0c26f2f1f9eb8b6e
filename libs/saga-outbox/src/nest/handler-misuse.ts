import type { Reflector } from '@nestjs/core';
import { InvalidOptionsError } from '../core/errors';

/**
 * Where `@EventPattern` / `@MessagePattern` keep their pattern and their kind: the values of
 * `PATTERN_METADATA` and `PATTERN_HANDLER_METADATA` in `@nestjs/microservices/constants`, spelled
 * out so that the root entry never loads `@nestjs/microservices` (an optional peer). A unit test
 * pins them to Nest's constants.
 */
export const NEST_PATTERN_METADATA = 'microservices:pattern';
export const NEST_PATTERN_HANDLER_METADATA = 'microservices:handler_type';
/** `PatternHandler.MESSAGE` in `@nestjs/microservices` (EVENT is 2). */
const NEST_MESSAGE_HANDLER = 1;

/** Sage's message-handler decorators: each consumes through Sage's broker and inbox already. */
export type SageHandlerDecorator = '@IdempotentHandler' | '@SagaCommandHandler';

/** What each Sage decorator does with a message, and what to keep instead of both. */
const WHY_AND_FIX: Record<SageHandlerDecorator, { why: string; fix: string }> = {
  '@IdempotentHandler': {
    why: "once from Sage's broker subscription through the inbox, once from the Nest transport without it",
    fix: 'Keep one: @IdempotentHandler alone (Sage consumes through its broker, deduplicated by the inbox), or @NEST alone with InboxService.handle(consumer, ctx, ...) inside for deduplication (docs/inbox.md).',
  },
  '@SagaCommandHandler': {
    why: "once from Sage's broker subscription through the inbox, with the reply to the saga, once from the Nest transport without inbox or reply",
    fix: "Remove @NEST: @SagaCommandHandler already receives the command through Sage's broker and inbox and sends the saga its reply (docs/sagas.md).",
  },
};

/**
 * Refuses a Sage message handler that also carries Nest's `@EventPattern` or `@MessagePattern`: a
 * controller method with both runs twice per message, silently (once per consumer). Throws
 * InvalidOptionsError naming `Class.method`, both decorators and the fix. `method` is the
 * undecorated prototype function (where decorators keep their metadata), not a bound copy.
 */
export function refuseNestPattern(
  reflector: Reflector,
  decorator: SageHandlerDecorator,
  name: string,
  method: Parameters<Reflector['get']>[1],
): void {
  const patterns = reflector.get<unknown[] | undefined>(NEST_PATTERN_METADATA, method);
  if (patterns === undefined) return;
  const kind =
    reflector.get<unknown>(NEST_PATTERN_HANDLER_METADATA, method) === NEST_MESSAGE_HANDLER
      ? '@MessagePattern'
      : '@EventPattern';
  const shown = (Array.isArray(patterns) ? patterns : [patterns]).map(patternText).join(', ');
  const { why, fix } = WHY_AND_FIX[decorator];
  throw new InvalidOptionsError(
    decorator,
    `${name} also has ${kind}(${shown}), so it would run twice per message (${why}). ${fix.replace('@NEST', kind)}`,
  );
}

/** A Nest pattern as written in code: a string quoted, an object as JSON. */
function patternText(pattern: unknown): string {
  if (typeof pattern === 'string') return `'${pattern}'`;
  try {
    return JSON.stringify(pattern) ?? String(pattern);
  } catch {
    return String(pattern);
  }
}
