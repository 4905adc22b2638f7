import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UBACKUP_VERSION } from '../../src/shared/version.js';

describe('version', () => {
  it('announces the version in package.json', () => {
    const pkg = JSON.parse(readFileSync(resolve(import.meta.dirname, '../../package.json'), 'utf8')) as {
      version: string;
    };
    expect(UBACKUP_VERSION).toBe(pkg.version);
  });
});
