import { formatMac, isLocallyAdministered, isMulticast, type Mac, parseMac } from './mac.js';

/** An inclusive range of MACs. Both ends are unicast and `start <= end`. */
export interface MacRange {
  readonly start: Mac;
  readonly end: Mac;
}

/** KMP's default range, used when `config/kubeMacPoolConfiguration` does not exist. */
export const DEFAULT_RANGE_START = '02:00:00:00:00:00';
export const DEFAULT_RANGE_END = '02:FF:FF:FF:FF:FF';

export type RangeProblem =
  | { code: 'missing'; field: string }
  | { code: 'not-a-mac'; field: string; value: string }
  | { code: 'multicast'; field: string; value: string }
  | { code: 'reversed'; field: string; start: string; end: string };

export type RangeResult =
  { ok: true; range: MacRange; warnings: string[] } | { ok: false; problem: RangeProblem; message: string };

const ALLOWED =
  'allowed: two 48-bit unicast MACs (least significant bit of the first octet clear) such as ' +
  '02:00:00:00:00:00 and 02:FF:FF:FF:FF:FF, with rangeStart <= rangeEnd';

/** The message for a range problem: what is wrong, then what is allowed. */
export function rangeProblemMessage(problem: RangeProblem): string {
  switch (problem.code) {
    case 'missing':
      return `${problem.field} is missing; ${ALLOWED}`;
    case 'not-a-mac':
      return `${problem.field} ${JSON.stringify(problem.value)} is not a 48-bit MAC address; ${ALLOWED}`;
    case 'multicast':
      return `${problem.field} ${problem.value} is a multicast address (the first octet is odd); ${ALLOWED}`;
    case 'reversed':
      return `${problem.field}Start ${problem.start} is greater than ${problem.field}End ${problem.end}; ${ALLOWED}`;
    default:
      return problem satisfies never;
  }
}

/**
 * Validates a range as the HyperConverged CR and `config/kubeMacPoolConfiguration` spell it (C1).
 * A one-MAC range is valid. A range outside the locally administered space is accepted with a warning.
 * `where` prefixes the field names in messages (`additionalRanges[2].` for an entry of a list).
 */
export function validateRange(rangeStart: unknown, rangeEnd: unknown, where = ''): RangeResult {
  const ends: Mac[] = [];
  for (const [field, value] of [
    [`${where}rangeStart`, rangeStart],
    [`${where}rangeEnd`, rangeEnd],
  ] as const) {
    if (value === undefined || value === null || value === '') return fail({ code: 'missing', field });
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    const mac = typeof value === 'string' ? parseMac(value) : undefined;
    if (mac === undefined) return fail({ code: 'not-a-mac', field, value: text });
    if (isMulticast(mac)) return fail({ code: 'multicast', field, value: text });
    ends.push(mac);
  }
  const [start, end] = ends as [Mac, Mac];
  if (start > end)
    return fail({ code: 'reversed', field: `${where}range`, start: formatMac(start), end: formatMac(end) });
  const warnings: string[] = [];
  if (!isLocallyAdministered(start) || !isLocallyAdministered(end)) {
    warnings.push(
      `range ${formatRange({ start, end })} is not in the locally administered space ` +
        '(second least significant bit of the first octet set, e.g. 02:xx:xx:xx:xx:xx): ' +
        'it may collide with vendor-assigned MACs on the network',
    );
  }
  return { ok: true, range: { start, end }, warnings };
}

function fail(problem: RangeProblem): RangeResult {
  return { ok: false, problem, message: rangeProblemMessage(problem) };
}

export function formatRange(range: MacRange): string {
  return `${formatMac(range.start)}-${formatMac(range.end)}`;
}
