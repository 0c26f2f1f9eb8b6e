import { Logger, type ArgumentsHost } from '@nestjs/common';
import type * as Microservices from '@nestjs/microservices';
import { loadOptionalPeer } from '../../optional-peer';

/** `@nestjs/websockets`' default filter, as far as it is used here (the package is not a dependency). */
interface WebSocketsModule {
  BaseWsExceptionFilter: new () => { catch(exception: unknown, host: ArgumentsHost): void };
}

const externalLog = new Logger('ExceptionsHandler');

/**
 * What Nest does with an error no filter handles, in a context other than HTTP: an exception filter
 * registered globally (APP_FILTER) also sees microservice handlers and gateways, where
 * SageHttpExceptionFilter has nothing to answer. Each context's own default filter handles it, as if
 * the filter were not there: so an error in a message handler still fails the delivery (and Sage's
 * redelivery and dead-lettering work as they do without the filter).
 *
 * The context's package is loaded only here, and is installed wherever that context exists.
 */
export function handleOutsideHttp(exception: Error, host: ArgumentsHost): unknown {
  switch (host.getType<string>()) {
    case 'rpc': {
      const { BaseRpcExceptionFilter } = loadOptionalPeer(
        'SageHttpExceptionFilter in a microservice',
        ['@nestjs/microservices'],
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy: only microservices load it
        () => require('@nestjs/microservices') as typeof Microservices,
      );
      return new BaseRpcExceptionFilter().catch(exception, host);
    }
    case 'ws': {
      const { BaseWsExceptionFilter } = loadOptionalPeer(
        'SageHttpExceptionFilter in a WebSocket gateway',
        ['@nestjs/websockets'],
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy: only gateways load it
        () => require('@nestjs/websockets') as WebSocketsModule,
      );
      new BaseWsExceptionFilter().catch(exception, host);
      return undefined;
    }
    default:
      // GraphQL and other external contexts: Nest's default logs the error and rethrows it.
      externalLog.error(exception);
      throw exception;
  }
}
