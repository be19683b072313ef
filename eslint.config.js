// Lint: TypeScript rules plus Nx module boundaries, which keep DESIGN's rules of the house:
// libs/protocol imports nothing of the project, libs never import apps or services,
// services talk to each other only over the bus, apps are never imported. spec-data (where the
// spec's reference data lives, for tests and tools) may be read by all.
import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';

export default [
  { ignores: ['node_modules/**', 'dist/**', 'data/**', '.nx/**', '**/*.js', '**/*.cjs', '**/*.mjs'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { '@nx': nx },
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false,
          allow: [],
          depConstraints: [
            { sourceTag: 'scope:protocol', onlyDependOnLibsWithTags: ['scope:protocol', 'scope:spec-data'] },
            { sourceTag: 'scope:spec-data', onlyDependOnLibsWithTags: [] },
            { sourceTag: 'scope:lib', onlyDependOnLibsWithTags: ['scope:protocol', 'scope:lib', 'scope:spec-data'] },
            { sourceTag: 'scope:service', onlyDependOnLibsWithTags: ['scope:protocol', 'scope:lib', 'scope:spec-data'] },
            { sourceTag: 'scope:app', onlyDependOnLibsWithTags: ['scope:protocol', 'scope:lib', 'scope:service', 'scope:spec-data'] },
          ],
        },
      ],
    },
  },
];
