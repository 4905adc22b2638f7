/** The ticket of `Authorization: Bearer <ticket>`, or null. */
export function bearerTicket(header: string | undefined): string | null {
  if (header === undefined) return null;
  const match = /^Bearer +(\S+) *$/i.exec(header);
  return match?.[1] ?? null;
}
