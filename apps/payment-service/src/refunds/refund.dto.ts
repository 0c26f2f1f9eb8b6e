import { IsInt, IsString, Length, Matches, Max, Min } from 'class-validator';
import type { RefundInput } from './refund.saga';

/**
 * The body of `POST /refunds`, checked by the ValidationPipe (apps/shared/sample-validation.ts).
 * `refundId` is required: it is the saga's idempotency key, so a retried request starts nothing
 * new (and a missing one must not become the key `"undefined"` every such request shares).
 */
export class RefundDto implements RefundInput {
  @IsString()
  @Matches(/^[A-Za-z0-9._:-]{1,64}$/, {
    message: 'refundId must be 1 to 64 characters of A-Z, a-z, 0-9, ".", "_", ":" or "-"',
  })
  refundId!: string;

  @IsString()
  @Length(1, 100)
  account!: string;

  @IsInt()
  @Min(1)
  @Max(100_000_000)
  amountCents!: number;
}
