// Turns zod's OpenAPI 3.0 output into a *structural* schema, the subset of
// OpenAPI the API server accepts for a CRD: no `additionalProperties: false`
// (the server prunes unknown fields, and strict field validation rejects them),
// no schema beside x-kubernetes-preserve-unknown-fields,
// no bounds that only restate JavaScript's safe integers, and int-or-string
// written in the one anyOf form the server allows.
import { z } from 'zod';

export type JsonSchema = { [key: string]: unknown };

const SAFE_BOUNDS = new Set([Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]);

export function structural(schema: z.ZodType): JsonSchema {
  const generated = z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input' }) as JsonSchema;
  delete generated.$schema;
  return clean(generated);
}

function clean(node: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'additionalProperties' && value === false) continue;
    // Free-form objects: the server keeps what they hold without any further schema.
    if (key === 'additionalProperties' && node['x-kubernetes-preserve-unknown-fields'] === true) continue;
    if ((key === 'minimum' || key === 'maximum') && SAFE_BOUNDS.has(value as number)) continue;
    if (key === 'anyOf' && node['x-kubernetes-int-or-string'] === true) {
      out.anyOf = [{ type: 'integer' }, { type: 'string' }];
      continue;
    }
    out[key] = cleanValue(value);
  }
  return out;
}

function cleanValue(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(cleanValue);
  if (value !== null && typeof value === 'object') return clean(value as JsonSchema);
  return value;
}
