import { Catch, Logger, type ArgumentsHost, type HttpServer } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import { SagaOutboxError } from '../../core/errors';
import { handleOutsideHttp } from './outside-http';
import { responseObjectAdapter } from './response-object-adapter';
import { sageHttpErrorOf } from './sage-http-errors';

/**
 * Answers Sage's typed errors over HTTP with the status they mean and a stable body,
 * `{ statusCode, error, code, message }`: invalid input 400, not found 404, idempotency-key
 * conflict 409, message too large 413, database or broker unavailable 503, `waitFor` timed out 504
 * (the table: sageHttpErrorOf). Opt-in; register it once, either way:
 *
 * ```ts
 * // in a module's providers (the HTTP adapter is injected):
 * { provide: APP_FILTER, useClass: SageHttpExceptionFilter }
 * // or in main.ts:
 * app.useGlobalFilters(new SageHttpExceptionFilter(app.getHttpAdapter()));
 * ```
 *
 * It catches only Sage's errors: your `HttpException`s and other errors never reach it. A Sage error
 * that is a bug or misconfiguration of the app (an unknown saga name, a publish outside a
 * transaction...) gets Nest's default answer (500, logged), as without the filter; so does any 5xx
 * it maps, whose body says only the code and a generic message (the cause is logged, never sent).
 * Outside HTTP (microservice handlers, gateways) it hands the error to Nest's default filter of that
 * context, so message acknowledgement and redelivery behave as without it.
 *
 * Created with `new SageHttpExceptionFilter()` and no adapter, it answers through the response
 * object itself (Express and Fastify).
 */
@Catch(SagaOutboxError)
export class SageHttpExceptionFilter extends BaseExceptionFilter<SagaOutboxError> {
  private static readonly log = new Logger('SageHttpExceptionFilter');

  override catch(exception: SagaOutboxError, host: ArgumentsHost): unknown {
    if (host.getType<string>() !== 'http') return handleOutsideHttp(exception, host);
    const adapter: HttpServer =
      this.applicationRef ?? this.httpAdapterHost?.httpAdapter ?? responseObjectAdapter;
    const body = sageHttpErrorOf(exception);
    // Nest's default: 500 "Internal server error", logged as ExceptionsHandler.
    if (!body) return new BaseExceptionFilter(adapter).catch(exception, host);
    if (body.statusCode >= 500) SageHttpExceptionFilter.log.error(exception);
    const response: unknown = host.getArgByIndex(1);
    if (adapter.isHeadersSent(response)) adapter.end(response);
    else adapter.reply(response, body, body.statusCode);
    return undefined;
  }
}
