// One Web Worker = one fresh Pyodide, restored from the snapshot, used for
// one run, then terminated by the host; or kept for a session's turns, parked
// between them (see park()). It runs with the permissions the host gave it:
// read the Pyodide files, reach the egress gate, nothing else.
import { loadPyodide } from "../node_modules/pyodide/pyodide.mjs";
import { lockDown } from "./lockdown.mjs";
import { changesSince, readChanged, takeManifest, WORKDIR } from "./workdir.mjs";

// Taken before any guest code runs: guest code can replace the globals
// (js.Atomics.wait = ...), never these bindings.
const { load: atomicLoad, store: atomicStore, wait: atomicWait } = Atomics;
const post = globalThis.postMessage.bind(globalThis);
const closeSelf = globalThis.close.bind(globalThis);
// Guest code must not block this thread where terminate() can't reach it (Deno's
// terminate() does not end a thread blocked in Atomics.wait, measured), nor end the
// process: src/lockdown.mjs takes those ways away before any guest code runs (the
// park above uses the binding taken first).
// The park buffer's states (src/host.mjs writes RUN and CLOSE; only this file
// writes PARKED).
const RUN = 0;
const PARKED = 1;
const CLOSE = 2;
// The interrupt buffer's last word (src/host.mjs writes it when a run's grace after its
// KeyboardInterrupt is over): Python never sees it (see stopOnAbort).
const STOP = 0x5354;
// Outbound file chunks: well under the control channel's line limit once in base64.
const CHUNK_BYTES = 4 * 1024 * 1024;

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
// A session's worker: the park buffer, shared with the host only (never on globalThis).
let parkState = null;

function flush() {
  clearTimeout(timer);
  timer = null;
  for (const [stream, text] of pending) post({ t: "out", s: stream, d: text });
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
  post({ t: "display", m: String(mimeType), d: String(data) });
};

self.onmessage = async ({ data }) => {
  try {
    if (data.op === "init") await init(data);
    else if (data.op === "run") await run(data);
    else if (data.op === "sync") sync(data);
  } catch (error) {
    post({ t: "fatal", message: String(error?.stack ?? error) });
  }
};

async function init({ module, snapshot, linkPlan, loader, indexURL, lockFile, interrupt, park, gate }) {
  parkState = new Int32Array(park);
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
    stopOnAbort(imports.env, new Int32Array(interrupt));
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
  // its own: they would outlive the run. node:worker_threads is refused by the
  // import map (src/imports.json); should a worker thread the host did not ask
  // for appear anyway, the driver restarts this Deno process.
  delete globalThis.BroadcastChannel;
  delete globalThis.Worker;
  lockDown();
  // One trivial job, ours, before any user's: the first pass through a run's
  // JS and Python paths costs about 10 ms in a fresh isolate. Nothing of it is
  // left that a run doesn't reset (env, cwd, stdin, argv, random seed, linecache).
  pyodide.globals.set("_sandlot_job", JSON.stringify({ code: "pass", result_max_bytes: 1 }));
  await pyodide.runPythonAsync(RUN_JOB);
  baseHeapBytes = pyodide._module.HEAPU8.length;
  post({ t: "ready" });
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
  // A session's turn: what /work held before the turn's files were written, so
  // that those and everything the code changes go back to the host after it.
  const before = job.session ? takeManifest(pyodide.FS) : null;
  pyodide.globals.set("_sandlot_job", JSON.stringify({ ...job, installed }));
  const outcome = await pyodide.runPythonAsync(RUN_JOB);
  if (!before) {
    end(outcome);
    return;
  }
  sendChanges(changesSince(pyodide.FS, before));
  end(outcome, { park: true });
}

function end(outcome, { park = false, exited = false } = {}) {
  flush();
  // Wasm memory only grows: what it grew by is the most the run added.
  const memoryBytes = pyodide._module.HEAPU8.length;
  const heapBytes = memoryBytes - baseHeapBytes;
  if (!park) {
    post({ t: "end", outcome, heapBytes, memoryBytes, exited });
    return;
  }
  // A session's turn is over: say so, then block this thread until the host
  // starts the next turn. Nothing the guest left scheduled (timers, promises,
  // asyncio tasks, proxies called back from JS) runs meanwhile: they wait for
  // the next turn, and run inside it, metered with it. PARKED is stored before
  // "end" is posted, so the host can tell this end from one the guest forged
  // with postMessage (the buffer is out of the guest's reach).
  atomicStore(parkState, 0, PARKED);
  post({ t: "end", outcome, heapBytes, memoryBytes, exited });
  // CLOSE: the host is done with this worker. Deno's terminate() does not reach
  // a thread blocked in Atomics.wait (measured), so the host also wakes it with
  // CLOSE, and the worker closes itself (measured: its thread is gone at once);
  // never back to the event loop, where the guest's timers wait.
  let state;
  while ((state = atomicLoad(parkState, 0)) !== RUN) {
    if (state === CLOSE) closeSelf();
    atomicWait(parkState, 0, state);
  }
}

// Code that swallows KeyboardInterrupt (a loop around `except BaseException: pass`)
// keeps its thread spinning, and terminate() mostly fails to stop it (measured): the
// thread would live on, out of reach. So the interpreter's own periodic signal check
// (an import Python calls every few dozen bytecodes while an interrupt buffer is set)
// throws once the host has written STOP there: a JavaScript exception that no Python
// `except` sees unwinds the interpreter (left broken: the worker is thrown away) back
// to the event loop, where terminate() works. The flag stays set: should a JS->Python
// boundary on the way turn it into a Python exception, the next check throws again.
function stopOnAbort(env, interrupt) {
  const check = env._Py_CheckEmscriptenSignals_Helper;
  if (typeof check !== "function") throw new Error("Pyodide has no signal check to wrap");
  env._Py_CheckEmscriptenSignals_Helper = () => {
    if (atomicLoad(interrupt, 0) === STOP) {
      closeSelf();
      throw new Error("the run was stopped");
    }
    return check();
  };
}

// os._exit(n) (_sandlot_pyodide.py): the run ends here, with the guest's exit
// outcome; the host terminates this worker on "end" (a session's too), whatever
// the interpreter does next.
globalThis.sandlotHardExit = (outcome) => end(String(outcome), { exited: true });

// A session's files, sent in before a turn (src/host.mjs relays them from the
// driver): the host's directory is the truth, this file system its copy.
function sync({ path, kind, data, append }) {
  const FS = pyodide.FS;
  const target = `${WORKDIR}/${path}`;
  if (kind === "gone") {
    removeTree(FS, target);
  } else if (kind === "dir") {
    FS.mkdirTree(target);
  } else {
    FS.mkdirTree(target.slice(0, target.lastIndexOf("/")));
    if (!append) removeTree(FS, target); // a directory or link there gives way
    const stream = FS.open(target, append ? "a" : "w");
    try {
      FS.write(stream, data, 0, data.length);
    } finally {
      FS.close(stream);
    }
  }
}

function removeTree(FS, path) {
  let stat;
  try {
    stat = FS.lstat(path);
  } catch {
    return; // nothing there
  }
  if (FS.isDir(stat.mode)) {
    for (const name of FS.readdir(path)) {
      if (name !== "." && name !== "..") removeTree(FS, `${path}/${name}`);
    }
    FS.rmdir(path);
  } else {
    FS.unlink(path);
  }
}

// What the turn changed under /work, out to the host before "end": files in
// chunks, then directories made and paths removed.
function sendChanges({ files, dirs, gone }) {
  for (const path of gone) post({ t: "gone", p: path });
  for (const path of dirs) post({ t: "dir", p: path });
  for (const path of files) {
    const bytes = readChanged(pyodide.FS, path);
    if (bytes === null) continue;
    let offset = 0;
    do {
      const chunk = bytes.slice(offset, offset + CHUNK_BYTES);
      post({ t: "file", p: path, d: chunk, a: offset > 0 }, [chunk.buffer]);
      offset += CHUNK_BYTES;
    } while (offset < bytes.length);
  }
}

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
