/**
 * RFC 3339 with nanoseconds, as Go's time.RFC3339Nano prints it (the format of KubeMacPool's annotation),
 * e.g. `2026-11-27T10:00:00.123456789Z`. `subMillisecondNanos` fills the digits a Date does not have.
 */
export function rfc3339Nano(date: Date, subMillisecondNanos = 0): string {
  const iso = date.toISOString(); // 2026-11-27T10:00:00.123Z
  const nanos = String(date.getUTCMilliseconds() * 1_000_000 + (subMillisecondNanos % 1_000_000)).padStart(9, '0');
  return `${iso.slice(0, 19)}.${nanos}Z`;
}

/** Parses an RFC 3339 timestamp (any fraction length) to milliseconds, or undefined. */
export function parseRfc3339(text: string): number | undefined {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/.test(text)) return undefined;
  const ms = Date.parse(text.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isNaN(ms) ? undefined : ms;
}
