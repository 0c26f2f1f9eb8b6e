import { Logger } from '@nestjs/common';
import type { SageLogger } from '../core/ports/logger';
import { oneLine, SageLogLine, type SageLogLevel } from './logging/sage-log-line';

/**
 * Adapts Nest's Logger to the core's logging port, so Sage logs wherever the app's logger writes:
 * under Nest's default ConsoleLogger one line per event, for example
 * `saga order-placement 0193… compensated after step "charge" failed: card declined …`; under
 * nestjs-pino (`app.useLogger(app.get(Logger))`) or ConsoleLogger's `json: true`, a structured line
 * with `msg` and the fields (see SageLogLine).
 *
 * Sage uses it for everything it builds. Pass one to a broker you construct yourself, so its
 * connection and dead-letter lines are logged too (an adapter without a `logger` is silent):
 * `new RabbitMqBroker({ url, logger: new NestSageLogger('SageBroker') })`.
 */
export class NestSageLogger implements SageLogger {
  private readonly logger: Logger;
  constructor(context = 'Sage') {
    this.logger = new Logger(context);
  }
  debug(message: string, fields?: Record<string, unknown>): void {
    this.logger.debug(line('debug', message, fields));
  }
  info(message: string, fields?: Record<string, unknown>): void {
    this.logger.log(line('log', message, fields));
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.logger.warn(line('warn', message, fields));
  }
  error(message: string, fields?: Record<string, unknown>): void {
    this.logger.error(line('error', message, fields));
  }
}

function line(
  level: SageLogLevel,
  message: string,
  fields: Record<string, unknown> | undefined,
): SageLogLine | string {
  return fields ? new SageLogLine(level, message, fields) : oneLine(message);
}
