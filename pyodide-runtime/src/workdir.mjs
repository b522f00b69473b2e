// A session's /work in the worker's in-memory file system: what a turn
// changed there, for the host to copy into the session's directory.
//
// A manifest maps each path under /work (regular files and directories;
// links are never followed and never copied out) to its kind, size and
// modification time. A file counts as changed when either differs after the
// turn. Emscripten keeps mtimes in milliseconds, so a file written in the same
// millisecond the manifest was taken, then rewritten at the same size, would
// look unchanged: takeManifest dates such files back 2 ms first.

export const WORKDIR = "/work";
// As far as a walk goes: a guest can make a million empty files.
const MAX_ENTRIES = 10_000;
const MAX_DEPTH = 32;

/** path -> {dir, size, mtime} for everything under /work. */
export function takeManifest(FS) {
  const manifest = walk(FS);
  const recent = Date.now() - 1;
  for (const [path, entry] of manifest) {
    if (!entry.dir && entry.mtime >= recent) {
      const past = recent - 1;
      FS.utime(`${WORKDIR}/${path}`, past, past);
      entry.mtime = past;
    }
  }
  return manifest;
}

/** What changed under /work since ``before``: {files, dirs, gone}, each a list of paths. */
export function changesSince(FS, before) {
  const after = walk(FS);
  const gone = [];
  for (const [path, entry] of before) {
    const now = after.get(path);
    if (!now || now.dir !== entry.dir) gone.push(path);
  }
  gone.sort();
  const goneSet = new Set(gone);
  const topmost = gone.filter((path) => !ancestors(path).some((up) => goneSet.has(up)));
  const files = [];
  const dirs = [];
  for (const [path, entry] of after) {
    const was = before.get(path);
    if (entry.dir) {
      if (!was || !was.dir) dirs.push(path);
    } else if (!was || was.dir || was.size !== entry.size || was.mtime !== entry.mtime) {
      files.push(path);
    }
  }
  return { files, dirs, gone: topmost };
}

/** The bytes of a regular file under /work, or null if it is not one any more. */
export function readChanged(FS, path) {
  const full = `${WORKDIR}/${path}`;
  try {
    if (!FS.isFile(FS.lstat(full).mode)) return null;
    return FS.readFile(full);
  } catch {
    return null;
  }
}

function walk(FS) {
  const found = new Map();
  const budget = { left: MAX_ENTRIES };
  visit(FS, "", 0, found, budget);
  return found;
}

function visit(FS, prefix, depth, found, budget) {
  if (depth > MAX_DEPTH) return;
  let names;
  try {
    names = FS.readdir(prefix ? `${WORKDIR}/${prefix}` : WORKDIR);
  } catch {
    return;
  }
  names.sort();
  for (const name of names) {
    if (name === "." || name === "..") continue;
    if (budget.left-- <= 0) return;
    const path = prefix ? `${prefix}/${name}` : name;
    let stat;
    try {
      stat = FS.lstat(`${WORKDIR}/${path}`);
    } catch {
      continue;
    }
    if (FS.isDir(stat.mode)) {
      found.set(path, { dir: true, size: 0, mtime: 0 });
      visit(FS, path, depth + 1, found, budget);
    } else if (FS.isFile(stat.mode)) {
      found.set(path, { dir: false, size: stat.size, mtime: stat.mtime.getTime() });
    }
  }
}

function ancestors(path) {
  const parts = path.split("/");
  return parts.slice(1).map((_, index) => parts.slice(0, index + 1).join("/"));
}
