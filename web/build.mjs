// Builds Hearth's browser side with esbuild:
//   node build.mjs            dist/: the client library, the world's page's, the dashboard's and the replay page's scripts;
//                             examples/*/web/dist/: the example games' pages
//   node build.mjs --check    fails if a dist/ differs from what the sources build (the test suite runs this)
//   node build.mjs --tests    the Node unit tests into dist-test/
// The files in dist/ are committed and embedded in the hearth binary, so a
// server needs no Node to serve them.

import { build } from "esbuild";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const bundles = [
  { entry: "client/src/index.ts", out: "dist/hearth-client.js", format: "esm" },
  { entry: "pages/admin.ts", out: "dist/admin.js", format: "iife" },
  { entry: "pages/replay.ts", out: "dist/replay.js", format: "iife" },
  // The built-in world's page, served at `/` (hearth_server::web::WORLD_PAGE).
  { entry: "pages/world.ts", out: "dist/world.js", format: "iife" },
  // The examples' own pages, embedded in their binaries (hearth_server::GamePage).
  { entry: "../examples/cards/web/page.ts", out: "../examples/cards/web/dist/page.js", format: "iife" },
  { entry: "../examples/tag/web/page.ts", out: "../examples/tag/web/dist/page.js", format: "iife" },
];
const common = { bundle: true, minify: true, target: ["es2022"], legalComments: "none", charset: "utf8", write: false };

async function buildAll() {
  const outputs = new Map();
  for (const { entry, out, format } of bundles) {
    const result = await build({ ...common, entryPoints: [join(here, entry)], format, outfile: join(here, out) });
    outputs.set(out, result.outputFiles[0].contents);
  }
  return outputs;
}

const mode = process.argv[2];
if (mode === "--tests") {
  const dir = join(here, "dist-test");
  rmSync(dir, { recursive: true, force: true });
  const tests = ["client/test", "test"].flatMap((dir) => readdirSync(join(here, dir)).filter((f) => f.endsWith(".test.ts")).map((f) => join(dir, f)));
  await build({
    entryPoints: tests.map((f) => join(here, f)),
    bundle: true,
    platform: "node",
    format: "esm",
    target: ["node20"],
    outdir: dir,
    outExtension: { ".js": ".mjs" },
    packages: "external",
    // Tests find the repository's files (the hearth binary, the vectors) from here.
    define: { __WEB_DIR__: JSON.stringify(here) },
  });
} else if (mode === "--check") {
  let stale = [];
  for (const [out, contents] of await buildAll()) {
    let committed;
    try {
      committed = readFileSync(join(here, out));
    } catch {
      committed = Buffer.alloc(0);
    }
    if (!Buffer.from(contents).equals(committed)) stale.push(out);
  }
  if (stale.length > 0) {
    console.error(`web: ${stale.join(", ")} differ from what the sources build: run 'npm run build' in web/ and commit the dist/ files`);
    process.exit(1);
  }
  console.log("web: dist/ is current");
} else {
  for (const [out, contents] of await buildAll()) {
    mkdirSync(dirname(join(here, out)), { recursive: true });
    writeFileSync(join(here, out), contents);
    console.log(`web: ${out} ${contents.length} bytes`);
  }
}
