import type { DynamicModule, NestApplicationOptions } from '@nestjs/common';
import { BadRequestException } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';

/** Largest JSON (or form) body a sample accepts; a larger one is answered 413 before it is parsed. */
export const SAMPLE_BODY_LIMIT = '16kb';

/** Deepest nesting of objects and arrays a sample accepts in a JSON body (its DTOs are flat). */
export const SAMPLE_MAX_JSON_DEPTH = 8;

/**
 * A sample service's Nest app, as `main.ts` and the e2e tests create it: Express without its
 * `X-Powered-By` banner, and body parsers that refuse, before parsing, a body larger than
 * SAMPLE_BODY_LIMIT (413) or JSON nested deeper than SAMPLE_MAX_JSON_DEPTH (400), so no bad body
 * reaches a parser's or a validator's recursion (a 500). Input validation itself is the
 * ValidationPipe's (sampleValidationPipe).
 */
export async function createSampleApp(
  module: DynamicModule,
  options: NestApplicationOptions = {},
): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(module, options);
  app.disable('x-powered-by');
  app.useBodyParser('json', { limit: SAMPLE_BODY_LIMIT, verify: refuseDeepJson });
  app.useBodyParser('urlencoded', { limit: SAMPLE_BODY_LIMIT, extended: false });
  return app;
}

/** body-parser `verify`: a 400 for JSON nested deeper than SAMPLE_MAX_JSON_DEPTH, before parsing. */
function refuseDeepJson(_req: unknown, _res: unknown, body: Buffer): void {
  if (jsonDepth(body) > SAMPLE_MAX_JSON_DEPTH)
    throw new BadRequestException(
      `The JSON body is nested deeper than ${SAMPLE_MAX_JSON_DEPTH} levels.`,
    );
}

/**
 * The deepest nesting of `[` / `{` in JSON text, strings skipped; one pass, no recursion, so a
 * body of 16 kB of `[` costs 16 kB of scanning. Malformed JSON is left to the parser.
 */
export function jsonDepth(text: Uint8Array): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b /* [ */ || c === 0x7b /* { */) max = Math.max(max, ++depth);
    else if (c === 0x5d /* ] */ || c === 0x7d /* } */) depth--;
  }
  return max;
}
