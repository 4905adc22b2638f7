import { messageText, type NotifyMessage, taggedTitle } from './notify-message.js';

/** The e-mail for a message: the tagged title as subject, the plain text as body. */

export interface EmailMessage {
  subject: string;
  text: string;
}

/** Longest subject line, in characters; mail clients cut earlier anyway. */
export const EMAIL_SUBJECT_MAX_CHARS = 200;

export function emailMessage(message: NotifyMessage): EmailMessage {
  const title = taggedTitle(message);
  const subject =
    title.length <= EMAIL_SUBJECT_MAX_CHARS ? title : `${title.slice(0, EMAIL_SUBJECT_MAX_CHARS - 1)}…`;
  return { subject, text: `${messageText(message)}\n` };
}
