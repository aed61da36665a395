import { z } from 'zod';
import type { JsonPatchOp } from './patch.js';

export const ADMISSION_VERSIONS = ['admission.k8s.io/v1', 'admission.k8s.io/v1beta1'] as const;
export type AdmissionVersion = (typeof ADMISSION_VERSIONS)[number];

export const OPERATIONS = ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'] as const;
export type Operation = (typeof OPERATIONS)[number];

const GroupVersionResource = z.object({ group: z.string(), version: z.string(), resource: z.string() });
const GroupVersionKind = z.object({ group: z.string(), version: z.string(), kind: z.string() });

/** The request half of an AdmissionReview; objects stay `unknown` until the resource is known. */
export const AdmissionRequestSchema = z.looseObject({
  uid: z.string().min(1, 'must not be empty'),
  kind: GroupVersionKind,
  resource: GroupVersionResource,
  subResource: z.string().optional(),
  name: z.string().optional(),
  namespace: z.string().optional(),
  operation: z.enum(OPERATIONS),
  object: z.unknown().optional(),
  oldObject: z.unknown().optional(),
  dryRun: z.boolean().nullish(),
});

export const AdmissionReviewSchema = z.looseObject({
  apiVersion: z.enum(ADMISSION_VERSIONS),
  kind: z.literal('AdmissionReview'),
  request: AdmissionRequestSchema,
});

export type AdmissionRequest = z.infer<typeof AdmissionRequestSchema>;
export type AdmissionReview = z.infer<typeof AdmissionReviewSchema>;

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; message: string; reason?: string };
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
}

export interface AdmissionReviewResponse {
  apiVersion: AdmissionVersion;
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

/** What a decision about one request comes to, before it is wrapped for the API server. */
export type Verdict =
  | { allowed: true; patch?: readonly JsonPatchOp[]; warnings?: readonly string[] }
  | { allowed: false; code: number; message: string; warnings?: readonly string[] };

const REASONS: Record<number, string> = {
  403: 'Forbidden',
  409: 'Conflict',
  422: 'Invalid',
  500: 'InternalError',
  503: 'ServiceUnavailable',
};

/** Wraps a verdict in an AdmissionReview of the request's own version, echoing `request.uid`. */
export function admissionResponse(
  apiVersion: AdmissionVersion,
  uid: string,
  verdict: Verdict,
): AdmissionReviewResponse {
  const response: AdmissionResponse = { uid, allowed: verdict.allowed };
  if (verdict.allowed) {
    if (verdict.patch !== undefined && verdict.patch.length > 0) {
      response.patchType = 'JSONPatch';
      response.patch = Buffer.from(JSON.stringify(verdict.patch)).toString('base64');
    }
  } else {
    const reason = REASONS[verdict.code];
    response.status = { code: verdict.code, message: verdict.message, ...(reason ? { reason } : {}) };
  }
  if (verdict.warnings !== undefined && verdict.warnings.length > 0) response.warnings = [...verdict.warnings];
  return { apiVersion, kind: 'AdmissionReview', response };
}

/** A readable one-line summary of a zod error: the path of each issue and what is wrong. */
export function describeZodError(error: z.ZodError, root = ''): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => {
      const path = [root, ...issue.path.map(String)].filter((p) => p !== '').join('.');
      return `${path || '(root)'}: ${issue.message}`;
    })
    .join('; ');
}
