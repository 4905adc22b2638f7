import type { AlertNotice } from '../alerts/alert-kind.js';
import type { ChannelFilter } from './channel-config.js';
import { channelWants } from './channel-filter.js';
import { digestMessage } from './digest-message.js';
import { noticeMessage } from './notice-message.js';
import { type MessageItem, type MessageOptions, type NotifyMessage, noticeEvent } from './notify-message.js';

/**
 * What each channel is sent in one dispatch round (pure). Per channel:
 *
 * 1. Its items: every batch notice it wants (`opened`, or `resolved` when the
 *    notice carries `resolvedAt`), in batch order; then its due reminders
 *    that it still wants, that are still `open` (not acknowledged or
 *    resolved), and whose alert is not already in its batch items (the newer
 *    news wins), each alert once.
 * 2. Up to `digestThreshold` items: one message per item. More: ONE digest.
 *
 * Invariants (property-tested): each item of a channel is in exactly one of
 * that channel's messages; a channel gets at most max(digestThreshold, 1)
 * messages per round, and none when it has no items.
 */

/** More items than this for one channel in one round are sent as one digest. */
export const DIGEST_THRESHOLD = 5;

export interface DispatchChannel {
  id: number;
  filter: ChannelFilter;
}

export interface DispatchInput<C extends DispatchChannel> {
  channels: readonly C[];
  /** Alerts opened or resolved since the last round. */
  notices: readonly AlertNotice[];
  /** Per channel id: its open alerts whose repeat reminder is due (the caller applies `repeatSeconds`). */
  reminders?: ReadonlyMap<number, readonly AlertNotice[]>;
}

export interface DispatchOptions extends MessageOptions {
  /** Default DIGEST_THRESHOLD. */
  digestThreshold?: number;
}

export interface PlannedMessage<C extends DispatchChannel> {
  channel: C;
  message: NotifyMessage;
}

/** Step 1 above: what one channel is to be told this round. */
export function channelItems(
  filter: ChannelFilter,
  notices: readonly AlertNotice[],
  reminders: readonly AlertNotice[],
): MessageItem[] {
  const items: MessageItem[] = [];
  const covered = new Set<number>();
  for (const notice of notices) {
    if (!channelWants(filter, notice)) continue;
    items.push({ event: noticeEvent(notice), notice });
    covered.add(notice.id);
  }
  for (const notice of reminders) {
    if (notice.state !== 'open' || notice.resolvedAt !== null) continue;
    if (covered.has(notice.id) || !channelWants(filter, notice)) continue;
    items.push({ event: 'reminder', notice });
    covered.add(notice.id);
  }
  return items;
}

/** Step 2 above: single messages, or one digest past the threshold. */
export function messagesFor(items: readonly MessageItem[], options: DispatchOptions): NotifyMessage[] {
  if (items.length === 0) return [];
  const threshold = options.digestThreshold ?? DIGEST_THRESHOLD;
  if (items.length > threshold) return [digestMessage(items, options)];
  return items.map((item) => noticeMessage(item, options));
}

/** The messages of one round, channel by channel in the order given. */
export function planDispatch<C extends DispatchChannel>(
  input: DispatchInput<C>,
  options: DispatchOptions,
): PlannedMessage<C>[] {
  const planned: PlannedMessage<C>[] = [];
  for (const channel of input.channels) {
    const items = channelItems(channel.filter, input.notices, input.reminders?.get(channel.id) ?? []);
    for (const message of messagesFor(items, options)) planned.push({ channel, message });
  }
  return planned;
}
