"""Reliability figures (issue 12): kills, concurrent writers, damage, bad input, bombs,
uploads cancelled by a client that hangs up, tenants.

Run ``python -m bench.reliability [--kills 12]``; writes ``bench/results/reliability.md``.
Every figure is counted from real faults on this machine: SIGKILLed processes, several
writer processes at once, files damaged on disk, hostile HTTP requests to a real
uvicorn server, and the tenant-isolation tests run with pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
sys.path[:0] = [str(ROOT), str(TESTS)]

import httpx  # noqa: E402
from embedders import GatedEmbedder, HashingEmbedder  # noqa: E402
from hostile_inputs import run_battery  # noqa: E402
from live_server import serve  # noqa: E402
from pdf_bombs import bomb_pdf  # noqa: E402
from upload_client import (  # noqa: E402
    LONG_TEXT,
    hang_up,
    read_until,
    send_upload,
    slow_pdf,
    watch_uploads,
)

from bench._common import Table, fmt, machine, write_results  # noqa: E402
from sem_mem import SemanticMemory  # noqa: E402
from sem_mem.backends.sqlite_recover import recover_store  # noqa: E402


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS)])
    return env


# -- kill trials --------------------------------------------------------------------------

# Each child prints one line per acknowledged step; the parent SIGKILLs it at a random
# acknowledged step and then checks that everything acknowledged is there.
KILL_CHILDREN = {
    "remember_batch": """
import sys
from embedders import HashingEmbedder
from sem_mem import SemanticMemory
m = SemanticMemory(sys.argv[1], embedder=HashingEmbedder())
texts = [f"kill trial memory {i}" for i in range(20000)]
for start in range(0, len(texts), 500):  # each call returns once its chunk is committed
    m.remember_batch(texts[start : start + 500])
    print(start + 500, flush=True)
""",
    "remember": """
import sys
from embedders import HashingEmbedder
from sem_mem import SemanticMemory
m = SemanticMemory(sys.argv[1], embedder=HashingEmbedder())
for i in range(100000):
    m.remember(f"single kill trial memory {i}")
    print(i + 1, flush=True)
""",
    "import": """
import json, sys
from embedders import HashingEmbedder
from sem_mem import SemanticMemory
m = SemanticMemory(sys.argv[1], namespace="copy", embedder=HashingEmbedder())
lines = (json.dumps({"type": "memory", "id": f"imp-{i}", "text": f"imported {i}"})
         for i in range(100000))
def tagged():
    for n, line in enumerate(lines, 1):
        if n % 500 == 1 and n > 1:
            print(n - 1, flush=True)
        yield line
m.import_jsonl(tagged())
""",
    "reembed": """
import sys
from embedders import HashingEmbedder
from sem_mem import SemanticMemory
m = SemanticMemory(sys.argv[1], embedder=HashingEmbedder())
m.reembed(HashingEmbedder(32), progress=lambda done, total: print(done, flush=True))
""",
}


def kill_trial(kind: str, store: Path, rng: random.Random) -> dict[str, Any]:
    if kind == "reembed":
        with SemanticMemory(str(store), embedder=HashingEmbedder()) as memory:
            memory.remember_batch([f"to reembed {i}" for i in range(3000)])
    child = subprocess.Popen(
        [sys.executable, "-c", KILL_CHILDREN[kind], str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    assert child.stdout is not None
    steps = rng.randint(1, 12)
    acknowledged = 0
    for _ in range(steps):
        line = child.stdout.readline()
        if not line:
            break
        acknowledged = int(line)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    found, usable, problems = 0, True, []
    try:
        namespace = "copy" if kind == "import" else "default"
        embedders = [HashingEmbedder(), HashingEmbedder(32)] if kind == "reembed" else [None]
        for embedder in embedders:
            try:
                memory = SemanticMemory(
                    str(store), namespace=namespace, embedder=embedder or HashingEmbedder()
                )
            except Exception:
                continue
            with memory:
                found = len(memory)
                report = memory.check(repair=True)
                problems = [p["check"] for p in report["problems"]]
                if found:
                    memory.recall(memory.list(limit=1)[0].text, limit=1)
            break
        else:
            usable = False
    except Exception as exc:  # counted as an unusable store
        usable, problems = False, [repr(exc)]
    expected = 3000 if kind == "reembed" else acknowledged
    return {
        "kind": kind,
        "acknowledged": acknowledged,
        "found": found,
        "lost": max(0, expected - found),
        "usable": usable,
        "repaired": problems,
    }


# -- concurrent writers -------------------------------------------------------------------

WRITER = """
import sys
from embedders import HashingEmbedder
from sem_mem import SemanticMemory
store, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with SemanticMemory(store, embedder=HashingEmbedder()) as m:
    for i in range(n):
        m.remember(f"writer {who} memory {i}")
"""


def concurrent_writers(processes: int, each: int, work: Path) -> dict[str, Any]:
    store = work / f"writers-{processes}"
    started = time.perf_counter()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store), str(p), str(each)],
            env=_env(),
            stderr=subprocess.PIPE,
        )
        for p in range(processes)
    ]
    errors = []
    for child in children:
        _, err = child.communicate()
        if child.returncode != 0:
            errors.append(err.decode(errors="replace").strip().splitlines()[-1:])
    failed = len(errors)
    elapsed = time.perf_counter() - started
    with SemanticMemory(str(store), embedder=HashingEmbedder()) as memory:
        found = len(memory)
        ok = memory.check()["ok"]
    return {
        "processes": processes,
        "written": processes * each,
        "found": found,
        "failed": failed,
        "errors": errors,
        "check_ok": ok,
        "seconds": elapsed,
    }


# -- corruption ---------------------------------------------------------------------------


def corruption_cases(work: Path) -> list[dict[str, Any]]:
    from test_doctor import _garble_middle_page, damage_derived
    from test_index_damage import make_store, run_damage_battery

    out = []
    store = work / "damage-index"
    make_store(store)
    total, repaired = run_damage_battery(store)
    for n in range(total):
        ok = n < len(repaired) and not repaired[n].startswith("!!")
        out.append({"case": f"index file: {repaired[n] if ok else 'case ' + str(n)}",
                    "detected": ok, "repaired": ok})  # fmt: skip

    store = work / "damage-derived"
    with SemanticMemory(str(store), embedder=HashingEmbedder()) as memory:
        memory.remember_batch([f"memory {i} about topic{i}" for i in range(2600)])
    damage_derived(store)
    with SemanticMemory(str(store), embedder=HashingEmbedder()) as memory:
        found = {p["check"] for p in memory.check()["problems"]}
        fixed = memory.check(repair=True)
        after = memory.check()["ok"]
    for check in ("fulltext", "counts", "index", "temp files"):
        out.append(
            {
                "case": f"derived: {check}",
                "detected": check in found,
                # (a rebuilt index's save also removes the temp files: either way they go)
                "repaired": after and check in found | {p["check"] for p in fixed["problems"]},
            }
        )

    for name, damage in (
        ("sqlite: garbled middle page", _garble_middle_page),
        ("sqlite: truncated to 60%", _truncate),
    ):
        store = work / name.split(":")[1].strip().replace(" ", "-").replace("%", "")
        with SemanticMemory(str(store), embedder=HashingEmbedder()) as memory:
            memory.remember_batch([f"memory {i} about topic{i}" for i in range(2600)])
        damage(store / "memory.sqlite3")
        detected = True
        try:
            with SemanticMemory(str(store), embedder=HashingEmbedder()) as memory:
                detected = not memory.check()["ok"]
        except Exception:  # refusing to open is detecting it too
            detected = True
        report = recover_store(store, store.with_name(store.name + "-recovered"))
        out.append(
            {
                "case": name,
                "detected": detected,
                "repaired": report["recovered"] > 0,
                "note": f"{report['recovered']} recovered, {report['unreadable_rows']} lost",
            }
        )
    return out


def _truncate(db: Path) -> None:
    with db.open("r+b") as fh:
        fh.truncate(db.stat().st_size * 6 // 10)


# -- bad input, bombs, tenants ------------------------------------------------------------


def bad_input(work: Path) -> dict[str, Any]:
    with serve(work / "bad-input") as url, httpx.Client(base_url=url, timeout=120) as client:
        results = run_battery(client)
    statuses = [status for _, status, _ in results]
    named = sum(case.names in detail for case, _, detail in results)
    return {
        "cases": len(results),
        "4xx": sum(400 <= s < 500 for s in statuses),
        "5xx": sum(s >= 500 for s in statuses),
        "named": named,
    }


def bombs(work: Path) -> list[dict[str, Any]]:
    out = []
    with serve(work / "bombs") as url, httpx.Client(base_url=url, timeout=600) as client:
        for name, pdf in (
            ("1 page inflating to 10 MiB", bomb_pdf(10 * 2**20)),
            ("500 pages sharing a 1 MiB stream", bomb_pdf(2**20, pages=500)),
            ("1 page inflating to 60 MiB", bomb_pdf(60 * 2**20)),
        ):
            started = time.perf_counter()
            response = client.post("/upload/pdf", files={"file": ("bomb.pdf", pdf)})
            elapsed = time.perf_counter() - started
            body = response.json()
            out.append(
                {
                    "bomb": name,
                    "file_bytes": len(pdf),
                    "status": response.status_code,
                    "limit": body.get("limit"),
                    "seconds": elapsed,
                    "stored": len(client.get("/memories").json()["memories"]),
                }
            )
    return out


def _memories(client: httpx.Client) -> int:
    return len(client.get("/memories", params={"limit": 1000}).json()["memories"])


def cancel_on_disconnect(work: Path) -> list[dict[str, Any]]:
    """A client uploads, then hangs up while the server reads the PDF (a legal 20-page one,
    ~1 s of pypdf a page) or stores its chunks (the embedder holds the second slice until
    the server has noticed the hang-up), on the plain and the ``?progress=true`` path."""
    out = []
    for stage in ("reading", "storing"):
        for progress in (False, True):
            gated = GatedEmbedder(free=1) if stage == "storing" else HashingEmbedder()
            store = work / f"cancel-{stage}-{progress}"
            with (
                watch_uploads(600) as log,
                serve(store, embedder=gated) as url,
                httpx.Client(base_url=url, timeout=600) as client,
            ):
                name, data = (
                    ("slow.pdf", slow_pdf())
                    if stage == "reading"
                    else ("long.txt", LONG_TEXT.encode())
                )
                sock = send_upload(url, name, data, progress=progress, timeout=600)
                if isinstance(gated, GatedEmbedder):
                    gated.held.wait(600)
                else:
                    log.wait("started")
                started = time.perf_counter()
                health = client.get("/health").status_code
                health_s = time.perf_counter() - started
                stored_before = _memories(client)
                if progress and isinstance(gated, GatedEmbedder):
                    read_until(sock, b'"done"')
                hung_up = time.perf_counter()
                hang_up(sock)
                log.wait("disconnected")
                if isinstance(gated, GatedEmbedder):
                    gated.release.set()
                log.wait("cancelled")
                (gone,) = log.cancelled
                out.append(
                    {
                        "path": "progress" if progress else "plain",
                        "stage": gone.stage,
                        "done": gone.done,
                        "total": gone.total,
                        "removed": gone.removed,
                        "stored_when_hung_up": stored_before,
                        "left": _memories(client),
                        "noticed_s": log.at["disconnected"] - hung_up,
                        "stopped_s": log.at["cancelled"] - hung_up,
                        "health": health,
                        "health_s": health_s,
                        "batches": getattr(gated, "calls", None),
                    }
                )
    with (
        serve(work / "cancel-whole") as url,
        httpx.Client(base_url=url, timeout=600) as client,
    ):
        started = time.perf_counter()
        whole = client.post("/upload/pdf", files={"file": ("slow.pdf", slow_pdf())})
        out.append(
            {
                "path": "plain",
                "stage": "not interrupted",
                "status": whole.status_code,
                "seconds": time.perf_counter() - started,
                "limit": whole.json().get("limit"),
            }
        )
    return out


SIDE_CHANNELS = {
    "embedding cache timing (stored text)": "tests/test_tenant_isolation.py::"
    "test_a_text_bob_stored_is_embedded_anew_for_alice",
    "embedding cache timing (asked query)": "tests/test_tenant_isolation.py::"
    "test_a_query_bob_asked_is_embedded_anew_for_alice",
    "id existence through import": "tests/test_tenant_isolation.py::"
    "test_importing_an_id_does_not_depend_on_other_tenants",
    "/stats store-wide figures": "tests/test_server_auth.py::"
    "test_stats_show_tenants_only_their_own_figures",
    "namespace file names": "tests/test_tenant_isolation.py::"
    "test_a_namespace_named_like_anothers_file_shares_nothing",
    "previous_response_id of another tenant": "tests/test_server_auth.py::"
    "test_previous_response_id_must_be_the_callers_own",
}


def side_channels() -> list[dict[str, Any]]:
    out = []
    for name, node in SIDE_CHANNELS.items():
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", node],
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
        )
        out.append({"channel": name, "test": node, "closed": proc.returncode == 0})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=5, help="SIGKILL trials per operation")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="semmem-reliability-"))
    figures: dict[str, Any] = {}
    try:
        trials = []
        for kind in KILL_CHILDREN:
            for n in range(args.kills):
                trials.append(kill_trial(kind, work / f"kill-{kind}-{n}", rng))
        figures["kills"] = trials
        figures["writers"] = [concurrent_writers(p, 200, work) for p in (2, 4)]
        figures["corruption"] = corruption_cases(work)
        figures["bad_input"] = bad_input(work)
        figures["bombs"] = bombs(work)
        figures["cancel"] = cancel_on_disconnect(work)
        figures["side_channels"] = side_channels()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table = Table("Reliability (issue 12)", ["figure", "result"])
    kills = figures["kills"]
    for kind in KILL_CHILDREN:
        mine = [t for t in kills if t["kind"] == kind]
        table.add(
            f"SIGKILL during {kind}",
            f"{len(mine)} trials, {sum(t['lost'] for t in mine)} acknowledged memories lost, "
            f"{sum(not t['usable'] for t in mine)} stores unusable, "
            f"{sum(bool(t['repaired']) for t in mine)} needed a derived repair",
        )
    for run in figures["writers"]:
        table.add(
            f"{run['processes']} writer processes at once",
            f"{run['found']}/{run['written']} memories kept, {run['failed']} failed, "
            f"check {'ok' if run['check_ok'] else 'NOT ok'} ({fmt(run['seconds'], 1)} s)"
            + "".join(f"; failure: {e[0]}" for e in run["errors"] if e),
        )
    damage = figures["corruption"]
    table.add(
        "corruption cases",
        f"{sum(c['detected'] for c in damage)}/{len(damage)} detected, "
        f"{sum(c['repaired'] for c in damage)}/{len(damage)} repaired or recovered",
    )
    bad = figures["bad_input"]
    table.add(
        "bad-input battery (HTTP)",
        f"{bad['cases']} cases: {bad['4xx']} 4xx, {bad['5xx']} 5xx, "
        f"{bad['named']} name the field or limit",
    )
    bounded = figures["bombs"]
    table.add(
        "PDF bombs bounded",
        f"{sum(b['status'] == 413 and b['stored'] == 0 for b in bounded)}/{len(bounded)} "
        "refused with 413 naming the limit, slowest "
        f"{fmt(max(b['seconds'] for b in bounded), 2)} s",
    )
    cancelled = [c for c in figures["cancel"] if c["stage"] != "not interrupted"]
    (whole,) = [c for c in figures["cancel"] if c["stage"] == "not interrupted"]
    reading = [c for c in cancelled if c["stage"] == "reading"]
    table.add(
        "uploads cancelled on disconnect",
        f"{sum(c['left'] == 0 for c in cancelled)}/{len(cancelled)} stopped, 0 chunks left "
        "(plain and progress path, hang-up while reading and while storing); reading "
        f"stopped in page {max(c['done'] for c in reading) + 1} of {reading[0]['total']} "
        f"at most, {fmt(max(c['stopped_s'] for c in reading), 2)} s after the hang-up "
        f"(the whole PDF: {fmt(whole['seconds'], 1)} s); /health meanwhile "
        f"{fmt(max(c['health_s'] for c in cancelled) * 1000, 0)} ms at most",
    )
    channels = figures["side_channels"]
    table.add(
        "tenant side channels closed",
        f"{sum(c['closed'] for c in channels)}/{len(channels)}",
    )
    details = Table("Details", ["case", "result"])
    for case in damage:
        details.add(
            case["case"],
            ("detected" if case["detected"] else "MISSED")
            + (", repaired" if case["repaired"] else ", NOT repaired")
            + (f" ({case['note']})" if case.get("note") else ""),
        )
    for bomb in bounded:
        details.add(
            f"bomb: {bomb['bomb']} ({bomb['file_bytes']:,} bytes)",
            f"{bomb['status']} {bomb['limit']} in {fmt(bomb['seconds'], 2)} s, "
            f"{bomb['stored']} stored",
        )
    for case in cancelled:
        unit = "pages" if case["stage"] == "reading" else "chunks"
        details.add(
            f"hang-up while {case['stage']}, {case['path']} path",
            f"stopped after {case['done']} of {case['total']} {unit} done, "
            f"{fmt(case['stopped_s'], 2)} s after the hang-up (noticed in "
            f"{fmt(case['noticed_s'] * 1000, 0)} ms); {case['stored_when_hung_up']} chunks "
            f"stored then, {case['removed']} removed, {case['left']} left; /health "
            f"{case['health']} in {fmt(case['health_s'] * 1000, 0)} ms meanwhile",
        )
    details.add(
        "the same PDF, not interrupted",
        f"{whole['status']}{' ' + whole['limit'] if whole['limit'] else ''} "
        f"in {fmt(whole['seconds'], 1)} s",
    )
    for channel in channels:
        state = "closed" if channel["closed"] else "OPEN"
        details.add(f"side channel: {channel['channel']}", state)
    table.notes = [
        "Kill trials: the child is SIGKILLed after a random number (1-12) of acknowledged "
        "steps (a committed chunk, a returned remember, 500 imported lines, a reembed batch); "
        "the store is then reopened, checked and repaired with `check(repair=True)`, recalled.",
        "The same battery against main before these changes (f74d3a3): 34 cases, 3 4xx, "
        "23 5xx, 8 accepted (stored out-of-range or unusable values). Every side-channel and "
        "index-damage test above fails there (tests/test_tenant_isolation.py, "
        "tests/test_index_damage.py).",
        "Uploads cancelled on disconnect: a raw-socket client sends the whole upload and "
        "closes the connection once the server has started (reading: its log says so; "
        "storing: the test embedder holds the second slice of 64 chunks, released once the "
        "server has logged the hang-up). Before (b947de2) the `?progress=true` path had no "
        "cancellation (reading and storing went on to the end), and the plain path kept "
        "the slices committed before the hang-up.",
    ]
    for t in (table, details):
        print(t.markdown())
    md, _ = write_results(
        "reliability",
        title="Reliability",
        intro=["Produced by `python -m bench.reliability`."],
        tables=[table, details],
        meta=machine(("hnswlib", "pypdf", "uvicorn")),
        data=json.loads(json.dumps(figures, default=str)),
    )
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
