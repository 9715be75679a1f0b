// Kubernetes' error replies, byte for byte in shape: a `Status` object (kind,
// apiVersion, metadata, status, message, reason, details, code, in the order the
// real server writes them) built the way k8s.io/apimachinery/pkg/api/errors
// builds it. Messages follow those constructors: NewNotFound → `<resource>
// "<name>" not found`, NewInvalid → `<Kind> "<name>" is invalid: <field errors>`,
// NewApplyConflict → details with causes only, and so on.
import type { Json, JsonObject } from './json.js';

export interface StatusCause {
  /** CauseType; serialised as `reason` (metav1.StatusCause's JSON tag). */
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  /** For most errors the resource (plural), for Invalid the Kind. */
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface GroupResource {
  group: string;
  /** The plural resource name: `configmaps`, `deployments`. */
  resource: string;
}

export interface GroupKind {
  group: string;
  kind: string;
}

/** `configmaps`, `deployments.apps` (schema.GroupResource.String()). */
export function groupResourceString(gr: GroupResource): string {
  return gr.group === '' ? gr.resource : `${gr.resource}.${gr.group}`;
}

/** `Namespace`, `Deployment.apps` (schema.GroupKind.String()). */
export function groupKindString(gk: GroupKind): string {
  return gk.group === '' ? gk.kind : `${gk.kind}.${gk.group}`;
}

/** An API error: the HTTP status and the Status body the server sends. */
export class KubeError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string | undefined,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message);
  }

  toStatus(): JsonObject {
    const status: JsonObject = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message };
    if (this.reason) status.reason = this.reason;
    if (this.details) status.details = detailsJson(this.details);
    status.code = this.code;
    return status;
  }
}

function detailsJson(d: StatusDetails): JsonObject {
  const out: JsonObject = {};
  if (d.name) out.name = d.name;
  if (d.group) out.group = d.group;
  if (d.kind) out.kind = d.kind;
  if (d.uid) out.uid = d.uid;
  if (d.causes && d.causes.length > 0) {
    out.causes = d.causes.map((c) => {
      const cause: JsonObject = {};
      if (c.reason) cause.reason = c.reason;
      if (c.message) cause.message = c.message;
      if (c.field) cause.field = c.field;
      return cause;
    });
  }
  if (d.retryAfterSeconds) out.retryAfterSeconds = d.retryAfterSeconds;
  return out;
}

/** The `Success` Status a delete answers with when the object is gone at once. */
export function successStatus(details: StatusDetails): JsonObject {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: detailsJson(details) };
}

export function notFound(gr: GroupResource, name: string): KubeError {
  return new KubeError(404, 'NotFound', `${groupResourceString(gr)} "${name}" not found`, { name, group: gr.group, kind: gr.resource });
}

export function alreadyExists(gr: GroupResource, name: string): KubeError {
  return new KubeError(409, 'AlreadyExists', `${groupResourceString(gr)} "${name}" already exists`, { name, group: gr.group, kind: gr.resource });
}

/** NewConflict: an optimistic-lock failure (resourceVersion mismatch). */
export function conflict(gr: GroupResource, name: string, cause: string): KubeError {
  return new KubeError(409, 'Conflict', `Operation cannot be fulfilled on ${groupResourceString(gr)} "${name}": ${cause}`, {
    name,
    group: gr.group,
    kind: gr.resource,
  });
}

export const OBJECT_MODIFIED = 'the object has been modified; please apply your changes to the latest version and try again';

/** NewApplyConflict: details carry the causes only (no name, group or kind). */
export function applyConflict(causes: StatusCause[], message: string): KubeError {
  return new KubeError(409, 'Conflict', message, { causes });
}

export function badRequest(message: string): KubeError {
  return new KubeError(400, 'BadRequest', message);
}

export function unauthorized(): KubeError {
  return new KubeError(401, 'Unauthorized', 'Unauthorized');
}

export function forbidden(gr: GroupResource, name: string, why: string): KubeError {
  const what = name === '' ? groupResourceString(gr) : `${groupResourceString(gr)} "${name}"`;
  return new KubeError(403, 'Forbidden', `${what} is forbidden: ${why}`, { name, group: gr.group, kind: gr.resource });
}

export function serviceUnavailable(message: string, retryAfterSeconds?: number): KubeError {
  return new KubeError(503, 'ServiceUnavailable', message, retryAfterSeconds ? { retryAfterSeconds } : undefined);
}

export function methodNotSupported(gr: GroupResource, action: string): KubeError {
  return new KubeError(405, 'MethodNotAllowed', `${action} is not supported on resources of kind "${groupResourceString(gr)}"`, {
    group: gr.group,
    kind: gr.resource,
  });
}

const GENERIC: Record<number, [string, string]> = {
  404: ['NotFound', 'the server could not find the requested resource'],
  405: ['MethodNotAllowed', 'the server does not allow this method on the requested resource'],
  422: ['Invalid', 'the server rejected our request due to an error in our request'],
};

/**
 * NewGenericServerResponse as the server's own handlers use it (no resource, no
 * name): go-restful's 404/405/415 and a failed JSON patch. Details is present but
 * empty (`"details":{}`).
 */
export function genericServerResponse(code: 404 | 405 | 415 | 422, serverMessage = ''): KubeError {
  if (code === 415) return new KubeError(415, 'UnsupportedMediaType', serverMessage, {});
  const [reason, message] = GENERIC[code];
  return new KubeError(code, reason, message, {});
}

/**
 * An error the API server did not turn into a Status itself (ErrorToAPIStatus's
 * default branch): code 500, no reason, the error text as the message.
 */
export function unknownError(message: string, code = 500): KubeError {
  return new KubeError(code, undefined, message);
}

export type FieldErrorType = 'FieldValueRequired' | 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueNotSupported' | 'FieldValueTooLong';

/** One field.Error of k8s.io/apimachinery/pkg/util/validation/field. */
export interface FieldError {
  type: FieldErrorType;
  field: string;
  detail: string;
  badValue?: Json;
  /** For NotSupported: the values that are. */
  supported?: string[];
}

/** Go's %#v-like rendering of a bad value, as field.Error prints it (strings quoted). */
function goValue(value: Json | undefined): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null || value === undefined) return 'null';
  return JSON.stringify(value);
}

/** field.Error.ErrorBody(): the message without the field path. */
export function fieldErrorBody(e: FieldError): string {
  switch (e.type) {
    case 'FieldValueRequired':
      return e.detail === '' ? 'Required value' : `Required value: ${e.detail}`;
    case 'FieldValueForbidden':
      return e.detail === '' ? 'Forbidden' : `Forbidden: ${e.detail}`;
    case 'FieldValueNotSupported': {
      const supported = (e.supported ?? []).map((s) => JSON.stringify(s)).join(', ');
      return `Unsupported value: ${goValue(e.badValue)}: supported values: ${supported}`;
    }
    case 'FieldValueTooLong':
      return `Too long: ${e.detail}`;
    case 'FieldValueInvalid':
      return e.detail === '' ? `Invalid value: ${goValue(e.badValue)}` : `Invalid value: ${goValue(e.badValue)}: ${e.detail}`;
  }
}

/** NewInvalid: 422 with one cause per field error; one error is the message itself, several are bracketed. */
export function invalid(gk: GroupKind, name: string, errors: FieldError[]): KubeError {
  const texts = errors.map((e) => `${e.field}: ${fieldErrorBody(e)}`);
  const aggregate = texts.length === 1 ? texts[0] : `[${texts.join(', ')}]`;
  const message = texts.length === 0 ? `${groupKindString(gk)} "${name}" is invalid` : `${groupKindString(gk)} "${name}" is invalid: ${aggregate}`;
  return new KubeError(422, 'Invalid', message, {
    name,
    group: gk.group,
    kind: gk.kind,
    causes: errors.map((e) => ({ reason: e.type, message: fieldErrorBody(e), field: e.field })),
  });
}
