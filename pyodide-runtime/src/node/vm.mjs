// node:vm as the workers see it (src/imports.json): a fresh realm brings its own
// Atomics and WebAssembly, out of src/lockdown.mjs's reach. Pyodide imports node:vm
// while it loads (it takes Deno for Node) and never uses it there: the module loads,
// and every use throws.
const refused = () => {
  throw new TypeError("node:vm is not available in the sandbox");
};
export const createContext = refused;
export const runInContext = refused;
export const runInNewContext = refused;
export const runInThisContext = refused;
export const compileFunction = refused;
export const measureMemory = refused;
export const Script = refused;
export const SourceTextModule = refused;
export default new Proxy({}, { get: refused, set: refused, has: refused, ownKeys: refused });
