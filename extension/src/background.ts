/**
 * The service worker: checks the server's alert summary on an alarm, paints the badge,
 * raises desktop notifications for new alerts and answers the popup's and options page's
 * requests (`refresh`, `seen`).
 */
import { type ApiAlert, getSummary } from './api.js';
import { badgeFor, type WatchStatus } from './badge-state.js';
import { loadTranslator, type Translator, typeLabel } from './i18n.js';
import { type NotificationPlan, newAlerts, nextSince, updateUnseen } from './new-alerts.js';
import { followedAlertsUrl, isConfigured, originPattern, type Settings } from './settings.js';
import {
  FRESH_WATCH,
  loadSettings,
  loadWatch,
  saveWatch,
  type WatchState,
  type WorkerAnswer,
  type WorkerRequest,
} from './storage.js';

const ALARM = 'refresh';
const ICON = 'icons/icon-128.png';
/** Alerts a summary notification lists by name. */
const SUMMARY_ITEMS = 5;

async function ensureAlarm(settings: Settings): Promise<void> {
  const periodInMinutes = settings.intervalSeconds / 60;
  const existing = await chrome.alarms.get(ALARM);
  if (existing?.periodInMinutes === periodInMinutes) return;
  await chrome.alarms.create(ALARM, { periodInMinutes, delayInMinutes: periodInMinutes });
}

async function paint(status: WatchStatus, unseen: number, translator: Translator): Promise<void> {
  const badge = badgeFor(status, unseen, translator.t);
  await Promise.all([
    chrome.action.setBadgeText({ text: badge.text }),
    chrome.action.setBadgeBackgroundColor({ color: badge.color }),
    chrome.action.setBadgeTextColor({ color: [255, 255, 255, 255] }),
    chrome.action.setTitle({ title: badge.title }),
  ]);
}

function notify(
  plan: NotificationPlan,
  settings: Settings,
  { t }: Translator,
  stamp: string,
): Promise<unknown> {
  if (plan.kind === 'none') return Promise.resolve();
  if (plan.kind === 'each') {
    return Promise.all(
      plan.alerts.map((a) =>
        chrome.notifications.create(`alert-${a.id}`, {
          type: 'basic',
          iconUrl: ICON,
          title: t('notifyOneTitle', [typeLabel(t, a.type), a.subject]),
          message: a.summary,
          contextMessage: a.business === '' ? settings.serverUrl : t('notifyBusiness', [a.business]),
          priority: a.severity === 'critical' ? 2 : 1,
        }),
      ),
    );
  }
  const listed = plan.alerts.slice(0, SUMMARY_ITEMS);
  const more = plan.count - listed.length;
  return chrome.notifications.create(`alerts-${stamp}`, {
    type: 'list',
    iconUrl: ICON,
    title: t('notifySummaryTitle', [String(plan.count)]),
    message: '',
    items: listed.map((a: ApiAlert) => ({
      title: typeLabel(t, a.type),
      message: `${a.business} ${a.subject}`.trim(),
    })),
    contextMessage: more > 0 ? t('notifySummaryMore', [String(more)]) : settings.serverUrl,
    priority: 2,
  });
}

async function check(): Promise<WorkerAnswer> {
  const settings = await loadSettings();
  const translator = await loadTranslator(settings.language);
  const watch = await loadWatch();
  const now = new Date().toISOString();
  let next: WatchState;
  let plan: NotificationPlan = { kind: 'none' };
  if (!isConfigured(settings)) {
    next = { ...watch, status: { kind: 'unconfigured' } };
  } else if (!(await chrome.permissions.contains({ origins: [originPattern(settings.serverUrl)] }))) {
    next = { ...watch, status: { kind: 'no_permission', origin: new URL(settings.serverUrl).origin } };
  } else {
    const since = watch.cursor === null ? null : nextSince(watch.cursor, watch.floor);
    const answer = await getSummary(fetch, settings.serverUrl, settings.token, since);
    if (!answer.ok) {
      // Never a stale number: the badge says why there is none.
      next = { ...watch, status: { kind: 'failed', failure: answer.failure, checkedAt: now } };
    } else {
      const summary = answer.value;
      const outcome = newAlerts(summary.newest, since, watch.notified);
      plan = outcome.plan;
      next = {
        cursor: summary.server_time,
        floor: watch.floor ?? summary.server_time,
        notified: outcome.notified,
        unseen: updateUnseen(watch.unseen, outcome.fresh, summary.newest, summary.followed.open),
        status: {
          kind: 'ok',
          open: summary.followed.open,
          acknowledged: summary.followed.acknowledged,
          following: summary.following,
          checkedAt: now,
        },
      };
    }
  }
  await saveWatch(next);
  await paint(next.status, next.unseen.length, translator);
  await notify(plan, settings, translator, next.cursor ?? now).catch(() => undefined);
  return { status: next.status, unseen: next.unseen.length };
}

async function markSeen(): Promise<WorkerAnswer> {
  const [settings, watch] = await Promise.all([loadSettings(), loadWatch()]);
  const next = { ...watch, unseen: [] };
  await saveWatch(next);
  await paint(next.status, 0, await loadTranslator(settings.language));
  return { status: next.status, unseen: 0 };
}

// One piece of work at a time: a check and a "seen" never interleave their reads and writes.
let queue: Promise<unknown> = Promise.resolve();
function serialized<T>(work: () => Promise<T>): Promise<T> {
  const run = queue.then(work, work);
  queue = run.catch(() => undefined);
  return run;
}

const refresh = () => serialized(check);

async function start(): Promise<void> {
  await ensureAlarm(await loadSettings());
  await refresh();
}

chrome.runtime.onInstalled.addListener(() => void start());
chrome.runtime.onStartup.addListener(() => void start());

chrome.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === ALARM) void refresh();
});

chrome.storage.onChanged.addListener((changes, area) => {
  const change = changes.settings;
  if (area !== 'local' || !change) return;
  const before = (change.oldValue ?? {}) as Partial<Settings>;
  const after = (change.newValue ?? {}) as Partial<Settings>;
  void serialized(async () => {
    // Another server or another person: start again from a new baseline.
    if (before.serverUrl !== after.serverUrl || before.token !== after.token) {
      await saveWatch({ ...FRESH_WATCH });
    }
    await ensureAlarm(await loadSettings());
  });
  void refresh();
});

chrome.permissions.onRemoved.addListener(() => void refresh());
chrome.permissions.onAdded.addListener(() => void refresh());

chrome.notifications.onClicked.addListener((id) => {
  void (async () => {
    const settings = await loadSettings();
    if (settings.serverUrl !== '') await chrome.tabs.create({ url: followedAlertsUrl(settings.serverUrl) });
    await chrome.notifications.clear(id);
  })();
});

chrome.runtime.onMessage.addListener((message: WorkerRequest, sender, sendResponse) => {
  if (sender.id !== chrome.runtime.id) return false;
  const work = message.type === 'seen' ? serialized(markSeen) : message.type === 'refresh' ? refresh() : null;
  if (work === null) return false;
  work.then(sendResponse, (error: unknown) => sendResponse({ error: String(error) }));
  return true;
});

// Every time the worker wakes: the alarm exists even if the browser lost it.
void loadSettings().then(ensureAlarm);
