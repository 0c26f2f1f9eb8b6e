/**
 * A NATS JetStream subscriber in a process of its own, to be killed with SIGKILL mid-stream
 * (nats-key-concurrency.int-spec.ts). Env: SAGE_NATS_URL, STREAM, PREFIX, DESTINATION, GROUP,
 * CONCURRENCY, ACK_WAIT_MS, FAILING_KEY (its handler always fails, so that key stays held in
 * back-off with its later messages waiting behind it). Stdout: one JSON line per handled message
 * (`{"handled":id}`, written before the handler resolves, so before the ack) and
 * `{"failed":id}` per failure.
 */
import { NatsJetStreamBroker } from '../../libs/saga-outbox/src/brokers/nats/nats-broker';
import { emit, env, runWorker } from './chaos-worker';

runWorker(async () => {
  const broker = new NatsJetStreamBroker({
    servers: env('SAGE_NATS_URL'),
    stream: env('STREAM'),
    subjectPrefix: env('PREFIX'),
    concurrency: Number(env('CONCURRENCY')),
    ackWaitMs: Number(env('ACK_WAIT_MS')),
    redeliveryDelayMs: () => 60_000,
  });
  const failingKey = env('FAILING_KEY');
  await broker.subscribe(
    env('DESTINATION'),
    async (m) => {
      if (m.key === failingKey) {
        emit({ failed: m.id });
        throw new Error('always fails in this process');
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
      emit({ handled: m.id });
    },
    { group: env('GROUP') },
  );
  emit({ event: 'subscribed' });
  await new Promise(() => undefined); // runs until killed
});
