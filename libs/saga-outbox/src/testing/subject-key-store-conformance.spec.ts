/** The subject key store conformance suite on the in-memory store (tests, embedded demo). */
import { InMemorySubjectKeyStore } from './in-memory-subject-key-store';
import { subjectKeyStoreConformance } from './subject-key-store-conformance';

subjectKeyStoreConformance('in memory', () =>
  Promise.resolve({ store: new InMemorySubjectKeyStore() }),
);
