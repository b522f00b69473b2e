// Build step: cold-start Pyodide with our loader (recording its link plan),
// load the guest's Python files, run its set-up (pre-imports, patches), then
// write the link plan (one JSON line) and the memory snapshot to stdout.
// Input on stdin, one JSON line: {"files": {path: text}, "setup": code,
// "lockFile": path, "loader": path}.
import { loadPyodide } from "../node_modules/pyodide/pyodide.mjs";
import { readMessages, send, writeAll } from "./lines.mjs";

const indexURL = new URL("../node_modules/pyodide/", import.meta.url).pathname;
const { files, setup, lockFile, loader } = (await readMessages().next()).value;
const { default: createPyodideModule } = await import(loader);

const link = (globalThis.__sandlotLink = {}); // record (src/fastlink.js)
const pyodide = await loadPyodide({
  indexURL,
  lockFileURL: lockFile,
  packageBaseUrl: new URL(".", `file://${lockFile}`).pathname,
  createPyodideModule,
  _makeSnapshot: true,
  stdout: (line) => console.error(line),
  stderr: (line) => console.error(line),
});
if (!link.plan) throw new Error("the loader recorded no link plan");
for (const [path, text] of Object.entries(files)) {
  pyodide.FS.mkdirTree(path.slice(0, path.lastIndexOf("/")));
  pyodide.FS.writeFile(path, text);
}
await pyodide.runPythonAsync(setup);
send(link.plan);
writeAll(pyodide.makeMemorySnapshot());
