// Runs in the consumer app right after `npm install <tarball> <required peers>`, before any
// optional peer is installed: the root entry loads, none of the optional peers is there, and
// asking for a feature whose peer is missing fails at startup with one line naming the package.
//
//   DATABASE_URL=postgres://… node bare-install.cjs
require('reflect-metadata');
const assert = require('node:assert/strict');

const OPTIONAL = [
  'kafkajs',
  'amqplib',
  'amqp-connection-manager',
  '@nats-io/transport-node',
  '@electric-sql/pglite',
  'prom-client',
  'pino',
  'nestjs-pino',
  '@nestjs/terminus',
  '@opentelemetry/api',
  '@nestjs/microservices',
];

async function startupError(moduleOptions) {
  const { NestFactory } = require('@nestjs/core');
  const { SagaOutboxModule } = require('@sage/saga-outbox');
  try {
    const app = await NestFactory.createApplicationContext(
      SagaOutboxModule.forRoot(moduleOptions),
      {
        logger: false,
        abortOnError: false,
      },
    );
    await app.close();
  } catch (error) {
    return error;
  }
  throw new Error(`startup with ${JSON.stringify(Object.keys(moduleOptions))} did not fail`);
}

async function main() {
  for (const name of OPTIONAL)
    assert.throws(() => require.resolve(name), `${name} is installed although nobody asked for it`);
  const sage = require('@sage/saga-outbox');
  assert.equal(typeof sage.SagaOutboxModule, 'function');
  const loaded = Object.keys(require.cache).filter((f) =>
    OPTIONAL.some((n) => f.includes(`/node_modules/${n}/`)),
  );
  assert.deepEqual(loaded, [], 'the root entry loaded an optional peer');
  console.log(
    'bare install: require("@sage/saga-outbox") ok, no optional peer installed or loaded',
  );

  const kafka = await startupError({
    postgres: { url: process.env.DATABASE_URL },
    broker: 'kafka://127.0.0.1:9092',
  });
  assert.equal(kafka.code, 'PEER_DEPENDENCY_MISSING', String(kafka));
  assert.match(kafka.message, /^[^\n]*kafkajs[^\n]*npm install kafkajs$/);
  console.log(`kafka:// without kafkajs: ${kafka.name}: ${kafka.message}`);

  const embedded = await startupError({});
  assert.equal(embedded.code, 'PEER_DEPENDENCY_MISSING', String(embedded));
  assert.match(
    embedded.message,
    /^[^\n]*npm install @electric-sql\/pglite @electric-sql\/pglite-socket$/,
  );
  console.log(`embedded without PGlite: ${embedded.name}: ${embedded.message}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(`bare install: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
