import { INTERFACES_PATH, TRANSACTION_TIMESTAMP_ANNOTATION } from './kubevirt.js';

/** The RFC 6902 operations macpool emits. */
export type JsonPatchOp = { op: 'add' | 'replace'; path: string; value: unknown };

/** RFC 6901: `~` becomes `~0` and `/` becomes `~1` inside a path segment. */
export function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** `add` of a MAC to the interface at `index` (RFC 6902 `add` also replaces an existing member). */
export function macAddressOp(index: number, mac: string): JsonPatchOp {
  return { op: 'add', path: `${INTERFACES_PATH}/${index}/macAddress`, value: mac };
}

/** Stamps the transaction timestamp annotation, creating `metadata.annotations` first when it is absent. */
export function timestampOps(hasAnnotations: boolean, timestamp: string): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [];
  if (!hasAnnotations) ops.push({ op: 'add', path: '/metadata/annotations', value: {} });
  ops.push({
    op: 'add',
    path: `/metadata/annotations/${escapePointer(TRANSACTION_TIMESTAMP_ANNOTATION)}`,
    value: timestamp,
  });
  return ops;
}
