// The Deno process of one Pyodide driver: keeps pre-restored workers ready,
// runs one job at a time in one of them, and throws each away after use.
// Config (argv[0], JSON): {indexURL, snapshot, lockFile, loader, linkPlan,
// packagesDir, gate, spares, runtimeDir}.
import { readMessages, send } from "./lines.mjs";

const config = JSON.parse(Deno.args[0]);
const module = await WebAssembly.compile(await Deno.readFile(config.indexURL + "pyodide.asm.wasm"));
const snapshot = await Deno.readFile(config.snapshot);
// Text, parsed by each worker: cheaper to hand over than the object.
const linkPlan = await Deno.readTextFile(config.linkPlan);
const spares = [];
let created = 0;
let current = null;

function spawn() {
  // Deno names worker threads worker-1, worker-2, ... in creation order; the
  // driver reads that thread's CPU time to enforce cpu_ms.
  const number = ++created;
  const worker = new Worker(new URL("./worker.mjs", import.meta.url).href, {
    type: "module",
    deno: {
      permissions: {
        read: [config.runtimeDir, config.indexURL, config.loader, config.packagesDir],
        net: [config.gate],
        env: false,
        run: false,
        write: false,
        ffi: false,
        sys: false,
        import: false,
      },
    },
  });
  const interrupt = new SharedArrayBuffer(4);
  const entry = { worker, number, interrupt: new Int32Array(interrupt), listener: null };
  entry.ready = new Promise((resolve, reject) => {
    worker.onmessage = ({ data }) => {
      if (data.t === "ready") resolve();
      else if (data.t === "fatal") reject(new Error(data.message));
      else entry.listener?.(data);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      const error = new Error(event.message ?? "worker error");
      reject(error);
      entry.listener?.({ t: "fatal", message: String(error) });
    };
  });
  entry.ready.catch(() => {});
  // Each worker gets its own copy of the snapshot, handed over (transferred)
  // rather than cloned by the message: a plain copy is several times cheaper.
  // Never a shared buffer: a guest must not be able to touch the next run's.
  const ownSnapshot = snapshot.slice();
  worker.postMessage(
    {
      op: "init",
      module,
      snapshot: ownSnapshot,
      linkPlan,
      loader: config.loader,
      indexURL: config.indexURL,
      lockFile: config.lockFile,
      interrupt,
      gate: config.gate,
    },
    [ownSnapshot.buffer],
  );
  spares.push(entry);
}

function refill() {
  while (spares.length < config.spares) spawn();
}

async function run(message) {
  // With no spare ready, start one now; otherwise replace the used one after
  // the run, so that restoring doesn't compete with the run for the CPU.
  if (!spares.length) refill();
  const entry = spares.shift();
  try {
    await entry.ready;
  } catch (error) {
    entry.worker.terminate();
    refill();
    send({ t: "end", status: "internal_error", detail: `worker failed to start: ${error}` });
    return;
  }
  current = { entry, aborted: null, timer: null };
  send({ t: "started", worker: entry.number });
  const finished = new Promise((resolve) => {
    entry.listener = (data) => {
      if (data.t === "out") send(data);
      else if (data.t === "end" || data.t === "fatal") resolve(data);
    };
    current.finish = resolve;
  });
  entry.worker.postMessage({
    op: "run",
    job: message.job,
    token: message.token,
    memoryBytes: message.memoryBytes,
  });
  const result = await finished;
  clearTimeout(current.timer);
  entry.worker.terminate();
  const aborted = current.aborted;
  current = null;
  if (result.t === "end") {
    send({ t: "end", outcome: result.outcome, heapBytes: result.heapBytes, aborted });
  } else {
    // The interpreter died under the guest's code (stack overflow, a fatal
    // error) or was terminated after an abort.
    send({ t: "end", crashed: result.message, aborted });
  }
  // After answering: starting a worker copies the snapshot (tens of ms).
  refill();
}

function abort(status, graceMs) {
  if (!current || current.aborted) return;
  current.aborted = status;
  // SIGINT into the interpreter: KeyboardInterrupt at the next bytecode.
  Atomics.store(current.entry.interrupt, 0, 2);
  // Code that catches BaseException keeps going: then the worker goes.
  current.timer = setTimeout(() => current?.finish({ t: "fatal", message: "terminated" }), graceMs);
}

refill();
send({ t: "ready" });
let running = Promise.resolve();
for await (const message of readMessages()) {
  if (message.op === "run") running = running.then(() => run(message));
  else if (message.op === "abort") abort(message.status, message.graceMs ?? 200);
  else if (message.op === "exit") break;
}
await running;
Deno.exit(0);
