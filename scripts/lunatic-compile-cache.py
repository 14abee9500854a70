#!/usr/bin/env python3
"""Turns wasmtime's compilation cache on in a copy of lunatic-process (scripts/setup builds
Lunatic with it).

Lunatic compiles every module with Cranelift each time it starts it: 3-10 CPU-seconds for a swarm
node or test binary. With the cache, a module compiled once is loaded from disk the next time (a
node restarted after a crash, a test suite starting the same node forty times). The cache is
wasmtime's own (content-addressed by module and compiler settings, cleaned up by size):

- `LUNATIC_CACHE_CONFIG=<file>`: a wasmtime cache config file (its `[cache]` table: `enabled`,
  `directory`, size limits); scripts/test points it at one under the target directory;
- `LUNATIC_CACHE_CONFIG=off`: no cache, as stock Lunatic;
- unset: wasmtime's default (its config file if there is one, else ~/.cache/wasmtime).

usage: lunatic-compile-cache.py <lunatic-process source dir>
"""

import pathlib
import sys

UPSTREAM = """        .static_memory_forced(true);
    config
}"""

PATCHED = """        .static_memory_forced(true);
    // swarm's build of Lunatic (scripts/lunatic-compile-cache.py): wasmtime's compilation cache.
    let cache = match std::env::var_os("LUNATIC_CACHE_CONFIG") {
        Some(value) if value == "off" => Ok(&mut config),
        Some(file) => config.cache_config_load(file),
        None => config.cache_config_load_default(),
    };
    if let Err(err) = cache {
        eprintln!("lunatic: compiling without a cache: {err:#}");
    }
    config
}"""


def main():
    source = pathlib.Path(sys.argv[1]) / "src" / "runtimes" / "wasmtime.rs"
    text = source.read_text()
    if text.count(UPSTREAM) != 1:
        sys.exit(f"{source}: not the lunatic-process this patch is for (its default_config "
                 "did not end as expected)")
    source.write_text(text.replace(UPSTREAM, PATCHED))


if __name__ == "__main__":
    main()
