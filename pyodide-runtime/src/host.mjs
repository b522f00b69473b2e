// The Deno process of one Pyodide driver: keeps pre-restored workers ready,
// runs one job at a time in one of them, and throws each away after use.
// Config (stdin, one JSON object; never argv, which workers could read):
// {indexURL, snapshot, lockFile, loader, linkPlan, packagesDir, gate, spares,
// runtimeDir, control, nonce}. Messages travel over the control connection
// (src/channel.mjs), which no worker can reach.
import { Channel, readStdin } from "./channel.mjs";

const config = await readStdin();
const channel = await Channel.connect(config.control, config.nonce);
const module = await WebAssembly.compile(await Deno.readFile(config.indexURL + "pyodide.asm.wasm"));
const snapshot = await Deno.readFile(config.snapshot);
// Text, parsed by each worker: cheaper to hand over than the object.
const linkPlan = await Deno.readTextFile(config.linkPlan);
const STREAMS = new Set(["stdout", "stderr"]);
const FATAL_GRACE_MS = 50;
const spares = [];
let created = 0;
let current = null;

function spawn() {
  // Deno names worker threads worker-1, worker-2, ... in creation order; the
  // driver reads that thread's CPU time to enforce cpu_ms, and treats any
  // worker thread numbered above `created` as one a guest started.
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
      if (entry.listener) entry.listener(data);
      else if (data?.t === "ready") resolve();
      else reject(new Error(data?.t === "fatal" ? String(data.message) : "unexpected message"));
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

// What a worker may say during a run. Guest code can post messages too, so
// every one is checked; anything else ends the run as a violation.
function fromWorker(data) {
  if (data?.t === "out" && STREAMS.has(data.s) && typeof data.d === "string") return data;
  // A rich output (sandlot.display, a table): the Python host checks its type and data.
  if (data?.t === "display" && typeof data.m === "string" && typeof data.d === "string") {
    return { t: "display", m: data.m.slice(0, 100), d: data.d };
  }
  if (data?.t === "end" && typeof data.outcome === "string") {
    const heapBytes = Number.isSafeInteger(data.heapBytes) && data.heapBytes >= 0 ? data.heapBytes : 0;
    return { t: "end", outcome: data.outcome, heapBytes };
  }
  if (data?.t === "fatal") return { t: "fatal", message: String(data.message) };
  return { t: "violation", message: "the worker sent a message the host does not accept" };
}

async function run({ id, job, token, memoryBytes }) {
  // With no spare ready, start one now; otherwise replace the used one after
  // the run, so that restoring doesn't compete with the run for the CPU.
  if (!spares.length) refill();
  const entry = spares.shift();
  try {
    await entry.ready;
  } catch (error) {
    entry.worker.terminate();
    refill();
    channel.send({ t: "end", id, failed: `worker failed to start: ${error}` });
    return;
  }
  current = { id, entry, aborted: null, timer: null };
  channel.send({ t: "started", id, worker: entry.number, created });
  const finished = new Promise((resolve) => {
    entry.listener = (data) => {
      const message = fromWorker(data);
      if (message.t === "out") channel.send({ t: "out", id, s: message.s, d: message.d });
      else if (message.t === "display") channel.send({ t: "display", id, m: message.m, d: message.d });
      // A worker's error event and its last message travel apart: os._exit posts "end"
      // and then brings the interpreter down, and the error may be seen first.
      else if (message.t === "fatal") setTimeout(() => resolve(message), FATAL_GRACE_MS);
      else resolve(message);
    };
    current.finish = resolve;
  });
  entry.worker.postMessage({ op: "run", job, token, memoryBytes });
  const result = await finished;
  entry.listener = () => {};
  clearTimeout(current.timer);
  entry.worker.terminate();
  const aborted = current.aborted;
  current = null;
  if (result.t === "end") {
    channel.send({ t: "end", id, outcome: result.outcome, heapBytes: result.heapBytes, aborted });
  } else if (result.t === "violation") {
    channel.send({ t: "end", id, violation: result.message, aborted });
  } else {
    // The interpreter died under the guest's code (stack overflow, a fatal
    // error) or was terminated after an abort.
    channel.send({ t: "end", id, crashed: result.message, aborted });
  }
  // The spare is replaced when the driver says so (op "refill"), after it
  // has looked for worker threads the guest started: until then every worker
  // thread numbered above `created` is the guest's. Starting a worker also
  // copies the snapshot (tens of ms), better done after answering anyway.
}

function abort({ id, status, graceMs }) {
  if (!current || current.id !== id || current.aborted) return;
  current.aborted = String(status);
  // SIGINT into the interpreter: KeyboardInterrupt at the next bytecode.
  Atomics.store(current.entry.interrupt, 0, 2);
  // Code that catches BaseException keeps going: then the worker goes.
  const finish = current.finish;
  current.timer = setTimeout(() => finish({ t: "fatal", message: "terminated" }), graceMs);
}

refill();
channel.send({ t: "ready" });
let running = Promise.resolve();
for await (const message of channel.messages()) {
  if (message.op === "run" && Number.isSafeInteger(message.id)) {
    running = running.then(() => run(message));
  } else if (message.op === "refill") {
    running = running.then(refill);
  } else if (message.op === "abort" && Number.isSafeInteger(message.graceMs)) {
    abort(message);
  } else if (message.op === "exit") {
    break;
  } else {
    // Only the driver writes here; anything else means the channel is not ours.
    Deno.exit(2);
  }
}
await running;
await channel.flush();
Deno.exit(0);
