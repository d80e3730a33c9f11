/**
 * What the suites of every package share: real Postgres targets (the embedded Postgres 18, the
 * machine's PostgreSQL 15), a migrated and seeded test database, walsync servers in this process
 * or as their own processes, headless Chromium, and the fixture the client tests run against.
 */
export * from './browser';
export * from './database';
export * from './postgres';
export * from './random';
export * from './servers';
export * from './sync-fixture';
