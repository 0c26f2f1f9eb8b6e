/** The longest actor name an audit entry keeps (MAX_AUDIT_ACTOR_LENGTH in the SQL; triggers cut there). */
export const MAX_AUDIT_ACTOR_CHARS = 128;

/**
 * What is wrong with `actor` as the operator named in audit entries, or undefined when it is fine:
 * 1-128 characters, printable (no control, format or line-separator characters, which could forge
 * lines or reorder text in whoever reads the log), not blank.
 */
export function auditActorProblem(actor: unknown): string | undefined {
  if (typeof actor !== 'string' || actor.trim() === '') return 'must be a non-empty name';
  if ([...actor].length > MAX_AUDIT_ACTOR_CHARS)
    return `must be at most ${MAX_AUDIT_ACTOR_CHARS} characters, got ${[...actor].length}`;
  if (/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(actor))
    return 'must be printable: no control, format or line-separator characters';
  return undefined;
}
