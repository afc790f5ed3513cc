import { describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import { loadConfig } from './config.js';
import { parseDatabaseUrl } from './store/database.js';
import { assertPasswordAcceptable, passwordWeakness } from './crypto/password.js';

describe('X4: configuration', () => {
  it('X4: defaults to port 8080 and an SQLite database under ./data', () => {
    const config = loadConfig({});
    expect(config.port).toBe(8080);
    expect(config.databaseUrl).toBe(`sqlite:${resolve('data/sls.db')}`);
    expect(config.policy).toMatchObject({ lockoutThreshold: 10, challengeTtlMs: 300_000, challengeMaxAttempts: 3 });
  });

  it('X4: SLS_PORT, SLS_DATABASE_URL and flags override the defaults', () => {
    expect(loadConfig({ SLS_PORT: '9000' }).port).toBe(9000);
    expect(loadConfig({ SLS_PORT: '9000' }, { port: 9100 }).port).toBe(9100);
    expect(loadConfig({ SLS_DATABASE_URL: 'postgres://h/db' }).databaseUrl).toBe('postgres://h/db');
  });

  it('X3: bad settings are refused with the setting named', () => {
    expect(() => loadConfig({ SLS_PORT: 'eighty' })).toThrowError(
      expect.objectContaining({ code: 'INVALID_CONFIG', params: expect.objectContaining({ setting: 'SLS_PORT' }) }),
    );
    expect(() => loadConfig({ SLS_COOKIE_SECURE: 'maybe' })).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG' }));
  });

  it('X4: database URLs select SQLite or PostgreSQL', () => {
    expect(parseDatabaseUrl('postgres://u@h:5432/db')).toEqual({ dialect: 'postgres', location: 'postgres://u@h:5432/db' });
    expect(parseDatabaseUrl('postgresql://u@h/db').dialect).toBe('postgres');
    expect(parseDatabaseUrl('sqlite:/tmp/x.db')).toEqual({ dialect: 'sqlite', location: '/tmp/x.db' });
    expect(parseDatabaseUrl('./data/x.db')).toEqual({ dialect: 'sqlite', location: resolve('data/x.db') });
    expect(parseDatabaseUrl(':memory:').location).toBe(':memory:');
    expect(() => parseDatabaseUrl('mysql://h/db')).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG' }));
  });
});

describe('A4: password rules', () => {
  it('A4: at least 8 characters, not common, no composition rules', () => {
    expect(passwordWeakness('short')).toBe('too_short');
    expect(passwordWeakness('12345678')).toBe('common');
    expect(passwordWeakness('Password1')).toBe('common');
    expect(passwordWeakness('x'.repeat(257))).toBe('too_long');
    expect(passwordWeakness('alicealice', 'alicealice')).toBe('contains_username');
    expect(passwordWeakness('all lower case words')).toBeNull();
    expect(passwordWeakness('密碼是一個長句子')).toBeNull();
    expect(() => assertPasswordAcceptable('1234')).toThrowError(expect.objectContaining({ code: 'WEAK_PASSWORD' }));
  });
});
