import { z } from 'zod';
import { instanceNameSchema, isoTimeSchema, serverIdSchema, typeNameSchema } from './report.js';

/**
 * `POST /api/v1/runs`: the agent says a scheduled run started, so the server
 * can tell a run that hangs (the `stuck` alert) from one that is just long.
 * The run's report ends it.
 */
export const RunStartSchema = z.strictObject({
  server_id: serverIdSchema,
  type: typeNameSchema,
  instance: instanceNameSchema,
  started_at: isoTimeSchema,
  /** The script's timeout; the run is stuck after this plus the instance's grace. */
  timeout_seconds: z
    .number()
    .int()
    .positive()
    .max(30 * 86_400),
});
export type RunStart = z.infer<typeof RunStartSchema>;

export const RunStartReceiptSchema = z.object({
  /** False for an instance without a registry entry: nothing is tracked for it. */
  registered: z.boolean(),
  deadline_at: z.string().nullable(),
});
