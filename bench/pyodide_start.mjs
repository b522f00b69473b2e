// How long does a Pyodide interpreter take to start in Deno, cold and from our snapshot?
// Run by bench/execute.py; prints one JSON line.
import { loadPyodide } from "../pyodide-runtime/node_modules/pyodide/pyodide.mjs";

const [snapshotPath, lockFile, rounds] = Deno.args;
const indexURL = new URL("../pyodide-runtime/node_modules/pyodide/", import.meta.url).pathname;
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];

let started = performance.now();
const cold = await loadPyodide({ indexURL, lockFileURL: lockFile });
cold.runPython("print(1+1)");
const coldMs = performance.now() - started;

const module = await WebAssembly.compile(await Deno.readFile(indexURL + "pyodide.asm.wasm"));
const instantiate = WebAssembly.instantiate;
WebAssembly.instantiate = async (source, imports) =>
  imports?.env?.emscripten_resize_heap
    ? { module, instance: await instantiate(module, imports) }
    : instantiate(source, imports);
const snapshot = await Deno.readFile(snapshotPath);
const restores = [];
for (let i = 0; i < Number(rounds); i++) {
  started = performance.now();
  await loadPyodide({ indexURL, lockFileURL: lockFile, _loadSnapshot: snapshot });
  restores.push(performance.now() - started);
}
console.log(JSON.stringify({ coldMs, restoreMs: median(restores) }));
