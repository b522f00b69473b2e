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
// | wasm memory.atomic.wait32 on a shared memory            | guardWasm()                |
// | a loop that swallows KeyboardInterrupt                  | stopOnAbort (worker.mjs)   |
// | Deno.chdir / Deno.addSignalListener (process-wide state)| refuse(Deno, ...)          |

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

// --- WebAssembly: no shared memory, declared, imported or made ---------------------------

const SHARED_MEMORY = "shared WebAssembly memory";

// Reads a wasm module's import and memory sections and says whether it declares or
// imports a shared memory (limits flag 0x02). What it can't read is refused too (fail
// closed): the real compiler would reject it, or it is a proposal we haven't checked.
export function declaresSharedMemory(bytes) {
  let at = 8;
  const byte = () => {
    if (at >= bytes.length) throw new RangeError("truncated");
    return bytes[at++];
  };
  const leb = () => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = byte();
      result |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if (!(b & 0x80)) return result;
      if (shift > 70n) throw new RangeError("overlong LEB128");
    }
  };
  const skip = (n) => {
    at += Number(n);
    if (at > bytes.length) throw new RangeError("truncated");
  };
  const limitsShared = () => {
    const flags = leb();
    leb(); // min
    if (flags & 1n) leb(); // max
    if (flags & 8n) leb(); // custom page size log2
    return (flags & 2n) !== 0n;
  };
  const refType = () => {
    const b = byte();
    if (b === 0x63 || b === 0x64) leb(); // (ref null? heaptype)
  };
  const valType = refType; // the numeric types are one byte too
  try {
    while (at < bytes.length) {
      const id = byte();
      const size = Number(leb());
      const end = at + size;
      if (end > bytes.length) throw new RangeError("truncated");
      if (id === 2) {
        for (let n = leb(); n > 0n; n--) {
          skip(leb()); // module name
          skip(leb()); // field name
          const kind = byte();
          if (kind === 0) leb(); // function: type index
          else if (kind === 1) {
            refType();
            limitsShared();
          } else if (kind === 2) {
            if (limitsShared()) return true;
          } else if (kind === 3) {
            valType();
            byte(); // mutability
          } else if (kind === 4) {
            byte(); // tag attribute
            leb();
          } else throw new RangeError(`import kind ${kind}`);
        }
      } else if (id === 5) {
        for (let n = leb(); n > 0n; n--) if (limitsShared()) return true;
      }
      at = end;
    }
    return false;
  } catch {
    return true;
  }
}

function moduleBytes(source) {
  if (source instanceof ArrayBuffer || source instanceof SharedArrayBuffer) return new Uint8Array(source);
  if (ArrayBuffer.isView(source)) return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  return null; // not bytes: the original raises its own TypeError
}

function checked(source) {
  const bytes = moduleBytes(source);
  // Checked on a copy: the caller could change a shared buffer between the check and
  // the compile.
  const copy = bytes === null ? source : bytes.slice();
  if (copy !== source && declaresSharedMemory(copy)) {
    throw new WebAssembly.CompileError(SHARED_MEMORY + NOT_AVAILABLE);
  }
  return copy;
}

// Guest code gets WebAssembly without shared memories: a thread blocked in wasm's
// memory.atomic.wait32 is out of terminate()'s reach (measured), and the wait needs a
// shared memory (on an unshared one it traps). Modules given as bytes are read before
// they are compiled; modules given as Module objects were compiled by these same
// functions (or are Pyodide's own, compiled by the host).
function guardWasm() {
  const W = WebAssembly;
  const { Module, Memory, compile, instantiate, validate, compileStreaming, instantiateStreaming } = W;
  const GuardedModule = new Proxy(Module, {
    construct(target, args, newTarget) {
      return Reflect.construct(target, [checked(args[0]), ...args.slice(1)], newTarget === GuardedModule ? target : newTarget);
    },
    apply(target, self, args) {
      return Reflect.apply(target, self, args);
    },
  });
  const GuardedMemory = new Proxy(Memory, {
    construct(target, args, newTarget) {
      if (args[0]?.shared) throw new TypeError(SHARED_MEMORY + NOT_AVAILABLE);
      return Reflect.construct(target, args, newTarget === GuardedMemory ? target : newTarget);
    },
  });
  const bytesOf = async (response) => new Uint8Array(await (await response).arrayBuffer());
  seal(W, "Module", GuardedModule);
  seal(Module.prototype, "constructor", GuardedModule);
  seal(W, "Memory", GuardedMemory);
  seal(Memory.prototype, "constructor", GuardedMemory);
  seal(W, "compile", (source, ...rest) => {
    try {
      return compile(checked(source), ...rest);
    } catch (error) {
      return Promise.reject(error);
    }
  });
  seal(W, "validate", (source, ...rest) => validate(checked(source), ...rest));
  seal(W, "instantiate", (source, ...rest) => {
    if (source instanceof Module) return instantiate(source, ...rest);
    try {
      return instantiate(checked(source), ...rest);
    } catch (error) {
      return Promise.reject(error);
    }
  });
  seal(W, "compileStreaming", async (response, ...rest) => W.compile(await bytesOf(response), ...rest));
  seal(W, "instantiateStreaming", async (response, ...rest) =>
    W.instantiate(await bytesOf(response), ...rest),
  );
}

// --- the rest ------------------------------------------------------------------------

export function lockDown() {
  refuse(Atomics, "wait", "Atomics.wait");
  guardWasm();
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
