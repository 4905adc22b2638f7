/** The options page: server URL, personal token (checked with GET /api/v1/me), interval, language. */
import { type ApiFailure, describeFailure, getMe, type MeAnswer } from './api.js';
import type { Translate } from './badge-state.js';
import { loadTranslator, localizePage } from './i18n.js';
import {
  type Checked,
  LANGUAGES,
  type Language,
  MAX_INTERVAL_SECONDS,
  MIN_INTERVAL_SECONDS,
  normalizeServerUrl,
  originPattern,
  parseIntervalSeconds,
  type Settings,
  TOKEN_PATTERN,
} from './settings.js';
import { loadSettings, saveSettings } from './storage.js';

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`options.html has no #${id}`);
  return el as T;
}

const form = byId<HTMLFormElement>('form');
const server = byId<HTMLInputElement>('server');
const token = byId<HTMLInputElement>('token');
const interval = byId<HTMLInputElement>('interval');
const language = byId<HTMLSelectElement>('language');
const testButton = byId<HTMLButtonElement>('test');
const saveButton = byId<HTMLButtonElement>('save');
const status = byId<HTMLParagraphElement>('status');

let t: Translate = (key) => key;

async function applyLanguage(lang: Language): Promise<void> {
  const translator = await loadTranslator(lang);
  t = translator.t;
  localizePage(t, translator.locale);
  byId('interval-help').textContent = t('optIntervalHelp', [String(MIN_INTERVAL_SECONDS)]);
}

function show(kind: 'ok' | 'warn' | 'error' | 'busy', text: string): void {
  status.className = `status ${kind}`;
  status.textContent = text;
  status.dataset.kind = kind;
}

function selectedLanguage(): Language {
  return LANGUAGES.find((l) => l === language.value) ?? 'auto';
}

/** The form as settings, or the first problem (already translated). */
function readForm(): Checked<Settings> {
  const url = normalizeServerUrl(server.value);
  if (!url.ok) return { ok: false, problem: t(url.problem) };
  const secret = token.value.trim();
  if (secret === '') return { ok: false, problem: t('errTokenEmpty') };
  if (!TOKEN_PATTERN.test(secret)) return { ok: false, problem: t('errTokenShape') };
  const seconds = parseIntervalSeconds(interval.value);
  if (!seconds.ok) {
    return {
      ok: false,
      problem: t(seconds.problem, [String(MIN_INTERVAL_SECONDS), String(MAX_INTERVAL_SECONDS)]),
    };
  }
  return {
    ok: true,
    value: {
      serverUrl: url.value,
      token: secret,
      intervalSeconds: seconds.value,
      language: selectedLanguage(),
    },
  };
}

function failureText(failure: ApiFailure): string {
  const detail = describeFailure(failure);
  if (failure.kind === 'refused') return t('statusRefused', [detail]);
  if (failure.kind === 'unreachable') return t('statusUnreachable', [detail]);
  return detail;
}

function whoText(me: MeAnswer, key: 'statusSaved' | 'statusTested'): { kind: 'ok' | 'warn'; text: string } {
  if (me.user === null)
    return { kind: 'warn', text: t('statusServiceToken', [me.token.name, me.token.role]) };
  return { kind: 'ok', text: t(key, [me.user.name, me.token.role]) };
}

/**
 * Asks for the server's origin (this must be the first thing the click does: the browser
 * only shows the prompt during a user gesture), then asks the server who the token is.
 */
async function connect(
  settings: Settings,
): Promise<{ ok: true; me: MeAnswer } | { ok: false; text: string }> {
  const pattern = originPattern(settings.serverUrl);
  let granted: boolean;
  try {
    granted = await chrome.permissions.request({ origins: [pattern] });
  } catch (error) {
    return { ok: false, text: String(error) };
  }
  if (!granted) return { ok: false, text: t('statusPermissionDenied', [new URL(settings.serverUrl).origin]) };
  show('busy', t('statusTesting'));
  const me = await getMe(fetch, settings.serverUrl, settings.token);
  return me.ok ? { ok: true, me: me.value } : { ok: false, text: failureText(me.failure) };
}

/** Host permission for the configured server only: gives back every other origin asked for here. */
async function keepOnlyConfiguredOrigin(asked: string[]): Promise<void> {
  const { serverUrl } = await loadSettings();
  const keep = serverUrl === '' ? null : originPattern(serverUrl);
  const others = [...new Set(asked)].filter((pattern) => pattern !== keep);
  // Chromium refuses to remove what the manifest grants outright; nothing to give back then.
  if (others.length > 0) await chrome.permissions.remove({ origins: others }).catch(() => false);
}

async function run(save: boolean): Promise<void> {
  const read = readForm();
  if (!read.ok) {
    show('error', read.problem);
    return;
  }
  testButton.disabled = true;
  saveButton.disabled = true;
  const settings = read.value;
  // connect() asks for the permission before its first await: still inside the click.
  const connecting = connect(settings);
  const previous = await loadSettings();
  try {
    const outcome = await connecting;
    if (!outcome.ok) {
      show('error', t(save ? 'statusFailed' : 'statusTestFailed', [outcome.text]));
      return;
    }
    if (save) {
      await saveSettings(settings);
      server.value = settings.serverUrl;
    }
    const who = whoText(outcome.me, save ? 'statusSaved' : 'statusTested');
    show(who.kind, who.text);
  } finally {
    const asked = [originPattern(settings.serverUrl)];
    if (previous.serverUrl !== '') asked.push(originPattern(previous.serverUrl));
    await keepOnlyConfiguredOrigin(asked);
    testButton.disabled = false;
    saveButton.disabled = false;
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  void run(true);
});
testButton.addEventListener('click', () => void run(false));
language.addEventListener('change', () => void applyLanguage(selectedLanguage()));

async function init(): Promise<void> {
  const settings = await loadSettings();
  server.value = settings.serverUrl;
  token.value = settings.token;
  interval.value = String(settings.intervalSeconds);
  interval.min = String(MIN_INTERVAL_SECONDS);
  interval.max = String(MAX_INTERVAL_SECONDS);
  language.value = settings.language;
  await applyLanguage(settings.language);
  document.body.dataset.ready = 'true';
}

void init();
