#!/usr/bin/env python3
"""swarm's two changes to a copy of lunatic-process (scripts/setup builds Lunatic with them).

1. **wasmtime's compilation cache.** Lunatic compiles every module with Cranelift each time it
   starts it: 3-10 CPU-seconds for a swarm node or test binary. With the cache, a module compiled
   once is loaded from disk the next time (a node restarted after a crash, a test suite starting
   the same node forty times). The cache is wasmtime's own (content-addressed by module and
   compiler settings, cleaned up by size):

   - `LUNATIC_CACHE_CONFIG=<file>`: a wasmtime cache config file (its `[cache]` table: `enabled`,
     `directory`, size limits); scripts/test points it at one under the target directory;
   - `LUNATIC_CACHE_CONFIG=off`: no cache, as stock Lunatic;
   - unset: wasmtime's default (its config file if there is one, else ~/.cache/wasmtime).

2. **Messages keep their order after a receive that timed out.** A receive that times out
   leaves its waiter registered in the mailbox. The next message to arrive is then handed to that
   waiter (the mailbox's `found` slot) instead of being queued, and the messages after it are
   queued; the next receive put `found` back at the *end* of the queue, behind them. So a process
   that waited with a timeout and then did anything else that waits (an agent whose save timer ran
   out saves its state) could read one sender's messages out of order (tests/tests/runtime/
   mailbox_order.rs: about half of them). Patched: `found` goes back where it arrived, after the
   messages queued before it and before the ones queued after.

Each change checks that the source is the one it was written for, and fails loudly otherwise.

usage: lunatic-patches.py <lunatic-process source dir>
"""

import pathlib
import sys

COMPILE_CACHE = (
    "src/runtimes/wasmtime.rs",
    [
        (
            """        .static_memory_forced(true);
    config
}""",
            """        .static_memory_forced(true);
    // swarm's build of Lunatic (scripts/lunatic-patches.py): wasmtime's compilation cache.
    let cache = match std::env::var_os("LUNATIC_CACHE_CONFIG") {
        Some(value) if value == "off" => Ok(&mut config),
        Some(file) => config.cache_config_load(file),
        None => config.cache_config_load_default(),
    };
    if let Err(err) = cache {
        eprintln!("lunatic: compiling without a cache: {err:#}");
    }
    config
}""",
            1,
        ),
    ],
)

MAILBOX_ORDER = (
    "src/mailbox.rs",
    [
        (
            """    found: Option<Message>,
    messages: VecDeque<Message>,
}""",
            """    found: Option<Message>,
    // swarm's build of Lunatic (scripts/lunatic-patches.py): how many messages were queued when
    // `found` arrived, where it goes back if its receive gave up on it.
    found_at: usize,
    messages: VecDeque<Message>,
}""",
            1,
        ),
        (
            """            if let Some(found) = mailbox.found.take() {
                mailbox.messages.push_back(found);
            }""",
            """            if let Some(found) = mailbox.found.take() {
                let at = mailbox.found_at.min(mailbox.messages.len());
                mailbox.messages.insert(at, found);
            }""",
            2,
        ),
        (
            """                mailbox.found = Some(message);
                waker.wake();""",
            """                mailbox.found = Some(message);
                mailbox.found_at = mailbox.messages.len();
                waker.wake();""",
            1,
        ),
    ],
)


def apply(root, change):
    path, edits = change
    source = root / path
    text = source.read_text()
    for upstream, patched, count in edits:
        if text.count(upstream) != count:
            sys.exit(f"{source}: not the lunatic-process these patches are for (expected "
                     f"{count} of:\n{upstream})")
        text = text.replace(upstream, patched)
    source.write_text(text)


def main():
    root = pathlib.Path(sys.argv[1])
    for change in [COMPILE_CACHE, MAILBOX_ORDER]:
        apply(root, change)


if __name__ == "__main__":
    main()
