// Used by tests/engines/test_pyodide_loader.py. Restores the snapshot three
// ways in this one process and prints what it found, as one JSON line:
// Emscripten's own linking, our loader replaying the build's plan, and our
// loader given a plan that does not fit.
// argv: indexDir/ snapshot lockFile loader linkPlan
import { loadPyodide } from "../../../pyodide-runtime/node_modules/pyodide/pyodide.mjs";

const [indexURL, snapshotPath, lockFile, loader, planPath] = Deno.args;
const { default: createPyodideModule } = await import(loader);
const snapshot = await Deno.readFile(snapshotPath);
const planText = await Deno.readTextFile(planPath);
const plan = JSON.parse(planText);
const imported = new Set(plan.imports.map(([index]) => index));

const restore = (options) =>
  loadPyodide({ indexURL, lockFileURL: lockFile, _loadSnapshot: snapshot.slice(), ...options });

// A table slot as far as JS can tell: a wasm function's name is its index in
// its own module; JS imports are wrapped in modules of their own, so for them
// only the arity can be compared.
function state(pyodide) {
  const { wasmTable, GOT } = pyodide._module;
  const table = [];
  for (let i = 0; i < wasmTable.length; i++) {
    const func = wasmTable.get(i);
    table.push(func === null ? null : imported.has(i) ? `arity ${func.length}` : func.name);
  }
  return { table, got: plan.gotNames.map((name) => GOT[name]?.value ?? null) };
}

const emscripten = await restore({});
const expected = state(emscripten);

globalThis.__sandlotLink = {};
const recording = globalThis.__sandlotLink;
await restore({ createPyodideModule });

globalThis.__sandlotLink = { plan };
const replayed = await restore({ createPyodideModule });
const actual = state(replayed);

// As the worker does: Pyodide's loader never settles after a failed
// instantiation, so the plan's own failure is raced against it.
let misfit = null;
const failed = new Promise((_, fail) => {
  globalThis.__sandlotLink = { plan: { ...plan, tableStart: plan.tableStart + 1 }, fail };
});
try {
  await Promise.race([restore({ createPyodideModule }), failed]);
} catch (error) {
  misfit = String(error?.message ?? error);
}

const differing = (a, b) => a.flatMap((value, i) => (value === b[i] ? [] : [i]));
console.log(
  JSON.stringify({
    tableLength: [expected.table.length, actual.table.length],
    tableDiffers: differing(expected.table, actual.table).slice(0, 20),
    gotDiffers: differing(expected.got, actual.got).map((i) => plan.gotNames[i]).slice(0, 20),
    unlinkedGot: expected.got.filter((value) => value === -1 || value === null).length,
    recordedMatchesBuild: JSON.stringify(recording.plan) === JSON.stringify(plan),
    replayedRuns: replayed.runPython("import json, statistics; json.dumps(statistics.mean([1, 2]))"),
    misfit,
  }),
);
