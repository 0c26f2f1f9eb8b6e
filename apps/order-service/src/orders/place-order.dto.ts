import { Type } from 'class-transformer';
import {
  IsDefined,
  IsEmail,
  IsInt,
  IsObject,
  IsString,
  Length,
  Matches,
  Max,
  Min,
  ValidateNested,
} from 'class-validator';
import { NeverAccepted, NoCardNumber } from '../../../shared/card-number';
import type { CardToken, OrderCustomer, PlaceOrderInput } from './order.types';

export class OrderCustomerDto implements OrderCustomer {
  /** The data subject's id in the customer system. */
  @IsString()
  @Matches(/^[A-Za-z0-9._:-]{1,64}$/, {
    message: 'customer.id must be 1 to 64 characters of A-Z, a-z, 0-9, ".", "_", ":" or "-"',
  })
  @NoCardNumber()
  id!: string;

  @IsString()
  @Length(1, 100)
  @NoCardNumber()
  name!: string;

  @IsEmail()
  @Length(3, 254)
  @NoCardNumber()
  email!: string;
}

/**
 * The card, tokenised by the payment provider's client-side SDK: the card number went from the
 * customer's browser to the provider, never to this server. A request that carries a card number
 * (as `number`, or pasted into any field) is refused with 400 before anything is stored or logged.
 */
export class PaymentMethodDto implements CardToken {
  /** The provider's token. Sample: `tok_declined...` is declined. */
  @IsString()
  @Matches(/^tok_[A-Za-z0-9_]{1,100}$/, {
    message: 'paymentMethod.token must be a card token: "tok_" and 1 to 100 of A-Z, a-z, 0-9, "_"',
  })
  @NoCardNumber()
  token!: string;

  /** The card's last four digits, as the provider's SDK reports them (for "Visa ···4242"). */
  @IsString()
  @Matches(/^[0-9]{4}$/, { message: 'paymentMethod.last4 must be 4 digits' })
  last4!: string;

  @NeverAccepted()
  number?: never;

  @NeverAccepted()
  cvc?: never;
}

/**
 * The body of `POST /orders`, checked by the ValidationPipe (apps/shared/sample-validation.ts):
 * anything else (an unknown field, a wrong type, a string too long, a card number) is answered 400
 * before a saga starts, naming the field without echoing its value. The bounds are the sample's;
 * the saga's own validator still checks what it depends on.
 */
export class PlaceOrderDto implements Omit<PlaceOrderInput, 'orderId'> {
  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => OrderCustomerDto)
  customer!: OrderCustomerDto;

  @IsString()
  @Matches(/^[A-Za-z0-9._-]{1,64}$/, {
    message: 'sku must be 1 to 64 characters of A-Z, a-z, 0-9, ".", "_" or "-"',
  })
  @NoCardNumber()
  sku!: string;

  @IsInt()
  @Min(1)
  @Max(1000)
  quantity!: number;

  @IsInt()
  @Min(0)
  @Max(100_000_000)
  amountCents!: number;

  @IsString()
  @Matches(/^[A-Z]{3}$/, { message: 'currency must be an ISO 4217 code such as EUR' })
  currency!: string;

  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => PaymentMethodDto)
  paymentMethod!: PaymentMethodDto;

  // Where clients send a raw card number: refused with a message that says what to send instead.
  @NeverAccepted()
  card?: never;

  @NeverAccepted()
  cardNumber?: never;

  @NeverAccepted()
  pan?: never;

  /** The saga input: the fields copied one by one, so nothing else a body holds can slip in. */
  toInput(orderId: string): PlaceOrderInput {
    const { customer, paymentMethod } = this;
    return {
      orderId,
      customer: { id: customer.id, name: customer.name, email: customer.email },
      sku: this.sku,
      quantity: this.quantity,
      amountCents: this.amountCents,
      currency: this.currency,
      paymentMethod: { token: paymentMethod.token, last4: paymentMethod.last4 },
    };
  }
}
