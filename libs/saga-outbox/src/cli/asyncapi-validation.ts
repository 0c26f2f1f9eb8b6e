import type * as AsyncApiParser from '@asyncapi/parser';
import { loadOptionalPeer } from '../optional-peer';

// Spectral's DiagnosticSeverity (the parser's diagnostics): 0 error, 1 warning, 2 information, 3 hint.
const ERROR = 0;
const WARNING = 1;

/** One problem the official AsyncAPI parser found, as one line: `path: message (code)`. */
export interface AsyncApiProblem {
  readonly severity: 'error' | 'warning';
  readonly text: string;
}

/**
 * Checks an AsyncAPI document with the official parser (`@asyncapi/parser`, an optional package:
 * MissingPeerDependencyError with the install line when it is not installed). Returns the errors
 * and warnings it reports (information and hints, such as "a newer AsyncAPI version exists", are
 * left out); an empty list means the document is valid.
 */
export async function asyncApiProblems(document: object): Promise<AsyncApiProblem[]> {
  const { Parser } = loadOptionalPeer(
    'sage asyncapi --validate',
    ['@asyncapi/parser'],
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy: only --validate loads it
    () => require('@asyncapi/parser') as typeof AsyncApiParser,
  );
  // The parser takes the document as text; JSON keeps the order of keys, so paths read as written.
  const diagnostics = await new Parser().validate(JSON.stringify(document));
  return diagnostics
    .filter((d) => Number(d.severity) <= WARNING)
    .map((d) => ({
      severity: Number(d.severity) === ERROR ? 'error' : 'warning',
      text: `${d.path.length ? d.path.join('/') : '(document)'}: ${d.message} (${String(d.code)})`,
    }));
}
