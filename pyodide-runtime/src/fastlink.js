// Injected into a copy of Pyodide's pyodide.asm.mjs by
// sandbox/engines/pyodide/loader.py, inside the Emscripten module's scope
// (GOT, wasmTable, addFunction, ... are that scope's variables).
//
// Emscripten links the main module at every start: it puts each of about
// 8,500 exports in the GOT and the function table (a scan of the whole table,
// a WebAssembly.Global per export, table slots one at a time) and wraps about
// 260 JavaScript imports as wasm functions, one tiny module each. The outcome
// depends only on the module, so it is recorded once at build time (the
// snapshot is made with this loader) and replayed by every restore: the same
// functions in the same table slots, the same GOT values.
//
// globalThis.__sandlotLink, read once and deleted:
//   {}        record: link as Emscripten does, leave the plan in .plan
//   {plan, fail}  replay the plan; one that does not fit this module throws
//             and is passed to fail(error) too: Pyodide's loader only logs a
//             failed instantiation and never settles, so the caller races it
//   absent    link as Emscripten does
var sandlotLinkedJs = [];
// GOT entries of the plan that nothing has asked for yet: a Global is made
// on first use (a side module or dlsym), not 8,500 of them per start.
var sandlotPendingGot = new Map();

function sandlotLazyGot() {
  return new Proxy(
    {},
    {
      get(target, name) {
        if (!(name in target) && sandlotPendingGot.has(name)) {
          target[name] = new WebAssembly.Global(
            { value: "i32", mutable: true },
            sandlotPendingGot.get(name),
          );
          sandlotPendingGot.delete(name);
        }
        return target[name];
      },
    },
  );
}

function sandlotLink(origExports) {
  var request = globalThis.__sandlotLink;
  delete globalThis.__sandlotLink;
  if (request && request.plan && !dynamicLibraries.length) {
    sandlotReplay(origExports, request);
    return;
  }
  var tableStart = wasmTable.length;
  var added = [];
  var emscriptenAdd = addFunction;
  addFunction = (func, sig) => {
    var before = wasmTable.length;
    var index = emscriptenAdd(func, sig);
    if (wasmTable.length > before) added.push([index, func, sig]);
    return index;
  };
  try {
    updateGOT(origExports);
    LDSO.init();
    loadDylibs();
  } finally {
    addFunction = emscriptenAdd;
  }
  if (request && !dynamicLibraries.length) {
    request.plan = sandlotRecord(origExports, tableStart, added);
  }
}

function sandlotRecord(origExports, tableStart, added) {
  var names = (object) => {
    var byFunction = new Map();
    for (var name in object) {
      var value = object[name];
      if (typeof value == "function" && !byFunction.has(value)) byFunction.set(value, name);
    }
    return byFunction;
  };
  var exportNames = names(origExports);
  var importNames = names(wasmImports);
  var plan = { tableStart, tableEnd: wasmTable.length, exports: [], imports: [] };
  for (var [index, func, sig] of added) {
    if (exportNames.has(func)) plan.exports.push([index, exportNames.get(func)]);
    else if (importNames.has(func)) plan.imports.push([index, importNames.get(func), sig]);
    else throw new Error(`link plan: table slot ${index} holds a function with no name`);
  }
  var entries = Object.entries(GOT);
  plan.gotNames = entries.map(([name]) => name);
  plan.gotValues = entries.map(([, entry]) => entry.value);
  return plan;
}

function sandlotReplay(origExports, { plan, fail }) {
  var misfit = (what) => {
    var error = new Error(`the link plan does not fit this Pyodide (${what}); run make build`);
    fail?.(error);
    throw error;
  };
  if (wasmTable.length !== plan.tableStart) misfit(`its table starts at ${wasmTable.length}`);
  var values = new Map(plan.gotNames.map((name, i) => [name, plan.gotValues[i]]));
  for (var name of Object.keys(GOT)) if (!values.has(name)) misfit(`no GOT entry ${name}`);
  wasmTable.grow(plan.tableEnd - plan.tableStart);
  for (var [index, name] of plan.exports) {
    var func = origExports[name];
    if (typeof func != "function") misfit(`no export ${name}`);
    setWasmTableEntry(index, func);
  }
  var imports = plan.imports.map(([index, name, sig]) => {
    var func = wasmImports[name];
    if (typeof func != "function") misfit(`no import ${name}`);
    return [index, func, sig];
  });
  var wrapped = sandlotWrapJs(imports);
  for (var i = 0; i < imports.length; i++) {
    setWasmTableEntry(imports[i][0], wrapped[i]);
    sandlotLinkedJs.push([imports[i][1], imports[i][0]]);
  }
  // The GOT entries the main module imports exist already; the rest wait.
  for (var [name, value] of values) {
    var entry = GOT[name];
    if (entry) entry.value = value;
    else sandlotPendingGot.set(name, value);
  }
  LDSO.init();
}

// What convertJsFunctionToWasm does for one function (a module that imports
// it and exports it as a wasm function of its signature), for all of them in
// one module: one compilation instead of one per function.
function sandlotWrapJs(imports) {
  var leb = (n) => {
    var out = [];
    do {
      var byte = n & 127;
      n >>>= 7;
      out.push(n ? byte | 128 : byte);
    } while (n);
    return out;
  };
  var vec = (items) => [...leb(items.length), ...items.flat()];
  var section = (id, body) => [id, ...leb(body.length), ...body];
  var name = (text) => vec([...text].map((c) => c.charCodeAt(0)));
  var codes = (types) => vec([...types].map((type) => [wasmTypeCodes[type]]));
  var typeIndex = new Map();
  var types = [];
  for (var [, , sig] of imports) {
    if (!typeIndex.has(sig)) {
      typeIndex.set(sig, types.length);
      types.push([96, ...codes(sig.slice(1)), ...codes(sig[0] == "v" ? "" : sig[0])]);
    }
  }
  var bytes = Uint8Array.from([
    0, 97, 115, 109, 1, 0, 0, 0,
    ...section(1, vec(types)),
    ...section(2, vec(imports.map(([, , sig], i) => [...name("e"), ...name(`f${i}`), 0, ...leb(typeIndex.get(sig))]))),
    ...section(7, vec(imports.map((_, i) => [...name(`f${i}`), 0, ...leb(i)]))),
  ]);
  var functions = {};
  imports.forEach(([, func], i) => (functions[`f${i}`] = func));
  var instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { e: functions });
  return imports.map((_, i) => instance.exports[`f${i}`]);
}
