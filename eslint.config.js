// Lint for the TypeScript sources and tests (npm test runs it): typescript-eslint's strict,
// type-aware rule sets. Type-aware rules catch what tsc lets through: floating promises,
// unsafe `any` flows, needless conditions, template literals of non-strings.
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.cache/', '.venv/', 'data/', 'scratch/', '**/*.js', '**/*.mjs'] },
  eslint.configs.recommended,
  tseslint.configs.strictTypeChecked,
  tseslint.configs.stylisticTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // tsconfig has noUncheckedIndexedAccess, so every `bytes[i]` in the crypto and packing loops is
      // `T | undefined`; those loops index inside bounds they have just checked, and `!` says so at no cost.
      // Replacing each with a runtime check would slow the hot paths the benchmarks measure.
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Numbers and booleans print unambiguously in messages; objects and unknowns still may not.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      // `const { secret: _unused, ...rest } = record` is how a field is left out of a copy.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true, varsIgnorePattern: '^_', argsIgnorePattern: '^_' }],
    },
  },
);
