// What a worker takes away before any guest code runs (src/worker.mjs calls lockDown()
// once Pyodide is loaded): every way we found for guest code to make something that
// Deno's terminate() can't end, or to end the whole Deno process (and with it every
// session and run in it, other tenants' too). Each refusal is a function that throws
// "<what> is not available in the sandbox", defined non-writable and non-configurable
// so guest code can neither put the original back nor delete the refusal.
//
// | vector (measured, Deno 2.9.8)                           | closed by                  |
// |---------------------------------------------------------|----------------------------|
// | Atomics.wait on a buffer of its own                     | refuse(Atomics, "wait")    |
// | node:vm / node:worker_threads / node:child_process ...  | the import map (imports.json -> refused.mjs) |
// | process.getBuiltinModule("node:vm") (no import at all)  | refuse(process, ...)       |
// | Deno[Deno.internal].core (ops, evalContext)             | hidden                     |
// | Deno.kill / process.kill of Deno's own pid (allowed     |                            |
// |   without --allow-run: SIGKILL ends the process)        | refuse(Deno/process, kill) |
// | wasm memory.atomic.wait32, a wasm `loop br 0`            | refuseWasm(): no guest wasm |
// | a loop that swallows KeyboardInterrupt                  | stopOnAbort (worker.mjs)   |
// | Deno.chdir / Deno.addSignalListener (process-wide state)| refuse(Deno, ...)          |
// | JavaScript of its own: run_js, js.eval, Function.new,   | V8 flag: no code from      |
// |   setTimeout("..."), import("data:...") from those       |   strings (deno.py)        |
// | a backtracking RegExp ((a*)*b, (?=(a*)*b), /i, \1)      | V8's fallback + guardRegExp() |
// | crypto.subtle (PBKDF2 2e9 iterations, on Deno's pool)    | refuseSubtleCrypto()       |

const NOT_AVAILABLE = " is not available in the sandbox";

function refuse(object, name, label) {
  Object.defineProperty(object, name, {
    value: function refused() {
      throw new TypeError(label + NOT_AVAILABLE);
    },
    writable: false,
    configurable: false,
    enumerable: false,
  });
}

function seal(object, name, value) {
  Object.defineProperty(object, name, { value, writable: false, configurable: false, enumerable: false });
}

const SHARED_MEMORY = "shared WebAssembly memory";

// --- WebAssembly: none of the guest's ---------------------------------------------

// Guest code compiles no wasm at all: a thread in a wasm loop (`loop br 0`) is out of
// terminate()'s reach (measured), and so is one blocked in memory.atomic.wait32.
// Pyodide's own module was compiled by the host and instantiated before this runs, our
// packages are pure Python (a wheel with a .so, or ctypes.CDLL on a file the guest
// wrote, would compile wasm: refused too). A Module object that exists now is
// Pyodide's: instantiating it again runs none of the guest's code, so that stays.
function refuseWasm() {
  const W = WebAssembly;
  const { Module, Memory, instantiate } = W;
  const label = "WebAssembly compilation";
  const refusal = () => new W.CompileError(label + NOT_AVAILABLE);
  const RefusedModule = new Proxy(Module, {
    construct() {
      throw refusal();
    },
    apply(target, self, args) {
      return Reflect.apply(target, self, args);
    },
  });
  // A shared memory's buffer can't be waited on without Atomics.wait (refused), but a
  // memory made here outlives nothing we need to keep: refused as before.
  const GuardedMemory = new Proxy(Memory, {
    construct(target, args, newTarget) {
      if (args[0]?.shared) throw new TypeError(SHARED_MEMORY + NOT_AVAILABLE);
      return Reflect.construct(target, args, newTarget === GuardedMemory ? target : newTarget);
    },
  });
  seal(W, "Module", RefusedModule);
  seal(Module.prototype, "constructor", RefusedModule);
  seal(W, "Memory", GuardedMemory);
  seal(Memory.prototype, "constructor", GuardedMemory);
  const rejected = async () => {
    throw refusal();
  };
  seal(W, "compile", rejected);
  seal(W, "compileStreaming", rejected);
  seal(W, "instantiateStreaming", rejected);
  seal(W, "validate", () => {
    throw refusal();
  });
  // A real Module (its internal slot, not its prototype: bytes dressed as a Module
  // would be compiled).
  const isModule = (value) => {
    try {
      Module.exports(value);
      return true;
    } catch {
      return false;
    }
  };
  seal(W, "instantiate", (source, ...rest) => (isModule(source) ? instantiate(source, ...rest) : rejected()));
}

// --- RegExp: only what runs in linear time -------------------------------------------

// A backtracking RegExp can run for ages on a short string ((a*)*b on 60 characters):
// Deno's terminate() does not stop it. V8 falls back to its linear-time engine after
// too many backtracks (deno.py CODE_FLAGS), but only for what that engine can run: no
// lookahead, no backreferences, no i/u/v/d flags, no large counted repeats. Every
// RegExp the guest runs goes through exec (the spec's RegExpExec; V8 leaves its fast
// paths once exec is not the original): one the linear engine can't run is refused
// there, however it was made (the constructor, String.prototype.match with a string, a
// species constructor). Deno's own code uses its copies of the originals.
function guardRegExp() {
  const R = RegExp;
  const proto = R.prototype;
  const original = proto.exec;
  const getter = (name) => Object.getOwnPropertyDescriptor(proto, name)?.get;
  const source = getter("source");
  const flagGetters = [
    ["hasIndices", "d"],
    ["global", "g"],
    ["ignoreCase", "i"],
    ["multiline", "m"],
    ["dotAll", "s"],
    ["unicode", "u"],
    ["unicodeSets", "v"],
    ["sticky", "y"],
    ["linear", "l"],
  ]
    .map(([name, flag]) => [getter(name), flag])
    .filter(([get]) => get);
  const checked = new WeakMap();
  const linear = (regexp) => {
    let known = checked.get(regexp);
    if (known === undefined) {
      // The getters read the RegExp's own slots: properties the guest sets can't lie.
      const pattern = Reflect.apply(source, regexp, []);
      const flags = flagGetters.map(([get, flag]) => (Reflect.apply(get, regexp, []) ? flag : "")).join("");
      try {
        new R(pattern, flags.includes("l") ? flags : flags + "l");
        known = true;
      } catch {
        known = false;
      }
      checked.set(regexp, known);
    }
    return known;
  };
  seal(proto, "exec", function exec(string) {
    if (this !== proto && isRegExp(this) && !linear(this)) throw new SyntaxError(LINEAR + NOT_AVAILABLE);
    return Reflect.apply(original, this, [string]); // not a RegExp: its own TypeError
  });
  // Recompiles a RegExp in place (one made by Deno's code too): nothing needs it.
  refuse(proto, "compile", "RegExp.prototype.compile");
  function isRegExp(value) {
    try {
      Reflect.apply(source, value, []);
      return true;
    } catch {
      return false;
    }
  }
}

const LINEAR = "a RegExp that can't run in linear time (lookahead, backreferences, i/u/v/d flags, large counted repeats)";

// --- native work that outlives a run -------------------------------------------------

// WebCrypto runs on Deno's thread pool, outside every worker thread: a PBKDF2 with 2e9
// iterations keeps a core busy after its run ended and its worker is gone (measured),
// and RSA key generation can take minutes. Python has hashlib, hmac and secrets (in
// wasm, interruptible); crypto.getRandomValues and randomUUID stay (Pyodide's
// os.urandom).
function refuseSubtleCrypto() {
  const proto = globalThis.SubtleCrypto?.prototype;
  if (!proto) return;
  for (const name of Object.getOwnPropertyNames(proto)) {
    if (name !== "constructor" && typeof Object.getOwnPropertyDescriptor(proto, name).value === "function") {
      refuse(proto, name, `crypto.subtle.${name}`);
    }
  }
}

// --- the rest ------------------------------------------------------------------------

export function lockDown() {
  refuse(Atomics, "wait", "Atomics.wait");
  refuseWasm();
  guardRegExp();
  refuseSubtleCrypto();
  // A Node built-in without an import: the import map never sees it.
  const process = globalThis.process;
  if (process) {
    refuse(process, "getBuiltinModule", "process.getBuiltinModule");
    refuse(process, "binding", "process.binding");
    refuse(process, "dlopen", "process.dlopen");
    refuse(process, "kill", "process.kill");
  }
  // Deno lets a worker signal its own process without --allow-run (measured): one
  // SIGKILL and every session in the process is gone.
  refuse(Deno, "kill", "Deno.kill");
  // Process-wide state a worker could change for every other run and session in this
  // Deno: the working directory and the process's signal handling.
  refuse(Deno, "chdir", "Deno.chdir");
  refuse(Deno, "addSignalListener", "Deno.addSignalListener");
  // Deno's internals (core.ops, core.evalContext, ...): nothing of ours needs them.
  seal(Deno, Deno.internal, undefined);
}
