import {
  BadRequestException,
  ConflictException,
  Controller,
  Get,
  Inject,
  NotFoundException,
  Post,
  Req,
  Res,
  UseFilters,
  UseGuards,
  type Type,
} from '@nestjs/common';
import { OutboxMessageNotFoundError } from '../../core/outbox/outbox-errors';
import type { DeadLetterFilter } from '../../core/ports/outbox-store';
import { SagaNotFoundError } from '../../core/errors';
import type { SagaRecord, SagaStatus } from '../../core/ports/saga-store';
import {
  planSagaAction,
  SagaActionRefusedError,
  type SagaOperatorAction,
} from '../../core/saga/saga-operator-actions';
import { SAGA_STATUSES } from '../../core/saga/saga-transitions';
import {
  compensationDefinition,
  confirmSagaActionPage,
  sagaActionButtons,
  sagaActionPlan,
} from './saga-actions-page';
import { CONSOLE_CSS, CONSOLE_JS } from './console-assets';
import { ConsoleData } from './console-data';
import { ConsoleExceptionFilter } from './console-exception.filter';
import {
  CONSOLE_STATE,
  ConsoleGuard,
  SAGE_CONSOLE_OPTIONS,
  type ConsoleRequestState,
  type ConsoleResponse,
} from './console.guard';
import type { ResolvedConsoleOptions, SageConsoleRequest } from './console.options';
import { isUuid, type PageContext } from './console-layout';
import {
  confirmInboxReleasePage,
  confirmOutboxPage,
  deadLettersPage,
  inboxEntryPage,
  outboxMessagePage,
} from './dead-letters-page';
import type { Html } from './html';
import { relayPage } from './relay-page';
import { sagaPage } from './saga-page';
import { parseSagaListQuery, sagaListQueryText, sagasPage } from './sagas-page';

type ConsoleRequest = SageConsoleRequest & {
  [CONSOLE_STATE]: ConsoleRequestState;
  query: Record<string, unknown>;
  params: Record<string, string>;
  body?: Record<string, unknown>;
};

/** Fixed notices after an action (the query names one; nothing from the URL is echoed). */
const NOTICES: Record<string, string> = {
  replayed: 'Replayed: the message is pending again and the relay will publish it.',
  discarded: 'Discarded: the dead letter was deleted.',
  released: 'Released: the inbox dead letter was deleted.',
};

const MAX_FIELD = 512;

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== ''
    ? value.trim().slice(0, MAX_FIELD)
    : undefined;
}

function page(req: ConsoleRequest): PageContext {
  const s = req[CONSOLE_STATE];
  return { base: s.base, grant: s.grant, canAct: s.canAct, csrf: s.csrf };
}

function send(res: ConsoleResponse, body: Html | string, type = 'text/html; charset=utf-8'): void {
  res.statusCode = 200;
  res.setHeader('Content-Type', type);
  res.end(typeof body === 'string' ? body : body.text);
}

function redirect(res: ConsoleResponse, location: string): void {
  res.statusCode = 303;
  res.setHeader('Location', location);
  res.end();
}

function requireConfirmation(req: ConsoleRequest): void {
  if (req.body?.confirm !== 'yes')
    throw new BadRequestException(
      'This action needs its confirmation step: open it again from the console.',
    );
}

/**
 * The console's routes under `path`, as a controller class made per mount path (a decorator's path
 * is fixed when the class is declared). Pages are rendered on the server; POST routes only act and
 * redirect (303) to a page, so a reload never repeats an action.
 */
export function createConsoleController(path: string): Type<unknown> {
  @Controller(path)
  @UseGuards(ConsoleGuard)
  @UseFilters(ConsoleExceptionFilter)
  class SageConsoleController {
    constructor(
      private readonly data: ConsoleData,
      @Inject(SAGE_CONSOLE_OPTIONS) private readonly options: ResolvedConsoleOptions,
    ) {}

    @Get()
    async sagas(@Req() req: ConsoleRequest, @Res() res: ConsoleResponse): Promise<void> {
      const ctx = page(req);
      const parsed = parseSagaListQuery(req.query);
      if (parsed.id && !parsed.problems.length)
        return redirect(res, `${ctx.base}/sagas/${parsed.id}`);
      const [now, counts, result] = await Promise.all([
        this.data.operator.databaseNow(),
        this.data.operator.sagaStatusCounts(),
        parsed.problems.length
          ? Promise.resolve({ sagas: [], next: null })
          : this.data.operator.sagaPage(parsed.filter, {
              limit: this.options.pageSize,
              before: parsed.before,
            }),
      ]);
      send(
        res,
        sagasPage(ctx, {
          counts,
          sagas: result.sagas,
          next: result.next,
          query: sagaListQueryText(req.query),
          problems: parsed.problems,
          names: this.data.sagaNames(),
          now,
          isFirstPage: parsed.before === null,
        }),
      );
    }

    @Get('sagas/:id')
    async saga(@Req() req: ConsoleRequest, @Res() res: ConsoleResponse): Promise<void> {
      const id = req.params.id ?? '';
      if (!isUuid(id)) throw new NotFoundException('No such saga: the id is not a UUID.');
      const [now, saga] = await Promise.all([
        this.data.operator.databaseNow(),
        this.data.sagas.load(id.toLowerCase()),
      ]);
      if (!saga) throw new NotFoundException(`No saga ${id} in this database.`);
      const ctx = page(req);
      const definition = this.data.definition(saga.name);
      const done = req.query.done;
      const actions = sagaActionButtons(
        ctx,
        saga,
        now,
        definition,
        done === 'retry' || done === 'compensate' ? done : undefined,
      );
      send(res, sagaPage(ctx, saga, definition, now, actions));
    }

    @Get('sagas/:id/confirm')
    async confirmSaga(@Req() req: ConsoleRequest, @Res() res: ConsoleResponse): Promise<void> {
      const ctx = page(req);
      const action = req.query.action;
      if (action !== 'retry' && action !== 'compensate')
        throw new BadRequestException('Unknown action: retry or compensate.');
      const saga = await this.findSaga(req.params.id);
      const now = await this.data.operator.databaseNow();
      const plan = sagaActionPlan(action, saga, now, this.data.definition(saga.name));
      if (!ctx.canAct || !plan) return redirect(res, `${ctx.base}/sagas/${saga.id}`);
      send(res, confirmSagaActionPage(ctx, saga, plan));
    }

    @Post('sagas/:id/retry')
    async retrySaga(@Req() req: ConsoleRequest, @Res() res: ConsoleResponse): Promise<void> {
      await this.sagaAction(req, res, 'retry');
    }

    @Post('sagas/:id/compensate')
    async compensateSaga(@Req() req: ConsoleRequest, @Res() res: ConsoleResponse): Promise<void> {
      await this.sagaAction(req, res, 'compensate');
    }

    @Get('dead-letters')
    async deadLetters(@Req() req: ConsoleRequest, @Res() res: ConsoleResponse): Promise<void> {
      const q = req.query;
      const filter: DeadLetterFilter = {};
      const destination = text(q.destination);
      const type = text(q.type);
      const consumer = text(q.consumer);
      const after = text(q.after);
      if (destination) filter.destination = destination;
      if (type) filter.type = type;
      if (after !== undefined && !isUuid(after))
        throw new BadRequestException('The page cursor is not valid.');
      const [now, outbox, inbox] = await Promise.all([
        this.data.operator.databaseNow(),
        this.data.deadLettersAs(undefined).list(filter, { limit: this.options.pageSize, after }),
        this.data.inbox.listDeadLetters({ consumer }, this.options.pageSize),
      ]);
      send(
        res,
        deadLettersPage(page(req), {
          outbox,
          inbox,
          filter: { destination, type, consumer, after },
          notice: NOTICES[String(q.done)],
          now,
        }),
      );
    }

    @Get('dead-letters/outbox/:id')
    async outboxMessage(@Req() req: ConsoleRequest, @Res() res: ConsoleResponse): Promise<void> {
      const message = await this.findOutboxMessage(req.params.id);
      const now = await this.data.operator.databaseNow();
      send(res, outboxMessagePage(page(req), message, now, NOTICES[String(req.query.done)]));
    }

    @Get('dead-letters/outbox/:id/confirm')
    async confirmOutbox(@Req() req: ConsoleRequest, @Res() res: ConsoleResponse): Promise<void> {
      const ctx = page(req);
      const action = req.query.action;
      if (action !== 'replay' && action !== 'discard')
        throw new BadRequestException('Unknown action: replay or discard.');
      const message = await this.findOutboxMessage(req.params.id);
      if (!ctx.canAct || message.status !== 'dead_letter')
        return redirect(res, `${ctx.base}/dead-letters/outbox/${message.id}`);
      send(res, confirmOutboxPage(ctx, message, action));
    }

    @Post('dead-letters/outbox/:id/replay')
    async replay(@Req() req: ConsoleRequest, @Res() res: ConsoleResponse): Promise<void> {
      const ctx = page(req);
      const id = this.outboxId(req.params.id);
      requireConfirmation(req);
      await this.data.deadLettersAs(ctx.grant.operator).replay(id).catch(notADeadLetter);
      redirect(res, `${ctx.base}/dead-letters/outbox/${id}?done=replayed`);
    }

    @Post('dead-letters/outbox/:id/discard')
    async discard(@Req() req: ConsoleRequest, @Res() res: ConsoleResponse): Promise<void> {
      const ctx = page(req);
      const id = this.outboxId(req.params.id);
      requireConfirmation(req);
      await this.data.deadLettersAs(ctx.grant.operator).discard(id).catch(notADeadLetter);
      redirect(res, `${ctx.base}/dead-letters?done=discarded`);
    }

    @Get('dead-letters/inbox/entry')
    async inboxEntry(@Req() req: ConsoleRequest, @Res() res: ConsoleResponse): Promise<void> {
      const entry = await this.findInboxEntry(req.query.consumer, req.query.message);
      const now = await this.data.operator.databaseNow();
      send(res, inboxEntryPage(page(req), entry, now));
    }

    @Get('dead-letters/inbox/entry/confirm')
    async confirmInbox(@Req() req: ConsoleRequest, @Res() res: ConsoleResponse): Promise<void> {
      const ctx = page(req);
      const entry = await this.findInboxEntry(req.query.consumer, req.query.message);
      if (!ctx.canAct || entry.status !== 'dead_letter')
        return redirect(res, `${ctx.base}/dead-letters`);
      send(res, confirmInboxReleasePage(ctx, entry));
    }

    @Post('dead-letters/inbox/release')
    async release(@Req() req: ConsoleRequest, @Res() res: ConsoleResponse): Promise<void> {
      const ctx = page(req);
      requireConfirmation(req);
      const consumer = text(req.body?.consumer);
      const message = text(req.body?.message);
      if (!consumer || !message)
        throw new BadRequestException('Give the consumer and the message id.');
      // The CLI's `sage inbox dead-letters release`: only dead letters are deleted.
      const released = await this.data
        .inboxAs(ctx.grant.operator)
        .deleteDeadLetters(consumer, [message]);
      if (!released.length)
        throw new NotFoundException(`Not a dead letter of ${consumer}: ${message}`);
      redirect(res, `${ctx.base}/dead-letters?done=released`);
    }

    @Get('relay')
    async relay(@Req() req: ConsoleRequest, @Res() res: ConsoleResponse): Promise<void> {
      const q = this.data.operator;
      const [now, stats, breakdown, deadLetterGroups, oldestTransaction] = await Promise.all([
        q.databaseNow(),
        this.data.outbox.stats(),
        q.outboxPendingBreakdown(),
        q.outboxDeadLetterGroups(10),
        q.oldestTransaction(),
      ]);
      send(
        res,
        relayPage(page(req), {
          now,
          stats,
          breakdown,
          deadLetterGroups,
          oldestTransaction,
          relay: this.data.relay(),
          refreshSeconds: this.options.refreshSeconds,
        }),
      );
    }

    @Get('assets/console.css')
    css(@Res() res: ConsoleResponse): void {
      res.setHeader('Cache-Control', 'private, max-age=300');
      send(res, CONSOLE_CSS, 'text/css; charset=utf-8');
    }

    @Get('assets/console.js')
    js(@Res() res: ConsoleResponse): void {
      res.setHeader('Cache-Control', 'private, max-age=300');
      send(res, CONSOLE_JS, 'text/javascript; charset=utf-8');
    }

    /** `sage sagas retry|compensate` from a confirmation form: the same plan, store and audit. */
    private async sagaAction(
      req: ConsoleRequest,
      res: ConsoleResponse,
      action: SagaOperatorAction,
    ): Promise<void> {
      const ctx = page(req);
      requireConfirmation(req);
      const id = req.params.id ?? '';
      if (!isUuid(id)) throw new NotFoundException('No such saga: the id is not a UUID.');
      const status = text(req.body?.seenStatus);
      const updatedAt = new Date(text(req.body?.seenUpdatedAt) ?? '');
      if (
        !status ||
        !(SAGA_STATUSES as readonly string[]).includes(status) ||
        isNaN(updatedAt.getTime())
      )
        throw new BadRequestException(
          'This action needs its confirmation step: open it again from the console.',
        );
      const definition = (name: string) => compensationDefinition(this.data.definition(name));
      await this.data
        .sagaActionsAs(ctx.grant.operator)
        .apply(action, id.toLowerCase(), { status: status as SagaStatus, updatedAt }, (saga, now) =>
          planSagaAction(action, saga, now, definition(saga.name)),
        )
        .catch((error: unknown) => {
          if (error instanceof SagaActionRefusedError) throw new ConflictException(error.message);
          if (error instanceof SagaNotFoundError)
            throw new NotFoundException(`No saga ${id} in this database.`);
          throw error;
        });
      redirect(res, `${ctx.base}/sagas/${id.toLowerCase()}?done=${action}`);
    }

    private async findSaga(raw: string | undefined): Promise<SagaRecord> {
      const id = raw ?? '';
      if (!isUuid(id)) throw new NotFoundException('No such saga: the id is not a UUID.');
      const saga = await this.data.sagas.load(id.toLowerCase());
      if (!saga) throw new NotFoundException(`No saga ${id} in this database.`);
      return saga;
    }

    private outboxId(raw: string | undefined): string {
      if (!raw || !isUuid(raw))
        throw new NotFoundException('No such message: the id is not a UUID.');
      return raw.toLowerCase();
    }

    private async findOutboxMessage(raw: string | undefined) {
      const id = this.outboxId(raw);
      return this.data
        .deadLettersAs(undefined)
        .inspect(id)
        .catch((error: unknown) => {
          if (error instanceof OutboxMessageNotFoundError)
            throw new NotFoundException(`No outbox message ${id}.`);
          throw error;
        });
    }

    private async findInboxEntry(consumerRaw: unknown, messageRaw: unknown) {
      const consumer = text(consumerRaw);
      const messageId = text(messageRaw);
      if (!consumer || !messageId)
        throw new BadRequestException('Give the consumer and the message id.');
      const entry = await this.data.inbox.get({ consumer, messageId });
      if (!entry)
        throw new NotFoundException(`No inbox entry of ${consumer} for message ${messageId}.`);
      return entry;
    }
  }
  return SageConsoleController;
}

function notADeadLetter(error: unknown): never {
  if (error instanceof OutboxMessageNotFoundError)
    throw new NotFoundException('Not a dead letter (any more): nothing changed.');
  throw error;
}
