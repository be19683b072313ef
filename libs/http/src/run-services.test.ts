import { Module } from '@nestjs/common';
import { describe, expect, it } from 'vitest';
import { mergeMigrations, type ServiceDefinition } from './run-services.js';

@Module({})
class EmptyModule {}

const service = (name: string, migrations: ServiceDefinition['migrations']): ServiceDefinition => ({
  name,
  module: EmptyModule,
  listener: 'none',
  defaultHealthPort: 1,
  migrations,
});

describe('mergeMigrations', () => {
  it('applies a list shared by several services of one process once, keeping order', () => {
    const shared = [
      { id: 'event_log_0001', sql: 'CREATE TABLE a (x INT);' },
      { id: 'event_log_0002', sql: 'CREATE TABLE b (x INT);' },
    ];
    const merged = mergeMigrations([
      service('persistence', shared),
      service('room-server', [...shared, { id: 'federation_0001', sql: 'CREATE TABLE c (x INT);' }]),
    ]);
    expect(merged.map((m) => m.id)).toEqual(['event_log_0001', 'event_log_0002', 'federation_0001']);
  });

  it('keeps two different migrations under one id, for migrate() to refuse', () => {
    const merged = mergeMigrations([
      service('a', [{ id: 'x_0001', sql: 'CREATE TABLE a (x INT);' }]),
      service('b', [{ id: 'x_0001', sql: 'CREATE TABLE b (x INT);' }]),
    ]);
    expect(merged).toHaveLength(2);
  });
});
