// How long does a Pyodide interpreter take to start in Deno: cold, and
// restored from our snapshot in a fresh Web Worker (what every run pays),
// linked by Emscripten or by our recorded plan? Run by bench/execute.py, one
// mode per process so that its CPU time can be read; prints one JSON line.
// argv: mode (cold | emscripten | plan) rounds snapshot lockFile loader linkPlan
import { loadPyodide } from "../pyodide-runtime/node_modules/pyodide/pyodide.mjs";

const [mode, rounds, snapshotPath, lockFile, loader, planPath] = Deno.args;
const indexURL = new URL("../pyodide-runtime/node_modules/pyodide/", import.meta.url).pathname;
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];

if (mode === "cold") {
  const started = performance.now();
  const cold = await loadPyodide({ indexURL, lockFileURL: lockFile });
  cold.runPython("print(1+1)");
  console.log(JSON.stringify({ ms: performance.now() - started }));
  Deno.exit(0);
}

// As src/host.mjs does: compile once, hand each worker the module and its own
// copy of the snapshot.
const module = await WebAssembly.compile(await Deno.readFile(indexURL + "pyodide.asm.wasm"));
const snapshot = await Deno.readFile(snapshotPath);
const linkPlan = mode === "plan" ? await Deno.readTextFile(planPath) : null;
const times = [];
for (let i = 0; i < Number(rounds); i++) {
  const started = performance.now();
  const worker = new Worker(new URL("./pyodide_restore_worker.mjs", import.meta.url).href, {
    type: "module",
  });
  const own = snapshot.slice();
  await new Promise((resolve, reject) => {
    worker.onmessage = ({ data }) => (data.ok ? resolve() : reject(new Error(data.error)));
    worker.onerror = reject;
    worker.postMessage({ module, snapshot: own, indexURL, lockFile, loader, linkPlan }, [own.buffer]);
  });
  times.push(performance.now() - started);
  worker.terminate();
  await new Promise((resolve) => setTimeout(resolve, 50)); // let teardown finish
}
console.log(JSON.stringify({ ms: median(times) }));
