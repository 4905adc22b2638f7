/**
 * A reader for the INI text of legacy UBackup configs (`/etc/uuzuback.conf`).
 *
 * Written by hand rather than with the `ini` package: `ini.decode` splits on
 * /[\r\n]+/ (line numbers are lost), treats `[section]   #comment` as a key,
 * cuts values at ANY `;` or `#` (so `a#b` becomes `a`) and unescapes `\;`
 * (which changes a shell `script` such as `find … -exec rm {} \;`), turns
 * `true`/`false` into booleans, nests `[a.b]` under `[a]`, and silently merges
 * duplicate keys and sections. We keep the rules of `ini` that fit the legacy
 * files: `[name]` headers, whole-line `;`/`#` comments, the first `=` splits key
 * from value, keys and values are trimmed, and nothing else is interpreted.
 *
 * Inline comments: a `#` or `;` preceded by whitespace starts a comment, on key
 * lines and header lines alike. A `#` or `;` glued to the text before it (`a#b`,
 * `sh a.sh; sh b.sh`, `\;`) is kept, and values are otherwise verbatim (no
 * unquoting, no unescaping): a `script` reaches `/bin/sh -c` exactly as written.
 */

export interface IniEntry {
  value: string;
  line: number;
}

export interface IniSection {
  name: string;
  /** Line of the `[name]` header (1-based). */
  line: number;
  /** Keys exactly as written (case-sensitive), in file order. */
  entries: Map<string, IniEntry>;
}

export type IniProblemKind = 'syntax' | 'outside_section' | 'duplicate_key' | 'duplicate_section';

export interface IniProblem {
  line: number;
  message: string;
  kind: IniProblemKind;
  /** The key concerned, when there is one. */
  key: string | null;
}

export interface IniDocument {
  /** In file order; a repeated header yields a second section of that name (and a problem). */
  sections: IniSection[];
  problems: IniProblem[];
}

type IniLine =
  | { kind: 'blank' }
  | { kind: 'header'; name: string; malformed: boolean }
  | { kind: 'entry'; key: string; value: string }
  | { kind: 'garbage'; text: string };

/** Removes an inline comment: from the first `#` or `;` that follows whitespace. */
export function stripInlineComment(line: string): string {
  for (let i = 1; i < line.length; i++) {
    const c = line[i];
    if ((c === '#' || c === ';') && /\s/.test(line[i - 1] ?? '')) return line.slice(0, i);
  }
  return line;
}

export function classifyLine(raw: string): IniLine {
  const trimmedRaw = raw.trim();
  if (trimmedRaw === '' || trimmedRaw.startsWith('#') || trimmedRaw.startsWith(';')) return { kind: 'blank' };
  const text = stripInlineComment(trimmedRaw).trim();
  if (text.startsWith('[')) {
    const header = /^\[([^\]]*)\]$/.exec(text);
    if (header) return { kind: 'header', name: (header[1] ?? '').trim(), malformed: false };
    const name = text.slice(1).split(']')[0] ?? '';
    return { kind: 'header', name: name.trim(), malformed: true };
  }
  const eq = text.indexOf('=');
  if (eq <= 0) return { kind: 'garbage', text };
  return { kind: 'entry', key: text.slice(0, eq).trim(), value: text.slice(eq + 1).trim() };
}

export function readIniText(text: string): IniDocument {
  const sections: IniSection[] = [];
  const problems: IniProblem[] = [];
  const seenSections = new Map<string, number>();
  let current: IniSection | null = null;

  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
  for (const [index, raw] of lines.entries()) {
    const line = index + 1;
    const parsed = classifyLine(raw);
    switch (parsed.kind) {
      case 'blank':
        continue;
      case 'garbage':
        problems.push({
          line,
          kind: 'syntax',
          key: null,
          message: `not a "key = value" line: ${parsed.text}`,
        });
        continue;
      case 'header': {
        current = { name: parsed.name, line, entries: new Map() };
        sections.push(current);
        if (parsed.malformed) {
          problems.push({
            line,
            kind: 'syntax',
            key: null,
            message: `malformed section header (expected "[name]")`,
          });
        } else if (parsed.name === '') {
          problems.push({ line, kind: 'syntax', key: null, message: 'empty section name "[]"' });
        }
        const first = seenSections.get(parsed.name);
        if (first !== undefined) {
          problems.push({
            line,
            kind: 'duplicate_section',
            key: null,
            message: `section [${parsed.name}] appears again (first at line ${first})`,
          });
        } else {
          seenSections.set(parsed.name, line);
        }
        continue;
      }
      case 'entry': {
        const section: IniSection | null = current;
        if (section === null) {
          problems.push({
            line,
            kind: 'outside_section',
            key: parsed.key,
            message: `"${parsed.key}" is outside any section (put it under [global])`,
          });
          continue;
        }
        const previous = section.entries.get(parsed.key);
        if (previous !== undefined) {
          problems.push({
            line,
            kind: 'duplicate_key',
            key: parsed.key,
            message: `${parsed.key} is set again (first at line ${previous.line}); the last value wins`,
          });
          section.entries.delete(parsed.key);
        }
        section.entries.set(parsed.key, { value: parsed.value, line });
        break;
      }
    }
  }
  return { sections, problems };
}
