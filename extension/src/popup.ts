/** The popup: the newest followed alerts, links to the dashboard, acknowledge for operators and admins. */
import {
  type ApiAlert,
  acknowledge,
  canAcknowledge,
  describeFailure,
  getFollowedAlerts,
  getMe,
} from './api.js';
import { statusProblem, type WatchStatus } from './badge-state.js';
import { formatAge } from './format.js';
import { loadTranslator, localizePage, type Translator, typeLabel } from './i18n.js';
import { alertUrl, followedAlertsUrl, isConfigured, type Settings } from './settings.js';
import { loadSettings, type WorkerAnswer, type WorkerRequest } from './storage.js';

/** How many alerts the popup lists. */
const LISTED = 20;

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`popup.html has no #${id}`);
  return el as T;
}

const counts = byId<HTMLParagraphElement>('counts');
const problem = byId<HTMLParagraphElement>('problem');
const empty = byId<HTMLParagraphElement>('empty');
const list = byId<HTMLUListElement>('alerts');
const dashboardSlot = byId<HTMLSpanElement>('dashboard-slot');
const template = byId<HTMLTemplateElement>('alert-item');

function ask(request: WorkerRequest): Promise<WorkerAnswer> {
  return chrome.runtime.sendMessage<WorkerRequest, WorkerAnswer>(request);
}

/** A link the browser opens in a new tab (a popup closes when it navigates). */
function newTabLink(href: string, text: string): HTMLAnchorElement {
  const a = document.createElement('a');
  a.href = href;
  a.target = '_blank';
  a.rel = 'noopener';
  a.textContent = text;
  return a;
}

function showProblem(text: string | null): void {
  problem.hidden = text === null;
  problem.textContent = text ?? '';
}

/** Whether the user follows any business, as the last check found. */
let following = true;

function showStatus(status: WatchStatus, { t }: Translator): void {
  if (status.kind === 'ok') following = status.following;
  if (status.kind === 'ok') {
    counts.textContent = t('popupCounts', [String(status.open), String(status.acknowledged)]);
    showProblem(null);
  } else {
    counts.textContent = '';
    // The badge's tooltip says exactly what is wrong; the popup shows the same text.
    showProblem(statusProblem(status, t));
  }
}

function one<T extends Element>(root: ParentNode, selector: string): T {
  const el = root.querySelector<T>(selector);
  if (!el) throw new Error(`the alert template has no ${selector}`);
  return el;
}

function renderAlert(
  alert: ApiAlert,
  settings: Settings,
  translator: Translator,
  mayAcknowledge: boolean,
  reload: () => Promise<void>,
): HTMLLIElement {
  const { t, locale } = translator;
  const fragment = template.content.cloneNode(true) as DocumentFragment;
  const item = one<HTMLLIElement>(fragment, 'li');
  item.dataset.id = String(alert.id);
  item.dataset.state = alert.state;
  item.classList.add(alert.severity, alert.state);
  one<HTMLElement>(item, '.severity').title = alert.severity;
  const link = newTabLink(alertUrl(settings.serverUrl, alert.id), typeLabel(t, alert.type));
  link.className = 'type';
  one<HTMLElement>(item, '.type-slot').replaceWith(link);
  const age = one<HTMLElement>(item, '.age');
  age.textContent = formatAge(alert.opened_at, Date.now(), locale);
  age.title = new Date(alert.opened_at).toLocaleString(locale);
  one<HTMLElement>(item, '.business').textContent =
    alert.business === '' ? t('popupNoBusiness') : alert.business;
  one<HTMLElement>(item, '.subject').textContent = alert.subject;
  one<HTMLElement>(item, '.summary').textContent = alert.summary;
  const acked = one<HTMLElement>(item, '.acked');
  acked.textContent =
    alert.state === 'acknowledged' ? t('popupAcknowledgedBy', [alert.acknowledged_by ?? '?']) : '';

  const button = one<HTMLButtonElement>(item, '.ack');
  const form = one<HTMLFormElement>(item, '.ack-form');
  const comment = one<HTMLInputElement>(item, '.comment');
  const ok = one<HTMLButtonElement>(item, '.ack-ok');
  const cancel = one<HTMLButtonElement>(item, '.ack-cancel');
  const error = one<HTMLElement>(item, '.ack-error');
  button.textContent = t('popupAck');
  ok.textContent = t('popupAckConfirm');
  cancel.textContent = t('popupAckCancel');
  button.hidden = !(mayAcknowledge && alert.state === 'open');
  button.addEventListener('click', () => {
    button.hidden = true;
    form.hidden = false;
    comment.value = t('popupAckDefault');
    comment.select();
  });
  cancel.addEventListener('click', () => {
    form.hidden = true;
    button.hidden = false;
    error.textContent = '';
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    ok.disabled = true;
    void (async () => {
      const answer = await acknowledge(
        fetch,
        settings.serverUrl,
        settings.token,
        alert.id,
        comment.value.trim(),
      );
      ok.disabled = false;
      if (!answer.ok) {
        error.textContent = t('popupAckFailed', [describeFailure(answer.failure)]);
        return;
      }
      showStatus((await ask({ type: 'refresh' })).status, translator);
      await reload();
    })();
  });
  return item;
}

async function loadList(settings: Settings, translator: Translator): Promise<void> {
  const { t } = translator;
  const [me, page] = await Promise.all([
    getMe(fetch, settings.serverUrl, settings.token),
    getFollowedAlerts(fetch, settings.serverUrl, settings.token, LISTED),
  ]);
  if (!page.ok) {
    list.replaceChildren();
    empty.hidden = true;
    showProblem(describeFailure(page.failure));
    document.body.dataset.ready = 'true';
    return;
  }
  const mayAcknowledge = me.ok && canAcknowledge(me.value);
  const reload = () => loadList(settings, translator);
  list.replaceChildren(
    ...page.value.items.map((a) => renderAlert(a, settings, translator, mayAcknowledge, reload)),
  );
  empty.hidden = page.value.items.length > 0;
  empty.textContent = following ? t('popupNoAlerts') : t('popupNotFollowing');
  document.body.dataset.ready = 'true';
}

async function init(): Promise<void> {
  const settings = await loadSettings();
  const translator = await loadTranslator(settings.language);
  localizePage(translator.t, translator.locale);
  byId('options').addEventListener('click', () => void chrome.runtime.openOptionsPage());
  if (!isConfigured(settings)) {
    byId('refresh').hidden = true;
    empty.hidden = false;
    empty.textContent = translator.t('popupUnconfigured');
    document.body.dataset.ready = 'true';
    return;
  }
  const dashboard = newTabLink(followedAlertsUrl(settings.serverUrl), translator.t('popupOpenDashboard'));
  dashboard.id = 'dashboard';
  dashboardSlot.replaceWith(dashboard);
  byId('refresh').addEventListener('click', () => {
    void (async () => {
      showStatus((await ask({ type: 'refresh' })).status, translator);
      await loadList(settings, translator);
    })();
  });
  // Opening the popup is looking: the badge turns from red to blue.
  const seen = await ask({ type: 'seen' });
  showStatus(seen.status, translator);
  await loadList(settings, translator);
  if (seen.status.kind !== 'ok') showStatus(seen.status, translator);
  void ask({ type: 'refresh' }).then((answer) => showStatus(answer.status, translator));
}

void init();
