import {
  Body,
  Controller,
  Get,
  HttpCode,
  Inject,
  NotFoundException,
  Param,
  Post,
  UseGuards,
} from '@nestjs/common';
import { SagaService } from '@sage/saga-outbox';
import { randomUUID } from 'node:crypto';
import { SampleApiKeyGuard } from '../../../shared/api-key.guard';
import { IdempotencyKey } from '../../../shared/sample-validation';
import { ORDER_PLACEMENT_SAGA, type OrderPlacementSagaClass } from './order-placement.saga';
import { orderViewOf, type OrderView } from './order-view';
import { PlaceOrderDto } from './place-order.dto';

/** An order id as `place` makes them: `ord-` and an Idempotency-Key (IDEMPOTENCY_KEY_PATTERN) or a UUID. */
const ORDER_ID = /^ord-[A-Za-z0-9._:-]{1,128}$/;

/**
 * The body is a PlaceOrderDto, checked by the ValidationPipe (400 for unknown fields, wrong types,
 * values out of bounds, and a card number anywhere: the card arrives as a token from the payment
 * provider's client-side tokenisation, so no card number reaches this server, its saga, its
 * messages or its logs; the body is never logged). The Idempotency-Key header is checked by the
 * IdempotencyKey decorator (400 when too long or outside its alphabet). Sage's errors need no
 * try/catch here: SageHttpExceptionFilter (registered in OrderServiceModule) answers an input the
 * saga's validator rejects with 400, an Idempotency-Key reused with another body with 409 (the saga
 * stores a fingerprint of its input). SampleApiKeyGuard marks where authentication goes.
 */
@Controller('orders')
@UseGuards(SampleApiKeyGuard)
export class OrdersController {
  constructor(
    private readonly sagas: SagaService,
    @Inject(ORDER_PLACEMENT_SAGA) private readonly orderPlacement: OrderPlacementSagaClass,
  ) {}

  /** Starts the order-placement saga. `Idempotency-Key` makes retries of this request safe. */
  @Post()
  @HttpCode(202)
  async place(@Body() body: PlaceOrderDto, @IdempotencyKey() key?: string) {
    const orderId = `ord-${key ?? randomUUID()}`;
    // Started by class: the input is checked against the steps' PlaceOrderInput at compile time.
    // The order id is the saga's idempotency key: the same key with another body is a 409.
    const { sagaId, created } = await this.sagas.start(this.orderPlacement, body.toInput(orderId), {
      idempotencyKey: orderId,
    });
    return { orderId, sagaId, created };
  }

  /** The order as its customer sees it (OrderView), from the moment it is placed; 404 if unknown. */
  @Get(':id')
  async get(@Param('id') id: string): Promise<OrderView> {
    // The saga is found by its idempotency key, the order id.
    const saga = ORDER_ID.test(id) ? await this.sagas.findByKey(this.orderPlacement, id) : null;
    if (!saga) throw new NotFoundException('order not found');
    return orderViewOf(saga);
  }
}
