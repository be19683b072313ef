/**
 * Validates JSON responses against the Matrix spec's OpenAPI documents
 * (../shared/matrix-spec/openapi, every $ref already resolved), with Ajv in JSON Schema 2020
 * mode. Tests call validateResponse for every JSON body they receive from the server.
 */
import { readFileSync } from 'node:fs';
import { SPEC_DIR } from '@tessera/spec-data';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { isValidEventId, isValidRoomAlias, isValidRoomId, isValidServerName, isValidUserId } from '@tessera/protocol';

export type MatrixApi = 'client-server' | 'server-server' | 'application-service' | 'push-gateway' | 'identity';

/** Where the spec data lives (see test/spec-data.ts). */
export const MATRIX_SPEC_DIR = SPEC_DIR + '/';

interface OpenApiDocument {
  paths: Record<string, Record<string, { responses?: Record<string, { content?: Record<string, { schema?: object }> }> }>>;
}

const documents = new Map<MatrixApi, OpenApiDocument>();
const validators = new Map<string, ValidateFunction>();

// ajv-formats is CommonJS: its default export arrives wrapped under some loaders.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv2020) => Ajv2020;

const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
addFormats(ajv);
ajv.addFormat('mx-user-id', { type: 'string', validate: (s: string) => isValidUserId(s) });
ajv.addFormat('mx-room-id', { type: 'string', validate: (s: string) => isValidRoomId(s) });
ajv.addFormat('mx-room-alias', { type: 'string', validate: (s: string) => isValidRoomAlias(s) });
ajv.addFormat('mx-event-id', { type: 'string', validate: (s: string) => isValidEventId(s) });
ajv.addFormat('mx-server-name', { type: 'string', validate: (s: string) => isValidServerName(s) });
ajv.addFormat('mx-mxc-uri', { type: 'string', validate: (s: string) => /^mxc:\/\/[^/]+\/[A-Za-z0-9_-]+$/.test(s) });

function openApi(api: MatrixApi): OpenApiDocument {
  let doc = documents.get(api);
  if (!doc) {
    const raw = JSON.parse(readFileSync(`${MATRIX_SPEC_DIR}/openapi/${api}.json`, 'utf8')) as OpenApiDocument;
    // Two path keys of client-server.json end in a space (the spec lists those paths twice).
    const paths: OpenApiDocument['paths'] = {};
    for (const [key, value] of Object.entries(raw.paths)) paths[key.trim()] = { ...paths[key.trim()], ...value };
    doc = { ...raw, paths };
    documents.set(api, doc);
  }
  return doc;
}

/** The JSON schema the spec gives for this response; throws when the spec documents none. */
export function responseSchema(api: MatrixApi, method: string, pathTemplate: string, status: number): object {
  const operation = openApi(api).paths[pathTemplate]?.[method.toLowerCase()];
  if (!operation) throw new Error(`${api}: the spec has no operation ${method.toUpperCase()} ${pathTemplate}`);
  const response = operation.responses?.[String(status)];
  if (!response) {
    const documented = Object.keys(operation.responses ?? {}).join(', ');
    throw new Error(`${api}: ${method.toUpperCase()} ${pathTemplate} documents no ${status} response (documented: ${documented})`);
  }
  const schema = response.content?.['application/json']?.schema;
  if (!schema) throw new Error(`${api}: ${method.toUpperCase()} ${pathTemplate} ${status} has no JSON schema`);
  return schema;
}

/**
 * Throws an Error listing every mismatch when `body` is not what the spec's schema for this
 * operation and status allows. `pathTemplate` is the spec's path, e.g.
 * '/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}'.
 */
export function validateResponse(api: MatrixApi, method: string, pathTemplate: string, status: number, body: unknown): void {
  const cacheKey = `${api} ${method.toLowerCase()} ${pathTemplate} ${status}`;
  let validate = validators.get(cacheKey);
  if (!validate) {
    validate = ajv.compile(responseSchema(api, method, pathTemplate, status));
    validators.set(cacheKey, validate);
  }
  if (!validate(body)) {
    const problems = (validate.errors ?? []).map((e) => `  ${e.instancePath || '(root)'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
    throw new Error(`response to ${cacheKey} does not match the spec:\n${problems.join('\n')}\nbody: ${JSON.stringify(body).slice(0, 2000)}`);
  }
}
