// What a `node:` module the sandbox doesn't offer resolves to (src/imports.json, the
// import map sandbox/engines/pyodide/deno.py passes to Deno, which applies it in the
// workers too, whichever way guest code asks: import(), a data: or blob: module,
// run_js). The query names the module that was asked for.
const name = decodeURIComponent(new URL(import.meta.url).search.slice(1)) || "this module";
throw new TypeError(`${name} is not available in the sandbox`);
