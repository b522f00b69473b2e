// node:module as the workers see it (src/imports.json). Pyodide's Emscripten loader takes
// Deno for Node and makes a require() from it at load: that require hands out the few
// built-ins it reads files, URLs and terminals with, and refuses the rest (node:vm, worker_threads,
// child_process: a realm, a thread or a process terminate() can't end).
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as tty from "node:tty";
import * as url from "node:url";

const offered = new Map(
  Object.entries({ crypto, fs, path, tty, url }).flatMap(([name, module]) => {
    const value = module.default ?? module;
    return [[name, value], [`node:${name}`, value]];
  }),
);

function sandboxRequire(name) {
  const module = offered.get(String(name));
  if (module === undefined) throw new TypeError(`require(${JSON.stringify(String(name))}) is not available in the sandbox`);
  return module;
}

export function createRequire() {
  return sandboxRequire;
}
export const builtinModules = [...offered.keys()].filter((name) => name.startsWith("node:"));
export default { createRequire, builtinModules };
