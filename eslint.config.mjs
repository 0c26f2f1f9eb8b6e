// Lint rules the team agreed on (CONVENTIONS.md "TypeScript"), plus the architecture's
// dependency rule (DESIGN.md §2): core/ imports nothing but itself (ports are inside it).
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'libs/saga-outbox/dist/**',
      'node_modules/**',
      'coverage/**',
      '**/*.js',
      '**/*.mjs',
      '**/*.cjs',
      // A user's app with its own tsconfig and node_modules: the consumer test installs them and
      // compiles it with strict, and the root type-check compiles it against the sources.
      'test/consumer-app/**',
    ],
  },
  eslint.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  prettier,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'no-console': 'error',
    },
  },
  {
    files: ['libs/saga-outbox/src/core/**/*.ts'],
    // Unit tests may drive the engine on testing/'s in-memory doubles; the rule is about production code.
    ignores: ['libs/saga-outbox/src/core/**/*.spec.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                '@nestjs/*',
                'typeorm',
                'typeorm/*',
                'pg',
                'kafkajs',
                'amqp-connection-manager',
                'amqplib',
                'nats',
                '@nats-io/*',
                'prom-client',
                '@electric-sql/*',
              ],
              message: 'core/ is framework-free: talk to the world through core/ports.',
            },
            {
              group: ['**/persistence/**', '**/brokers/**', '**/nest/**', '**/testing/**'],
              message: 'core/ must not depend on adapters or the Nest layer.',
            },
          ],
        },
      ],
    },
  },
  {
    files: [
      '**/*.spec.ts',
      '**/*.int-spec.ts',
      '**/*.e2e-spec.ts',
      'test/**/*.ts',
      'benchmarks/**/*.ts',
      'scripts/**/*.ts',
      'apps/*/src/demo/**/*.ts',
    ],
    rules: {
      'no-console': 'off',
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
);
