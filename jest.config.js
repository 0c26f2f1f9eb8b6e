// Three tiers, selected by file suffix (CONVENTIONS.md "Tests"):
//   unit  *.spec.ts      in-memory ports, no servers
//   int   *.int-spec.ts  real PostgreSQL (scripts/services.sh)
//   e2e   *.e2e-spec.ts  sample apps end to end, chaos under test/chaos
const base = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  rootDir: __dirname,
  moduleNameMapper: {
    '^@sage/saga-outbox$': '<rootDir>/libs/saga-outbox/src/index.ts',
    '^@sage/saga-outbox/(.*)$': '<rootDir>/libs/saga-outbox/src/$1',
  },
  transform: { '^.+\\.ts$': 'ts-jest' },
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
};
module.exports = {
  // Global only (jest ignores it per project): generous for int/e2e; unit tests finish in ms anyway.
  testTimeout: 60000,
  projects: [
    { ...base, displayName: 'unit', testMatch: ['<rootDir>/**/*.spec.ts'] },
    { ...base, displayName: 'int', testMatch: ['<rootDir>/**/*.int-spec.ts'] },
    { ...base, displayName: 'e2e', testMatch: ['<rootDir>/**/*.e2e-spec.ts'] },
  ],
};
