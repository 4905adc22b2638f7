/**
 * The subject of an instance's alerts: `server_id/type/instance`. The three
 * parts are validated path components (no `/`, never empty), so the subject
 * splits back into exactly the parts it was made of.
 */

export interface InstanceSubjectParts {
  serverId: string;
  type: string;
  instance: string;
}

/** `server_id/type/instance`. Throws RangeError for an empty part or one containing `/`. */
export function instanceSubject(serverId: string, type: string, instance: string): string {
  for (const [name, value] of [
    ['server_id', serverId],
    ['type', type],
    ['instance', instance],
  ] as const) {
    if (value.length === 0 || value.includes('/')) {
      throw new RangeError(
        `${name} "${value}" cannot be part of an alert subject: it is empty or contains "/"`,
      );
    }
  }
  return `${serverId}/${type}/${instance}`;
}

/** The parts of an instance subject, or null for a subject that is not one (a node's or a cluster's name). */
export function parseInstanceSubject(subject: string): InstanceSubjectParts | null {
  const parts = subject.split('/');
  if (parts.length !== 3) return null;
  const [serverId = '', type = '', instance = ''] = parts;
  if (serverId === '' || type === '' || instance === '') return null;
  return { serverId, type, instance };
}
