import { describe, expect, it } from 'vitest';
import en from '../../extension/_locales/en/messages.json' with { type: 'json' };
import {
  badgeFor,
  COLOR_NEW,
  COLOR_PROBLEM,
  COLOR_SEEN,
  countText,
  statusProblem,
  type WatchStatus,
} from '../../extension/src/badge-state.js';
import { formatMessage, type MessageCatalog } from '../../extension/src/messages.js';

const t = (key: string, subs?: string[]) => formatMessage(en as MessageCatalog, key, subs) || `?${key}`;
const ok = (open: number, acknowledged = 0, following = true): WatchStatus => ({
  kind: 'ok',
  open,
  acknowledged,
  following,
  checkedAt: '2026-05-01T00:00:00.000Z',
});

describe('the extension badge', () => {
  it('shows the followed open count, red while something is unseen, blue once looked at', () => {
    expect(badgeFor(ok(3), 1, t)).toEqual({
      text: '3',
      color: COLOR_NEW,
      title: 'UBackup alerts\n3 open alerts in the businesses you follow\n1 new since you last looked',
    });
    expect(badgeFor(ok(3), 0, t)).toMatchObject({ text: '3', color: COLOR_SEEN });
    expect(badgeFor(ok(3, 2), 0, t).title).toBe(
      'UBackup alerts\n3 open alerts in the businesses you follow\n2 acknowledged',
    );
  });

  it('is empty at zero (never red), and says so when nothing is followed', () => {
    expect(badgeFor(ok(0), 4, t)).toMatchObject({ text: '', color: COLOR_SEEN });
    expect(badgeFor(ok(0), 0, t).title).toContain('no open alerts');
    expect(badgeFor(ok(0, 0, false), 0, t).title).toContain('you follow no business');
  });

  it('fits four characters', () => {
    expect(countText(0)).toBe('');
    expect(countText(7)).toBe('7');
    expect(countText(999)).toBe('999');
    expect(countText(1000)).toBe('999+');
  });

  it('shows a grey ! with the exact reason instead of a number when there is none', () => {
    const refused: WatchStatus = {
      kind: 'failed',
      failure: { kind: 'refused', status: 401, code: 'unauthenticated', message: 'the token is not valid' },
      checkedAt: '2026-05-01T00:00:00.000Z',
    };
    expect(badgeFor(refused, 3, t)).toEqual({
      text: '!',
      color: COLOR_PROBLEM,
      title: 'UBackup alerts: the server refused the token (401 unauthenticated: the token is not valid)',
    });
    const down: WatchStatus = {
      kind: 'failed',
      failure: { kind: 'unreachable', detail: 'TypeError: Failed to fetch' },
      checkedAt: '2026-05-01T00:00:00.000Z',
    };
    expect(badgeFor(down, 0, t)).toEqual({
      text: '!',
      color: COLOR_PROBLEM,
      title: 'UBackup alerts: the server cannot be reached (TypeError: Failed to fetch)',
    });
    const broken: WatchStatus = {
      kind: 'failed',
      failure: { kind: 'http', status: 502, code: 'http_502', message: 'Bad Gateway' },
      checkedAt: '2026-05-01T00:00:00.000Z',
    };
    expect(badgeFor(broken, 0, t).title).toBe(
      'UBackup alerts: the server cannot be reached (502 http_502: Bad Gateway)',
    );
    expect(badgeFor({ kind: 'unconfigured' }, 0, t)).toMatchObject({ text: '!', color: COLOR_PROBLEM });
    expect(badgeFor({ kind: 'no_permission', origin: 'https://b.example' }, 0, t).title).toContain(
      'no permission to reach https://b.example',
    );
    expect(statusProblem(ok(1), t)).toBeNull();
  });
});
