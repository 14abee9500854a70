// Builds the dashboard into dist/: one bundle of the page's code and the NATS client (esbuild,
// from node_modules: nothing is fetched from a CDN), next to the page and its style. The `swarm`
// command line embeds dist/ when it is compiled (cli/build.rs). scripts/setup runs this.

import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
mkdirSync(dist, { recursive: true });

await build({
  entryPoints: [join(here, "src", "main.js")],
  outfile: join(dist, "dashboard.js"),
  bundle: true,
  minify: true,
  format: "iife",
  // Chromium, Firefox and Safari of the last few years.
  target: ["es2020"],
  legalComments: "eof",
  logLevel: "warning",
});
for (const file of ["index.html", "style.css"]) {
  copyFileSync(join(here, "src", file), join(dist, file));
}
console.log(`dashboard built into ${dist}`);
