import { UBACKUP_VERSION } from '../../shared/version.js';

/** One HTTP POST as a channel's vendor expects it (pure: built from the message and a clock value). */
export interface HttpPayload {
  url: string;
  headers: Record<string, string>;
  /** The exact bytes to send (signatures are computed over this string). */
  body: string;
}

/** Headers every JSON POST carries. */
export function jsonHeaders(): Record<string, string> {
  return { 'content-type': 'application/json; charset=utf-8', 'user-agent': `ubackup/${UBACKUP_VERSION}` };
}
