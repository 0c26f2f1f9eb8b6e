/**
 * What a step's failure says, and whether retrying it can help: the two questions the phase loop
 * asks about anything a step (or its compensation) throws.
 */
import { NotSerializableError, SagaOutboxError, StepTimeoutError } from '../errors';
import { isRetryable, type RetryPolicy } from './retry-policy';

/** Codes of errors retrying cannot fix. */
const PERMANENT_CODES = new Set(['SAGA_DEFINITION_INVALID', 'SAGA_COMMAND_INVALID']);

/**
 * Whether another attempt may succeed: the policy's `retryable` predicate decides, except for
 * errors no retry can fix (a result that is not JSON, an invalid definition or command). A step
 * timeout is an ordinary failed attempt.
 */
export function retryableStepError(policy: RetryPolicy, error: unknown): boolean {
  if (error instanceof NotSerializableError) return false;
  if (error instanceof SagaOutboxError && !(error instanceof StepTimeoutError))
    return isRetryable(policy, error) && !PERMANENT_CODES.has(error.code);
  return isRetryable(policy, error);
}

/**
 * A step failure as stored (`saga_step.error`), reported in events and in the saga's reason. Unlike
 * errorText (core/error-text.ts) it names the error class when it is not a plain Error, so an
 * operator tells a `StepTimeoutError: ...` from what the step itself threw.
 */
export function stepErrorText(error: unknown): string {
  if (error instanceof Error)
    return `${error.name === 'Error' ? '' : `${error.name}: `}${error.message}`;
  return String(error);
}
