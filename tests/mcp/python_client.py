#!/usr/bin/env python3
"""An MCP client built on the official Python SDK (PyPI `mcp`), run by Gatehouse's tests.

Usage:
    python3 tests/mcp/python_client.py [URL] < script.json
    python3 tests/mcp/python_client.py --stdio CMD [ARGS...] < script.json

URL is the MCP endpoint (streamable HTTP), e.g. http://127.0.0.1:7400/mcp; it defaults to
$GATEHOUSE_URL/mcp. $GATEHOUSE_TOKEN, when set, is sent as `Authorization: Bearer …` (over
HTTP) or left in the environment of the server process (with --stdio). It is never printed.

The script on stdin is a JSON array of steps:
    {"call": "list_tools"}
    {"call": "tool", "name": "query", "arguments": {...}}
Optional keys of a step: "timeout_seconds" (how long to wait for the answer, default 120),
"expect_error": true (a JSON-RPC error answer is printed as {"step", "error": {"code",
"message"}} and the script goes on, instead of ending it).

Output, one JSON object per line on stdout:
    {"initialized": true, "server": {serverInfo}, "protocolVersion": "..."}
    {"step": 0, "tools": [{"name", "description", "inputSchema"}]}
    {"step": 1, "isError": false, "text": "...", "json": <text parsed as JSON, or null>,
     "contentTypes": ["text"]}
A failure prints {"step": n, "exception": "..."} ({"initialized": false, "exception": ...}
when the connection or the initialize handshake fails) and exits 1; "code" is added for a
JSON-RPC error, "status" (and "wwwAuthenticate") for an HTTP error status of the endpoint. A malformed script or command line exits 2 before connecting.
"""

import json
import os
import sys

DEFAULT_TIMEOUT = 120.0
# How far the run got, for a failure that escapes the session (the transport's task group).
PROGRESS = {"initialized": False, "step": None}
# The last HTTP error status a POST to the endpoint got (the SDK turns it into a generic
# JSON-RPC error, so it is recorded here to be reported with the failure).
HTTP_ERROR = {}
TOKEN = os.environ.get("GATEHOUSE_TOKEN") or ""


def usage(message):
    print(f"python_client.py: {message}", file=sys.stderr)
    print("usage: python_client.py [URL | --stdio CMD [ARGS...]] < script.json", file=sys.stderr)
    sys.exit(2)


def scrub(text):
    """Never let the token reach the output, whatever an exception message contains."""
    text = str(text)
    return text.replace(TOKEN, "***") if TOKEN else text


def emit(obj):
    print(scrub(json.dumps(obj, separators=(",", ":"), ensure_ascii=False)), flush=True)


def read_script():
    try:
        script = json.load(sys.stdin)
    except json.JSONDecodeError as e:
        usage(f"the script on stdin is not JSON: {e}")
    if not isinstance(script, list):
        usage("the script on stdin must be a JSON array of steps")
    for i, step in enumerate(script):
        if not isinstance(step, dict):
            usage(f"step {i} is not an object")
        call = step.get("call")
        if call not in ("list_tools", "tool"):
            usage(f"step {i}: unknown call {call!r} (list_tools or tool)")
        if call == "tool":
            if not isinstance(step.get("name"), str):
                usage(f"step {i}: a tool step needs a string \"name\"")
            if not isinstance(step.get("arguments", {}), dict):
                usage(f"step {i}: \"arguments\" must be an object")
        timeout = step.get("timeout_seconds", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            usage(f"step {i}: \"timeout_seconds\" must be a positive number")
    return script


def dump(model):
    """A pydantic model of the SDK as its JSON wire form (camelCase keys, no nulls)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def failure(head, exc):
    """The failure line: where, what, the JSON-RPC code and the HTTP status if any."""
    out = dict(head, exception=describe(exc))
    rpc = error_data(exc)
    if rpc is not None:
        out["code"] = rpc[0]
    out.update(HTTP_ERROR)
    return out


async def record_http_error(response):
    if response.request.method == "POST" and response.status_code >= 400:
        HTTP_ERROR.clear()
        HTTP_ERROR["status"] = response.status_code
        challenge = response.headers.get("www-authenticate")
        if challenge is not None:
            HTTP_ERROR["wwwAuthenticate"] = challenge


def describe(exc):
    """A one-line description of an exception, unwrapping anyio's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def error_data(exc):
    """(code, message) of a JSON-RPC error answer, or None for any other failure."""
    try:
        from mcp import MCPError
    except ImportError:  # mcp 1.x
        from mcp.shared.exceptions import McpError as MCPError
    if isinstance(exc, MCPError):
        return exc.error.code, exc.error.message
    return None


def tool_output(index, result):
    result = dump(result)
    content = result.get("content", [])
    texts = [c.get("text", "") for c in content if c.get("type") == "text"]
    text = "".join(texts)
    try:
        parsed = json.loads(text) if texts else None
    except json.JSONDecodeError:
        parsed = None
    out = {
        "step": index,
        "isError": bool(result.get("isError", False)),
        "text": text,
        "json": parsed,
        "contentTypes": [c.get("type") for c in content],
    }
    if result.get("structuredContent") is not None:
        out["structuredContent"] = result["structuredContent"]
    return out


def sdk_timeout(session, seconds):
    """A call timeout as the SDK takes it: seconds (mcp 2.x) or a timedelta (mcp 1.x)."""
    import inspect

    annotation = inspect.signature(session.call_tool).parameters["read_timeout_seconds"].annotation
    if "timedelta" in str(annotation):
        from datetime import timedelta

        return timedelta(seconds=seconds)
    return seconds


async def list_all_tools(session, timeout):
    import anyio
    from mcp.types import PaginatedRequestParams

    tools, cursor = [], None
    with anyio.fail_after(timeout):
        while True:
            params = PaginatedRequestParams(cursor=cursor) if cursor else None
            page = dump(await session.list_tools(params=params))
            tools.extend(page.get("tools", []))
            cursor = page.get("nextCursor")
            if not cursor:
                return tools


async def run_steps(session, script):
    for index, step in enumerate(script):
        PROGRESS["step"] = index
        HTTP_ERROR.clear()
        timeout = float(step.get("timeout_seconds", DEFAULT_TIMEOUT))
        try:
            if step["call"] == "list_tools":
                tools = await list_all_tools(session, timeout)
                emit(
                    {
                        "step": index,
                        "tools": [
                            {
                                "name": t.get("name"),
                                "description": t.get("description"),
                                "inputSchema": t.get("inputSchema"),
                            }
                            for t in tools
                        ],
                    }
                )
            else:
                result = await session.call_tool(
                    step["name"], step.get("arguments", {}), read_timeout_seconds=sdk_timeout(session, timeout)
                )
                emit(tool_output(index, result))
        except Exception as exc:  # noqa: BLE001 - every failure is reported, then exit 1
            rpc = error_data(exc)
            if rpc is not None and step.get("expect_error"):
                emit({"step": index, "error": {"code": rpc[0], "message": rpc[1]}})
                continue
            emit(failure({"step": index}, exc))
            return False
    return True


async def session_over(streams, script):
    from mcp import ClientSession

    read, write = streams[0], streams[1]
    async with ClientSession(read, write) as session:
        try:
            init = await session.initialize()
        except Exception as exc:  # noqa: BLE001
            emit(failure({"initialized": False}, exc))
            return False
        init = dump(init)
        emit(
            {
                "initialized": True,
                "server": init.get("serverInfo"),
                "protocolVersion": init.get("protocolVersion"),
            }
        )
        PROGRESS["initialized"] = True
        return await run_steps(session, script)


def http_transport(url):
    """The SDK's streamable HTTP client with the bearer header (mcp 2.x, or 1.x)."""
    headers = {"Authorization": f"Bearer {TOKEN}"} if TOKEN else {}
    try:
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client
    except ImportError:
        from mcp.client.streamable_http import streamablehttp_client  # mcp 1.x

        return streamablehttp_client(url, headers=headers), None
    client = create_mcp_http_client(headers=headers)
    client.event_hooks = {"response": [record_http_error]}
    return streamable_http_client(url, http_client=client), client


async def main_async(argv, script):
    if argv and argv[0] == "--stdio":
        from mcp.client.stdio import StdioServerParameters, stdio_client

        if len(argv) < 2:
            usage("--stdio needs a command")
        # The server gets this process's whole environment (GATEHOUSE_URL, GATEHOUSE_TOKEN,
        # PATH…), not only the SDK's short default list.
        params = StdioServerParameters(command=argv[1], args=argv[2:], env=dict(os.environ))
        transport, client = stdio_client(params), None
    else:
        if len(argv) > 1:
            usage("too many arguments")
        if argv:
            url = argv[0]
        elif os.environ.get("GATEHOUSE_URL"):
            url = os.environ["GATEHOUSE_URL"].rstrip("/") + "/mcp"
        else:
            usage("give the MCP endpoint URL or set GATEHOUSE_URL")
        transport, client = http_transport(url)

    try:
        async with transport as streams:
            return await session_over(streams, script)
    finally:
        if client is not None:
            await client.aclose()


def main():
    argv = sys.argv[1:]
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    script = read_script()
    import anyio

    state = {}

    async def runner():
        state["ok"] = await main_async(argv, script)

    try:
        anyio.run(runner)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - transport failures surface here
        if isinstance(exc, KeyboardInterrupt):
            raise
        head = {"step": PROGRESS["step"]} if PROGRESS["initialized"] else {"initialized": False}
        emit(failure(head, exc))
        return 1
    return 0 if state.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
