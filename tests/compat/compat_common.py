"""Shared scaffolding of the Python client compatibility scripts.

Each script runs the same operations twice, once against the direct DSN
(``DIRECT_DSN``) and once through the gateway (``GATEHOUSE_DSN``), records
every observable result as ``(step, value)`` pairs, and compares the two
lists. Any difference, or any step that raises through the gateway, makes
the script exit non-zero with a message naming the step. With
COMPAT_VERBOSE set, every result of the gateway run is printed.
"""

import os
import sys
import traceback
import uuid


class StepFailed(Exception):
    """A run could not complete one of its steps."""

    def __init__(self, step, cause):
        super().__init__(f"step {step!r} raised {type(cause).__name__}: {cause}")
        self.step = step
        self.cause = cause
        self.trace = "".join(traceback.format_exception(cause))


class Run:
    """The results of one run (direct or gateway), in order."""

    def __init__(self, label):
        self.label = label
        self.results = []
        self.current = "(start)"

    def step(self, name):
        run = self

        class _Step:
            def __enter__(self):
                run.current = name

            def __exit__(self, kind, exc, tb):
                if exc is not None and not isinstance(exc, StepFailed):
                    raise StepFailed(name, exc) from exc
                return False

        return _Step()

    def rec(self, name, value):
        self.results.append((f"{self.current}: {name}", value))


def dsns():
    missing = [v for v in ("DIRECT_DSN", "GATEHOUSE_DSN") if not os.environ.get(v)]
    if missing:
        sys.exit(f"set {' and '.join(missing)} (libpq URLs of the direct and the gateway session)")
    return os.environ["DIRECT_DSN"], os.environ["GATEHOUSE_DSN"]


def unique(prefix):
    """A name no parallel run uses (lower case, valid as an identifier)."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def compare(client, direct, gateway):
    """Exits non-zero on the first difference between two completed runs."""
    problems = []
    for i, (d, g) in enumerate(zip(direct.results, gateway.results)):
        if d != g:
            problems.append(
                f"  #{i} {d[0]}\n"
                f"      direct : {d[1]!r}\n"
                f"      gateway: {g[0] if g[0] != d[0] else ''}{g[1]!r}"
            )
    if len(direct.results) != len(gateway.results):
        problems.append(
            f"  direct recorded {len(direct.results)} results, gateway {len(gateway.results)}"
        )
    if os.environ.get("COMPAT_VERBOSE"):
        for name, value in gateway.results:
            text = repr(value)
            print(f"  {name} = {text[:300]}{'...' if len(text) > 300 else ''}")
    if problems:
        print(f"FAIL {client}: the gateway's results differ from the direct connection's:")
        print("\n".join(problems))
        sys.exit(1)
    print(f"OK {client}: {len(direct.results)} results identical through the gateway and direct")


def main(client, run_fn):
    """Runs `run_fn(run, dsn, direct_dsn)` directly, then through the gateway, and compares."""
    direct_dsn, gateway_dsn = dsns()
    runs = {}
    for label, dsn in (("direct", direct_dsn), ("gateway", gateway_dsn)):
        run = Run(label)
        try:
            run_fn(run, dsn, direct_dsn)
        except StepFailed as e:
            print(f"FAIL {client}: the {label} run failed at {e}")
            print(e.trace)
            if label == "gateway" and "direct" in runs:
                print("(the same step worked on the direct connection)")
            sys.exit(1)
        except Exception as e:  # noqa: BLE001 - outside any step, e.g. connecting
            print(f"FAIL {client}: the {label} run failed near step {run.current!r}: {type(e).__name__}: {e}")
            traceback.print_exc(file=sys.stdout)
            sys.exit(1)
        runs[label] = run
        print(f"{client}: {label} run completed {len(run.results)} results")
    compare(client, runs["direct"], runs["gateway"])
