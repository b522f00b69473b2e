// The Deno process of one Pyodide driver: keeps pre-restored workers ready,
// runs one job at a time in one of them, and throws each away after use;
// or keeps one for a session, parked between its turns.
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
// A session worker's park buffer (src/worker.mjs): RUN lets its thread go on,
// PARKED is what it writes, itself, just before it posts a turn's end.
const RUN = 0;
const PARKED = 1;
const CLOSE = 2;
// Written into a worker's interrupt buffer when its KeyboardInterrupt was not enough:
// its interpreter's next signal check throws past the guest's code (src/worker.mjs).
const STOP = 0x5354;
const spares = [];
// Session id -> its worker's entry, kept between turns.
const sessions = new Map();
let created = 0;
let current = null;
// Runs and turns received but not started yet (waiting for a spare, or behind
// the one in progress), by id: an abort for one of them is kept here.
const queued = new Map();

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
  // Only this isolate and the worker's own module code hold it: guest code
  // can't reach it to wake its thread between turns.
  const park = new SharedArrayBuffer(4);
  const entry = {
    worker,
    number,
    interrupt: new Int32Array(interrupt),
    park: new Int32Array(park),
    listener: null,
  };
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
      park,
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
    return {
      t: "end",
      outcome: data.outcome,
      heapBytes: count(data.heapBytes),
      memoryBytes: count(data.memoryBytes),
      exited: data.exited === true,
    };
  }
  // A session's turn: what it changed under /work (the driver checks every path).
  if (data?.t === "file" && typeof data.p === "string" && data.d instanceof Uint8Array) {
    return { t: "file", p: data.p, d: data.d.toBase64(), a: data.a === true };
  }
  if ((data?.t === "dir" || data?.t === "gone") && typeof data.p === "string") {
    return { t: data.t, p: data.p };
  }
  if (data?.t === "fatal") return { t: "fatal", message: String(data.message) };
  return { t: "violation", message: "the worker sent a message the host does not accept" };
}

function count(value) {
  return Number.isSafeInteger(value) && value >= 0 ? value : 0;
}

// A spare, restored and warmed up; null (and the driver told) if it failed.
async function takeSpare(id) {
  // With no spare ready, start one now; otherwise replace the used one after
  // the run, so that restoring doesn't compete with the run for the CPU.
  if (!spares.length) refill();
  const entry = spares.shift();
  try {
    await entry.ready;
    return entry;
  } catch (error) {
    entry.worker.terminate();
    refill();
    channel.send({ t: "end", id, failed: `worker failed to start: ${error}` });
    return null;
  }
}

// Relays one run's (or turn's) messages from its worker until it ends.
function follow(id, entry) {
  current = { id, entry, aborted: null, timer: null };
  channel.send({ t: "started", id, worker: entry.number, created });
  return new Promise((resolve) => {
    entry.listener = (data) => {
      const message = fromWorker(data);
      if (message.t === "out") channel.send({ t: "out", id, s: message.s, d: message.d });
      else if (message.t === "display") channel.send({ t: "display", id, m: message.m, d: message.d });
      else if (message.t === "file") channel.send({ t: "file", id, p: message.p, d: message.d, a: message.a });
      else if (message.t === "dir" || message.t === "gone") channel.send({ t: message.t, id, p: message.p });
      // A worker's error event and its last message travel apart: os._exit posts "end"
      // and then brings the interpreter down, and the error may be seen first.
      else if (message.t === "fatal") setTimeout(() => resolve(message), FATAL_GRACE_MS);
      else resolve(message);
    };
    current.finish = resolve;
  });
}

function sendEnd(id, result, aborted, extra = {}) {
  if (result.t === "end") {
    const { outcome, heapBytes, memoryBytes } = result;
    channel.send({ t: "end", id, outcome, heapBytes, memoryBytes, aborted, ...extra });
  } else if (result.t === "violation") {
    channel.send({ t: "end", id, violation: result.message, aborted, ...extra });
  } else {
    // The interpreter died under the guest's code (stack overflow, a fatal
    // error) or was terminated after an abort.
    channel.send({ t: "end", id, crashed: result.message, aborted, ...extra });
  }
}

// The abort that came for a run or turn before it started (its wall time ran out
// while a spare was restoring on a busy machine), or null: the job is then not
// started at all. Kept for the run in progress instead, the abort would have
// found nothing to stop and been lost, and the job would have run unmetered by
// its deadline until the driver gave up on Deno.
function unqueue(id) {
  const aborted = queued.get(id)?.aborted ?? null;
  queued.delete(id);
  return aborted;
}

async function run({ id, job, token, memoryBytes }) {
  if (queued.get(id)?.aborted) {
    channel.send({ t: "end", id, aborted: unqueue(id) });
    return;
  }
  const entry = await takeSpare(id);
  const early = unqueue(id);
  if (!entry) return;
  if (early) {
    spares.unshift(entry); // untouched: still a fresh spare
    channel.send({ t: "end", id, aborted: early });
    return;
  }
  const finished = follow(id, entry);
  entry.worker.postMessage({ op: "run", job, token, memoryBytes });
  const result = await finished;
  entry.listener = () => {};
  clearTimeout(current.timer);
  // Also after an "end": guest code can post one and go on spinning.
  Atomics.store(entry.interrupt, 0, STOP);
  entry.worker.terminate();
  const aborted = current.aborted;
  current = null;
  sendEnd(id, result, aborted);
  // The spare is replaced when the driver says so (op "refill"), after it
  // has looked for worker threads the guest started: until then every worker
  // thread numbered above `created` is the guest's. Starting a worker also
  // copies the snapshot (tens of ms), better done after answering anyway.
}

// A session: a spare worker, kept (with its memory cap) under the session's id.
async function open({ id, session, memoryBytes }) {
  const entry = await takeSpare(id);
  if (!entry) return;
  // Until its first turn the worker has run only our own code: nothing to park.
  entry.listener = () => {};
  entry.memoryBytes = memoryBytes;
  sessions.set(session, entry);
  channel.send({ t: "opened", id, worker: entry.number, created });
}

// One file change for a session's /work, queued for its worker (parked: it
// applies them in order when its next turn starts, before the turn's code).
function sync({ session, path, kind, data, append }) {
  const entry = sessions.get(session);
  if (!entry) return;
  if (kind === "file") {
    const bytes = Uint8Array.fromBase64(data);
    entry.worker.postMessage({ op: "sync", path, kind, data: bytes, append }, [bytes.buffer]);
  } else {
    entry.worker.postMessage({ op: "sync", path, kind });
  }
}

async function turn({ id, session, job, token }) {
  const entry = sessions.get(session);
  const early = unqueue(id);
  if (early && entry) {
    // Still parked, nothing of the turn ran: the driver ends the session as for any
    // turn stopped by a limit (it sends "close").
    channel.send({ t: "end", id, aborted: early, kept: true });
    return;
  }
  if (!entry) {
    channel.send({ t: "end", id, failed: "the session's worker is gone", kept: false });
    return;
  }
  const finished = follow(id, entry);
  // Wake the parked thread, then hand it the job (it queues behind the files sent
  // in). In this order: RUN written after the job could land after a quick turn's
  // own PARKED and let its thread go on unparked.
  Atomics.store(entry.park, 0, RUN);
  Atomics.notify(entry.park, 0);
  entry.worker.postMessage({ op: "run", job: { ...job, session: true }, token, memoryBytes: entry.memoryBytes });
  const result = await finished;
  entry.listener = () => {};
  clearTimeout(current.timer);
  const aborted = current.aborted;
  current = null;
  // A real end comes from our module code, which writes PARKED first and then
  // blocks; guest code can post an "end" too, but can't touch the buffer.
  const parked = Atomics.load(entry.park, 0) === PARKED;
  let verdict = result;
  if (result.t === "end" && !parked && !result.exited) {
    verdict = { t: "violation", message: "the worker said its turn ended while it was still running" };
  }
  const kept = verdict.t === "end" && !verdict.exited && !aborted;
  if (!kept) {
    dismiss(entry);
    sessions.delete(session);
  }
  sendEnd(id, verdict, aborted, { kept });
}

function close({ session }) {
  const entry = sessions.get(session);
  if (!entry) return;
  sessions.delete(session);
  dismiss(entry);
}

// Terminate a session's worker, parked or not. Deno's terminate() does not
// reach a thread blocked in Atomics.wait (measured): the thread is also woken
// with CLOSE (never RUN), on which it closes itself (src/worker.mjs).
function dismiss(entry) {
  Atomics.store(entry.interrupt, 0, STOP);
  Atomics.store(entry.park, 0, CLOSE);
  entry.worker.terminate();
  Atomics.notify(entry.park, 0);
}

function abort({ id, status, graceMs }) {
  const waiting = queued.get(id);
  if (waiting) {
    waiting.aborted ??= String(status);
    return;
  }
  if (!current || current.id !== id || current.aborted) return;
  current.aborted = String(status);
  // SIGINT into the interpreter: KeyboardInterrupt at the next bytecode.
  Atomics.store(current.entry.interrupt, 0, 2);
  // Code that catches BaseException keeps going: then the worker goes, its
  // interpreter stopped at its next signal check (terminate() alone mostly fails to
  // stop a spinning thread, measured).
  const { finish, entry } = current;
  current.timer = setTimeout(() => {
    Atomics.store(entry.interrupt, 0, STOP);
    finish({ t: "fatal", message: "terminated" });
  }, graceMs);
}

refill();
channel.send({ t: "ready" });
let running = Promise.resolve();
for await (const message of channel.messages()) {
  if (message.op === "run" && Number.isSafeInteger(message.id)) {
    queued.set(message.id, { aborted: null });
    running = running.then(() => run(message));
  } else if (message.op === "open" && Number.isSafeInteger(message.id) && typeof message.session === "string") {
    running = running.then(() => open(message));
  } else if (message.op === "sync" && typeof message.session === "string" && typeof message.path === "string") {
    running = running.then(() => sync(message));
  } else if (message.op === "turn" && Number.isSafeInteger(message.id) && typeof message.session === "string") {
    queued.set(message.id, { aborted: null });
    running = running.then(() => turn(message));
  } else if (message.op === "close" && typeof message.session === "string") {
    running = running.then(() => close(message));
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
