/**
 * THE definition of the outbox message lifecycle. Every status change the code makes is one of
 * these transitions; the SQL takes its `from` statuses from here (outbox-queries.sql.ts), and the
 * Mermaid diagram in docs/outbox.md is generated from here (a unit test keeps them equal).
 *
 * Fencing: every transition out of `claimed` is conditional on the claim token the claim wrote, so a
 * relay whose lease ran out (and whose rows were released and claimed again) changes nothing.
 */
export type OutboxStatus = 'pending' | 'claimed' | 'sent' | 'dead_letter';

export const OUTBOX_STATUSES: readonly OutboxStatus[] = [
  'pending',
  'claimed',
  'sent',
  'dead_letter',
];

export interface OutboxTransition {
  readonly from: readonly OutboxStatus[];
  readonly to: OutboxStatus;
  /** Conditional on the caller's claim token (fencing). */
  readonly fenced: boolean;
  readonly label: string;
}

export const OUTBOX_TRANSITIONS = {
  /** Relay (or optimistic sender) takes an eligible row: due, head of its key (per-key commit order). */
  claim: {
    from: ['pending'],
    to: 'claimed',
    fenced: false,
    label: 'claim (SKIP LOCKED, due, head of key)',
  },
  /** The broker acknowledged the message. */
  markSent: { from: ['claimed'], to: 'sent', fenced: true, label: 'broker ack (token matches)' },
  /** Publish failed and attempts remain: back off (next_attempt_at), attempts + 1. */
  retry: {
    from: ['claimed'],
    to: 'pending',
    fenced: true,
    label: 'publish failed, attempts left (backoff)',
  },
  /** Publish failed for the last allowed time, or with a non-retryable error. */
  deadLetter: {
    from: ['claimed'],
    to: 'dead_letter',
    fenced: true,
    label: 'max attempts / non-retryable',
  },
  /**
   * Hands a claim back untouched (attempts unchanged, due now): relay shutdown (claims it never
   * started publishing), or an optimistic publish that failed or timed out (the relay takes over).
   */
  release: {
    from: ['claimed'],
    to: 'pending',
    fenced: true,
    label: 'released: relay shutdown, or optimistic send failed / timed out',
  },
  /** The reaper frees rows whose relay died or stalled (lease over on the database clock). */
  reap: { from: ['claimed'], to: 'pending', fenced: false, label: 'lease expired (reaper)' },
  /**
   * The WAL-streaming relay's broker ack: its rows reach it through logical decoding, not claimed;
   * the write is fenced on the replication slot's holder instead of a claim token. `claimed` too:
   * a row its catch-up (the claim path, run when it becomes the streamer) claimed and could not
   * record before the database went away is streamed again, and finished here (the stale claim's
   * own mark is then refused by its token).
   */
  walMarkSent: {
    from: ['pending', 'claimed'],
    to: 'sent',
    fenced: true,
    label: 'WAL relay: broker ack',
  },
  /** The WAL-streaming relay gives up on a message (non-retryable, or out of attempts). */
  walDeadLetter: {
    from: ['pending', 'claimed'],
    to: 'dead_letter',
    fenced: true,
    label: 'WAL relay: max attempts / non-retryable',
  },
  /** An operator replays a dead letter: attempts start again. */
  replay: { from: ['dead_letter'], to: 'pending', fenced: false, label: 'operator replay' },
} as const satisfies Record<string, OutboxTransition>;

export type OutboxTransitionName = keyof typeof OUTBOX_TRANSITIONS;

/** True when `name` may move a row that is currently `from`. */
export function canTransition(name: OutboxTransitionName, from: OutboxStatus): boolean {
  return (OUTBOX_TRANSITIONS[name].from as readonly OutboxStatus[]).includes(from);
}

/**
 * A Mermaid state diagram of OUTBOX_TRANSITIONS. Terminal: `sent` (deleted by retention) and
 * `dead_letter` until replayed or discarded.
 */
export function outboxStateDiagram(): string {
  const lines = [
    'stateDiagram-v2',
    '    [*] --> pending: publish() in the business transaction',
    '    [*] --> claimed: publish() with optimistic sending, head of its key (claimed at write)',
  ];
  for (const t of Object.values(OUTBOX_TRANSITIONS) as OutboxTransition[]) {
    for (const from of t.from) lines.push(`    ${from} --> ${t.to}: ${t.label}`);
  }
  lines.push('    sent --> [*]: retention deletes');
  lines.push('    dead_letter --> [*]: operator discard');
  return lines.join('\n');
}
