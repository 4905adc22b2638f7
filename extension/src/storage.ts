/** What the extension keeps in chrome.storage.local. */
import type { WatchStatus } from './badge-state.js';
import { readSettings, type Settings } from './settings.js';

export interface WatchState {
  /** The last summary's `server_time`; null until the first answer (the baseline). */
  cursor: string | null;
  /** The first answer's `server_time`: alerts opened before it are the baseline, never notified. */
  floor: string | null;
  /** Alerts already notified, newest last. */
  notified: number[];
  /** Alerts new since the user last opened the popup. */
  unseen: number[];
  status: WatchStatus;
}

export const FRESH_WATCH: WatchState = {
  cursor: null,
  floor: null,
  notified: [],
  unseen: [],
  status: { kind: 'unconfigured' },
};

export async function loadSettings(): Promise<Settings> {
  const { settings } = await chrome.storage.local.get('settings');
  return readSettings(settings);
}

export async function saveSettings(settings: Settings): Promise<void> {
  await chrome.storage.local.set({ settings });
}

export async function loadWatch(): Promise<WatchState> {
  const { watch } = await chrome.storage.local.get('watch');
  if (typeof watch !== 'object' || watch === null) return { ...FRESH_WATCH };
  return { ...FRESH_WATCH, ...(watch as Partial<WatchState>) };
}

export async function saveWatch(watch: WatchState): Promise<void> {
  await chrome.storage.local.set({ watch });
}

/** Messages the popup and the options page send to the service worker. */
export type WorkerRequest = { type: 'refresh' } | { type: 'seen' };

/** The worker's answer: the state after the request. */
export interface WorkerAnswer {
  status: WatchStatus;
  unseen: number;
}
