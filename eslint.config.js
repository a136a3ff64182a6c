// ESLint (flat config) for the extension's TypeScript in src/: typescript-eslint's recommended rules plus
// the naming and equality rules of JupyterLab's extension template; formatting is Prettier's alone
// (eslint-config-prettier turns off the rules it owns). `jlpm lint` runs it, with zero findings expected.
const js = require('@eslint/js');
const prettier = require('eslint-config-prettier');
const globals = require('globals');
const tseslint = require('typescript-eslint');

module.exports = tseslint.config(
  { ignores: ['lib/', 'node_modules/', 'aidevops_ext/', '**/*.d.ts', 'coverage/', 'style/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['src/**/*.{ts,tsx}'],
    languageOptions: {
      parserOptions: { project: './tsconfig.eslint.json', tsconfigRootDir: __dirname },
      globals: { ...globals.browser }
    },
    rules: {
      '@typescript-eslint/naming-convention': [
        'error',
        { selector: 'interface', format: ['PascalCase'], custom: { regex: '^I[A-Z]', match: true } }
      ],
      '@typescript-eslint/no-unused-vars': ['error', { args: 'none', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-floating-promises': 'error',
      curly: ['error', 'all'],
      eqeqeq: ['error', 'smart'],
      'prefer-arrow-callback': 'error'
    }
  },
  {
    // The REST client's interfaces carry the OpenAPI schemas' names (Deployment, MonitorSummary, ...).
    files: ['src/common/api.ts'],
    rules: { '@typescript-eslint/naming-convention': 'off' }
  },
  {
    // The specs run under Node with jest's globals; they type some of Node's modules by hand.
    files: ['src/__tests__/**/*.ts'],
    languageOptions: { globals: { ...globals.jest, ...globals.node } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-require-imports': 'off'
    }
  },
  {
    files: ['*.js'],
    languageOptions: { sourceType: 'commonjs', globals: { ...globals.node } },
    rules: { '@typescript-eslint/no-require-imports': 'off' }
  },
  prettier
);
