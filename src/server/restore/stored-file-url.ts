/**
 * Where a storage node serves one stored file for restores:
 * `http://<address>/v1/stored/<backup_id>`. The node announces `address` as
 * `host:port`; an address that already names its scheme (`https://…`) is used
 * as it is. No address announced yet: null (the restore cannot download it).
 */
export function storedFileUrl(address: string | null, backupId: number): string | null {
  const trimmed = address?.trim() ?? '';
  if (trimmed === '') return null;
  const origin = /^https?:\/\//i.test(trimmed) ? trimmed.replace(/\/+$/, '') : `http://${trimmed}`;
  return `${origin}/v1/stored/${backupId}`;
}
