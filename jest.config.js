// Tests are compiled with the rest (make build) and run as native ES modules.
export default {
  testMatch: ['<rootDir>/dist/test/**/*.test.js'],
  testEnvironment: 'node',
  testTimeout: 180_000,
  maxWorkers: 1,
  verbose: true,
};
