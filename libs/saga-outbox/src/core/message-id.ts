import { createHash } from 'node:crypto';
import { storableTextProblem } from './text-checks';

/** The longest message id a consumer accepts (the inbox keys on it). */
export const MAX_MESSAGE_ID_LENGTH = 512;

/** Prefix of an id Sage made up for a message whose own id is missing or unusable. */
export const DERIVED_ID_PREFIX = 'sage-derived:';

/**
 * Why `id` cannot identify a delivered message (the inbox keys on it, PostgreSQL stores it), or
 * undefined when it can: missing, blank, longer than MAX_MESSAGE_ID_LENGTH, or holding NUL or an
 * unpaired surrogate. A message with such an id is dead-lettered, never handled.
 */
export function messageIdProblem(id: unknown): string | undefined {
  if (id === undefined || id === null) return 'the message has no id';
  if (typeof id !== 'string') return `the id is a ${typeof id}, not a string`;
  if (id.trim() === '') return 'the id is blank';
  if (id.length > MAX_MESSAGE_ID_LENGTH)
    return `the id is ${id.length} characters long, over the ${MAX_MESSAGE_ID_LENGTH}-character limit`;
  const text = storableTextProblem(id);
  return text ? `the id ${text}` : undefined;
}

/**
 * A stable id for a message whose own id is unusable, so its dead letter can be recorded once and
 * recognised when redelivered: `sage-derived:` + SHA-256 of the raw id when there is one, else of
 * what identifies the message itself (its destination and body, or its broker position).
 */
export function derivedMessageId(rawId: unknown, content: () => string | Uint8Array): string {
  const hash = createHash('sha256');
  if (typeof rawId === 'string' && rawId !== '') hash.update('id\n').update(rawId, 'utf8');
  else hash.update('content\n').update(content());
  return `${DERIVED_ID_PREFIX}${hash.digest('hex')}`;
}
