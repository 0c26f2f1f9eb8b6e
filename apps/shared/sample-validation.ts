import {
  BadRequestException,
  createParamDecorator,
  ValidationPipe,
  type ExecutionContext,
  type Provider,
} from '@nestjs/common';
import { APP_PIPE } from '@nestjs/core';

/**
 * Every sample body is checked against its DTO (class-validator decorators) before a controller
 * sees it: unknown fields are refused (not silently dropped, so a client's typo is not lost), a
 * wrong type is refused (no implicit conversion: `"2"` is not a quantity), and the answer is a
 * 400 that names the fields, never echoes their values.
 */
export const sampleValidationPipe: Provider = {
  provide: APP_PIPE,
  useFactory: () =>
    new ValidationPipe({
      whitelist: true,
      forbidNonWhitelisted: true,
      forbidUnknownValues: true,
      transform: true,
      transformOptions: { enableImplicitConversion: false },
      validationError: { target: false, value: false },
    }),
};

/** The Idempotency-Key header's length bound and alphabet (it becomes part of an order id and a URL). */
export const IDEMPOTENCY_KEY_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The request's `Idempotency-Key` header: absent, undefined; present, it must be 1 to 128
 * characters of `A-Z a-z 0-9 . _ : -` (a UUID fits), else 400 before anything is written.
 */
export const IdempotencyKey = createParamDecorator(
  (_data: unknown, context: ExecutionContext): string | undefined => {
    const { headers } = context
      .switchToHttp()
      .getRequest<{ headers: Record<string, string | string[] | undefined> }>();
    const value = headers['idempotency-key'];
    if (value === undefined) return undefined;
    if (typeof value === 'string' && IDEMPOTENCY_KEY_PATTERN.test(value)) return value;
    throw new BadRequestException(
      'The Idempotency-Key header must be 1 to 128 characters of A-Z, a-z, 0-9, ".", "_", ":" or "-".',
    );
  },
);
