// One Web Worker = one fresh Pyodide, restored from the snapshot, used for
// one run, then terminated by the host. It runs with the permissions the
// host gave it: read the Pyodide files, reach the egress gate, nothing else.
import { loadPyodide } from "../node_modules/pyodide/pyodide.mjs";

const RUN_JOB = "import _sandlot_pyodide\nawait _sandlot_pyodide.run(_sandlot_job)";
let pyodide;
let lock = { packages: {} };
let lockDir = "";
const packagesByImport = new Map();
let memoryCapBytes = Infinity;
let runToken = "";
const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };

// Output is batched: one message per burst instead of one per write. The
// first write after a quiet spell goes out at once (so a print before a long
// computation streams); the rest of a burst waits at most FLUSH_MS or
// FLUSH_CHARS, or for the end of the run.
const FLUSH_MS = 20;
const FLUSH_CHARS = 16384;
let pending = [];
let pendingChars = 0;
let lastFlush = 0;
let timer = null;
let baseHeapBytes = 0;

function flush() {
  clearTimeout(timer);
  timer = null;
  for (const [stream, text] of pending) self.postMessage({ t: "out", s: stream, d: text });
  pending = [];
  pendingChars = 0;
  lastFlush = performance.now();
}

function write(stream, text) {
  const last = pending[pending.length - 1];
  if (last && last[0] === stream) last[1] += text;
  else pending.push([stream, text]);
  pendingChars += text.length;
  const now = performance.now();
  if (pendingChars >= FLUSH_CHARS || now - lastFlush >= FLUSH_MS) flush();
  else timer ??= setTimeout(flush, FLUSH_MS);
}

// sandlot.display's transport (pyodide-runtime/py/_sandlot_pyodide.py): what was printed
// before the output goes first, so the stream keeps the run's order.
self.sandlotDisplay = (mimeType, data) => {
  flush();
  self.postMessage({ t: "display", m: String(mimeType), d: String(data) });
};

self.onmessage = async ({ data }) => {
  try {
    if (data.op === "init") await init(data);
    else if (data.op === "run") await run(data);
  } catch (error) {
    self.postMessage({ t: "fatal", message: String(error?.stack ?? error) });
  }
};

async function init({ module, snapshot, linkPlan, loader, indexURL, lockFile, interrupt, gate }) {
  // Before Pyodide loads: its pyfetch binds `fetch` when the snapshot is restored.
  routeFetchThroughGate(gate);
  // Instantiate the wasm the host compiled once, and cap heap growth: past
  // the run's memory limit, growth fails and Python raises MemoryError.
  const instantiate = WebAssembly.instantiate;
  const isPyodide = (imports) => typeof imports?.env?.emscripten_resize_heap === "function";
  WebAssembly.instantiate = async (source, imports) => {
    if (!isPyodide(imports)) return instantiate(source, imports);
    const resize = imports.env.emscripten_resize_heap;
    imports.env.emscripten_resize_heap = (size) =>
      (size >>> 0) > memoryCapBytes ? 0 : resize(size);
    return { module, instance: await instantiate(module, imports) };
  };
  const instantiateStreaming = WebAssembly.instantiateStreaming;
  WebAssembly.instantiateStreaming = (response, imports) =>
    isPyodide(imports)
      ? WebAssembly.instantiate(module, imports)
      : instantiateStreaming(response, imports);
  // Our copy of Pyodide's loader links the module by the plan recorded with
  // the snapshot (src/fastlink.js) instead of Emscripten's per-start loops.
  const { default: createPyodideModule } = await import(loader);
  const misfit = new Promise((_, fail) => {
    globalThis.__sandlotLink = { plan: JSON.parse(linkPlan), fail };
  });
  pyodide = await Promise.race([
    loadPyodide({
      indexURL,
      lockFileURL: lockFile,
      packageBaseUrl: lockFile.slice(0, lockFile.lastIndexOf("/") + 1),
      createPyodideModule,
      _loadSnapshot: snapshot,
    }),
    misfit,
  ]);
  if ("__sandlotLink" in globalThis) throw new Error("the loader did not link by the plan");
  pyodide.setInterruptBuffer(new Int32Array(interrupt));
  lockDir = lockFile.slice(0, lockFile.lastIndexOf("/") + 1);
  lock = JSON.parse(await Deno.readTextFile(lockFile));
  for (const [name, entry] of Object.entries(lock.packages)) {
    for (const module of entry.imports ?? []) packagesByImport.set(module, normalizeName(name));
  }
  // The stdlib's zoneinfo finds its time zones in the tzdata package (WebAssembly has no
  // /usr/share/zoneinfo): code that imports zoneinfo gets tzdata loaded with it.
  if (lock.packages.tzdata) packagesByImport.set("zoneinfo", "tzdata");
  // Sibling workers must not talk to each other (measured: BroadcastChannel
  // crosses workers of one process), and a guest must not start workers of
  // its own: they would outlive the run. Deleting the global is the polite
  // refusal; node:worker_threads can still make one, and the driver kills
  // the whole Deno process when a worker thread it did not ask for appears.
  delete globalThis.BroadcastChannel;
  delete globalThis.Worker;
  // One trivial job, ours, before any user's: the first pass through a run's
  // JS and Python paths costs about 10 ms in a fresh isolate. Nothing of it is
  // left that a run doesn't reset (env, cwd, stdin, argv, random seed, linecache).
  pyodide.globals.set("_sandlot_job", JSON.stringify({ code: "pass", result_max_bytes: 1 }));
  await pyodide.runPythonAsync(RUN_JOB);
  baseHeapBytes = pyodide._module.HEAPU8.length;
  self.postMessage({ t: "ready" });
}

async function run({ job, token, memoryBytes }) {
  memoryCapBytes = memoryBytes;
  runToken = token;
  for (const stream of ["stdout", "stderr"]) {
    const setter = stream === "stdout" ? "setStdout" : "setStderr";
    pyodide[setter]({
      write(bytes) {
        const text = decoders[stream].decode(bytes, { stream: true });
        if (text) write(stream, text);
        return bytes.length;
      },
    });
  }
  await loadPackages(job);
  // The operator's packages, named in a missing module's error.
  const installed = Object.keys(lock.packages);
  pyodide.globals.set("_sandlot_job", JSON.stringify({ ...job, installed }));
  end(await pyodide.runPythonAsync(RUN_JOB));
}

function end(outcome) {
  flush();
  // Wasm memory only grows: what it grew by is the most the run added.
  const heapBytes = pyodide._module.HEAPU8.length - baseHeapBytes;
  self.postMessage({ t: "end", outcome, heapBytes });
}

// os._exit(n) (_sandlot_pyodide.py): the run ends here, with the guest's exit
// outcome; the host terminates this worker on "end", whatever the interpreter
// does next.
globalThis.sandlotHardExit = (outcome) => end(String(outcome));

// Every fetch goes to the host's egress gate, which decides and forwards.
// This wrapper routes; it enforces nothing: the worker's net permission
// (the gate's address only) is the boundary.
function routeFetchThroughGate(gate) {
  const gateFetch = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    flush(); // what was printed before a request is out before it waits
    const request = new Request(input, init);
    const headers = new Headers(request.headers);
    headers.set("x-sandlot-run", runToken);
    headers.set("x-sandlot-target", request.url);
    headers.set("x-sandlot-method", request.method);
    const body = ["GET", "HEAD"].includes(request.method)
      ? undefined
      : new Uint8Array(await request.arrayBuffer());
    const reply = await gateFetch(`http://${gate}/fetch`, {
      method: "POST",
      headers,
      body,
      redirect: "manual",
    });
    if (reply.headers.get("x-sandlot-refused")) throw new TypeError(await reply.text());
    const response = new Response([101, 204, 205, 304].includes(reply.status) ? null : reply.body, {
      status: reply.status,
      statusText: reply.statusText,
      headers: reply.headers,
    });
    Object.defineProperty(response, "url", { value: reply.headers.get("x-sandlot-url") ?? "" });
    return response;
  };
}

// Packages come only from our lock file and the wheels beside it (the driver
// checked they are there); nothing is downloaded, nothing is written on the
// host. Named requirements load first, then whatever the code imports that
// the lock file knows; dependencies come along.
async function loadPackages(job) {
  const wanted = new Set((job.requirements ?? []).map(normalizeName));
  for (const name of importedPackages(job.code)) wanted.add(name);
  const order = [];
  const visit = (name) => {
    const entry = lock.packages[name];
    if (!entry || order.includes(name)) return;
    order.push(name);
    for (const dependency of entry.depends ?? []) visit(normalizeName(dependency));
  };
  for (const name of wanted) visit(name);
  if (!order.length) return;
  const extractDir = pyodide.runPython("import sysconfig; sysconfig.get_path('purelib')");
  for (const name of order) {
    const bytes = await Deno.readFile(lockDir + lock.packages[name].file_name);
    pyodide.unpackArchive(bytes, "wheel", { extractDir });
  }
  pyodide.runPython("import importlib; importlib.invalidate_caches()");
}

function importedPackages(code) {
  // Parsing the code costs a few ms: only when an installed package could match.
  if (![...packagesByImport.keys()].some((name) => code.includes(name))) return [];
  try {
    const findImports = pyodide.pyimport("pyodide.code").find_imports;
    return findImports(code).toJs().map((name) => packagesByImport.get(name)).filter(Boolean);
  } catch {
    return []; // code that doesn't parse: the run reports the SyntaxError itself
  }
}

function normalizeName(name) {
  return name.toLowerCase().replace(/[-_.]+/g, "-");
}
