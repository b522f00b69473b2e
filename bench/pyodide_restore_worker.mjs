// bench/pyodide_start.mjs's worker: restore one interpreter, run print(1+1), answer.
import { loadPyodide } from "../pyodide-runtime/node_modules/pyodide/pyodide.mjs";

self.onmessage = async ({ data: { module, snapshot, indexURL, lockFile, loader, linkPlan } }) => {
  try {
    const instantiate = WebAssembly.instantiate;
    WebAssembly.instantiate = async (source, imports) =>
      imports?.env?.emscripten_resize_heap
        ? { module, instance: await instantiate(module, imports) }
        : instantiate(source, imports);
    const options = { indexURL, lockFileURL: lockFile, _loadSnapshot: snapshot };
    if (linkPlan) {
      options.createPyodideModule = (await import(loader)).default;
      globalThis.__sandlotLink = { plan: JSON.parse(linkPlan) };
    }
    const pyodide = await loadPyodide(options);
    pyodide.runPython("print(1+1)");
    self.postMessage({ ok: true });
  } catch (error) {
    self.postMessage({ ok: false, error: String(error) });
  }
};
