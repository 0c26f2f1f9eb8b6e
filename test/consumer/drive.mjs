// Drives the consumer app (test/consumer-app, built from the packed tarball) over HTTP and checks
// what docs/getting-started.md promises: a saga that completes, one that compensates, an input the
// validator rejects answered 400, the event emitted by the completed saga handled exactly once by
// the @EventPattern consumer through the inbox, /metrics and /health/ready answering. Exit 0 when
// all hold; 1 with the reason otherwise.
//
//   node test/consumer/drive.mjs http://127.0.0.1:3000 <label> [app pid]
const [base, label = 'app', pid] = process.argv.slice(2);
const deadline = (ms) => Date.now() + ms;

async function http(method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, text, json: () => JSON.parse(text) };
}

async function until(what, probe, ms = 60_000) {
  const end = deadline(ms);
  let last;
  while (Date.now() < end) {
    if (pid && !alive(Number(pid)))
      throw new Error(`${label}: the app exited (waiting for ${what})`);
    try {
      last = await probe();
      if (last.ok) return last.value;
    } catch (error) {
      last = { detail: String(error) };
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${label}: timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}

function alive(processId) {
  try {
    process.kill(processId, 0);
    return true;
  } catch {
    return false;
  }
}

function check(condition, message) {
  if (!condition) throw new Error(`${label}: ${message}`);
}

async function orderSettles(orderId, sagaStatus) {
  return until(`order ${orderId} saga ${sagaStatus}`, async () => {
    const r = await http('GET', `/orders/${orderId}`);
    const order = r.status === 200 ? r.json() : undefined;
    return { ok: order?.saga === sagaStatus, value: order, detail: r.text };
  });
}

async function main() {
  await until('/health/ready = 200', async () => {
    const r = await http('GET', '/health/ready');
    return { ok: r.status === 200, value: r.json(), detail: r.text };
  });

  const placed = await http('POST', '/orders', { customer: 'alice', amountCents: 1200 });
  check(placed.status === 201, `POST /orders answered ${placed.status}: ${placed.text}`);
  const declined = await http('POST', '/orders', { customer: 'bob', amountCents: 500_000 });
  check(declined.status === 201, `POST /orders answered ${declined.status}: ${declined.text}`);

  // SageHttpExceptionFilter: the saga's validator rejects the input → 400 with Sage's code.
  const rejected = await http('POST', '/orders', { customer: 'carol', amountCents: 0 });
  check(
    rejected.status === 400 && rejected.json().code === 'SAGA_INPUT_INVALID',
    `POST /orders with amountCents 0 answered ${rejected.status}: ${rejected.text}`,
  );

  const completed = await orderSettles(placed.json().orderId, 'completed');
  check(completed.status === 'confirmed', `completed order is ${completed.status}`);
  const compensated = await orderSettles(declined.json().orderId, 'compensated');
  check(compensated.status === 'cancelled', `compensated order is ${compensated.status}`);
  check(compensated.shipments === 0, `a compensated order was shipped (${compensated.shipments})`);

  // order.confirmed: emitted in the confirm step's transaction, relayed, consumed once.
  const shipped = await until('order.confirmed handled', async () => {
    const order = (await http('GET', `/orders/${placed.json().orderId}`)).json();
    return { ok: order.shipments >= 1, value: order };
  });
  check(shipped.shipments === 1, `order.confirmed was handled ${shipped.shipments} times`);

  const metrics = await http('GET', '/metrics');
  check(metrics.status === 200, `/metrics answered ${metrics.status}`);
  for (const name of ['saga_completed_total', 'saga_compensated_total', 'outbox_published_total'])
    check(metrics.text.includes(name), `/metrics has no ${name}`);
  const completedCount = /^saga_completed_total(?:\{[^}]*\})? (\d+)/m.exec(metrics.text);
  check(
    completedCount && Number(completedCount[1]) >= 1,
    'saga_completed_total did not count the saga',
  );

  const ready = await http('GET', '/health/ready');
  check(ready.status === 200, `/health/ready answered ${ready.status}: ${ready.text}`);

  // Still once, after everything else had time to happen twice.
  const final = (await http('GET', `/orders/${placed.json().orderId}`)).json();
  check(final.shipments === 1, `order.confirmed was handled ${final.shipments} times in the end`);
  console.log(
    `${label}: ok (completed ${completed.id}, compensated ${compensated.id}, event handled once, /metrics and /health/ready up)`,
  );
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
