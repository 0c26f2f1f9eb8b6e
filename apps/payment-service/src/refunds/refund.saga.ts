import {
  Compensate,
  Saga,
  SagaStep,
  type SagaCompensationContext,
  type SagaStepContext,
} from '@sage/saga-outbox';

export interface RefundInput {
  refundId: string;
  account: string;
  amountCents: number;
}

/**
 * A local saga of the payment service: record the refund, debit the merchant, credit the customer.
 * Each step's ledger entry carries a unique reference, so the ledger itself rejects duplicates.
 * (The order saga's payment steps reach this service over a broker: authorizations/.)
 */
@Saga('payment-refund', {
  validate: (i: RefundInput) =>
    Number.isInteger(i?.amountCents) && i.amountCents > 0
      ? true
      : 'amountCents must be a positive integer',
})
export class RefundSaga {
  @SagaStep('record-refund')
  async record(ctx: SagaStepContext<RefundInput>) {
    await ctx.manager.query(
      `INSERT INTO payments.refund (id, account, amount_cents, status) VALUES ($1, $2, $3, 'requested')`,
      [ctx.input.refundId, ctx.input.account, ctx.input.amountCents],
    );
  }

  @Compensate('record-refund')
  async reject(ctx: SagaCompensationContext<RefundInput>) {
    await ctx.manager.query(`UPDATE payments.refund SET status = 'rejected' WHERE id = $1`, [
      ctx.input.refundId,
    ]);
  }

  @SagaStep('debit-merchant', { dependsOn: ['record-refund'] })
  async debit(ctx: SagaStepContext<RefundInput>) {
    await ctx.manager.query(
      `INSERT INTO payments.ledger_entry (account, amount_cents, reference) VALUES ('merchant', $1, $2)`,
      [-ctx.input.amountCents, ctx.idempotencyKey],
    );
  }

  @Compensate('debit-merchant')
  async reverseDebit(ctx: SagaCompensationContext<RefundInput>) {
    await ctx.manager.query(
      `INSERT INTO payments.ledger_entry (account, amount_cents, reference) VALUES ('merchant', $1, $2)`,
      [ctx.input.amountCents, ctx.idempotencyKey],
    );
  }

  @SagaStep('credit-customer', { dependsOn: ['debit-merchant'], pivot: true })
  async credit(ctx: SagaStepContext<RefundInput>) {
    await ctx.manager.query(
      `INSERT INTO payments.ledger_entry (account, amount_cents, reference) VALUES ($1, $2, $3)`,
      [ctx.input.account, ctx.input.amountCents, ctx.idempotencyKey],
    );
    await ctx.manager.query(`UPDATE payments.refund SET status = 'paid' WHERE id = $1`, [
      ctx.input.refundId,
    ]);
  }
}
