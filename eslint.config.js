// Type-aware lint. The rule that matters most: workflow code stays deterministic, so it may
// not import Node built-ins, I/O libraries, or activity implementations (types only).
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  { ignores: ['node_modules/', '.tools/', '.stack/', 'dist/'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'Workflow code must be deterministic: no Node built-ins.' })),
          patterns: [
            {
              group: ['**/activities/**', '**/activities'],
              allowTypeImports: true,
              message: 'Import activities with `import type` and call them through proxyActivities.',
            },
            {
              group: ['@kubernetes/*', '@azure/*', '@temporalio/client', '@temporalio/worker', '@temporalio/activity'],
              message: 'Workflow code must not touch external systems; do it in an activity.',
            },
          ],
        },
      ],
    },
  },
);
