import { writeFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { asyncApiDocument, type AsyncApiService } from '../../core/contracts/asyncapi';
import { MissingPeerDependencyError } from '../../core/errors';
import { errorText } from '../../core/error-text';
import { asyncApiProblems } from '../asyncapi-validation';
import { exportNames, requireUserModule } from '../user-module';
import { CommandFailedError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError } from '../cli-errors';
import { expectArgs, flag, stringOption, type CommandSpec } from '../command';

const DEFAULT_EXPORT = 'asyncapi';

export const asyncapiCommand: CommandSpec = {
  path: ['asyncapi'],
  summary: "write a service's AsyncAPI 3.0 document from its message contracts",
  options: {
    service: {
      type: 'string',
      value: 'FILE',
      description:
        'JS module (or .ts with ts-node registered) exporting the service: { id, version, publishes, consumes, ... }',
    },
    export: {
      type: 'string',
      value: 'NAME',
      description: `the module's export holding it (default ${DEFAULT_EXPORT})`,
    },
    out: { type: 'string', value: 'FILE', description: 'write the document there, not to stdout' },
    validate: {
      type: 'boolean',
      description: 'check it with the official parser (@asyncapi/parser); exit 1 on an error',
    },
  },
  details: `Builds the AsyncAPI 3.0.0 document of one service from what it declares (an AsyncApiService
object: its contracts, reply destinations and brokers): a channel per destination, a message per
contract version, send / receive operations with the replies of saga commands, Kafka, RabbitMQ
and NATS bindings. Needs no database. The output is stable (sorted keys), so a committed document
diffs cleanly. See docs/contracts.md.

Examples:
  sage asyncapi --service dist/asyncapi.js --out docs/asyncapi/order-service.json --validate
  node -r ts-node/register node_modules/.bin/sage asyncapi --service src/asyncapi.ts`,
  async run(ctx) {
    expectArgs(ctx, []);
    const file = stringOption(ctx, 'service');
    if (file === undefined) throw new UsageError('--service FILE is required', 'asyncapi');
    const name = stringOption(ctx, 'export') ?? DEFAULT_EXPORT;
    const service = loadService(resolve(process.cwd(), file), file, name);
    const document = asyncApiDocument(service);
    const text = asyncApiText(document);
    if (flag(ctx, 'validate')) {
      let problems;
      try {
        problems = await asyncApiProblems(document);
      } catch (error) {
        if (!(error instanceof MissingPeerDependencyError)) throw error;
        ctx.io.err(`sage: ${error.message}\n`);
        return EXIT_USAGE;
      }
      for (const p of problems) ctx.io.err(`asyncapi ${p.severity}: ${p.text}\n`);
      const errors = problems.filter((p) => p.severity === 'error').length;
      if (errors) {
        ctx.io.err(`sage: the AsyncAPI document of "${service.id}" has ${errors} error(s)\n`);
        return EXIT_FAILURE;
      }
    }
    const out = stringOption(ctx, 'out');
    if (out === undefined) ctx.io.out(text);
    else {
      const target = isAbsolute(out) ? out : resolve(process.cwd(), out);
      try {
        // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator names the file to write
        writeFileSync(target, text);
      } catch (error) {
        throw new CommandFailedError(`cannot write --out ${out}: ${errorText(error)}`);
      }
      ctx.io.err(`wrote ${out}\n`);
    }
    return EXIT_OK;
  },
};

/** The document as `sage asyncapi` writes it (and docs/asyncapi/ holds it): 2-space JSON, a final line feed. */
export function asyncApiText(document: object): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}

/** The AsyncApiService export `name` of the module at `path` (CommandFailedError saying why not). */
function loadService(path: string, given: string, name: string): AsyncApiService {
  const module = requireUserModule(
    path,
    { option: 'service', given, command: 'asyncapi' },
    (message) => new CommandFailedError(message),
  );
  const service = module[name];
  if (typeof service !== 'object' || service === null) {
    const names = exportNames(module);
    throw new CommandFailedError(
      `--service ${given} has no export "${name}" holding { id, version, publishes, consumes }` +
        (names.length ? `; its exports: ${names.join(', ')} (choose one with --export)` : ''),
    );
  }
  return service as AsyncApiService;
}
