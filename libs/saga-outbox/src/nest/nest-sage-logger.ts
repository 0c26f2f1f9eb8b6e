import { Logger } from '@nestjs/common';
import type { SageLogger } from '../core/ports/logger';

/** Adapts Nest's Logger (and so nestjs-pino, when the app installs it) to the core's logging port. */
export class NestSageLogger implements SageLogger {
  private readonly logger: Logger;
  constructor(context = 'Sage') {
    this.logger = new Logger(context);
  }
  debug(message: string, fields?: Record<string, unknown>): void {
    this.logger.debug(fields ? { msg: message, ...fields } : message);
  }
  info(message: string, fields?: Record<string, unknown>): void {
    this.logger.log(fields ? { msg: message, ...fields } : message);
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.logger.warn(fields ? { msg: message, ...fields } : message);
  }
  error(message: string, fields?: Record<string, unknown>): void {
    this.logger.error(fields ? { msg: message, ...fields } : message);
  }
}
