import { z } from 'zod';
import { isTimeZone } from '../../shared/time-zone.js';

/** An IANA time zone given to the API (`UTC`, `Asia/Shanghai`); offsets such as `+08:00` are refused. */
export const timeZoneInput = z
  .string()
  .refine(isTimeZone, { error: 'must be an IANA time zone such as UTC or Asia/Shanghai' });
