// Checks docs/asyncapi.yaml against the protocol:
//
// 1. @asyncapi/parser parses and validates it, with no errors and no warnings.
// 2. Every golden JSON example in docs/PROTOCOL.md (the fenced block after a
//    `<!-- golden: client -->` or `<!-- golden: server -->` marker, found the way
//    protocol/tests/golden.rs finds them) matches exactly one message the server
//    receives (client) or sends (server), and carries no field that message's schema
//    does not declare. Every message, and every event kind, matches at least one example.
// 3. A client example with an unknown field matches no client message (commands are
//    decoded strictly).
// 4. The error and close codes equal those of protocol/src/codes.rs and of the tables in
//    PROTOCOL.md §6 and §7.
//
// Usage: node check.mjs (from tests/asyncapi, after `npm ci`).

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Parser, fromFile } from '@asyncapi/parser';
import Ajv from 'ajv';

const root = fileURLToPath(new URL('../../', import.meta.url));
const documentPath = `${root}docs/asyncapi.yaml`;
const protocolPath = `${root}docs/PROTOCOL.md`;
const codesPath = `${root}protocol/src/codes.rs`;

const failures = [];
const fail = (message) => failures.push(message);

// 1. Parse and validate the document.
const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, documentPath).parse();
const severities = ['error', 'warning', 'info', 'hint'];
for (const diagnostic of diagnostics) {
  const where = diagnostic.path?.length ? ` at ${diagnostic.path.join('.')}` : '';
  const line = `${severities[diagnostic.severity]} ${diagnostic.code}: ${diagnostic.message}${where}`;
  if (diagnostic.severity <= 1) fail(`docs/asyncapi.yaml: ${line}`);
  else console.log(`  (${line})`);
}
if (!document) {
  report();
}

// The messages the server receives are the client's; those it sends are its own.
function messagesOf(action) {
  const byId = new Map();
  for (const operation of document.operations().all()) {
    if (operation.action() !== action) continue;
    for (const message of operation.messages().all()) byId.set(message.id(), message);
  }
  return [...byId.values()];
}

// The parser marks each schema with `x-parser-*` keys; everything else must be a
// keyword Ajv knows, so that a misspelt keyword fails here rather than being ignored.
const ajv = new Ajv({ strict: true, allErrors: true, allowUnionTypes: true });
ajv.addKeyword('x-parser-schema-id');
function compile(message) {
  const payload = message.payload()?.json();
  if (!payload) {
    fail(`message ${message.id()} has no payload`);
    return null;
  }
  try {
    return { id: message.id(), name: message.name(), payload, validate: ajv.compile(payload) };
  } catch (error) {
    fail(`message ${message.id()}: its payload schema does not compile: ${error.message}`);
    return null;
  }
}
const client = messagesOf('receive').map(compile).filter(Boolean);
const server = messagesOf('send').map(compile).filter(Boolean);
const inOperations = new Set([...messagesOf('receive'), ...messagesOf('send')].map((message) => message.id()));
for (const message of document.messages().all()) {
  if (!inOperations.has(message.id())) fail(`message ${message.id()} is in no operation, so nothing says who sends it`);
}

// 2. The golden examples, found as protocol/tests/golden.rs finds them.
function goldenExamples() {
  const lines = readFileSync(protocolPath, 'utf8').split('\n');
  const examples = [];
  for (let index = 0; index < lines.length; index += 1) {
    const line = lines[index].trim();
    if (!line.startsWith('<!-- golden:') || !line.endsWith('-->')) continue;
    const kind = line.slice('<!-- golden:'.length, -'-->'.length).trim();
    if (lines[index + 1]?.trim() !== '```json') {
      fail(`PROTOCOL.md line ${index + 1}: a golden marker must be followed by a \`\`\`json block`);
      continue;
    }
    const start = index + 2;
    let end = start;
    while (end < lines.length && lines[end].trim() !== '```') end += 1;
    examples.push({ kind, line: index + 1, json: lines.slice(start, end).join('\n') });
    index = end;
  }
  return examples;
}

// Schemas that apply to `data` under `schema`: its `allOf` parts, and the `oneOf` and
// `anyOf` branches that accept it.
function applicable(schema, data) {
  if (!schema || typeof schema !== 'object') return [];
  const found = [schema];
  for (const part of schema.allOf ?? []) found.push(...applicable(part, data));
  for (const branch of [...(schema.oneOf ?? []), ...(schema.anyOf ?? [])]) {
    if (ajv.validate(branch, data)) found.push(...applicable(branch, data));
  }
  return found;
}

// Paths of the object fields in `data` that no applicable schema declares. Server
// schemas leave room for fields a later version adds, so this is how the check notices
// an example field that the document forgot.
function undeclared(schema, data, path = '') {
  const schemas = applicable(schema, data);
  const missing = [];
  if (Array.isArray(data)) {
    data.forEach((item, index) => {
      for (const each of schemas) {
        if (each.items && typeof each.items === 'object') missing.push(...undeclared(each.items, item, `${path}[${index}]`));
      }
    });
  } else if (data && typeof data === 'object') {
    for (const [key, value] of Object.entries(data)) {
      const declared = schemas
        .map((each) => each.properties?.[key] ?? (typeof each.additionalProperties === 'object' ? each.additionalProperties : undefined))
        .filter(Boolean);
      if (declared.length === 0) missing.push(`${path}.${key}`);
      for (const each of declared) missing.push(...undeclared(each, value, `${path}.${key}`));
    }
  }
  return [...new Set(missing)];
}

const examples = goldenExamples();
const matchedMessages = new Set();
const matchedKinds = new Set();
const counts = { client: 0, server: 0, http: 0 };
for (const example of examples) {
  if (example.kind.startsWith('api:')) {
    counts.http += 1; // HTTP bodies: not part of the WebSocket document.
    continue;
  }
  const candidates = { client, server }[example.kind];
  if (!candidates) {
    fail(`PROTOCOL.md line ${example.line}: unknown golden kind \`${example.kind}\``);
    continue;
  }
  counts[example.kind] += 1;
  let data;
  try {
    data = JSON.parse(example.json);
  } catch (error) {
    fail(`PROTOCOL.md line ${example.line}: not JSON: ${error.message}`);
    continue;
  }
  const where = `PROTOCOL.md line ${example.line} (${example.kind} \`${data.type}\`${data.kind ? `, kind \`${data.kind}\`` : ''})`;
  const matches = candidates.filter((message) => message.validate(data));
  if (matches.length !== 1) {
    const near = candidates.find((message) => message.name === data.type);
    const why = near ? `; against ${near.id}: ${ajv.errorsText(near.validate.errors ?? (near.validate(data), near.validate.errors))}` : '';
    fail(`${where}: matches ${matches.length} ${example.kind} messages${matches.length ? ` (${matches.map((m) => m.id).join(', ')})` : ''}, not exactly one${why}`);
    continue;
  }
  const [message] = matches;
  matchedMessages.add(`${example.kind}:${message.id}`);
  if (example.kind === 'server' && data.type === 'event') matchedKinds.add(data.kind);
  if (example.kind === 'server' && data.type === 'history') for (const event of data.events) matchedKinds.add(event.kind);
  for (const path of undeclared(message.payload, data)) {
    fail(`${where}: the field \`${path.slice(1)}\` is not declared in message ${message.id}`);
  }
  if (example.kind === 'client') {
    const extended = { ...data, colour: 'red' };
    const accepting = client.filter((each) => each.validate(extended));
    if (accepting.length) fail(`${where}: with an unknown field it still matches ${accepting.map((m) => m.id).join(', ')}`);
  }
}
for (const [kind, messages] of [['client', client], ['server', server]]) {
  for (const message of messages) {
    if (!matchedMessages.has(`${kind}:${message.id}`)) fail(`message ${message.id} matches no ${kind} example in PROTOCOL.md`);
  }
}
const eventKinds = document.components().schemas().all()
  .map((schema) => schema.json())
  .flatMap((schema) => (schema.allOf ?? []).map((part) => part.properties?.kind?.const))
  .filter(Boolean);
for (const kind of eventKinds) {
  if (!matchedKinds.has(kind)) fail(`event kind \`${kind}\` matches no example in PROTOCOL.md`);
}

// 4. Error and close codes: the document, protocol/src/codes.rs and PROTOCOL.md agree.
function section(text, heading) {
  const start = text.indexOf(`\n## ${heading}`);
  const end = text.indexOf('\n## ', start + 1);
  return start < 0 ? '' : text.slice(start, end < 0 ? undefined : end);
}
function compare(what, ours, theirs, source) {
  const a = new Set([...ours].map(String));
  const b = new Set([...theirs].map(String));
  const missing = [...b].filter((code) => !a.has(code));
  const extra = [...a].filter((code) => !b.has(code));
  if (b.size === 0) fail(`${what}: found none in ${source}`);
  if (missing.length) fail(`${what}: ${source} has ${missing.join(', ')}, which the document lacks`);
  if (extra.length) fail(`${what}: the document has ${extra.join(', ')}, which ${source} lacks`);
}
const schema = (name) => document.components().schemas().get(name)?.json() ?? {};
const protocolText = readFileSync(protocolPath, 'utf8');
const codesRs = readFileSync(codesPath, 'utf8');
const errorEnum = codesRs.match(/pub enum ErrorCode \{([\s\S]*?)\n\}/)?.[1] ?? '';
const rustErrors = [...errorEnum.matchAll(/^\s+([A-Z][A-Za-z]*),$/gm)].map(([, name]) => name.replace(/(?<!^)([A-Z])/g, '_$1').toLowerCase());
const rustCloses = [...codesRs.matchAll(/pub const [A-Z_]+: u16 = (\d+);/g)].map(([, code]) => Number(code));
const docErrors = [...section(protocolText, '6. Error codes').matchAll(/^\| `([a-z_]+)` \|/gm)].map(([, code]) => code);
const docCloses = [...section(protocolText, '7. Close codes').matchAll(/^\| (\d{4}) \|/gm)].map(([, code]) => Number(code));
compare('error codes', schema('ErrorCode').enum ?? [], rustErrors, 'protocol/src/codes.rs');
compare('error codes', schema('ErrorCode').enum ?? [], docErrors, 'PROTOCOL.md §6');
compare('close codes', schema('CloseCode').enum ?? [], rustCloses, 'protocol/src/codes.rs');
compare('close codes', schema('CloseCode').enum ?? [], docCloses, 'PROTOCOL.md §7');

report();

function report() {
  if (failures.length) {
    for (const failure of failures) console.error(`FAIL ${failure}`);
    console.error(`\nasyncapi: ${failures.length} problem(s) in docs/asyncapi.yaml`);
    process.exit(1);
  }
  console.log(
    `asyncapi: docs/asyncapi.yaml is valid AsyncAPI ${document.version()}; ` +
      `${client.length} client and ${server.length} server messages, ${eventKinds.length} event kinds; ` +
      `${counts.client} client and ${counts.server} server examples from PROTOCOL.md each match exactly one ` +
      `(${counts.http} HTTP examples are not WebSocket frames); error and close codes agree with protocol/src/codes.rs and PROTOCOL.md §6, §7`,
  );
  process.exit(0);
}
