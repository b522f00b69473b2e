// Sandlot playground: POST /v1/generate and /v1/execute with `stream: true`, and show
// their Server-Sent Events as they come. With "Keep state", Run goes to one session
// (/v1/sessions) instead, and the session's files are listed after each run. The events are read from fetch's body stream
// (EventSource can only GET); docs/ai.md and docs/api.md describe them.

const $ = (id) => document.getElementById(id);

const ui = {
  key: $("key"),
  runtime: $("runtime"),
  keySource: $("key-source"),
  cpuMs: $("cpu-ms"),
  wallMs: $("wall-ms"),
  memoryMb: $("memory-mb"),
  stdin: $("stdin"),
  files: $("files"),
  allowedHosts: $("allowed-hosts"),
  modelNotice: $("model-notice"),
  task: $("task"),
  generate: $("generate"),
  code: $("code"),
  attempts: $("attempts"),
  run: $("run"),
  stop: $("stop"),
  status: $("status"),
  summary: $("summary"),
  message: $("message"),
  output: $("output"),
  outputs: $("outputs"),
  result: $("result"),
  resultValue: $("result-value"),
  error: $("error"),
  traceback: $("traceback"),
  keepState: $("keep-state"),
  session: $("session"),
  sessionState: $("session-state"),
  sessionFiles: $("session-files"),
};

// The open session of "Keep state": {id, key}, or null.
let session = null;

// The code is kept across reloads; the key never is (see "Remembered settings").
const STORAGE = { runtime: "sandlot.playground.runtime", code: "sandlot.playground.code" };
// Where earlier versions kept the key; removed on load (see "Remembered settings").
const OLD_KEY_STORAGE = "sandlot.playground.key";

// The request in flight (one at a time); Stop aborts it, and the service cancels the
// run when the connection closes.
let inFlight = null;

// Where this server wrote the development admin key, when it did (GET /playground/setup.json).
let keyFile = null;

// ---- Server-Sent Events over a fetch body ------------------------------------------

// Yields {event, data} for each event of a text/event-stream body; lines end in CRLF,
// LF or CR, comments (pings) are skipped, data lines are joined with "\n".
async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  let event = "";
  let data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      let text = pending + value;
      // A CR at the end may be the first half of a CRLF: keep it for the next chunk.
      const heldCR = text.endsWith("\r");
      if (heldCR) text = text.slice(0, -1);
      const lines = text.split(/\r\n|\r|\n/);
      pending = lines.pop() + (heldCR ? "\r" : "");
      for (const line of lines) {
        if (line === "") {
          if (data.length) yield { event: event || "message", data: data.join("\n") };
          event = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") event = val;
        else if (field === "data") data.push(val);
      }
    }
  } finally {
    reader.releaseLock();
  }
}

// ---- Showing things -----------------------------------------------------------------

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

function showMessage(text) {
  ui.message.textContent = text;
  ui.message.hidden = !text;
}

function append(text, kind) {
  const out = ui.output;
  const atBottom = out.scrollHeight - out.scrollTop - out.clientHeight < 24;
  const span = document.createElement("span");
  span.className = kind;
  span.textContent = text;
  out.append(span);
  if (atBottom) out.scrollTop = out.scrollHeight;
}

function note(text) {
  const out = ui.output;
  const needsBreak = out.textContent !== "" && !out.textContent.endsWith("\n");
  append(`${needsBreak ? "\n" : ""}${text}\n`, "note");
}

function clearRun() {
  ui.outputs.replaceChildren();
  ui.outputs.hidden = true;
  ui.result.hidden = true;
  ui.error.hidden = true;
  ui.resultValue.textContent = "";
  ui.traceback.textContent = "";
}

function clearAll() {
  ui.output.textContent = "";
  ui.summary.textContent = "";
  showMessage("");
  clearRun();
}

function setBusy(busy) {
  ui.generate.disabled = busy;
  ui.run.disabled = busy;
  ui.stop.disabled = !busy;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

// One rich output (a chart, a table). Images go in <img> (an SVG in an image runs no
// script); HTML from the run goes in a sandboxed frame without allow-same-origin or
// allow-scripts, so it can't run script, nor reach this page, its key or its origin.
const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif"];

function showOutput({ mime_type: type, data }) {
  let node;
  if (IMAGE_TYPES.includes(type) || type === "image/svg+xml") {
    node = document.createElement("img");
    const encoded = IMAGE_TYPES.includes(type) ? data : btoa(unescape(encodeURIComponent(data)));
    node.src = `data:${type};base64,${encoded}`;
    node.alt = `${type} output`;
  } else if (type === "text/html") {
    node = document.createElement("iframe");
    node.setAttribute("sandbox", "");
    node.setAttribute("referrerpolicy", "no-referrer");
    node.title = "HTML output";
    node.srcdoc = data;
  } else {
    node = document.createElement("pre");
    node.className = "output";
    node.textContent = data;
  }
  node.classList.add("rich-item");
  ui.outputs.append(node);
  ui.outputs.hidden = false;
}

// The events of one run, the same in /v1/execute's stream and inside /v1/generate's
// `run` events. Returns the run's status on `end`, else null.
function onRunEvent(name, data) {
  switch (name) {
    case "start":
      clearRun();
      setStatus("busy", "running");
      return null;
    case "stdout":
    case "stderr":
      append(data.text, name);
      return null;
    case "subrequest":
      note(`${data.method} ${data.url} → ${data.status ?? data.reason ?? "failed"}`);
      return null;
    case "display":
      showOutput(data);
      return null;
    case "files":
      for (const file of data.files) {
        note(`file ${file.path}: ${plural(file.size, "byte")}${file.truncated ? " (over the cap)" : ""}`);
      }
      return null;
    case "result":
      ui.resultValue.textContent = data.repr + (data.truncated ? " …(truncated)" : "");
      ui.result.hidden = false;
      return null;
    case "end":
      if (data.error) {
        const { type, message, traceback } = data.error;
        ui.traceback.textContent = traceback || `${type}: ${message}`;
        ui.error.hidden = false;
      }
      if (data.output_truncated) note("(output truncated at the output limit)");
      return data.status;
    default:
      return null;
  }
}

// ---- Talking to the API ---------------------------------------------------------

// A refused request in plain words, from the JSON error body's message.
async function describeRefusal(response) {
  let message = "";
  try {
    message = (await response.json()).error.message;
  } catch {
    message = response.statusText || "no details";
  }
  switch (response.status) {
    case 401:
      return `The API key was not accepted: ${message}. Paste a valid key above.`;
    case 403:
      return `This key may not do that: ${message}.`;
    case 422:
      return `The request was refused: ${message}.`;
    case 429:
      return `The service is busy: ${message}.`;
    case 503:
      return `The service can't do this now: ${message}.`;
    default:
      return `The service answered ${response.status}: ${message}.`;
  }
}

function limits() {
  const chosen = {};
  const inputs = [["cpu_ms", ui.cpuMs], ["wall_ms", ui.wallMs], ["memory_mb", ui.memoryMb]];
  for (const [name, input] of inputs) {
    if (input.value.trim() !== "") chosen[name] = Number(input.value);
  }
  return chosen;
}

function allowedHosts() {
  return ui.allowedHosts.value.split(/[\s,]+/).filter(Boolean);
}

// The chosen files as /v1/execute's `files`: name → {content: base64, encoding}.
async function chosenFiles() {
  const files = {};
  for (const file of ui.files.files) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    }
    files[file.name] = { content: btoa(binary), encoding: "base64" };
  }
  return files;
}

// POSTs `body` as a stream and hands each event to `onEvent`, which returns true for
// the stream's terminal event. Shows refusals, network failures and a stop.
async function stream(path, body, onEvent, { plain = false } = {}) {
  const key = ui.key.value.trim();
  clearAll();
  if (!key) {
    setStatus("bad", "no key");
    showMessage(
      keyFile
        ? `Enter an API key first: this server wrote its development admin key to ${keyFile}.`
        : "Enter an API key first: the admin key or a namespace's key.",
    );
    ui.key.focus();
    return;
  }
  inFlight = new AbortController();
  setBusy(true);
  setStatus("busy", "sending");
  try {
    const response = await fetch(path, {
      method: "POST",
      headers: {
        authorization: `Bearer ${key}`,
        "content-type": "application/json",
        accept: "text/event-stream",
      },
      body: JSON.stringify(
        plain
          ? { ...body, stream: true }
          : {
            ...body,
            runtime: ui.runtime.value,
            limits: limits(),
            allowed_hosts: allowedHosts(),
            stream: true,
          },
      ),
      signal: inFlight.signal,
    });
    if (!response.ok) {
      setStatus("bad", `HTTP ${response.status}`);
      showMessage(await describeRefusal(response));
      return;
    }
    let ended = false;
    for await (const { event, data } of readEvents(response.body)) {
      ended = onEvent(event, JSON.parse(data)) || ended;
    }
    if (!ended) {
      setStatus("bad", "interrupted");
      showMessage("The stream ended without its end event: the service may have restarted.");
    }
  } catch (error) {
    if (error.name === "AbortError") {
      setStatus("stopped", "stopped");
      ui.summary.textContent =
        "Stopped: the request was aborted, and the service cancels a run whose caller left.";
    } else {
      setStatus("bad", "error");
      showMessage(`Could not talk to the service: ${error.message}`);
    }
  } finally {
    inFlight = null;
    setBusy(false);
  }
}

function generate() {
  if (inFlight) return;
  ui.attempts.textContent = "";
  let attempt = null;
  stream("/v1/generate", { task: ui.task.value }, (event, data) => {
    switch (event) {
      case "attempt":
        attempt = document.createElement("li");
        attempt.textContent = `attempt ${data.attempt} (${data.kind})`;
        ui.attempts.append(attempt);
        ui.code.value = "";
        note(`── attempt ${data.attempt} (${data.kind}) ──`);
        setStatus("busy", data.kind === "repair" ? "repairing" : "generating");
        return false;
      case "token":
        ui.code.value += data.text;
        ui.code.scrollTop = ui.code.scrollHeight;
        return false;
      case "code":
        ui.code.value = data.code;
        saveCode();
        return false;
      case "run": {
        const status = onRunEvent(data.event, data.data);
        if (status !== null && attempt) {
          attempt.dataset.state = status === "ok" ? "ok" : "bad";
          attempt.textContent += `: ${status}`;
        }
        return false;
      }
      case "deploy":
        note(`deployed ${data.namespace}/${data.worker} ${data.version ?? "(no version)"}: ` +
          `GET / → ${data.status ?? "-"}`);
        return false;
      case "end":
        if (data.code !== null) ui.code.value = data.code;
        saveCode();
        setStatus(data.status === "ok" ? "ok" : "bad", data.status);
        ui.summary.textContent =
          `${data.status}: run ${data.run_status ?? "none"}, ${plural(data.attempts, "attempt")}`;
        if (data.error && data.status !== "ok") {
          showMessage(`${data.error.type}: ${data.error.message}`);
        }
        return true;
      default:
        return false;
    }
  });
}

async function run() {
  if (inFlight) return;
  const body = { code: ui.code.value, files: await chosenFiles() };
  if (ui.stdin.value !== "") body.stdin = ui.stdin.value;
  let sessionState = null;
  const onEvent = (event, data) => {
    if (event === "session") {
      sessionState = data;
      return false;
    }
    const status = onRunEvent(event, data);
    if (status === null) return false;
    setStatus(status === "ok" ? "ok" : "bad", status);
    const { wall_ms: wall, cpu_ms: cpu } = data.usage;
    ui.summary.textContent = `${status}: ${Math.round(wall)} ms wall, ${Math.round(cpu)} ms CPU`;
    return true;
  };
  if (!ui.keepState.checked) {
    await stream("/v1/execute", body, onEvent);
    return;
  }
  const id = await openSession();
  if (id === null) return;
  const { memory_mb: _, ...turnLimits } = limits();
  await stream(`/v1/sessions/${id}/execute`, { ...body, limits: turnLimits }, onEvent, {
    plain: true,
  });
  if (sessionState?.state === "ended") {
    showSession(
      `Session ${id} ended (${sessionState.ended_reason}): the next run starts a new one.`,
    );
    ui.sessionFiles.textContent = "";
    session = null;
    return;
  }
  await listSessionFiles();
}

// ---- Keep state: one session for every run ---------------------------------------

function sessionHeaders(json = false) {
  const headers = { authorization: `Bearer ${ui.key.value.trim()}` };
  if (json) headers["content-type"] = "application/json";
  return headers;
}

function showSession(text) {
  ui.session.hidden = false;
  ui.sessionState.textContent = text;
}

// The session's id, opening one first if there is none for this key and runtime (one kept
// for another is closed); null when refused.
async function openSession() {
  const key = ui.key.value.trim();
  if (session && session.key === key && session.runtime === ui.runtime.value) return session.id;
  if (session) await closeSession();
  if (!key) {
    clearAll();
    setStatus("bad", "no key");
    showMessage("Enter an API key first: the admin key or a namespace's key.");
    ui.key.focus();
    return null;
  }
  const body = { runtime: ui.runtime.value, allowed_hosts: allowedHosts() };
  const { memory_mb: memory, ...turnLimits } = limits();
  body.limits = turnLimits;
  if (memory !== undefined) body.memory_mb = memory;
  let response;
  try {
    response = await fetch("/v1/sessions", {
      method: "POST",
      headers: sessionHeaders(true),
      body: JSON.stringify(body),
    });
  } catch (error) {
    setStatus("bad", "error");
    showMessage(`Could not talk to the service: ${error.message}`);
    return null;
  }
  if (response.status !== 201) {
    clearAll();
    setStatus("bad", `HTTP ${response.status}`);
    showMessage(await describeRefusal(response));
    return null;
  }
  session = { id: (await response.json()).id, key, runtime: body.runtime };
  return session.id;
}

async function listSessionFiles() {
  if (!session) return;
  const response = await fetch(`/v1/sessions/${session.id}/files`, { headers: sessionHeaders() });
  if (!response.ok) {
    showSession(await describeRefusal(response));
    if (response.status === 410 || response.status === 404) session = null;
    return;
  }
  const listing = await response.json();
  showSession(`Session ${session.id} (${session.runtime}): ` +
    `${plural(listing.files.length, "file")}, ` +
    `${listing.total_bytes} of ${listing.quota_bytes} bytes.`);
  ui.sessionFiles.textContent = "";
  for (const file of listing.files) {
    const item = document.createElement("li");
    item.textContent = `${file.path} (${file.size} bytes)`;
    ui.sessionFiles.append(item);
  }
}

async function closeSession() {
  const closing = session;
  session = null;
  ui.sessionFiles.textContent = "";
  if (!closing) {
    ui.session.hidden = true;
    return;
  }
  try {
    await fetch(`/v1/sessions/${closing.id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${closing.key}` },
    });
  } finally {
    showSession(`Session ${closing.id} closed: runs start fresh again.`);
  }
}

ui.keepState.addEventListener("change", () => {
  if (!ui.keepState.checked) closeSession();
});
// A session lives in one engine: another runtime starts a new one (at the next run).
ui.runtime.addEventListener("change", () => {
  if (session) closeSession();
});

// ---- The editor and the keyboard ------------------------------------------------

// Tab indents to the next multiple of four; after Esc, Tab moves focus as usual.
let escaped = false;
ui.code.addEventListener("keydown", (event) => {
  if (event.key === "Escape") {
    escaped = true;
    return;
  }
  const modified = event.shiftKey || event.ctrlKey || event.altKey || event.metaKey;
  if (event.key === "Tab" && !escaped && !modified) {
    event.preventDefault();
    const start = ui.code.selectionStart;
    const column = start - (ui.code.value.lastIndexOf("\n", start - 1) + 1);
    const spaces = " ".repeat(4 - (column % 4));
    // insertText keeps the browser's undo history; setRangeText where it's missing.
    if (!document.execCommand("insertText", false, spaces)) {
      ui.code.setRangeText(spaces, start, ui.code.selectionEnd, "end");
    }
  }
  escaped = false;
});

document.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
  event.preventDefault();
  if (event.target === ui.task) generate();
  else run();
});

ui.generate.addEventListener("click", generate);
ui.run.addEventListener("click", run);
ui.stop.addEventListener("click", () => inFlight?.abort());

// ---- Remembered settings --------------------------------------------------------

function remember(input, name) {
  try {
    const saved = localStorage.getItem(name);
    if (saved !== null) input.value = saved;
    // A runtime this page no longer offers: back to the first.
    if (input instanceof HTMLSelectElement && input.selectedIndex < 0) input.selectedIndex = 0;
    input.addEventListener("input", () => localStorage.setItem(name, input.value.trim()));
  } catch {
    // Storage can be off (private modes): the page works, it just forgets.
  }
}

// The API key stays in this page's memory only, never in localStorage or sessionStorage:
// every page of this origin can read those, and this origin also serves tenants' pages
// (path dispatch, sandboxed into an opaque origin; this is the second wall). Reloading
// the page forgets the key. A key an earlier version stored is removed.
try {
  localStorage.removeItem(OLD_KEY_STORAGE);
} catch {
  // Storage off: nothing was stored.
}
remember(ui.runtime, STORAGE.runtime);

function saveCode() {
  try {
    localStorage.setItem(STORAGE.code, ui.code.value);
  } catch {
    // Storage off or full: the code stays in the editor, it just isn't kept.
  }
}

try {
  const saved = localStorage.getItem(STORAGE.code);
  if (saved !== null) ui.code.value = saved;
} catch {
  // Storage off: an empty editor.
}
ui.code.addEventListener("input", saveCode);

// ---- What this server has -------------------------------------------------------

// Before any key is typed: is there a model (else Run is the main action), and where
// did this server write its development admin key (if it made one)?
async function loadSetup() {
  let setup;
  try {
    const response = await fetch("/playground/setup.json");
    if (!response.ok) return;
    setup = await response.json();
  } catch {
    return; // The page still works; it just can't say.
  }
  if (!setup.model) {
    document.body.dataset.model = "none";
    ui.modelNotice.hidden = false;
  }
  if (setup.admin_key_file) {
    keyFile = setup.admin_key_file;
    const path = document.createElement("code");
    path.id = "key-file";
    path.textContent = keyFile;
    ui.keySource.replaceChildren("This server wrote its development admin key to ", path, ".");
  }
}

loadSetup();
