/**
 * Validation of names that become path components on some host: file names
 * reported by agents, instance names, types, server ids. A component never
 * contains `/`, `\`, NUL or control characters, is never `.` or `..`, and is at
 * most 255 bytes in UTF-8 (the limit of ext4 and xfs).
 */
export const MAX_COMPONENT_BYTES = 255;

export type ComponentProblem = 'empty' | 'too_long' | 'separator' | 'nul' | 'control' | 'dot';

export function componentProblem(value: string): ComponentProblem | null {
  if (value.length === 0) return 'empty';
  if (Buffer.byteLength(value, 'utf8') > MAX_COMPONENT_BYTES) return 'too_long';
  if (value.includes('\0')) return 'nul';
  if (value.includes('/') || value.includes('\\')) return 'separator';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we reject
  if (/[\u0001-\u001f\u007f]/.test(value)) return 'control';
  if (value === '.' || value === '..') return 'dot';
  return null;
}

export function describeComponentProblem(problem: ComponentProblem): string {
  switch (problem) {
    case 'empty':
      return 'is empty';
    case 'too_long':
      return `is longer than ${MAX_COMPONENT_BYTES} bytes`;
    case 'separator':
      return 'contains a path separator (/ or \\)';
    case 'nul':
      return 'contains a NUL byte';
    case 'control':
      return 'contains a control character';
    case 'dot':
      return 'is "." or ".."';
  }
}

export function isSafeComponent(value: string): boolean {
  return componentProblem(value) === null;
}
