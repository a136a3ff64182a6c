// Unit tests of the API client, the model and the DOM components (run by tests/lab/test_frontend_unit.py too).
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  testRegex: 'src/__tests__/.*\\.spec\\.ts$',
  transform: {
    // .tsx: the Deploy panel's React view (specs stay .ts and build elements with React.createElement).
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: { module: 'commonjs', target: 'ES2018', esModuleInterop: true, strict: true, jsx: 'react', types: ['jest'], lib: ['DOM', 'ES2018'] }, diagnostics: true }]
  }
};
