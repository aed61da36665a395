/**
 * Structured logs: one JSON object per line on stdout, which Cloud Logging reads as `jsonPayload` with
 * `severity` and `message`. Messages listed in LOG_EVENTS are stable: log-based metrics filter on them.
 */
export const SEVERITIES = ['DEBUG', 'INFO', 'WARNING', 'ERROR'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** Stable `event` values and their messages; Terraform's log-based metrics match on `jsonPayload.event`. */
export const LOG_EVENTS = {
  allocated: { event: 'mac-allocated', message: 'MACs allocated' },
  rangeFull: { event: 'range-full', message: 'MAC range is full' },
  collision: { event: 'mac-collision', message: 'MAC collision detected' },
} as const;

export type LogFields = Record<string, unknown>;
export type Logger = (severity: Severity, message: string, fields?: LogFields) => void;

/** A logger writing JSON lines to `write` (stdout by default). */
export function jsonLogger(write: (line: string) => void = (line) => process.stdout.write(line + '\n')): Logger {
  return (severity, message, fields = {}) => {
    write(JSON.stringify({ severity, message, ...fields, time: new Date().toISOString() }));
  };
}
