/**
 * What the toolbar badge shows: the number of open alerts in the followed businesses, red
 * when one is new since the user last looked, blue otherwise, and a grey `!` with the reason
 * in the tooltip when there is no trustworthy number. Free of `chrome`: unit-tested.
 */
import { type ApiFailure, describeFailure } from './api.js';

export type Rgba = [number, number, number, number];

/** Something is new since the user last looked. */
export const COLOR_NEW: Rgba = [217, 48, 37, 255];
/** Open alerts the user has already seen. */
export const COLOR_SEEN: Rgba = [25, 103, 210, 255];
/** No number: unreachable, refused, not set up. */
export const COLOR_PROBLEM: Rgba = [128, 134, 139, 255];

/** What the last check found (kept in chrome.storage.local for the popup). */
export type WatchStatus =
  | { kind: 'unconfigured' }
  | { kind: 'no_permission'; origin: string }
  | { kind: 'ok'; open: number; acknowledged: number; following: boolean; checkedAt: string }
  | { kind: 'failed'; failure: ApiFailure; checkedAt: string };

export interface Badge {
  text: string;
  color: Rgba;
  title: string;
}

/** Looks a message up by key, with `$1`… substitutions. */
export type Translate = (key: string, substitutions?: string[]) => string;

/** A badge has room for four characters. */
export function countText(n: number): string {
  return n <= 0 ? '' : n > 999 ? '999+' : String(n);
}

/** Why there is no number to show, or null when the last check succeeded. */
export function statusProblem(status: WatchStatus, t: Translate): string | null {
  switch (status.kind) {
    case 'unconfigured':
      return t('badgeUnconfigured');
    case 'no_permission':
      return t('badgeNoPermission', [status.origin]);
    case 'failed':
      return t(status.failure.kind === 'refused' ? 'badgeRefused' : 'badgeUnreachable', [
        describeFailure(status.failure),
      ]);
    case 'ok':
      return null;
  }
}

export function badgeFor(status: WatchStatus, unseen: number, t: Translate): Badge {
  const name = t('extName');
  if (status.kind !== 'ok') {
    return { text: '!', color: COLOR_PROBLEM, title: `${name}: ${statusProblem(status, t) ?? ''}` };
  }
  const lines = [
    status.following
      ? status.open === 0
        ? t('badgeNoneOpen')
        : t('badgeOpen', [String(status.open)])
      : t('badgeNotFollowing'),
  ];
  if (status.open > 0 && unseen > 0) lines.push(t('badgeNew', [String(unseen)]));
  if (status.acknowledged > 0) lines.push(t('badgeAcknowledged', [String(status.acknowledged)]));
  return {
    text: countText(status.open),
    color: status.open > 0 && unseen > 0 ? COLOR_NEW : COLOR_SEEN,
    title: `${name}\n${lines.join('\n')}`,
  };
}
