import {
  Body,
  Controller,
  Get,
  NotFoundException,
  Param,
  ParseUUIDPipe,
  Post,
} from '@nestjs/common';
import { SagaService } from '@sage/saga-outbox';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { PlaceOrderSaga, type PlaceOrder } from './place-order.saga';

@Controller('orders')
export class OrdersController {
  constructor(
    private readonly sagas: SagaService,
    private readonly dataSource: DataSource,
  ) {}

  @Post()
  async place(@Body() body: { customer: string; amountCents: number }) {
    const orderId = randomUUID();
    const input: PlaceOrder = { orderId, customer: body.customer, amountCents: body.amountCents };
    // By class: the input must be what PlaceOrderSaga's steps take (or by name: 'place-order').
    const { sagaId } = await this.sagas.start(PlaceOrderSaga, input);
    return { orderId, sagaId };
  }

  @Get(':id')
  async get(@Param('id', ParseUUIDPipe) id: string) {
    const found = await this.order(id);
    if (!found) throw new NotFoundException(`no order ${id}`);
    const saga = await this.sagas.get(found.saga_id);
    // Read the order again after the saga: what a finished saga's steps wrote is visible now.
    const order = (await this.order(id)) ?? found;
    return { id, status: order.status, saga: saga.status, shipments: order.shipments };
  }

  private async order(id: string) {
    const rows: { status: string; saga_id: string; shipments: number }[] =
      await this.dataSource.query(
        `SELECT status, saga_id, (SELECT count(*)::int FROM shipments WHERE order_id = o.id) AS shipments
         FROM orders o WHERE id = $1`,
        [id],
      );
    return rows[0];
  }
}
