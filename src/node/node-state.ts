import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../agent/agent-state.js';

/** What a storage node keeps in its state_dir: the credential it enrolled with. */
const NodeStateSchema = z.object({
  node_id: z.number().int(),
  name: z.string(),
  cluster: z.string(),
  credential: z.string(),
  server_url: z.string(),
  enrolled_at: z.string(),
});
export type NodeState = z.infer<typeof NodeStateSchema>;

export const NODE_STATE_FILE = 'node-state.json';

export async function readNodeState(stateDir: string): Promise<NodeState | null> {
  let text: string;
  try {
    text = await readFile(join(stateDir, NODE_STATE_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const parsed = NodeStateSchema.safeParse(JSON.parse(text));
  if (!parsed.success)
    throw new Error(`${join(stateDir, NODE_STATE_FILE)} is not a node state file: ${parsed.error.message}`);
  return parsed.data;
}

export async function writeNodeState(stateDir: string, state: NodeState): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(join(stateDir, NODE_STATE_FILE), `${JSON.stringify(state, null, 2)}\n`, 0o600);
}
