import { IsInt, IsString, Length, Matches, Max, Min } from 'class-validator';
import type { PlaceOrderInput } from './order.types';

/**
 * The body of `POST /orders`, checked by the ValidationPipe (apps/shared/sample-validation.ts):
 * anything else (an unknown field, a wrong type, a string too long) is answered 400 before a saga
 * starts. The bounds are the sample's; the saga's own validator still checks what it depends on.
 */
export class PlaceOrderDto implements Omit<PlaceOrderInput, 'orderId'> {
  @IsString()
  @Length(1, 100)
  customer!: string;

  @IsString()
  @Matches(/^[A-Za-z0-9._-]{1,64}$/, {
    message: 'sku must be 1 to 64 characters of A-Z, a-z, 0-9, ".", "_" or "-"',
  })
  sku!: string;

  @IsInt()
  @Min(1)
  @Max(1000)
  quantity!: number;

  @IsInt()
  @Min(0)
  @Max(100_000_000)
  amountCents!: number;

  /** Test cards: ending in 0002 is declined. */
  @IsString()
  @Matches(/^[0-9]{12,19}$/, { message: 'card must be 12 to 19 digits' })
  card!: string;
}
