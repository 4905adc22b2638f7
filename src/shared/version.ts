/** The version agents and nodes announce to the server. Kept in step with package.json by a test. */
export const UBACKUP_VERSION = '0.1.0';
