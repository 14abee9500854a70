#!/usr/bin/env python3
"""Crash test of the stores: SIGKILL a node mid-write, again and again, and count.

Runs tests/examples/store_crash_writer (built for wasm32-wasip1) under Lunatic, as a real OS
process, in a fresh directory, for one MODE:
  - `file`: four processes put 4 MiB values into the file store;
  - `sqlite`: 100 agents save their state into one SQLite store at once (group commit).
Each round:
  - `write`: the node saves as fast as it can, printing each acknowledged save; after a random
    number of acknowledgements it is SIGKILLed;
  - for `file`, what the kill cut short is counted: temporary files of record writes, and a last
    group of saves cut short in the store's journal (group commit: saves are journaled, fsynced
    and answered, then their records written); the next open must remove the temporary files,
    replay the journal's whole groups, drop the cut-short one, and empty the journal;
  - `check` opens the store again and reports each key's saved count, which must be at least the
    last one acknowledged before the kill (no acknowledged write lost).
Prints one line per round and a summary, ends with a `test result:` line for scripts/test, and
exits 1 on any failure. Bounded: 10 rounds, each at most 60 s.

usage: crash_store.py RUNNER WASM MODE
"""

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROUNDS = 10
ROUND_TIMEOUT = 60.0
TEMP = re.compile(r"\.rec\.tmp-")
JOURNAL = ".swarm-journal"


def temp_files(root):
    found = []
    for directory, _, names in os.walk(root):
        found += [os.path.join(directory, n) for n in names if TEMP.search(n)]
    return found


def journal_state(root):
    """(whole frames, whether a frame cut short follows them, bytes) of the file store's journal
    (format in swarm/src/store/journal.rs; the checksum is left to the store)."""
    try:
        with open(os.path.join(root, JOURNAL), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return 0, False, 0
    at, frames = 0, 0
    while at < len(data):
        header = data[at:at + 13]
        if len(header) < 13 or header[:4] != b"SWJ1":
            return frames, True, len(data)
        key_len = int.from_bytes(header[5:9], "little")
        value_len = int.from_bytes(header[9:13], "little")
        end = at + 13 + key_len + value_len + 8
        if end > len(data):
            return frames, True, len(data)
        at, frames = end, frames + 1
    return frames, False, len(data)


def run_check(runner, wasm, mode, cwd):
    out = subprocess.run(
        [runner, wasm, mode, "check", "data"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=ROUND_TIMEOUT,
    )
    if out.returncode != 0 or "checked" not in out.stdout:
        raise AssertionError(f"check run failed ({out.returncode}): {out.stderr[-2000:]}")
    loaded = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "loaded":
            loaded[parts[1]] = int(parts[2])
    return loaded, out.stderr


def write_and_kill(runner, wasm, mode, cwd, acks_wanted):
    """Starts a writer, SIGKILLs it after `acks_wanted` acknowledgements; returns the last
    acknowledged count per key."""
    proc = subprocess.Popen(
        [runner, wasm, mode, "write", "data"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    acked = {}
    seen = 0
    deadline = time.monotonic() + ROUND_TIMEOUT
    try:
        for line in proc.stdout:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "acked":
                acked[parts[1]] = max(acked.get(parts[1], 0), int(parts[2]))
                seen += 1
            if seen >= acks_wanted or time.monotonic() > deadline:
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        # Acknowledgements printed before the kill landed still count.
        rest = proc.stdout.read()
        proc.wait()
    for line in rest.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "acked":
            acked[parts[1]] = max(acked.get(parts[1], 0), int(parts[2]))
    return acked


def main():
    runner, wasm, mode = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
    work = tempfile.mkdtemp(prefix=f"swarm-crash-{mode}-store-")
    # Kill after this many acknowledgements (over all keys): more keys, more saves between kills.
    # (Enough for the kill to land at a random point of a write or a group commit; more only
    # makes each round longer on a slow disk.)
    acks_range = (6, 24) if mode == "file" else (150, 1200)
    random.seed(int(os.environ.get("SWARM_CRASH_SEED", "7")))
    failures = []
    left_by_kills = 0
    torn_by_kills = 0
    inside_a_save = 0
    survived_reopen = 0
    lost_saves = 0
    acknowledged = {}
    try:
        for round_no in range(1, ROUNDS + 1):
            acked = write_and_kill(runner, wasm, mode, work, random.randint(*acks_range))
            for key, count in acked.items():
                acknowledged[key] = max(acknowledged.get(key, 0), count)
            leftovers = temp_files(os.path.join(work, "data"))
            left_by_kills += len(leftovers)
            _, torn, _ = journal_state(os.path.join(work, "data"))
            torn_by_kills += torn
            loaded, stderr = run_check(runner, wasm, mode, work)
            after = temp_files(os.path.join(work, "data"))
            _, _, journal_after = journal_state(os.path.join(work, "data"))
            lost = {k: (n, loaded.get(k, 0)) for k, n in acked.items() if loaded.get(k, 0) < n}
            print(
                f"round {round_no}: {len(acked)} keys saved, last acknowledged count per key "
                f"{min(acked.values(), default=0)}-{max(acked.values(), default=0)}, loaded "
                f"{min(loaded.values(), default=0)}-{max(loaded.values(), default=0)}; temp files "
                f"after the kill: {len(leftovers)}, after reopening: {len(after)}"
                + (f"; journal cut short by the kill: {'yes' if torn else 'no'}, bytes left after "
                   f"reopening: {journal_after}" if mode == "file" else "")
            )
            survived_reopen += len(after)
            # A save found durable whose acknowledgement the kill kept from us: the kill landed
            # inside a save, after its commit (or took its printed answer with it).
            inside_a_save += any(loaded.get(k, 0) > n for k, n in acked.items())
            lost_saves += sum(n - loaded_n for n, loaded_n in lost.values())
            if after:
                failures.append(f"round {round_no}: {len(after)} temp files survive a reopen: {after}")
            if lost:
                failures.append(f"round {round_no}: acknowledged saves lost (acked, loaded): {lost}")
            if mode == "file" and leftovers and "removed" not in stderr:
                failures.append(f"round {round_no}: the sweep did not report what it removed")
            if mode == "file" and journal_after:
                failures.append(f"round {round_no}: the journal still holds {journal_after} bytes "
                                "after a reopen (not replayed and emptied)")
            if mode == "file" and torn and "cut short" not in stderr:
                failures.append(f"round {round_no}: the replay did not report the group the kill "
                                "cut short")
        print(
            f"{mode} store crash test: {ROUNDS} SIGKILLs mid-write, "
            f"{sum(acknowledged.values())} saves acknowledged; temporary files found after the "
            f"kills: {left_by_kills}, still there after the next open: {survived_reopen}; "
            + (f"journal groups cut short by the kills: {torn_by_kills}; " if mode == "file" else "")
            + f"rounds with a save durable but not seen acknowledged: {inside_a_save}; "
            + f"acknowledged saves lost: {lost_saves}"
        )
        if mode == "file" and left_by_kills + torn_by_kills + inside_a_save == 0:
            # Not a failure of the store, but then this run proved nothing about the recovery.
            failures.append("no kill landed mid-write in any round (no temp file to sweep, no "
                            "journal group cut short, no save durable but not seen acknowledged)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for failure in failures:
        print(f"FAILED: {failure}")
    print(f"test result: {'ok' if not failures else 'FAILED'}. "
          f"{0 if failures else 1} passed; {1 if failures else 0} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
