import {
  Catch,
  HttpException,
  Logger,
  type ArgumentsHost,
  type ExceptionFilter,
} from '@nestjs/common';
import { errorText } from '../../core/error-text';
import { html } from './html';
import { CONSOLE_BASE, type ConsoleResponse } from './console.guard';

/**
 * Errors of console routes as a small escaped HTML page (a 403 from the guard, a 404, a 400). An
 * unexpected error is a 500 whose details go to the log, not to the page.
 */
@Catch()
export class ConsoleExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('SageConsole');

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const res = http.getResponse<ConsoleResponse>();
    const base = http.getRequest<{ [CONSOLE_BASE]?: string }>()[CONSOLE_BASE];
    let status = 500;
    let message = 'The Sage console failed to answer; the application log has the details.';
    if (exception instanceof HttpException) {
      status = exception.getStatus();
      message = exception.message;
    } else {
      this.logger.error(`console request failed: ${errorText(exception)}`);
    }
    res.statusCode = status;
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.end(
      html`<!doctype html>
        <html lang="en">
          <head>
            <meta charset="utf-8" />
            <title>${status} · Sage console</title>
            ${base ? html`<link rel="stylesheet" href="${base}/assets/console.css" />` : ''}
          </head>
          <body>
            <main>
              <h1>${status}</h1>
              <p class="warning" data-testid="error">${message}</p>
              ${base ? html`<p><a href="${base}/">Back to the console</a></p>` : ''}
            </main>
          </body>
        </html>`.text,
    );
  }
}
