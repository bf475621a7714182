// An MCP client built on the official TypeScript SDK (npm @modelcontextprotocol/sdk),
// run by Gatehouse's tests. Same command line, script and output as ../python_client.py.
//
//   node tests/mcp/node/client.mjs [URL] < script.json
//   node tests/mcp/node/client.mjs --stdio CMD [ARGS...] < script.json
//
// URL is the MCP endpoint (streamable HTTP), e.g. http://127.0.0.1:7400/mcp; it defaults to
// $GATEHOUSE_URL/mcp. $GATEHOUSE_TOKEN, when set, is sent as `Authorization: Bearer …` (over
// HTTP) or left in the environment of the server process (with --stdio). It is never printed.
//
// The script on stdin is a JSON array of steps:
//   {"call": "list_tools"}
//   {"call": "tool", "name": "query", "arguments": {...}}
// Optional keys of a step: "timeout_seconds" (how long to wait for the answer, default 120),
// "expect_error": true (a JSON-RPC error answer is printed as {"step", "error": {"code",
// "message"}} and the script goes on, instead of ending it).
//
// Output, one JSON object per line on stdout:
//   {"initialized": true, "server": {serverInfo}, "protocolVersion": "..."}
//   {"step": 0, "tools": [{"name", "description", "inputSchema"}]}
//   {"step": 1, "isError": false, "text": "...", "json": <text parsed as JSON, or null>,
//    "contentTypes": ["text"]}
// A failure prints {"step": n, "exception": "..."} ({"initialized": false, "exception": ...}
// when the connection or the initialize handshake fails) and exits 1; "code" is added for a
// JSON-RPC error, "status" (and "wwwAuthenticate") for an HTTP error status of the endpoint.
// A malformed script or command line exits 2 before connecting.

import process from 'node:process';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';

const DEFAULT_TIMEOUT_SECONDS = 120;
const TOKEN = process.env.GATEHOUSE_TOKEN || '';
// The last HTTP error status a POST to the endpoint got, reported with the failure.
let httpError = {};

function usage(message) {
  process.stderr.write(`client.mjs: ${message}\n`);
  process.stderr.write('usage: client.mjs [URL | --stdio CMD [ARGS...]] < script.json\n');
  process.exit(2);
}

// Never let the token reach the output, whatever an error message contains.
const scrub = (text) => (TOKEN ? text.split(TOKEN).join('***') : text);

function emit(obj) {
  process.stdout.write(scrub(JSON.stringify(obj)) + '\n');
}

async function readScript() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  let script;
  try {
    script = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    usage(`the script on stdin is not JSON: ${e.message}`);
  }
  if (!Array.isArray(script)) usage('the script on stdin must be a JSON array of steps');
  script.forEach((step, i) => {
    if (step === null || typeof step !== 'object' || Array.isArray(step)) usage(`step ${i} is not an object`);
    if (step.call !== 'list_tools' && step.call !== 'tool') {
      usage(`step ${i}: unknown call ${JSON.stringify(step.call)} (list_tools or tool)`);
    }
    if (step.call === 'tool') {
      if (typeof step.name !== 'string') usage(`step ${i}: a tool step needs a string "name"`);
      const args = step.arguments ?? {};
      if (args === null || typeof args !== 'object' || Array.isArray(args)) {
        usage(`step ${i}: "arguments" must be an object`);
      }
    }
    const timeout = step.timeout_seconds ?? DEFAULT_TIMEOUT_SECONDS;
    if (typeof timeout !== 'number' || !(timeout > 0)) usage(`step ${i}: "timeout_seconds" must be a positive number`);
  });
  return script;
}

// The JSON-RPC error behind an exception: {code, message}, or null for any other failure.
function rpcError(e) {
  if (!(e instanceof McpError)) return null;
  const prefix = `MCP error ${e.code}: `;
  const message = e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message;
  return { code: e.code, message };
}

function describe(e) {
  if (e instanceof Error) {
    const cause = e.cause instanceof Error ? ` (${e.cause.message})` : '';
    return `${e.name}: ${e.message}${cause}`;
  }
  return String(e);
}

function failure(head, e) {
  const out = { ...head, exception: describe(e) };
  const rpc = rpcError(e);
  if (rpc) out.code = rpc.code;
  return { ...out, ...httpError };
}

function toolOutput(index, result) {
  const content = result.content ?? [];
  const texts = content.filter((c) => c.type === 'text').map((c) => c.text ?? '');
  const text = texts.join('');
  let json = null;
  if (texts.length > 0) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  const out = {
    step: index,
    isError: Boolean(result.isError),
    text,
    json,
    contentTypes: content.map((c) => c.type),
  };
  if (result.structuredContent !== undefined && result.structuredContent !== null) {
    out.structuredContent = result.structuredContent;
  }
  return out;
}

async function listAllTools(client, timeout) {
  const tools = [];
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : undefined, { timeout });
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor);
  return tools;
}

// fetch that records the HTTP error status (and bearer challenge) of a POST to the endpoint:
// the SDK folds it into an error message.
async function recordingFetch(url, init) {
  const response = await fetch(url, init);
  if ((init?.method ?? 'GET').toUpperCase() === 'POST' && response.status >= 400) {
    httpError = { status: response.status };
    const challenge = response.headers.get('www-authenticate');
    if (challenge !== null) httpError.wwwAuthenticate = challenge;
  }
  return response;
}

function makeTransport(argv) {
  if (argv[0] === '--stdio') {
    if (argv.length < 2) usage('--stdio needs a command');
    // The server gets this process's whole environment (GATEHOUSE_URL, GATEHOUSE_TOKEN, PATH…),
    // not only the SDK's short default list; its stderr goes to ours.
    return new StdioClientTransport({ command: argv[1], args: argv.slice(2), env: { ...process.env }, stderr: 'inherit' });
  }
  if (argv.length > 1) usage('too many arguments');
  let url = argv[0];
  if (url === undefined) {
    if (!process.env.GATEHOUSE_URL) usage('give the MCP endpoint URL or set GATEHOUSE_URL');
    url = process.env.GATEHOUSE_URL.replace(/\/+$/, '') + '/mcp';
  }
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    usage(`not a URL: ${url}`);
  }
  const headers = TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};
  return new StreamableHTTPClientTransport(parsed, { requestInit: { headers }, fetch: recordingFetch });
}

async function main() {
  const argv = process.argv.slice(2);
  if (argv[0] === '-h' || argv[0] === '--help') {
    process.stdout.write('usage: client.mjs [URL | --stdio CMD [ARGS...]] < script.json (see the comment at the top)\n');
    return 0;
  }
  const script = await readScript();
  const transport = makeTransport(argv);
  const client = new Client({ name: 'gatehouse-tests-node', version: '1.0.0' });
  let failedTransport = null;
  transport.onerror = (e) => {
    failedTransport = e;
  };
  // Client.connect hands the negotiated protocol version to the transport (the HTTP one sends
  // it as Mcp-Protocol-Version); keep it to print.
  let protocolVersion = null;
  const setProtocolVersion = transport.setProtocolVersion?.bind(transport);
  transport.setProtocolVersion = (version) => {
    protocolVersion = version;
    setProtocolVersion?.(version);
  };

  try {
    await client.connect(transport, { timeout: DEFAULT_TIMEOUT_SECONDS * 1000 });
  } catch (e) {
    emit(failure({ initialized: false }, e));
    await client.close().catch(() => {});
    return 1;
  }
  emit({
    initialized: true,
    server: client.getServerVersion() ?? null,
    protocolVersion,
  });

  let ok = true;
  for (const [index, step] of script.entries()) {
    httpError = {};
    const timeout = (step.timeout_seconds ?? DEFAULT_TIMEOUT_SECONDS) * 1000;
    try {
      if (step.call === 'list_tools') {
        const tools = await listAllTools(client, timeout);
        emit({
          step: index,
          tools: tools.map((t) => ({ name: t.name, description: t.description ?? null, inputSchema: t.inputSchema })),
        });
      } else {
        const result = await client.callTool({ name: step.name, arguments: step.arguments ?? {} }, undefined, {
          timeout,
        });
        emit(toolOutput(index, result));
      }
    } catch (e) {
      const rpc = rpcError(e);
      if (rpc && step.expect_error) {
        emit({ step: index, error: rpc });
        continue;
      }
      emit(failure({ step: index }, failedTransport && !rpc ? failedTransport : e));
      ok = false;
      break;
    }
  }
  await client.close().catch(() => {});
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    emit({ initialized: false, exception: describe(e) });
    process.exit(1);
  },
);
