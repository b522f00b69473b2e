// Build step: cold-start Pyodide, load the guest's Python files, run its
// set-up (pre-imports, patches) and write the memory snapshot to stdout.
// Input on stdin, one JSON line: {"files": {path: text}, "setup": code}.
import { loadPyodide } from "../node_modules/pyodide/pyodide.mjs";
import { readMessages, writeAll } from "./lines.mjs";

const indexURL = new URL("../node_modules/pyodide/", import.meta.url).pathname;
const { files, setup, lockFile } = (await readMessages().next()).value;

const pyodide = await loadPyodide({
  indexURL,
  lockFileURL: lockFile,
  packageBaseUrl: new URL(".", `file://${lockFile}`).pathname,
  _makeSnapshot: true,
  stdout: (line) => console.error(line),
  stderr: (line) => console.error(line),
});
for (const [path, text] of Object.entries(files)) {
  pyodide.FS.mkdirTree(path.slice(0, path.lastIndexOf("/")));
  pyodide.FS.writeFile(path, text);
}
await pyodide.runPythonAsync(setup);
writeAll(pyodide.makeMemorySnapshot());
