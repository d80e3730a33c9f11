var __create = Object.create;
var __defProp = Object.defineProperty;
var __getOwnPropDesc = Object.getOwnPropertyDescriptor;
var __getOwnPropNames = Object.getOwnPropertyNames;
var __getProtoOf = Object.getPrototypeOf;
var __hasOwnProp = Object.prototype.hasOwnProperty;
var __esm = (fn2, res, err2) => function __init() {
  if (err2) throw err2[0];
  try {
    return fn2 && (res = (0, fn2[__getOwnPropNames(fn2)[0]])(fn2 = 0)), res;
  } catch (e) {
    throw err2 = [e], e;
  }
};
var __commonJS = (cb, mod) => function __require() {
  try {
    return mod || (0, cb[__getOwnPropNames(cb)[0]])((mod = { exports: {} }).exports, mod), mod.exports;
  } catch (e) {
    throw mod = 0, e;
  }
};
var __export = (target, all) => {
  for (var name2 in all)
    __defProp(target, name2, { get: all[name2], enumerable: true });
};
var __copyProps = (to, from, except, desc) => {
  if (from && typeof from === "object" || typeof from === "function") {
    for (let key of __getOwnPropNames(from))
      if (!__hasOwnProp.call(to, key) && key !== except)
        __defProp(to, key, { get: () => from[key], enumerable: !(desc = __getOwnPropDesc(from, key)) || desc.enumerable });
  }
  return to;
};
var __toESM = (mod, isNodeMode, target) => (target = mod != null ? __create(__getProtoOf(mod)) : {}, __copyProps(
  // If the importer is in node compatibility mode or this is not an ESM
  // file that has been converted to a CommonJS file using a Babel-
  // compatible transform (i.e. "__esModule" has not been set), then set
  // "default" to the CommonJS "module.exports" for node compatibility.
  isNodeMode || !mod || !mod.__esModule ? __defProp(target, "default", { value: mod, enumerable: true }) : target,
  mod
));

// ../../node_modules/@electric-sql/pglite/dist/chunk-ZSOCVAT7.js
var p, i, c, f, l, s, a, _, d, D, F, g, L, P, n, h, R, x, T, U, u;
var init_chunk_ZSOCVAT7 = __esm({
  "../../node_modules/@electric-sql/pglite/dist/chunk-ZSOCVAT7.js"() {
    p = Object.create;
    i = Object.defineProperty;
    c = Object.getOwnPropertyDescriptor;
    f = Object.getOwnPropertyNames;
    l = Object.getPrototypeOf;
    s = Object.prototype.hasOwnProperty;
    a = (t2) => {
      throw TypeError(t2);
    };
    _ = (t2, e, o5) => e in t2 ? i(t2, e, { enumerable: true, configurable: true, writable: true, value: o5 }) : t2[e] = o5;
    d = (t2, e) => () => (t2 && (e = t2(t2 = 0)), e);
    D = (t2, e) => () => (e || t2((e = { exports: {} }).exports, e), e.exports);
    F = (t2, e) => {
      for (var o5 in e) i(t2, o5, { get: e[o5], enumerable: true });
    };
    g = (t2, e, o5, m7) => {
      if (e && typeof e == "object" || typeof e == "function") for (let r3 of f(e)) !s.call(t2, r3) && r3 !== o5 && i(t2, r3, { get: () => e[r3], enumerable: !(m7 = c(e, r3)) || m7.enumerable });
      return t2;
    };
    L = (t2, e, o5) => (o5 = t2 != null ? p(l(t2)) : {}, g(e || !t2 || !t2.__esModule ? i(o5, "default", { value: t2, enumerable: true }) : o5, t2));
    P = (t2, e, o5) => _(t2, typeof e != "symbol" ? e + "" : e, o5);
    n = (t2, e, o5) => e.has(t2) || a("Cannot " + o5);
    h = (t2, e, o5) => (n(t2, e, "read from private field"), o5 ? o5.call(t2) : e.get(t2));
    R = (t2, e, o5) => e.has(t2) ? a("Cannot add the same private member more than once") : e instanceof WeakSet ? e.add(t2) : e.set(t2, o5);
    x = (t2, e, o5, m7) => (n(t2, e, "write to private field"), m7 ? m7.call(t2, o5) : e.set(t2, o5), o5);
    T = (t2, e, o5) => (n(t2, e, "access private method"), o5);
    U = (t2, e, o5, m7) => ({ set _(r3) {
      x(t2, e, r3, o5);
    }, get _() {
      return h(t2, e, m7);
    } });
    u = d(() => {
      "use strict";
    });
  }
});

// (disabled):fs/promises
var require_promises = __commonJS({
  "(disabled):fs/promises"() {
  }
});

// ../../node_modules/@electric-sql/pglite/dist/chunk-BD5WXLQO.js
function m2() {
  let t2 = process.type;
  return t2 === "renderer" || t2 === "worker" || t2 === "service-worker";
}
async function c3(t2) {
  s3 || a2.has(t2.toString()) || a2.set(t2.toString(), fetch(t2));
}
async function b2(t2, e) {
  if (typeof e != "function") return { instance: await WebAssembly.instantiate(e, t2), module: e };
  let r3 = e();
  if (o3.has(r3.toString())) {
    let i2 = o3.get(r3.toString());
    return { instance: await WebAssembly.instantiate(i2, t2), module: i2 };
  }
  if (s3) {
    let i2 = await (await Promise.resolve().then(() => __toESM(require_promises(), 1))).readFile(r3), { module: n3, instance: l2 } = await WebAssembly.instantiate(i2, t2);
    return o3.set(r3.toString(), n3), { instance: l2, module: n3 };
  } else {
    a2.has(r3.toString()) || c3(r3);
    let i2 = await a2.get(r3.toString()), { module: n3, instance: l2 } = await WebAssembly.instantiateStreaming(i2.clone(), t2);
    return o3.set(r3.toString(), n3), { instance: l2, module: n3 };
  }
}
async function w2(t2) {
  return s3 ? (await (await Promise.resolve().then(() => __toESM(require_promises(), 1))).readFile(t2)).buffer : (c3(t2), (await a2.get(t2.toString())).clone().arrayBuffer());
}
function v2(t2) {
  let e;
  return t2.startsWith('"') && t2.endsWith('"') ? e = t2.substring(1, t2.length - 1) : e = t2.toLowerCase(), e;
}
function g4(t2, e) {
  try {
    let r3 = t2.readdir(e).filter((i2) => i2 !== "." && i2 !== "..");
    for (let i2 of r3) {
      let n3 = e + "/" + i2;
      try {
        t2.readdir(n3), g4(t2, n3);
      } catch {
        t2.unlink(n3);
      }
    }
    t2.rmdir(e);
  } catch {
    try {
      t2.unlink(e);
    } catch {
    }
  }
}
var f3, d2, p3, s3, y2, h2, a2, o3, S2;
var init_chunk_BD5WXLQO = __esm({
  "../../node_modules/@electric-sql/pglite/dist/chunk-BD5WXLQO.js"() {
    init_chunk_ZSOCVAT7();
    u();
    f3 = Object.defineProperty;
    d2 = (t2, e) => {
      for (var r3 in e) f3(t2, r3, { get: e[r3], enumerable: true });
    };
    p3 = {};
    d2(p3, { IN_NODE: () => s3, WASM_PREFIX: () => y2, getFsBundle: () => w2, instantiateWasm: () => b2, pgliteProc: () => h2, rmdirRecursive: () => g4, startArtifactDownload: () => c3, toPostgresName: () => v2, uuid: () => S2 });
    s3 = typeof process == "object" && typeof process.versions == "object" && typeof process.versions.node == "string" && !m2();
    y2 = "/pglite";
    h2 = globalThis && typeof globalThis.process < "u" ? globalThis.process : { exitCode: void 0 };
    a2 = /* @__PURE__ */ new Map();
    o3 = /* @__PURE__ */ new Map();
    S2 = () => {
      if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
      let t2 = new Uint8Array(16);
      if (globalThis.crypto?.getRandomValues) globalThis.crypto.getRandomValues(t2);
      else for (let r3 = 0; r3 < t2.length; r3++) t2[r3] = Math.floor(Math.random() * 256);
      t2[6] = t2[6] & 15 | 64, t2[8] = t2[8] & 63 | 128;
      let e = [];
      return t2.forEach((r3) => {
        e.push(r3.toString(16).padStart(2, "0"));
      }), e.slice(0, 4).join("") + "-" + e.slice(4, 6).join("") + "-" + e.slice(6, 8).join("") + "-" + e.slice(8, 10).join("") + "-" + e.slice(10).join("");
    };
  }
});

// (disabled):util
var require_util = __commonJS({
  "(disabled):util"() {
  }
});

// (disabled):zlib
var require_zlib = __commonJS({
  "(disabled):zlib"() {
  }
});

// ../../node_modules/@electric-sql/pglite/dist/chunk-N66TTF7B.js
async function ie2(e, r3, t2 = "pgdata", n3 = "auto") {
  let i2 = vr(e, r3), [o5, a3] = await Er(i2, n3), s4 = t2 + (a3 ? ".tar.gz" : ".tar"), l2 = a3 ? "application/x-gzip" : "application/x-tar";
  return typeof File < "u" ? new File([o5], s4, { type: l2 }) : new Blob([o5], { type: l2 });
}
async function Jr(e, r3, t2) {
  let n3 = new Uint8Array(await r3.arrayBuffer()), i2 = typeof File < "u" && r3 instanceof File ? r3.name : void 0;
  (Sr.includes(r3.type) || i2?.endsWith(".tgz") || i2?.endsWith(".tar.gz")) && (n3 = await Te2(n3));
  let a3;
  try {
    a3 = (0, O2.untar)(n3);
  } catch (s4) {
    if (s4 instanceof Error && s4.message.includes("File is corrupted")) n3 = await Te2(n3), a3 = (0, O2.untar)(n3);
    else throw s4;
  }
  for (let s4 of a3) {
    let l2 = `${t2}/${s4.name}`, u3 = l2.split("/").slice(0, -1);
    for (let c4 = 1; c4 <= u3.length; c4++) {
      let _3 = u3.slice(0, c4).join("/");
      _3.length && !e.analyzePath(_3).exists && e.mkdirTree(_3);
    }
    if (s4.type === O2.REGTYPE) {
      e.writeFile(l2, s4.data);
      let c4 = Ar(s4.modifyTime);
      e.utime(l2, c4, c4);
    } else s4.type === O2.DIRTYPE && (e.analyzePath(l2).exists || e.mkdir(l2));
  }
}
function gr(e, r3) {
  let t2 = [], n3 = (i2) => {
    e.readdir(i2).forEach((a3) => {
      if (a3 === "." || a3 === "..") return;
      let s4 = i2 + "/" + a3, l2 = e.stat(s4), u3 = e.isFile(l2.mode) ? e.readFile(s4, { encoding: "binary" }) : new Uint8Array(0);
      t2.push({ name: s4.substring(r3.length), mode: l2.mode, size: l2.size, type: e.isFile(l2.mode) ? O2.REGTYPE : O2.DIRTYPE, modifyTime: l2.mtime, data: u3 }), e.isDir(l2.mode) && n3(s4);
    });
  };
  return n3(r3), t2;
}
function vr(e, r3) {
  let t2 = gr(e, r3);
  return (0, O2.tar)(t2);
}
async function Er(e, r3 = "auto") {
  if (r3 === "none") return [e, false];
  if (typeof CompressionStream < "u") return [await Fr(e), true];
  if (typeof process < "u" && process.versions && process.versions.node) return [await yr(e), true];
  if (r3 === "auto") return [e, false];
  throw new Error("Compression not supported in this environment");
}
async function Fr(e) {
  let r3 = new CompressionStream("gzip"), t2 = r3.writable.getWriter(), n3 = r3.readable.getReader();
  t2.write(e), t2.close();
  let i2 = [];
  for (; ; ) {
    let { value: s4, done: l2 } = await n3.read();
    if (l2) break;
    s4 && i2.push(s4);
  }
  let o5 = new Uint8Array(i2.reduce((s4, l2) => s4 + l2.length, 0)), a3 = 0;
  return i2.forEach((s4) => {
    o5.set(s4, a3), a3 += s4.length;
  }), o5;
}
async function yr(e) {
  let { promisify: r3 } = await Promise.resolve().then(() => __toESM(require_util(), 1)), { gzip: t2 } = await Promise.resolve().then(() => __toESM(require_zlib(), 1));
  return await r3(t2)(e);
}
async function Te2(e) {
  if (typeof CompressionStream < "u") return await hr(e);
  if (typeof process < "u" && process.versions && process.versions.node) return await wr(e);
  throw new Error("Unsupported environment for decompression");
}
async function hr(e) {
  let r3 = new DecompressionStream("gzip"), t2 = r3.writable.getWriter(), n3 = r3.readable.getReader();
  t2.write(e), t2.close();
  let i2 = [];
  for (; ; ) {
    let { value: s4, done: l2 } = await n3.read();
    if (l2) break;
    s4 && i2.push(s4);
  }
  let o5 = new Uint8Array(i2.reduce((s4, l2) => s4 + l2.length, 0)), a3 = 0;
  return i2.forEach((s4) => {
    o5.set(s4, a3), a3 += s4.length;
  }), o5;
}
async function wr(e) {
  let { promisify: r3 } = await Promise.resolve().then(() => __toESM(require_util(), 1)), { gunzip: t2 } = await Promise.resolve().then(() => __toESM(require_zlib(), 1));
  return await r3(t2)(e);
}
function Ar(e) {
  return e ? typeof e == "number" ? e * 1e3 : e.getTime() : Date.now();
}
async function br(moduleArg = {}) {
  var Module = moduleArg, ENVIRONMENT_IS_WEB = !!globalThis.window, ENVIRONMENT_IS_WORKER = !!globalThis.WorkerGlobalScope, ENVIRONMENT_IS_NODE = globalThis.process?.versions?.node && globalThis.process?.type != "renderer";
  if (ENVIRONMENT_IS_NODE) {
    let { createRequire: e } = await import("node:module");
    var require = e(import.meta.url);
  }
  var programArgs = [], thisProgram = "./this.program", quit_ = (e, r3) => {
    throw r3;
  }, _scriptName = import.meta.url, scriptDirectory = "";
  function locateFile(e) {
    return Module.locateFile ? Module.locateFile(e, scriptDirectory) : scriptDirectory + e;
  }
  var readAsync, readBinary;
  if (ENVIRONMENT_IS_NODE) {
    var fs = require("node:fs");
    _scriptName.startsWith("file:") && (scriptDirectory = require("node:path").dirname(require("node:url").fileURLToPath(_scriptName)) + "/"), readBinary = (e) => {
      e = isFileURI(e) ? new URL(e) : e;
      var r3 = fs.readFileSync(e);
      return r3;
    }, readAsync = async (e, r3 = true) => {
      e = isFileURI(e) ? new URL(e) : e;
      var t2 = fs.readFileSync(e, r3 ? void 0 : "utf8");
      return t2;
    }, process.argv.length > 1 && (thisProgram = process.argv[1].replace(/\\/g, "/")), programArgs = process.argv.slice(2), quit_ = (e, r3) => {
      throw process.exitCode = e, r3;
    };
  } else if (ENVIRONMENT_IS_WEB || ENVIRONMENT_IS_WORKER) {
    try {
      scriptDirectory = new URL(".", _scriptName).href;
    } catch {
    }
    ENVIRONMENT_IS_WORKER && (readBinary = (e) => {
      var r3 = new XMLHttpRequest();
      return r3.open("GET", e, false), r3.responseType = "arraybuffer", r3.send(null), new Uint8Array(r3.response);
    }), readAsync = async (e) => {
      var r3 = await fetch(e, { credentials: "same-origin" });
      if (r3.ok) return r3.arrayBuffer();
      throw new Error(r3.status + " : " + r3.url);
    };
  }
  var out = console.log.bind(console), err = console.error.bind(console), dynamicLibraries = [], wasmBinary, ABORT = false, EXITSTATUS, isFileURI = (e) => e.startsWith("file://");
  class EmscriptenEH {
  }
  class EmscriptenSjLj extends EmscriptenEH {
  }
  var runtimeInitialized = false, runtimeExited = false;
  function getMemoryBuffer() {
    return wasmMemory.buffer;
  }
  function updateMemoryViews() {
    if (!HEAP8?.buffer?.resizable) {
      var e = getMemoryBuffer();
      HEAP8 = new Int8Array(e), HEAP16 = new Int16Array(e), Module.HEAPU8 = HEAPU8 = new Uint8Array(e), HEAPU16 = new Uint16Array(e), HEAP32 = new Int32Array(e), HEAPU32 = new Uint32Array(e), HEAPF32 = new Float32Array(e), HEAPF64 = new Float64Array(e), HEAP64 = new BigInt64Array(e), HEAPU64 = new BigUint64Array(e);
    }
  }
  var __RELOC_FUNCS__ = [];
  function preRun() {
    var e = Module.preRun;
    e && (typeof e == "function" && (e = [e]), onPreRuns.push(...e)), callRuntimeCallbacks(onPreRuns);
  }
  function initRuntime() {
    runtimeInitialized = true, callRuntimeCallbacks(__RELOC_FUNCS__), !Module.noFSInit && !FS.initialized && FS.init(), TTY.init(), wasmExports.__wasm_call_ctors(), callRuntimeCallbacks(onPostCtors), FS.ignorePermissions = false;
  }
  function exitRuntime() {
    ___funcs_on_exit(), FS.quit(), TTY.shutdown(), clearTimers(), runtimeExited = true;
  }
  function postRun() {
    var e = Module.postRun;
    e && (typeof e == "function" && (e = [e]), onPostRuns.push(...e)), callRuntimeCallbacks(onPostRuns);
  }
  function abort(e) {
    throw Module.onAbort?.(e), e = `Aborted(${e})`, err(e), ABORT = true, e += ". Build with -sASSERTIONS for more info.", new WebAssembly.RuntimeError(e);
  }
  var wasmBinaryFile;
  function findWasmBinary() {
    return Module.locateFile ? locateFile("initdb.wasm") : new URL("initdb.wasm", import.meta.url).href;
  }
  function getBinarySync(e) {
    if (readBinary) return readBinary(e);
    throw "both async and sync fetching of the wasm failed";
  }
  async function getWasmBinary(e) {
    if (!wasmBinary) try {
      var r3 = await readAsync(e);
      return new Uint8Array(r3);
    } catch {
    }
    return getBinarySync(e);
  }
  async function instantiateArrayBuffer(e, r3) {
    try {
      var t2 = await getWasmBinary(e), n3 = await WebAssembly.instantiate(t2, r3);
      return n3;
    } catch (i2) {
      err(`failed to asynchronously prepare wasm: ${i2}`), abort(i2);
    }
  }
  async function instantiateAsync(e, r3, t2) {
    if (!e && !ENVIRONMENT_IS_NODE) try {
      var n3 = fetch(r3, { credentials: "same-origin" }), i2 = await WebAssembly.instantiateStreaming(n3, t2);
      return i2;
    } catch (o5) {
      err(`wasm streaming compile failed: ${o5}`), err("falling back to ArrayBuffer instantiation");
    }
    return instantiateArrayBuffer(r3, t2);
  }
  function getWasmImports() {
    var e = new Proxy(/* @__PURE__ */ new Set([]), GOTHandler), r3 = { env: wasmImports, wasi_snapshot_preview1: wasmImports, "GOT.mem": e, "GOT.func": e };
    return r3;
  }
  async function createWasm() {
    async function e(o5, a3) {
      wasmExports = o5.exports;
      var s4 = wasmExports;
      mergeLibSymbols(wasmExports, "main");
      var l2 = getDylinkMetadata(a3);
      return l2.neededDynlibs && (dynamicLibraries = l2.neededDynlibs.concat(dynamicLibraries)), assignWasmExports(wasmExports), updateGOT(s4), updateMemoryViews(), LDSO.init(), await loadDylibs(), wasmExports;
    }
    var r3 = getWasmImports(), t2 = Module.instantiateWasm;
    if (t2) return new Promise((o5) => {
      t2(r3, (a3, s4) => o5(e(a3, s4)));
    });
    wasmBinaryFile ?? (wasmBinaryFile = findWasmBinary());
    var n3 = await instantiateAsync(wasmBinary, wasmBinaryFile, r3), i2 = await (function(o5) {
      return e(o5.instance, o5.module);
    })(n3);
    return i2;
  }
  class ExitStatus {
    constructor(r3) {
      P(this, "name", "ExitStatus");
      this.message = `Program terminated with exit(${r3})`, this.status = r3;
    }
  }
  var GOT = {}, GOTHandler = { get(e, r3) {
    var t2 = GOT[r3];
    return t2 || (t2 = GOT[r3] = new WebAssembly.Global({ value: "i32", mutable: true }, -1)), e.has(r3) || (t2.required = true), t2;
  } }, HEAP16, HEAP32, HEAP64, HEAP8, HEAPF32, HEAPF64, HEAPU16, HEAPU32, HEAPU64, HEAPU8, callRuntimeCallbacks = (e) => {
    for (; e.length > 0; ) e.shift()(Module);
  }, onPostRuns = [], onPreRuns = [], UTF8Decoder = globalThis.TextDecoder && new TextDecoder(), findStringEnd = (e, r3, t2, n3) => {
    var i2 = r3 + t2;
    if (n3) return i2;
    for (; e[r3] && !(r3 >= i2); ) ++r3;
    return r3;
  }, UTF8ArrayToString = (e, r3 = 0, t2, n3) => {
    var i2 = findStringEnd(e, r3, t2, n3);
    if (i2 - r3 > 16 && e.buffer && UTF8Decoder) return UTF8Decoder.decode(e.subarray(r3, i2));
    for (var o5 = ""; r3 < i2; ) {
      var a3 = e[r3++];
      if (!(a3 & 128)) {
        o5 += String.fromCharCode(a3);
        continue;
      }
      var s4 = e[r3++] & 63;
      if ((a3 & 224) == 192) {
        o5 += String.fromCharCode((a3 & 31) << 6 | s4);
        continue;
      }
      var l2 = e[r3++] & 63;
      if ((a3 & 240) == 224 ? a3 = (a3 & 15) << 12 | s4 << 6 | l2 : a3 = (a3 & 7) << 18 | s4 << 12 | l2 << 6 | e[r3++] & 63, a3 < 65536) o5 += String.fromCharCode(a3);
      else {
        var u3 = a3 - 65536;
        o5 += String.fromCharCode(55296 | u3 >> 10, 56320 | u3 & 1023);
      }
    }
    return o5;
  }, getDylinkMetadata = (e) => {
    var r3 = 0, t2 = 0;
    function n3() {
      return e[r3++];
    }
    function i2() {
      for (var d5 = 0, g7 = 1; ; ) {
        var v5 = e[r3++];
        if (d5 += (v5 & 127) * g7, g7 *= 128, !(v5 & 128)) break;
      }
      return d5;
    }
    function o5() {
      var d5 = i2();
      return r3 += d5, UTF8ArrayToString(e, r3 - d5, d5);
    }
    function a3() {
      for (var d5 = i2(), g7 = []; d5--; ) g7.push(o5());
      return g7;
    }
    function s4(d5, g7) {
      if (d5) throw new Error(g7);
    }
    if (e instanceof WebAssembly.Module) {
      var l2 = WebAssembly.Module.customSections(e, "dylink.0");
      s4(!l2.length, "need dylink section"), e = new Uint8Array(l2[0]), t2 = e.length;
    } else {
      var u3 = new Uint32Array(new Uint8Array(e.subarray(0, 24)).buffer), c4 = u3[0] == 1836278016;
      s4(!c4, "need to see wasm magic number"), s4(e[8], "need the dylink section to be first"), r3 = 9;
      var _3 = i2();
      t2 = r3 + _3;
      var m7 = o5();
      s4(m7 !== "dylink.0");
    }
    for (var f5 = { neededDynlibs: [], tlsExports: /* @__PURE__ */ new Set(), weakImports: /* @__PURE__ */ new Set(), runtimePaths: [] }; r3 < t2; ) {
      var p5 = n3(), F6 = i2();
      if (p5 === 1) f5.memorySize = i2(), f5.memoryAlign = i2(), f5.tableSize = i2(), f5.tableAlign = i2();
      else if (p5 === 2) f5.neededDynlibs = a3();
      else if (p5 === 3) for (var S5 = i2(); S5--; ) {
        var E5 = o5(), y6 = i2();
        y6 & 256 && f5.tlsExports.add(E5);
      }
      else if (p5 === 4) for (S5 = i2(); S5--; ) o5(), E5 = o5(), y6 = i2(), (y6 & 3) == 1 && f5.weakImports.add(E5);
      else if (p5 === 5) f5.runtimePaths = a3();
      else if (p5 === 6) {
        var A5 = o5();
        s4(A5 !== "wasm32", `incorrect architecture (${A5} vs wasm32)`);
      } else r3 += F6;
    }
    return f5;
  }, newDSO = (e, r3, t2) => {
    var n3 = { refcount: 1 / 0, name: e, exports: t2, global: true };
    return LDSO.loadedLibsByName[e] = n3, r3 != null && (LDSO.loadedLibsByHandle[r3] = n3), n3;
  }, LDSO = { loadedLibsByName: {}, loadedLibsByHandle: {}, init() {
    newDSO("__main__", 0, wasmImports);
  } }, alignMemory = (e, r3) => Math.ceil(e / r3) * r3, getMemory = (e) => {
    if (runtimeInitialized) return _calloc(e, 1);
    var r3 = ___heap_base, t2 = r3 + alignMemory(e, 16);
    ___heap_base = t2;
    var n3 = _emscripten_get_sbrk_ptr();
    return HEAPU32[n3 >> 2] = t2, r3;
  }, isInternalSym = (e) => ["memory", "__memory_base", "__table_base", "__stack_pointer", "__indirect_function_table", "__cpp_exception", "__c_longjmp", "__wasm_apply_data_relocs", "__dso_handle", "__tls_size", "__tls_align", "__set_stack_limits", "_emscripten_tls_init", "__wasm_init_tls", "__wasm_call_ctors", "__start_em_asm", "__stop_em_asm", "__start_em_js", "__stop_em_js"].includes(e) || e.startsWith("__em_js__"), wasmTableMirror = [], getWasmTableEntry = (e) => {
    var r3 = wasmTableMirror[e];
    return r3 || (wasmTableMirror[e] = r3 = wasmTable.get(e)), r3;
  }, updateTableMap = (e, r3) => {
    if (functionsInTableMap) for (var t2 = e; t2 < e + r3; t2++) {
      var n3 = getWasmTableEntry(t2);
      n3 && functionsInTableMap.set(n3, t2);
    }
  }, functionsInTableMap, getFunctionAddress = (e) => (functionsInTableMap || (functionsInTableMap = /* @__PURE__ */ new WeakMap(), updateTableMap(0, wasmTable.length)), functionsInTableMap.get(e) || 0), freeTableIndexes = [], getEmptyTableSlot = () => freeTableIndexes.length ? freeTableIndexes.pop() : wasmTable.grow(1), setWasmTableEntry = (e, r3) => {
    wasmTable.set(e, r3), wasmTableMirror[e] = wasmTable.get(e);
  }, uleb128EncodeWithLen = (e) => {
    let r3 = e.length;
    return [r3 % 128 | 128, r3 >> 7, ...e];
  }, wasmTypeCodes = { i: 127, p: 127, j: 126, f: 125, d: 124, e: 111 }, generateTypePack = (e) => uleb128EncodeWithLen(Array.from(e, (r3) => {
    var t2 = wasmTypeCodes[r3];
    return t2;
  })), convertJsFunctionToWasm = (e, r3) => {
    var t2 = Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0, 1, ...uleb128EncodeWithLen([1, 96, ...generateTypePack(r3.slice(1)), ...generateTypePack(r3[0] === "v" ? "" : r3[0])]), 2, 7, 1, 1, 101, 1, 102, 0, 0, 7, 5, 1, 1, 102, 0, 0), n3 = new WebAssembly.Module(t2), i2 = new WebAssembly.Instance(n3, { e: { f: e } }), o5 = i2.exports.f;
    return o5;
  }, addFunction = (e, r3) => {
    var t2 = getFunctionAddress(e);
    if (t2) return t2;
    var n3 = getEmptyTableSlot();
    try {
      setWasmTableEntry(n3, e);
    } catch (o5) {
      if (!(o5 instanceof TypeError)) throw o5;
      var i2 = convertJsFunctionToWasm(e, r3);
      setWasmTableEntry(n3, i2);
    }
    return functionsInTableMap.set(e, n3), n3;
  }, updateGOT = (e, r3) => {
    for (var t2 in e) if (!isInternalSym(t2)) {
      var n3 = e[t2], i2 = GOT[t2] && GOT[t2].value != -1;
      if (r3 || !i2) {
        var o5;
        if (typeof n3 == "function") o5 = addFunction(n3);
        else if (typeof n3.value == "number") o5 = n3;
        else continue;
        GOT[t2] ?? (GOT[t2] = new WebAssembly.Global({ value: "i32", mutable: true })), GOT[t2].value = o5;
      }
    }
  }, isImmutableGlobal = (e) => {
    if (e instanceof WebAssembly.Global) try {
      e.value = e.value;
    } catch {
      return true;
    }
    return false;
  }, relocateExports = (e, r3 = 0) => {
    function t2(o5, a3) {
      return isImmutableGlobal(a3) ? new WebAssembly.Global({ value: "i32" }, a3.value + r3) : a3;
    }
    var n3 = {};
    for (var i2 in e) n3[i2] = t2(0, e[i2]);
    return n3;
  }, isSymbolDefined = (e) => {
    var r3 = wasmImports[e];
    return !(!r3 || r3.stub);
  }, createNamedFunction = (e, r3) => Object.defineProperty(r3, "name", { value: e }), dynCall = (e, r3, t2 = []) => {
    var n3 = getWasmTableEntry(r3), i2 = n3(...t2);
    return /* @__PURE__ */ (function(o5) {
      return o5;
    })(i2);
  }, stackSave = () => _emscripten_stack_get_current(), stackRestore = (e) => __emscripten_stack_restore(e), createInvokeFunction = (e) => (r3, ...t2) => {
    var n3 = stackSave();
    try {
      return dynCall(e, r3, t2);
    } catch (i2) {
      if (stackRestore(n3), !(i2 instanceof EmscriptenEH)) throw i2;
      if (_setThrew(1, 0), e[0] == "j") return 0n;
    }
  }, resolveGlobalSymbol = (e) => {
    var r3;
    return isSymbolDefined(e) ? r3 = wasmImports[e] : e.startsWith("invoke_") && (r3 = wasmImports[e] = createNamedFunction(e, createInvokeFunction(e.split("_")[1]))), { sym: r3, name: e };
  }, onPostCtors = [], addOnPostCtor = (e) => {
    onPostCtors.push(e);
  }, UTF8ToString = (e, r3, t2) => e ? UTF8ArrayToString(HEAPU8, e, r3, t2) : "", loadWebAssemblyModule = (binary, flags, libName, localScope, handle) => {
    var metadata = getDylinkMetadata(binary);
    function loadModule() {
      var memAlign = Math.pow(2, metadata.memoryAlign), memoryBase = metadata.memorySize ? alignMemory(getMemory(metadata.memorySize + memAlign), memAlign) : 0, tableBase = metadata.tableSize ? wasmTable.length : 0;
      handle && (HEAP8[handle + 8] = 1, HEAPU32[handle + 12 >> 2] = memoryBase, HEAP32[handle + 16 >> 2] = metadata.memorySize, HEAPU32[handle + 20 >> 2] = tableBase, HEAP32[handle + 24 >> 2] = metadata.tableSize), metadata.tableSize && wasmTable.grow(metadata.tableSize);
      var moduleExports;
      function resolveSymbol(e) {
        var r3 = resolveGlobalSymbol(e).sym;
        return !r3 && localScope && (r3 = localScope[e]), r3 || (r3 = moduleExports[e]), r3;
      }
      var proxyHandler = { get(e, r3) {
        switch (r3) {
          case "__memory_base":
            return memoryBase;
          case "__table_base":
            return tableBase;
        }
        if (r3 in wasmImports && !wasmImports[r3].stub) {
          var t2 = wasmImports[r3];
          return t2;
        }
        if (!(r3 in e)) {
          var n3;
          e[r3] = (...i2) => (n3 || (n3 = resolveSymbol(r3)), n3(...i2));
        }
        return e[r3];
      } }, proxy = new Proxy({}, proxyHandler), GOTProxy = new Proxy(metadata.weakImports, GOTHandler), info = { "GOT.mem": GOTProxy, "GOT.func": GOTProxy, env: proxy, wasi_snapshot_preview1: proxy };
      function postInstantiation(module, instance) {
        updateTableMap(tableBase, metadata.tableSize), moduleExports = relocateExports(instance.exports, memoryBase), updateGOT(moduleExports), flags.allowUndefined || reportUndefinedSymbols();
        function addEmAsm(addr, body) {
          for (var args = [], arity = 0; ; arity++) {
            var argName = "$" + arity;
            if (!body.includes(argName)) break;
            args.push(argName);
          }
          args = args.join();
          var func = `(${args}) => { ${body} };`;
          ASM_CONSTS[start] = eval(func);
        }
        if ("__start_em_asm" in moduleExports) for (var start = moduleExports.__start_em_asm.value, stop = moduleExports.__stop_em_asm.value; start < stop; ) {
          var jsString = UTF8ToString(start);
          addEmAsm(start, jsString), start = HEAPU8.indexOf(0, start) + 1;
        }
        function addEmJs(name, cSig, body) {
          var jsArgs = [];
          if (cSig = cSig.slice(1, -1), cSig != "void") {
            cSig = cSig.split(",");
            for (var arg of cSig) {
              var jsArg = arg.split(" ").pop();
              jsArgs.push(jsArg.replaceAll("*", ""));
            }
          }
          var func = `(${jsArgs}) => ${body};`;
          moduleExports[name] = eval(func);
        }
        for (var name in moduleExports) if (name.startsWith("__em_js__")) {
          var start = moduleExports[name].value, jsString = UTF8ToString(start), [sig, body] = jsString.split("<::>");
          addEmJs(name.replace("__em_js__", ""), sig, body), delete moduleExports[name];
        }
        var applyRelocs = moduleExports.__wasm_apply_data_relocs;
        applyRelocs && (runtimeInitialized ? applyRelocs() : __RELOC_FUNCS__.push(applyRelocs));
        var init = moduleExports.__wasm_call_ctors;
        return init && (runtimeInitialized ? init() : addOnPostCtor(init)), moduleExports;
      }
      if (flags.loadAsync) return (async () => {
        var e;
        return binary instanceof WebAssembly.Module ? e = new WebAssembly.Instance(binary, info) : { module: binary, instance: e } = await WebAssembly.instantiate(binary, info), postInstantiation(binary, e);
      })();
      var module = binary instanceof WebAssembly.Module ? binary : new WebAssembly.Module(binary), instance = new WebAssembly.Instance(module, info);
      return postInstantiation(module, instance);
    }
    if (flags = { ...flags, rpath: { parentLibPath: libName, paths: metadata.runtimePaths } }, flags.loadAsync) return metadata.neededDynlibs.reduce((e, r3) => e.then(() => (r3 = findLibraryFS(r3, flags.rpath) ?? r3, loadDynamicLibrary(r3, flags, localScope))), Promise.resolve()).then(loadModule);
    for (var needed of metadata.neededDynlibs) needed = findLibraryFS(needed, flags.rpath) ?? needed, loadDynamicLibrary(needed, flags, localScope);
    return loadModule();
  }, mergeLibSymbols = (e) => {
    for (var [r3, t2] of Object.entries(e)) {
      let n3 = (o5) => {
        isSymbolDefined(o5) || (wasmImports[o5] = t2);
      };
      n3(r3);
      let i2 = "__main_argc_argv";
      r3 == "main" && n3(i2), r3 == i2 && n3("main");
    }
  }, asyncLoad = async (e) => {
    var r3 = await readAsync(e);
    return new Uint8Array(r3);
  }, preloadPlugins = [], registerWasmPlugin = () => {
    var e = { canHandle: (r3) => !Module.noWasmDecoding && r3.endsWith(".so"), handle: async (r3, t2) => {
      try {
        var n3 = await loadWebAssemblyModule(r3, { loadAsync: true, nodelete: true }, t2, {});
      } catch (i2) {
        throw new Error(`failed to instantiate wasm: ${t2}: ${i2}`);
      }
      return preloadedWasm[t2] = n3, r3;
    } };
    preloadPlugins.push(e);
  }, preloadedWasm = {}, PATH = { isAbs: (e) => e.charAt(0) === "/", splitPath: (e) => /^(\/?|)([\s\S]*?)((?:\.{1,2}|[^\/]+?|)(\.[^.\/]*|))(?:[\/]*)$/.exec(e).slice(1), normalizeArray: (e, r3) => {
    for (var t2 = 0, n3 = e.length - 1; n3 >= 0; n3--) {
      var i2 = e[n3];
      i2 === "." ? e.splice(n3, 1) : i2 === ".." ? (e.splice(n3, 1), t2++) : t2 && (e.splice(n3, 1), t2--);
    }
    if (r3) for (; t2; t2--) e.unshift("..");
    return e;
  }, normalize: (e) => {
    var r3 = PATH.isAbs(e), t2 = e.slice(-1) === "/";
    return e = PATH.normalizeArray(e.split("/").filter((n3) => !!n3), !r3).join("/"), !e && !r3 && (e = "."), e && t2 && (e += "/"), (r3 ? "/" : "") + e;
  }, dirname: (e) => {
    var r3 = PATH.splitPath(e), t2 = r3[0], n3 = r3[1];
    return !t2 && !n3 ? "." : (n3 && (n3 = n3.slice(0, -1)), t2 + n3);
  }, basename: (e) => e && e.match(/([^\/]+|\/)\/*$/)[1], join: (...e) => PATH.normalize(e.join("/")), join2: (e, r3) => PATH.normalize(e + "/" + r3) }, replaceORIGIN = (e, r3) => {
    if (r3.startsWith("$ORIGIN")) {
      var t2 = PATH.dirname(e);
      return r3.replace("$ORIGIN", t2);
    }
    return r3;
  }, withStackSave = (e) => {
    var r3 = stackSave(), t2 = e();
    return stackRestore(r3), t2;
  }, stackAlloc = (e) => __emscripten_stack_alloc(e), lengthBytesUTF8 = (e) => {
    for (var r3 = 0, t2 = 0; t2 < e.length; ++t2) {
      var n3 = e.charCodeAt(t2);
      n3 <= 127 ? r3++ : n3 <= 2047 ? r3 += 2 : n3 >= 55296 && n3 <= 57343 ? (r3 += 4, ++t2) : r3 += 3;
    }
    return r3;
  }, stringToUTF8Array = (e, r3, t2, n3) => {
    if (!(n3 > 0)) return 0;
    for (var i2 = t2, o5 = t2 + n3 - 1, a3 = 0; a3 < e.length; ++a3) {
      var s4 = e.codePointAt(a3);
      if (s4 <= 127) {
        if (t2 >= o5) break;
        r3[t2++] = s4;
      } else if (s4 <= 2047) {
        if (t2 + 1 >= o5) break;
        r3[t2++] = 192 | s4 >> 6, r3[t2++] = 128 | s4 & 63;
      } else if (s4 <= 65535) {
        if (t2 + 2 >= o5) break;
        r3[t2++] = 224 | s4 >> 12, r3[t2++] = 128 | s4 >> 6 & 63, r3[t2++] = 128 | s4 & 63;
      } else {
        if (t2 + 3 >= o5) break;
        r3[t2++] = 240 | s4 >> 18, r3[t2++] = 128 | s4 >> 12 & 63, r3[t2++] = 128 | s4 >> 6 & 63, r3[t2++] = 128 | s4 & 63, a3++;
      }
    }
    return r3[t2] = 0, t2 - i2;
  }, stringToUTF8 = (e, r3, t2) => stringToUTF8Array(e, HEAPU8, r3, t2), stringToUTF8OnStack = (e) => {
    var r3 = lengthBytesUTF8(e) + 1, t2 = stackAlloc(r3);
    return stringToUTF8(e, t2, r3), t2;
  }, initRandomFill = () => {
    if (ENVIRONMENT_IS_NODE) {
      var e = require("node:crypto");
      return (r3) => (e.randomFillSync(r3), 0);
    }
    return (r3) => (crypto.getRandomValues(r3), 0);
  }, randomFill = (e) => (randomFill = initRandomFill())(e), PATH_FS = { resolve: (...e) => {
    for (var r3 = "", t2 = false, n3 = e.length - 1; n3 >= -1 && !t2; n3--) {
      var i2 = n3 >= 0 ? e[n3] : FS.cwd();
      if (typeof i2 != "string") throw new TypeError("Arguments to path.resolve must be strings");
      if (!i2) return "";
      r3 = i2 + "/" + r3, t2 = PATH.isAbs(i2);
    }
    return r3 = PATH.normalizeArray(r3.split("/").filter((o5) => !!o5), !t2).join("/"), (t2 ? "/" : "") + r3 || ".";
  }, relative: (e, r3) => {
    e = PATH_FS.resolve(e).slice(1), r3 = PATH_FS.resolve(r3).slice(1);
    function t2(u3) {
      for (var c4 = 0; c4 < u3.length && u3[c4] === ""; c4++) ;
      for (var _3 = u3.length - 1; _3 >= 0 && u3[_3] === ""; _3--) ;
      return c4 > _3 ? [] : u3.slice(c4, _3 - c4 + 1);
    }
    for (var n3 = t2(e.split("/")), i2 = t2(r3.split("/")), o5 = Math.min(n3.length, i2.length), a3 = o5, s4 = 0; s4 < o5; s4++) if (n3[s4] !== i2[s4]) {
      a3 = s4;
      break;
    }
    var l2 = [];
    for (s4 = a3; s4 < n3.length; s4++) l2.push("..");
    return l2 = l2.concat(i2.slice(a3)), l2.join("/");
  } }, FS_stdin_getChar_buffer = [], intArrayFromString = (e, r3, t2) => {
    var n3 = t2 > 0 ? t2 : lengthBytesUTF8(e) + 1, i2 = new Array(n3), o5 = stringToUTF8Array(e, i2, 0, i2.length);
    return r3 && (i2.length = o5), i2;
  }, FS_stdin_getChar = () => {
    if (!FS_stdin_getChar_buffer.length) {
      var e = null;
      if (ENVIRONMENT_IS_NODE) {
        var r3 = Buffer.alloc(256), t2 = 0;
        try {
          t2 = fs.readSync(process.stdin.fd, r3, 0, 256);
        } catch (n3) {
          if (n3.toString().includes("EOF")) t2 = 0;
          else throw n3;
        }
        t2 > 0 && (e = r3.toString("utf-8", 0, t2));
      } else globalThis.window?.prompt && (e = window.prompt("Input: "), e !== null && (e += `
`));
      if (!e) return null;
      FS_stdin_getChar_buffer = intArrayFromString(e, true);
    }
    return FS_stdin_getChar_buffer.shift();
  }, TTY = { ttys: [], init() {
  }, shutdown() {
  }, register(e, r3) {
    TTY.ttys[e] = { input: [], output: [], ops: r3 }, FS.registerDevice(e, TTY.stream_ops);
  }, stream_ops: { open(e) {
    var r3 = TTY.ttys[e.node.rdev];
    if (!r3) throw new FS.ErrnoError(43);
    e.tty = r3, e.seekable = false;
  }, close(e) {
    e.tty.ops.fsync(e.tty);
  }, fsync(e) {
    e.tty.ops.fsync(e.tty);
  }, read(e, r3, t2, n3, i2) {
    if (!e.tty || !e.tty.ops.get_char) throw new FS.ErrnoError(60);
    for (var o5 = 0, a3 = 0; a3 < n3; a3++) {
      var s4;
      try {
        s4 = e.tty.ops.get_char(e.tty);
      } catch {
        throw new FS.ErrnoError(29);
      }
      if (s4 === void 0 && !o5) throw new FS.ErrnoError(6);
      if (s4 == null || (o5++, r3[t2 + a3] = s4, s4 === 10)) break;
    }
    return o5 && (e.node.atime = Date.now()), o5;
  }, write(e, r3, t2, n3, i2) {
    if (!e.tty || !e.tty.ops.put_char) throw new FS.ErrnoError(60);
    try {
      for (var o5 = 0; o5 < n3; o5++) e.tty.ops.put_char(e.tty, r3[t2 + o5]);
    } catch {
      throw new FS.ErrnoError(29);
    }
    return n3 && (e.node.mtime = e.node.ctime = Date.now()), o5;
  } }, default_tty_ops: { get_char(e) {
    return FS_stdin_getChar();
  }, put_char(e, r3) {
    r3 === null || r3 === 10 ? (out(UTF8ArrayToString(e.output)), e.output = []) : r3 != 0 && e.output.push(r3);
  }, fsync(e) {
    e.output?.length > 0 && (out(UTF8ArrayToString(e.output)), e.output = []);
  }, ioctl_tcgets(e) {
    return { c_iflag: 25856, c_oflag: 5, c_cflag: 191, c_lflag: 35387, c_cc: [3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] };
  }, ioctl_tcsets(e, r3, t2) {
    return 0;
  }, ioctl_tiocgwinsz(e) {
    return [24, 80];
  } }, default_tty1_ops: { put_char(e, r3) {
    r3 === null || r3 === 10 ? (err(UTF8ArrayToString(e.output)), e.output = []) : r3 != 0 && e.output.push(r3);
  }, fsync(e) {
    e.output?.length > 0 && (err(UTF8ArrayToString(e.output)), e.output = []);
  } } }, zeroMemory = (e, r3) => HEAPU8.fill(0, e, e + r3), mmapAlloc = (e) => {
    e = alignMemory(e, 65536);
    var r3 = _emscripten_builtin_memalign(65536, e);
    return r3 && zeroMemory(r3, e), r3;
  }, MEMFS = { ops_table: null, mount(e) {
    return MEMFS.createNode(null, "/", 16895, 0);
  }, createNode(e, r3, t2, n3) {
    if (FS.isBlkdev(t2) || FS.isFIFO(t2)) throw new FS.ErrnoError(63);
    MEMFS.ops_table || (MEMFS.ops_table = { dir: { node: { getattr: MEMFS.node_ops.getattr, setattr: MEMFS.node_ops.setattr, lookup: MEMFS.node_ops.lookup, mknod: MEMFS.node_ops.mknod, rename: MEMFS.node_ops.rename, unlink: MEMFS.node_ops.unlink, rmdir: MEMFS.node_ops.rmdir, readdir: MEMFS.node_ops.readdir, symlink: MEMFS.node_ops.symlink }, stream: { llseek: MEMFS.stream_ops.llseek } }, file: { node: { getattr: MEMFS.node_ops.getattr, setattr: MEMFS.node_ops.setattr }, stream: { llseek: MEMFS.stream_ops.llseek, read: MEMFS.stream_ops.read, write: MEMFS.stream_ops.write, mmap: MEMFS.stream_ops.mmap, msync: MEMFS.stream_ops.msync } }, link: { node: { getattr: MEMFS.node_ops.getattr, setattr: MEMFS.node_ops.setattr, readlink: MEMFS.node_ops.readlink }, stream: {} }, chrdev: { node: { getattr: MEMFS.node_ops.getattr, setattr: MEMFS.node_ops.setattr }, stream: FS.chrdev_stream_ops } });
    var i2 = FS.createNode(e, r3, t2, n3);
    return FS.isDir(i2.mode) ? (i2.node_ops = MEMFS.ops_table.dir.node, i2.stream_ops = MEMFS.ops_table.dir.stream, i2.contents = {}) : FS.isFile(i2.mode) ? (i2.node_ops = MEMFS.ops_table.file.node, i2.stream_ops = MEMFS.ops_table.file.stream, i2.usedBytes = 0, i2.contents = MEMFS.emptyFileContents ?? (MEMFS.emptyFileContents = new Uint8Array(0))) : FS.isLink(i2.mode) ? (i2.node_ops = MEMFS.ops_table.link.node, i2.stream_ops = MEMFS.ops_table.link.stream) : FS.isChrdev(i2.mode) && (i2.node_ops = MEMFS.ops_table.chrdev.node, i2.stream_ops = MEMFS.ops_table.chrdev.stream), i2.atime = i2.mtime = i2.ctime = Date.now(), e && (e.contents[r3] = i2, e.atime = e.mtime = e.ctime = i2.atime), i2;
  }, getFileDataAsTypedArray(e) {
    return e.contents.subarray(0, e.usedBytes);
  }, expandFileStorage(e, r3) {
    var t2 = e.contents.length;
    if (!(t2 >= r3)) {
      r3 = Math.max(r3, t2 * (t2 < 1048576 ? 2 : 1.125) >>> 0), t2 && (r3 = Math.max(r3, 256));
      var n3 = MEMFS.getFileDataAsTypedArray(e);
      e.contents = new Uint8Array(r3), e.contents.set(n3);
    }
  }, resizeFileStorage(e, r3) {
    if (e.usedBytes != r3) {
      var t2 = e.contents;
      e.contents = new Uint8Array(r3), e.contents.set(t2.subarray(0, Math.min(r3, e.usedBytes))), e.usedBytes = r3;
    }
  }, node_ops: { getattr(e) {
    var r3 = {};
    return r3.dev = FS.isChrdev(e.mode) ? e.id : 1, r3.ino = e.id, r3.mode = e.mode, r3.nlink = 1, r3.uid = 0, r3.gid = 0, r3.rdev = e.rdev, FS.isDir(e.mode) ? r3.size = 4096 : FS.isFile(e.mode) ? r3.size = e.usedBytes : FS.isLink(e.mode) ? r3.size = e.link.length : r3.size = 0, r3.atime = new Date(e.atime), r3.mtime = new Date(e.mtime), r3.ctime = new Date(e.ctime), r3.blksize = 4096, r3.blocks = Math.ceil(r3.size / r3.blksize), r3;
  }, setattr(e, r3) {
    for (let t2 of ["mode", "atime", "mtime", "ctime"]) r3[t2] != null && (e[t2] = r3[t2]);
    r3.size !== void 0 && MEMFS.resizeFileStorage(e, r3.size);
  }, lookup(e, r3) {
    throw MEMFS.doesNotExistError || (MEMFS.doesNotExistError = new FS.ErrnoError(44), MEMFS.doesNotExistError.stack = "<generic error, no stack>"), MEMFS.doesNotExistError;
  }, mknod(e, r3, t2, n3) {
    return MEMFS.createNode(e, r3, t2, n3);
  }, rename(e, r3, t2) {
    var n3;
    try {
      n3 = FS.lookupNode(r3, t2);
    } catch {
    }
    if (n3 && FS.isDir(e.mode)) for (var i2 in n3.contents) throw new FS.ErrnoError(55);
    delete e.parent.contents[e.name], r3.contents[t2] = e, e.name = t2, r3.ctime = r3.mtime = e.parent.ctime = e.parent.mtime = Date.now();
  }, unlink(e, r3) {
    delete e.contents[r3], e.ctime = e.mtime = Date.now();
  }, rmdir(e, r3) {
    var t2 = FS.lookupNode(e, r3);
    for (var n3 in t2.contents) throw new FS.ErrnoError(55);
    delete e.contents[r3], e.ctime = e.mtime = Date.now();
  }, readdir(e) {
    return [".", "..", ...Object.keys(e.contents)];
  }, symlink(e, r3, t2) {
    var n3 = MEMFS.createNode(e, r3, 41471, 0);
    return n3.link = t2, n3;
  }, readlink(e) {
    if (!FS.isLink(e.mode)) throw new FS.ErrnoError(28);
    return e.link;
  } }, stream_ops: { read(e, r3, t2, n3, i2) {
    var o5 = e.node.contents;
    if (i2 >= e.node.usedBytes) return 0;
    var a3 = Math.min(e.node.usedBytes - i2, n3);
    return r3.set(o5.subarray(i2, i2 + a3), t2), a3;
  }, write(e, r3, t2, n3, i2, o5) {
    if (r3.buffer === HEAP8.buffer && (o5 = false), !n3) return 0;
    var a3 = e.node;
    return a3.mtime = a3.ctime = Date.now(), o5 ? (a3.contents = r3.subarray(t2, t2 + n3), a3.usedBytes = n3) : !a3.usedBytes && !i2 ? (a3.contents = r3.slice(t2, t2 + n3), a3.usedBytes = n3) : (MEMFS.expandFileStorage(a3, i2 + n3), a3.contents.set(r3.subarray(t2, t2 + n3), i2), a3.usedBytes = Math.max(a3.usedBytes, i2 + n3)), n3;
  }, llseek(e, r3, t2) {
    var n3 = r3;
    if (t2 === 1 ? n3 += e.position : t2 === 2 && FS.isFile(e.node.mode) && (n3 += e.node.usedBytes), n3 < 0) throw new FS.ErrnoError(28);
    return n3;
  }, mmap(e, r3, t2, n3, i2) {
    if (!FS.isFile(e.node.mode)) throw new FS.ErrnoError(43);
    var o5, a3, s4 = e.node.contents;
    if (!(i2 & 2) && s4.buffer === HEAP8.buffer) a3 = false, o5 = s4.byteOffset;
    else {
      if (a3 = true, o5 = mmapAlloc(r3), !o5) throw new FS.ErrnoError(48);
      s4 && ((t2 > 0 || t2 + r3 < s4.length) && (s4.subarray ? s4 = s4.subarray(t2, t2 + r3) : s4 = Array.prototype.slice.call(s4, t2, t2 + r3)), HEAP8.set(s4, o5));
    }
    return { ptr: o5, allocated: a3 };
  }, msync(e, r3, t2, n3, i2) {
    return MEMFS.stream_ops.write(e, r3, 0, n3, t2, false), 0;
  } } }, FS_modeStringToFlags = (e) => {
    if (typeof e != "string") return e;
    var r3 = { r: 0, "r+": 2, w: 577, "w+": 578, a: 1089, "a+": 1090 }[e];
    if (typeof r3 > "u") throw new Error(`Unknown file open mode: ${e}`);
    return r3;
  }, FS_fileDataToTypedArray = (e) => (typeof e == "string" && (e = intArrayFromString(e, true)), e.subarray || (e = new Uint8Array(e)), e), FS_getMode = (e, r3) => {
    var t2 = 0;
    return e && (t2 |= 365), r3 && (t2 |= 146), t2;
  }, ERRNO_CODES = { EPERM: 63, ENOENT: 44, ESRCH: 71, EINTR: 27, EIO: 29, ENXIO: 60, E2BIG: 1, ENOEXEC: 45, EBADF: 8, ECHILD: 12, EAGAIN: 6, EWOULDBLOCK: 6, ENOMEM: 48, EACCES: 2, EFAULT: 21, ENOTBLK: 105, EBUSY: 10, EEXIST: 20, EXDEV: 75, ENODEV: 43, ENOTDIR: 54, EISDIR: 31, EINVAL: 28, ENFILE: 41, EMFILE: 33, ENOTTY: 59, ETXTBSY: 74, EFBIG: 22, ENOSPC: 51, ESPIPE: 70, EROFS: 69, EMLINK: 34, EPIPE: 64, EDOM: 18, ERANGE: 68, ENOMSG: 49, EIDRM: 24, ECHRNG: 106, EL2NSYNC: 156, EL3HLT: 107, EL3RST: 108, ELNRNG: 109, EUNATCH: 110, ENOCSI: 111, EL2HLT: 112, EDEADLK: 16, ENOLCK: 46, EBADE: 113, EBADR: 114, EXFULL: 115, ENOANO: 104, EBADRQC: 103, EBADSLT: 102, EDEADLOCK: 16, EBFONT: 101, ENOSTR: 100, ENODATA: 116, ETIME: 117, ENOSR: 118, ENONET: 119, ENOPKG: 120, EREMOTE: 121, ENOLINK: 47, EADV: 122, ESRMNT: 123, ECOMM: 124, EPROTO: 65, EMULTIHOP: 36, EDOTDOT: 125, EBADMSG: 9, ENOTUNIQ: 126, EBADFD: 127, EREMCHG: 128, ELIBACC: 129, ELIBBAD: 130, ELIBSCN: 131, ELIBMAX: 132, ELIBEXEC: 133, ENOSYS: 52, ENOTEMPTY: 55, ENAMETOOLONG: 37, ELOOP: 32, EOPNOTSUPP: 138, EPFNOSUPPORT: 139, ECONNRESET: 15, ENOBUFS: 42, EAFNOSUPPORT: 5, EPROTOTYPE: 67, ENOTSOCK: 57, ENOPROTOOPT: 50, ESHUTDOWN: 140, ECONNREFUSED: 14, EADDRINUSE: 3, ECONNABORTED: 13, ENETUNREACH: 40, ENETDOWN: 38, ETIMEDOUT: 73, EHOSTDOWN: 142, EHOSTUNREACH: 23, EINPROGRESS: 26, EALREADY: 7, EDESTADDRREQ: 17, EMSGSIZE: 35, EPROTONOSUPPORT: 66, ESOCKTNOSUPPORT: 137, EADDRNOTAVAIL: 4, ENETRESET: 39, EISCONN: 30, ENOTCONN: 53, ETOOMANYREFS: 141, EUSERS: 136, EDQUOT: 19, ESTALE: 72, ENOTSUP: 138, ENOMEDIUM: 148, EILSEQ: 25, EOVERFLOW: 61, ECANCELED: 11, ENOTRECOVERABLE: 56, EOWNERDEAD: 62, ESTRPIPE: 135 }, PROXYFS = { mount(e) {
    return PROXYFS.createNode(null, "/", e.opts.fs.lstat(e.opts.root).mode, 0);
  }, createNode(e, r3, t2, n3) {
    if (!FS.isDir(t2) && !FS.isFile(t2) && !FS.isLink(t2)) throw new FS.ErrnoError(ERRNO_CODES.EINVAL);
    var i2 = FS.createNode(e, r3, t2);
    return i2.node_ops = PROXYFS.node_ops, i2.stream_ops = PROXYFS.stream_ops, i2;
  }, realPath(e) {
    for (var r3 = []; e.parent !== e; ) r3.push(e.name), e = e.parent;
    return r3.push(e.mount.opts.root), r3.reverse(), PATH.join(...r3);
  }, node_ops: { getattr(e) {
    var r3 = PROXYFS.realPath(e), t2;
    try {
      t2 = e.mount.opts.fs.lstat(r3);
    } catch (n3) {
      throw n3.code ? new FS.ErrnoError(ERRNO_CODES[n3.code]) : n3;
    }
    return { dev: t2.dev, ino: t2.ino, mode: t2.mode, nlink: t2.nlink, uid: t2.uid, gid: t2.gid, rdev: t2.rdev, size: t2.size, atime: t2.atime, mtime: t2.mtime, ctime: t2.ctime, blksize: t2.blksize, blocks: t2.blocks };
  }, setattr(e, r3) {
    var t2 = PROXYFS.realPath(e);
    try {
      if (r3.mode !== void 0 && (e.mount.opts.fs.chmod(t2, r3.mode), e.mode = r3.mode), r3.atime || r3.mtime) {
        var n3 = new Date(r3.atime || r3.mtime), i2 = new Date(r3.mtime || r3.atime);
        e.mount.opts.fs.utime(t2, n3, i2);
      }
      r3.size !== void 0 && e.mount.opts.fs.truncate(t2, r3.size);
    } catch (o5) {
      throw o5.code ? new FS.ErrnoError(ERRNO_CODES[o5.code]) : o5;
    }
  }, lookup(e, r3) {
    try {
      var t2 = PATH.join2(PROXYFS.realPath(e), r3), n3 = e.mount.opts.fs.lstat(t2).mode, i2 = PROXYFS.createNode(e, r3, n3);
      return i2;
    } catch (o5) {
      throw o5.code ? new FS.ErrnoError(ERRNO_CODES[o5.code]) : o5;
    }
  }, mknod(e, r3, t2, n3) {
    var i2 = PROXYFS.createNode(e, r3, t2, n3), o5 = PROXYFS.realPath(i2);
    try {
      FS.isDir(i2.mode) ? i2.mount.opts.fs.mkdir(o5, i2.mode) : i2.mount.opts.fs.writeFile(o5, "", { mode: i2.mode });
    } catch (a3) {
      throw a3.code ? new FS.ErrnoError(ERRNO_CODES[a3.code]) : a3;
    }
    return i2;
  }, rename(e, r3, t2) {
    var n3 = PROXYFS.realPath(e), i2 = PATH.join2(PROXYFS.realPath(r3), t2);
    try {
      e.mount.opts.fs.rename(n3, i2), e.name = t2;
    } catch (o5) {
      throw o5.code ? new FS.ErrnoError(ERRNO_CODES[o5.code]) : o5;
    }
  }, unlink(e, r3) {
    var t2 = PATH.join2(PROXYFS.realPath(e), r3);
    try {
      e.mount.opts.fs.unlink(t2);
    } catch (n3) {
      throw n3.code ? new FS.ErrnoError(ERRNO_CODES[n3.code]) : n3;
    }
  }, rmdir(e, r3) {
    var t2 = PATH.join2(PROXYFS.realPath(e), r3);
    try {
      e.mount.opts.fs.rmdir(t2);
    } catch (n3) {
      throw n3.code ? new FS.ErrnoError(ERRNO_CODES[n3.code]) : n3;
    }
  }, readdir(e) {
    var r3 = PROXYFS.realPath(e);
    try {
      return e.mount.opts.fs.readdir(r3);
    } catch (t2) {
      throw t2.code ? new FS.ErrnoError(ERRNO_CODES[t2.code]) : t2;
    }
  }, symlink(e, r3, t2) {
    var n3 = PATH.join2(PROXYFS.realPath(e), r3);
    try {
      e.mount.opts.fs.symlink(t2, n3);
    } catch (i2) {
      throw i2.code ? new FS.ErrnoError(ERRNO_CODES[i2.code]) : i2;
    }
  }, readlink(e) {
    var r3 = PROXYFS.realPath(e);
    try {
      return e.mount.opts.fs.readlink(r3);
    } catch (t2) {
      throw t2.code ? new FS.ErrnoError(ERRNO_CODES[t2.code]) : t2;
    }
  } }, stream_ops: { open(e) {
    var r3 = PROXYFS.realPath(e.node);
    try {
      e.nfd = e.node.mount.opts.fs.open(r3, e.flags);
    } catch (t2) {
      throw t2.code ? new FS.ErrnoError(ERRNO_CODES[t2.code]) : t2;
    }
  }, close(e) {
    try {
      e.node.mount.opts.fs.close(e.nfd);
    } catch (r3) {
      throw r3.code ? new FS.ErrnoError(ERRNO_CODES[r3.code]) : r3;
    }
  }, read(e, r3, t2, n3, i2) {
    try {
      return e.node.mount.opts.fs.read(e.nfd, r3, t2, n3, i2);
    } catch (o5) {
      throw o5.code ? new FS.ErrnoError(ERRNO_CODES[o5.code]) : o5;
    }
  }, write(e, r3, t2, n3, i2) {
    try {
      return e.node.mount.opts.fs.write(e.nfd, r3, t2, n3, i2);
    } catch (o5) {
      throw o5.code ? new FS.ErrnoError(ERRNO_CODES[o5.code]) : o5;
    }
  }, llseek(e, r3, t2) {
    var n3 = r3;
    if (t2 === 1) n3 += e.position;
    else if (t2 === 2 && FS.isFile(e.node.mode)) try {
      var i2 = e.node.node_ops.getattr(e.node);
      n3 += i2.size;
    } catch (o5) {
      throw new FS.ErrnoError(ERRNO_CODES[o5.code]);
    }
    if (n3 < 0) throw new FS.ErrnoError(ERRNO_CODES.EINVAL);
    return n3;
  } } }, FS_createDataFile = (...e) => FS.createDataFile(...e), getUniqueRunDependency = (e) => e, dependenciesPromise = null, resolveRunDependencies = async () => dependenciesPromise, runDependencies = 0, dependenciesPromiseResolve = null, removeRunDependency = () => {
    runDependencies--, Module.monitorRunDependencies?.(runDependencies), runDependencies || dependenciesPromiseResolve();
  }, addRunDependency = () => {
    runDependencies || (dependenciesPromise = new Promise((e) => dependenciesPromiseResolve = e)), runDependencies++, Module.monitorRunDependencies?.(runDependencies);
  }, FS_handledByPreloadPlugin = async (e, r3) => {
    typeof Browser < "u" && Browser.init();
    for (var t2 of preloadPlugins) if (t2.canHandle(r3)) return t2.handle(e, r3);
    return e;
  }, FS_preloadFile = async (e, r3, t2, n3, i2, o5, a3, s4) => {
    var l2 = r3 ? PATH_FS.resolve(PATH.join2(e, r3)) : e, u3 = getUniqueRunDependency(`cp ${l2}`);
    addRunDependency(u3);
    try {
      var c4 = t2;
      typeof t2 == "string" && (c4 = await asyncLoad(t2)), c4 = await FS_handledByPreloadPlugin(c4, l2), s4?.(), o5 || FS_createDataFile(e, r3, c4, n3, i2, a3);
    } finally {
      removeRunDependency(u3);
    }
  }, FS_createPreloadedFile = (e, r3, t2, n3, i2, o5, a3, s4, l2, u3) => {
    FS_preloadFile(e, r3, t2, n3, i2, s4, l2, u3).then(o5).catch(a3);
  }, FS = { root: null, mounts: [], devices: {}, streams: [], nextInode: 1, nameTable: [], currentPath: "/", initialized: false, ignorePermissions: true, syncFSRequests: 0, ErrnoError: class {
    constructor(e) {
      P(this, "name", "ErrnoError");
      this.errno = e;
    }
  }, FSStream: class {
    constructor() {
      P(this, "shared", {});
    }
    get object() {
      return this.node;
    }
    set object(e) {
      this.node = e;
    }
    get isRead() {
      return (this.flags & 2097155) !== 1;
    }
    get isWrite() {
      return (this.flags & 2097155) !== 0;
    }
    get isAppend() {
      return this.flags & 1024;
    }
    get flags() {
      return this.shared.flags;
    }
    set flags(e) {
      this.shared.flags = e;
    }
    get position() {
      return this.shared.position;
    }
    set position(e) {
      this.shared.position = e;
    }
  }, FSNode: class {
    constructor(e, r3, t2, n3) {
      P(this, "node_ops", {});
      P(this, "stream_ops", {});
      P(this, "readMode", 365);
      P(this, "writeMode", 146);
      P(this, "mounted", null);
      e || (e = this), this.parent = e, this.mount = e.mount, this.id = FS.nextInode++, this.name = r3, this.mode = t2, this.rdev = n3, this.atime = this.mtime = this.ctime = Date.now();
    }
    get read() {
      return (this.mode & this.readMode) === this.readMode;
    }
    set read(e) {
      e ? this.mode |= this.readMode : this.mode &= ~this.readMode;
    }
    get write() {
      return (this.mode & this.writeMode) === this.writeMode;
    }
    set write(e) {
      e ? this.mode |= this.writeMode : this.mode &= ~this.writeMode;
    }
    get isFolder() {
      return FS.isDir(this.mode);
    }
    get isDevice() {
      return FS.isChrdev(this.mode);
    }
    addListener(e, r3 = false) {
      var t2 = { cb: e, exclusive: r3 }, n3 = this.listeners ?? (this.listeners = /* @__PURE__ */ new Set());
      return n3.add(t2), { listeners: n3, entry: t2 };
    }
    notifyListeners(e) {
      if (this.listeners) {
        var r3;
        for (var t2 of this.listeners) t2.exclusive ? (r3 || (r3 = [])).push(t2) : t2.cb(e);
        if (r3) {
          var n3 = (this.exclTurn || 0) % r3.length;
          this.exclTurn = n3 + 1, r3[n3].cb(e);
        }
      }
    }
  }, lookupPath(e, r3 = {}) {
    if (!e) throw new FS.ErrnoError(44);
    r3.follow_mount ?? (r3.follow_mount = true), PATH.isAbs(e) || (e = FS.cwd() + "/" + e);
    e: for (var t2 = 0; t2 < 40; t2++) {
      for (var n3 = e.split("/").filter((u3) => !!u3), i2 = FS.root, o5 = "/", a3 = 0; a3 < n3.length; a3++) {
        var s4 = a3 === n3.length - 1;
        if (s4 && r3.parent) break;
        if (n3[a3] !== ".") {
          if (n3[a3] === "..") {
            if (o5 = PATH.dirname(o5), FS.isRoot(i2)) {
              e = o5 + "/" + n3.slice(a3 + 1).join("/"), t2--;
              continue e;
            } else i2 = i2.parent;
            continue;
          }
          o5 = PATH.join2(o5, n3[a3]);
          try {
            i2 = FS.lookupNode(i2, n3[a3]);
          } catch (u3) {
            if (u3?.errno === 44 && s4 && r3.noent_okay) return { path: o5 };
            throw u3;
          }
          if (FS.isMountpoint(i2) && (!s4 || r3.follow_mount) && (i2 = i2.mounted.root), FS.isLink(i2.mode) && (!s4 || r3.follow)) {
            if (!i2.node_ops.readlink) throw new FS.ErrnoError(52);
            var l2 = i2.node_ops.readlink(i2);
            PATH.isAbs(l2) || (l2 = PATH.dirname(o5) + "/" + l2), e = l2 + "/" + n3.slice(a3 + 1).join("/");
            continue e;
          }
        }
      }
      return { path: o5, node: i2 };
    }
    throw new FS.ErrnoError(32);
  }, getPath(e) {
    for (var r3; ; ) {
      if (FS.isRoot(e)) {
        var t2 = e.mount.mountpoint;
        return r3 ? t2[t2.length - 1] !== "/" ? `${t2}/${r3}` : t2 + r3 : t2;
      }
      r3 = r3 ? `${e.name}/${r3}` : e.name, e = e.parent;
    }
  }, hashName(e, r3) {
    for (var t2 = 0, n3 = 0; n3 < r3.length; n3++) t2 = (t2 << 5) - t2 + r3.charCodeAt(n3) | 0;
    return (e + t2 >>> 0) % FS.nameTable.length;
  }, hashAddNode(e) {
    var r3 = FS.hashName(e.parent.id, e.name);
    e.name_next = FS.nameTable[r3], FS.nameTable[r3] = e;
  }, hashRemoveNode(e) {
    var r3 = FS.hashName(e.parent.id, e.name);
    if (FS.nameTable[r3] === e) FS.nameTable[r3] = e.name_next;
    else for (var t2 = FS.nameTable[r3]; t2; ) {
      if (t2.name_next === e) {
        t2.name_next = e.name_next;
        break;
      }
      t2 = t2.name_next;
    }
  }, lookupNode(e, r3) {
    var t2 = FS.mayLookup(e);
    if (t2) throw new FS.ErrnoError(t2);
    for (var n3 = FS.hashName(e.id, r3), i2 = FS.nameTable[n3]; i2; i2 = i2.name_next) {
      var o5 = i2.name;
      if (i2.parent.id === e.id && o5 === r3) return i2;
    }
    return FS.lookup(e, r3);
  }, createNode(e, r3, t2, n3) {
    var i2 = new FS.FSNode(e, r3, t2, n3);
    return FS.hashAddNode(i2), i2;
  }, destroyNode(e) {
    FS.hashRemoveNode(e);
  }, isRoot(e) {
    return e === e.parent;
  }, isMountpoint(e) {
    return !!e.mounted;
  }, isFile(e) {
    return (e & 61440) === 32768;
  }, isDir(e) {
    return (e & 61440) === 16384;
  }, isLink(e) {
    return (e & 61440) === 40960;
  }, isChrdev(e) {
    return (e & 61440) === 8192;
  }, isBlkdev(e) {
    return (e & 61440) === 24576;
  }, isFIFO(e) {
    return (e & 61440) === 4096;
  }, isSocket(e) {
    return (e & 49152) === 49152;
  }, flagsToPermissionString(e) {
    var r3 = ["r", "w", "rw"][e & 3];
    return e & 512 && (r3 += "w"), r3;
  }, nodePermissions(e, r3) {
    return FS.ignorePermissions ? 0 : r3.includes("r") && !(e.mode & 292) || r3.includes("w") && !(e.mode & 146) || r3.includes("x") && !(e.mode & 73) ? 2 : 0;
  }, mayLookup(e) {
    if (!FS.isDir(e.mode)) return 54;
    var r3 = FS.nodePermissions(e, "x");
    return r3 || (e.node_ops.lookup ? 0 : 2);
  }, mayCreate(e, r3) {
    if (!FS.isDir(e.mode)) return 54;
    try {
      return FS.lookupNode(e, r3), 20;
    } catch {
    }
    return FS.nodePermissions(e, "wx");
  }, mayDelete(e, r3, t2) {
    var n3;
    try {
      n3 = FS.lookupNode(e, r3);
    } catch (o5) {
      return o5.errno;
    }
    var i2 = FS.nodePermissions(e, "wx");
    if (i2) return i2;
    if (t2) {
      if (!FS.isDir(n3.mode)) return 54;
      if (FS.isRoot(n3) || FS.getPath(n3) === FS.cwd()) return 10;
    } else if (FS.isDir(n3.mode)) return 31;
    return 0;
  }, mayOpen(e, r3) {
    if (!e) return 44;
    if (FS.isLink(e.mode)) return 32;
    var t2 = FS.flagsToPermissionString(r3);
    return FS.isDir(e.mode) && (t2 !== "r" || r3 & 576) ? 31 : FS.nodePermissions(e, t2);
  }, checkOpExists(e, r3) {
    if (!e) throw new FS.ErrnoError(r3);
    return e;
  }, MAX_OPEN_FDS: 4096, nextfd() {
    for (var e = 0; e <= FS.MAX_OPEN_FDS; e++) if (!FS.streams[e]) return e;
    throw new FS.ErrnoError(33);
  }, getStreamChecked(e) {
    var r3 = FS.getStream(e);
    if (!r3) throw new FS.ErrnoError(8);
    return r3;
  }, getStream: (e) => FS.streams[e], createStream(e, r3 = -1) {
    return e = Object.assign(new FS.FSStream(), e), r3 == -1 && (r3 = FS.nextfd()), e.fd = r3, FS.streams[r3] = e, e;
  }, closeStream(e) {
    FS.streams[e] = null;
  }, dupStream(e, r3 = -1) {
    var t2 = FS.createStream(e, r3);
    return t2.stream_ops?.dup?.(t2), t2;
  }, doSetAttr(e, r3, t2) {
    var n3 = e?.stream_ops.setattr, i2 = n3 ? e : r3;
    n3 ?? (n3 = r3.node_ops.setattr), FS.checkOpExists(n3, 63);
    try {
      n3(i2, t2);
    } catch (o5) {
      throw o5 instanceof RangeError ? new FS.ErrnoError(22) : o5;
    }
  }, chrdev_stream_ops: { open(e) {
    var r3 = FS.getDevice(e.node.rdev);
    e.stream_ops = r3.stream_ops, e.stream_ops.open?.(e);
  }, llseek() {
    throw new FS.ErrnoError(70);
  } }, major: (e) => e >> 8, minor: (e) => e & 255, makedev: (e, r3) => e << 8 | r3, registerDevice(e, r3) {
    FS.devices[e] = { stream_ops: r3 };
  }, getDevice: (e) => FS.devices[e], getMounts(e) {
    for (var r3 = [], t2 = [e]; t2.length; ) {
      var n3 = t2.pop();
      r3.push(n3), t2.push(...n3.mounts);
    }
    return r3;
  }, syncfs(e, r3) {
    typeof e == "function" && (r3 = e, e = false), FS.syncFSRequests++, FS.syncFSRequests > 1 && err(`warning: ${FS.syncFSRequests} FS.syncfs operations in flight at once, probably just doing extra work`);
    var t2 = FS.getMounts(FS.root.mount), n3 = 0;
    function i2(s4) {
      return FS.syncFSRequests--, r3(s4);
    }
    function o5(s4) {
      if (s4) return o5.errored ? void 0 : (o5.errored = true, i2(s4));
      ++n3 >= t2.length && i2(null);
    }
    for (var a3 of t2) a3.type.syncfs ? a3.type.syncfs(a3, e, o5) : o5(null);
  }, mount(e, r3, t2) {
    var n3 = t2 === "/", i2 = !t2, o5;
    if (n3 && FS.root) throw new FS.ErrnoError(10);
    if (!n3 && !i2) {
      var a3 = FS.lookupPath(t2, { follow_mount: false });
      if (t2 = a3.path, o5 = a3.node, FS.isMountpoint(o5)) throw new FS.ErrnoError(10);
      if (!FS.isDir(o5.mode)) throw new FS.ErrnoError(54);
    }
    var s4 = { type: e, opts: r3, mountpoint: t2, mounts: [] }, l2 = e.mount(s4);
    return l2.mount = s4, s4.root = l2, n3 ? FS.root = l2 : o5 && (o5.mounted = s4, o5.mount && o5.mount.mounts.push(s4)), l2;
  }, unmount(e) {
    var r3 = FS.lookupPath(e, { follow_mount: false });
    if (!FS.isMountpoint(r3.node)) throw new FS.ErrnoError(28);
    var t2 = r3.node, n3 = t2.mounted, i2 = FS.getMounts(n3);
    for (var [o5, a3] of Object.entries(FS.nameTable)) for (; a3; ) {
      var s4 = a3.name_next;
      i2.includes(a3.mount) && FS.destroyNode(a3), a3 = s4;
    }
    t2.mounted = null;
    var l2 = t2.mount.mounts.indexOf(n3);
    t2.mount.mounts.splice(l2, 1);
  }, lookup(e, r3) {
    return e.node_ops.lookup(e, r3);
  }, mknod(e, r3, t2) {
    var n3 = FS.lookupPath(e, { parent: true }), i2 = n3.node, o5 = PATH.basename(e);
    if (!o5) throw new FS.ErrnoError(28);
    if (o5 === "." || o5 === "..") throw new FS.ErrnoError(20);
    var a3 = FS.mayCreate(i2, o5);
    if (a3) throw new FS.ErrnoError(a3);
    if (!i2.node_ops.mknod) throw new FS.ErrnoError(63);
    return i2.node_ops.mknod(i2, o5, r3, t2);
  }, statfs(e) {
    return FS.statfsNode(FS.lookupPath(e, { follow: true }).node);
  }, statfsStream(e) {
    return FS.statfsNode(e.node);
  }, statfsNode(e) {
    var r3 = { bsize: 4096, frsize: 4096, blocks: 1e6, bfree: 5e5, bavail: 5e5, files: FS.nextInode, ffree: FS.nextInode - 1, fsid: 42, flags: 2, namelen: 255 };
    return e.node_ops.statfs && Object.assign(r3, e.node_ops.statfs(e.mount.opts.root)), r3;
  }, create(e, r3 = 438) {
    return r3 &= 4095, r3 |= 32768, FS.mknod(e, r3, 0);
  }, mkdir(e, r3 = 511) {
    return r3 &= 1023, r3 |= 16384, FS.mknod(e, r3, 0);
  }, mkdirTree(e, r3 = 511) {
    var t2 = e.split("/"), n3 = "";
    for (var i2 of t2) if (i2) {
      (n3 || PATH.isAbs(e)) && (n3 += "/"), n3 += i2;
      try {
        FS.mkdir(n3, r3);
      } catch (o5) {
        if (o5.errno != 20) throw o5;
      }
    }
  }, mkdev(e, r3, t2) {
    return typeof t2 > "u" && (t2 = r3, r3 = 438), r3 |= 8192, FS.mknod(e, r3, t2);
  }, symlink(e, r3) {
    if (!PATH_FS.resolve(e)) throw new FS.ErrnoError(44);
    var t2 = FS.lookupPath(r3, { parent: true }), n3 = t2.node;
    if (!n3) throw new FS.ErrnoError(44);
    var i2 = PATH.basename(r3), o5 = FS.mayCreate(n3, i2);
    if (o5) throw new FS.ErrnoError(o5);
    if (!n3.node_ops.symlink) throw new FS.ErrnoError(63);
    return n3.node_ops.symlink(n3, i2, e);
  }, link(e, r3, t2) {
    var n3 = FS.lookupPath(r3, { parent: true }), i2 = n3.node;
    if (!i2) throw new FS.ErrnoError(44);
    var o5 = PATH.basename(r3), a3 = FS.mayCreate(i2, o5);
    if (a3) throw new FS.ErrnoError(a3);
    if (!i2.node_ops.link) throw new FS.ErrnoError(34);
    return i2.node_ops.link(i2, o5, e, t2);
  }, rename(e, r3) {
    var t2 = PATH.dirname(e), n3 = PATH.dirname(r3), i2 = PATH.basename(e), o5 = PATH.basename(r3), a3, s4, l2;
    if (a3 = FS.lookupPath(e, { parent: true }), s4 = a3.node, a3 = FS.lookupPath(r3, { parent: true }), l2 = a3.node, !s4 || !l2) throw new FS.ErrnoError(44);
    if (s4.mount !== l2.mount) throw new FS.ErrnoError(75);
    var u3 = FS.lookupNode(s4, i2), c4 = PATH_FS.relative(e, n3);
    if (c4.charAt(0) !== ".") throw new FS.ErrnoError(28);
    if (c4 = PATH_FS.relative(r3, t2), c4.charAt(0) !== ".") throw new FS.ErrnoError(55);
    var _3;
    try {
      _3 = FS.lookupNode(l2, o5);
    } catch {
    }
    if (u3 !== _3) {
      var m7 = FS.isDir(u3.mode), f5 = FS.mayDelete(s4, i2, m7);
      if (f5) throw new FS.ErrnoError(f5);
      if (f5 = _3 ? FS.mayDelete(l2, o5, m7) : FS.mayCreate(l2, o5), f5) throw new FS.ErrnoError(f5);
      if (!s4.node_ops.rename) throw new FS.ErrnoError(63);
      if (FS.isMountpoint(u3) || _3 && FS.isMountpoint(_3)) throw new FS.ErrnoError(10);
      if (l2 !== s4 && (f5 = FS.nodePermissions(s4, "w"), f5)) throw new FS.ErrnoError(f5);
      FS.hashRemoveNode(u3);
      try {
        s4.node_ops.rename(u3, l2, o5), _3 && FS.hashRemoveNode(_3), u3.parent = l2;
      } catch (p5) {
        throw p5;
      } finally {
        FS.hashAddNode(u3);
      }
    }
  }, rmdir(e) {
    var r3 = FS.lookupPath(e, { parent: true }), t2 = r3.node, n3 = PATH.basename(e), i2 = FS.lookupNode(t2, n3), o5 = FS.mayDelete(t2, n3, true);
    if (o5) throw new FS.ErrnoError(o5);
    if (!t2.node_ops.rmdir) throw new FS.ErrnoError(63);
    if (FS.isMountpoint(i2)) throw new FS.ErrnoError(10);
    t2.node_ops.rmdir(t2, n3), FS.destroyNode(i2);
  }, readdir(e) {
    var r3 = FS.lookupPath(e, { follow: true }), t2 = r3.node, n3 = FS.checkOpExists(t2.node_ops.readdir, 54);
    return n3(t2);
  }, unlink(e) {
    var r3 = FS.lookupPath(e, { parent: true }), t2 = r3.node;
    if (!t2) throw new FS.ErrnoError(44);
    var n3 = PATH.basename(e), i2 = FS.lookupNode(t2, n3), o5 = FS.mayDelete(t2, n3, false);
    if (o5) throw new FS.ErrnoError(o5);
    if (!t2.node_ops.unlink) throw new FS.ErrnoError(63);
    if (FS.isMountpoint(i2)) throw new FS.ErrnoError(10);
    t2.node_ops.unlink(t2, n3), FS.destroyNode(i2);
  }, readlink(e) {
    var r3 = FS.lookupPath(e), t2 = r3.node;
    if (!t2) throw new FS.ErrnoError(44);
    if (!t2.node_ops.readlink) throw new FS.ErrnoError(28);
    return t2.node_ops.readlink(t2);
  }, stat(e, r3 = false) {
    var t2 = FS.lookupPath(e, { follow: !r3 }), n3 = t2.node, i2 = FS.checkOpExists(n3.node_ops.getattr, 63);
    return i2(n3);
  }, fstat(e) {
    var r3 = FS.getStreamChecked(e), t2 = r3.node, n3 = r3.stream_ops.getattr, i2 = n3 ? r3 : t2;
    return n3 ?? (n3 = t2.node_ops.getattr), FS.checkOpExists(n3, 63), n3(i2);
  }, lstat(e) {
    return FS.stat(e, true);
  }, doChmod(e, r3, t2, n3 = false) {
    FS.doSetAttr(e, r3, { mode: t2 & 4095 | r3.mode & -4096, ctime: Date.now(), dontFollow: n3 });
  }, chmod(e, r3, t2 = false) {
    var n3;
    if (typeof e == "string") {
      var i2 = FS.lookupPath(e, { follow: !t2 });
      n3 = i2.node;
    } else n3 = e;
    FS.doChmod(null, n3, r3, t2);
  }, lchmod(e, r3) {
    FS.chmod(e, r3, true);
  }, fchmod(e, r3) {
    var t2 = FS.getStreamChecked(e);
    FS.doChmod(t2, t2.node, r3, false);
  }, doChown(e, r3, t2 = false) {
    FS.doSetAttr(e, r3, { timestamp: Date.now(), dontFollow: t2 });
  }, chown(e, r3, t2, n3 = false) {
    var i2;
    if (typeof e == "string") {
      var o5 = FS.lookupPath(e, { follow: !n3 });
      i2 = o5.node;
    } else i2 = e;
    FS.doChown(null, i2, n3);
  }, lchown(e, r3, t2) {
    FS.chown(e, r3, t2, true);
  }, fchown(e, r3, t2) {
    var n3 = FS.getStreamChecked(e);
    FS.doChown(n3, n3.node, false);
  }, doTruncate(e, r3, t2) {
    if (FS.isDir(r3.mode)) throw new FS.ErrnoError(31);
    if (!FS.isFile(r3.mode)) throw new FS.ErrnoError(28);
    var n3 = FS.nodePermissions(r3, "w");
    if (n3) throw new FS.ErrnoError(n3);
    FS.doSetAttr(e, r3, { size: t2, timestamp: Date.now() });
  }, truncate(e, r3) {
    if (r3 < 0) throw new FS.ErrnoError(28);
    var t2;
    if (typeof e == "string") {
      var n3 = FS.lookupPath(e, { follow: true });
      t2 = n3.node;
    } else t2 = e;
    FS.doTruncate(null, t2, r3);
  }, ftruncate(e, r3) {
    var t2 = FS.getStreamChecked(e);
    if (r3 < 0 || (t2.flags & 2097155) === 0) throw new FS.ErrnoError(28);
    FS.doTruncate(t2, t2.node, r3);
  }, utime(e, r3, t2, n3 = false) {
    var i2 = FS.lookupPath(e, { follow: !n3 });
    FS.doSetAttr(null, i2.node, { atime: r3, mtime: t2, dontFollow: n3 });
  }, open(e, r3, t2 = 438) {
    if (e === "") throw new FS.ErrnoError(44);
    r3 = FS_modeStringToFlags(r3), r3 & 64 ? t2 = t2 & 4095 | 32768 : t2 = 0;
    var n3, i2;
    if (typeof e == "object") n3 = e;
    else {
      i2 = e.endsWith("/");
      var o5 = FS.lookupPath(e, { follow: !(r3 & 131072), noent_okay: true });
      n3 = o5.node, e = o5.path;
    }
    var a3 = false;
    if (r3 & 64) if (n3) {
      if (r3 & 128) throw new FS.ErrnoError(20);
    } else {
      if (i2) throw new FS.ErrnoError(31);
      n3 = FS.mknod(e, t2 | 511, 0), a3 = true;
    }
    if (!n3) throw new FS.ErrnoError(44);
    if (FS.isChrdev(n3.mode) && (r3 &= -513), r3 & 65536 && !FS.isDir(n3.mode)) throw new FS.ErrnoError(54);
    if (!a3) {
      var s4 = FS.mayOpen(n3, r3);
      if (s4) throw new FS.ErrnoError(s4);
    }
    r3 & 512 && !a3 && FS.truncate(n3, 0), r3 &= -131713;
    var l2 = FS.createStream({ node: n3, path: FS.getPath(n3), flags: r3, seekable: true, position: 0, stream_ops: n3.stream_ops, ungotten: [], error: false });
    return l2.stream_ops.open && l2.stream_ops.open(l2), a3 && FS.chmod(n3, t2 & 511), l2;
  }, close(e) {
    if (FS.isClosed(e)) throw new FS.ErrnoError(8);
    e.getdents && (e.getdents = null), e.node?.notifyListeners(32);
    try {
      e.stream_ops.close && e.stream_ops.close(e);
    } catch (r3) {
      throw r3;
    } finally {
      FS.closeStream(e.fd);
    }
    e.fd = null;
  }, isClosed(e) {
    return e.fd === null;
  }, llseek(e, r3, t2) {
    if (FS.isClosed(e)) throw new FS.ErrnoError(8);
    if (!e.seekable || !e.stream_ops.llseek) throw new FS.ErrnoError(70);
    if (t2 != 0 && t2 != 1 && t2 != 2) throw new FS.ErrnoError(28);
    return e.position = e.stream_ops.llseek(e, r3, t2), e.ungotten = [], e.position;
  }, read(e, r3, t2, n3, i2) {
    if (n3 < 0 || i2 < 0) throw new FS.ErrnoError(28);
    if (FS.isClosed(e)) throw new FS.ErrnoError(8);
    if ((e.flags & 2097155) === 1) throw new FS.ErrnoError(8);
    if (FS.isDir(e.node.mode)) throw new FS.ErrnoError(31);
    if (!e.stream_ops.read) throw new FS.ErrnoError(28);
    var o5 = typeof i2 < "u";
    if (!o5) i2 = e.position;
    else if (!e.seekable) throw new FS.ErrnoError(70);
    var a3 = e.stream_ops.read(e, r3, t2, n3, i2);
    return o5 || (e.position += a3), a3;
  }, write(e, r3, t2, n3, i2, o5) {
    if (n3 < 0 || i2 < 0) throw new FS.ErrnoError(28);
    if (FS.isClosed(e)) throw new FS.ErrnoError(8);
    if ((e.flags & 2097155) === 0) throw new FS.ErrnoError(8);
    if (FS.isDir(e.node.mode)) throw new FS.ErrnoError(31);
    if (!e.stream_ops.write) throw new FS.ErrnoError(28);
    e.seekable && e.flags & 1024 && FS.llseek(e, 0, 2);
    var a3 = typeof i2 < "u";
    if (!a3) i2 = e.position;
    else if (!e.seekable) throw new FS.ErrnoError(70);
    var s4 = e.stream_ops.write(e, r3, t2, n3, i2, o5);
    return a3 || (e.position += s4), s4;
  }, mmap(e, r3, t2, n3, i2) {
    if (n3 & 2 && !(i2 & 2) && (e.flags & 2097155) !== 2) throw new FS.ErrnoError(2);
    if ((e.flags & 2097155) === 1) throw new FS.ErrnoError(2);
    if (!e.stream_ops.mmap) throw new FS.ErrnoError(43);
    if (!r3) throw new FS.ErrnoError(28);
    return e.stream_ops.mmap(e, r3, t2, n3, i2);
  }, msync(e, r3, t2, n3, i2) {
    return e.stream_ops.msync ? e.stream_ops.msync(e, r3, t2, n3, i2) : 0;
  }, ioctl(e, r3, t2) {
    if (!e.stream_ops.ioctl) throw new FS.ErrnoError(59);
    return e.stream_ops.ioctl(e, r3, t2);
  }, readFile(e, r3 = {}) {
    r3.flags ?? (r3.flags = 0), r3.encoding ?? (r3.encoding = "binary"), r3.encoding !== "utf8" && r3.encoding !== "binary" && abort(`Invalid encoding type "${r3.encoding}"`);
    var t2 = FS.open(e, r3.flags), n3 = FS.stat(e), i2 = n3.size, o5 = new Uint8Array(i2);
    return FS.read(t2, o5, 0, i2, 0), r3.encoding === "utf8" && (o5 = UTF8ArrayToString(o5)), FS.close(t2), o5;
  }, writeFile(e, r3, t2 = {}) {
    t2.flags ?? (t2.flags = 577);
    var n3 = FS.open(e, t2.flags, t2.mode);
    r3 = FS_fileDataToTypedArray(r3), FS.write(n3, r3, 0, r3.byteLength, void 0, t2.canOwn), FS.close(n3);
  }, cwd: () => FS.currentPath, chdir(e) {
    var r3 = FS.lookupPath(e, { follow: true });
    if (r3.node === null) throw new FS.ErrnoError(44);
    if (!FS.isDir(r3.node.mode)) throw new FS.ErrnoError(54);
    var t2 = FS.nodePermissions(r3.node, "x");
    if (t2) throw new FS.ErrnoError(t2);
    FS.currentPath = r3.path;
  }, createDefaultDirectories() {
    FS.mkdir("/tmp"), FS.mkdir("/home"), FS.mkdir("/home/web_user");
  }, createDefaultDevices() {
    FS.mkdir("/dev"), FS.registerDevice(FS.makedev(1, 3), { read: () => 0, write: (n3, i2, o5, a3) => a3, llseek: () => 0 }), FS.mkdev("/dev/null", FS.makedev(1, 3)), TTY.register(FS.makedev(5, 0), TTY.default_tty_ops), TTY.register(FS.makedev(6, 0), TTY.default_tty1_ops), FS.mkdev("/dev/tty", FS.makedev(5, 0)), FS.mkdev("/dev/tty1", FS.makedev(6, 0));
    var e = new Uint8Array(1024), r3 = 0, t2 = () => (r3 || (randomFill(e), r3 = e.byteLength), e[--r3]);
    FS.createDevice("/dev", "random", t2), FS.createDevice("/dev", "urandom", t2), FS.mkdir("/dev/shm"), FS.mkdir("/dev/shm/tmp");
  }, createSpecialDirectories() {
    FS.mkdir("/proc");
    var e = FS.mkdir("/proc/self");
    FS.mkdir("/proc/self/fd"), FS.mount({ mount() {
      var r3 = FS.createNode(e, "fd", 16895, 73);
      return r3.stream_ops = { llseek: MEMFS.stream_ops.llseek }, r3.node_ops = { lookup(t2, n3) {
        var i2 = +n3, o5 = FS.getStreamChecked(i2), a3 = { parent: null, mount: { mountpoint: "fake" }, node_ops: { readlink: () => o5.path }, id: i2 + 1 };
        return a3.parent = a3, a3;
      }, readdir() {
        return Array.from(FS.streams.entries()).filter(([t2, n3]) => n3).map(([t2, n3]) => t2.toString());
      } }, r3;
    } }, {}, "/proc/self/fd");
  }, createStandardStreams(e, r3, t2) {
    e ? FS.createDevice("/dev", "stdin", e) : FS.symlink("/dev/tty", "/dev/stdin"), r3 ? FS.createDevice("/dev", "stdout", null, r3) : FS.symlink("/dev/tty", "/dev/stdout"), t2 ? FS.createDevice("/dev", "stderr", null, t2) : FS.symlink("/dev/tty1", "/dev/stderr"), FS.open("/dev/stdin", 0), FS.open("/dev/stdout", 1), FS.open("/dev/stderr", 1);
  }, staticInit() {
    FS.nameTable.length = 4096, FS.mount(MEMFS, {}, "/"), FS.createDefaultDirectories(), FS.createDefaultDevices(), FS.createSpecialDirectories();
  }, init(e, r3, t2) {
    FS.initialized = true, e ?? (e = Module.stdin), r3 ?? (r3 = Module.stdout), t2 ?? (t2 = Module.stderr), FS.createStandardStreams(e, r3, t2);
  }, quit() {
    FS.initialized = false, _fflush(0);
    for (var e of FS.streams) e && FS.close(e);
  }, analyzePath(e, r3 = false) {
    try {
      var t2 = FS.lookupPath(e, { follow: !r3 });
      e = t2.path;
    } catch {
    }
    var n3 = { isRoot: false, exists: false, error: 0, name: null, path: null, object: null, parentExists: false, parentPath: null, parentObject: null };
    try {
      t2 = FS.lookupPath(e, { parent: true }), n3.parentExists = true, n3.parentPath = t2.path, n3.parentObject = t2.node, n3.name = PATH.basename(e), t2 = FS.lookupPath(e, { follow: !r3 }), n3.exists = true, n3.path = t2.path, n3.object = t2.node, n3.name = t2.node.name, n3.isRoot = t2.path === "/";
    } catch (i2) {
      n3.error = i2.errno;
    }
    return n3;
  }, createPath(e, r3, t2, n3) {
    e = typeof e == "string" ? e : FS.getPath(e);
    for (var i2 = r3.split("/").reverse(); i2.length; ) {
      var o5 = i2.pop();
      if (o5) {
        var a3 = PATH.join2(e, o5);
        try {
          FS.mkdir(a3);
        } catch (s4) {
          if (s4.errno != 20) throw s4;
        }
        e = a3;
      }
    }
    return a3;
  }, createFile(e, r3, t2, n3, i2) {
    var o5 = PATH.join2(typeof e == "string" ? e : FS.getPath(e), r3), a3 = FS_getMode(n3, i2);
    return FS.create(o5, a3);
  }, createDataFile(e, r3, t2, n3, i2, o5) {
    var a3 = r3;
    e && (e = typeof e == "string" ? e : FS.getPath(e), a3 = r3 ? PATH.join2(e, r3) : e);
    var s4 = FS_getMode(n3, i2), l2 = FS.create(a3, s4);
    if (t2) {
      t2 = FS_fileDataToTypedArray(t2), FS.chmod(l2, s4 | 146);
      var u3 = FS.open(l2, 577);
      FS.write(u3, t2, 0, t2.length, 0, o5), FS.close(u3), FS.chmod(l2, s4);
    }
  }, createDevice(e, r3, t2, n3) {
    var s4;
    var i2 = PATH.join2(typeof e == "string" ? e : FS.getPath(e), r3), o5 = FS_getMode(!!t2, !!n3);
    (s4 = FS.createDevice).major ?? (s4.major = 64);
    var a3 = FS.makedev(FS.createDevice.major++, 0);
    return FS.registerDevice(a3, { open(l2) {
      l2.seekable = false;
    }, close(l2) {
      n3?.buffer?.length && n3(10);
    }, read(l2, u3, c4, _3, m7) {
      for (var f5 = 0, p5 = 0; p5 < _3; p5++) {
        var F6;
        try {
          F6 = t2();
        } catch {
          throw new FS.ErrnoError(29);
        }
        if (F6 === void 0 && !f5) throw new FS.ErrnoError(6);
        if (F6 == null) break;
        f5++, u3[c4 + p5] = F6;
      }
      return f5 && (l2.node.atime = Date.now()), f5;
    }, write(l2, u3, c4, _3, m7) {
      for (var f5 = 0; f5 < _3; f5++) try {
        n3(u3[c4 + f5]);
      } catch {
        throw new FS.ErrnoError(29);
      }
      return _3 && (l2.node.mtime = l2.node.ctime = Date.now()), f5;
    } }), FS.mkdev(i2, o5, a3);
  }, forceLoadFile(e) {
    if (e.isDevice || e.isFolder || e.link || e.contents) return true;
    if (globalThis.XMLHttpRequest) abort("Lazy loading should have been performed (contents set) in createLazyFile, but it was not. Lazy loading only works in web workers. Use --embed-file or --preload-file in emcc on the main thread.");
    else try {
      e.contents = readBinary(e.url);
    } catch {
      throw new FS.ErrnoError(29);
    }
  }, createLazyFile(e, r3, t2, n3, i2) {
    class o5 {
      constructor() {
        P(this, "lengthKnown", false);
        P(this, "chunks", []);
      }
      get(m7) {
        if (!(m7 > this.length - 1 || m7 < 0)) {
          var f5 = m7 % this.chunkSize, p5 = m7 / this.chunkSize | 0;
          return this.getter(p5)[f5];
        }
      }
      setDataGetter(m7) {
        this.getter = m7;
      }
      cacheLength() {
        var m7 = new XMLHttpRequest();
        m7.open("HEAD", t2, false), m7.send(null), m7.status >= 200 && m7.status < 300 || m7.status === 304 || abort(`Couldn't load ${t2}. Status: ${m7.status}`);
        var f5 = Number(m7.getResponseHeader("Content-length")), p5, F6 = (p5 = m7.getResponseHeader("Accept-Ranges")) && p5 === "bytes", S5 = (p5 = m7.getResponseHeader("Content-Encoding")) && p5 === "gzip", E5 = 1048576;
        F6 || (E5 = f5);
        var y6 = (d5, g7) => {
          d5 > g7 && abort(`invalid range (${d5}, ${g7}) or no bytes requested!`), g7 > f5 - 1 && abort(`only ${f5} bytes available! programmer error!`);
          var v5 = new XMLHttpRequest();
          return v5.open("GET", t2, false), f5 !== E5 && v5.setRequestHeader("Range", `bytes=${d5}-${g7}`), v5.responseType = "arraybuffer", v5.overrideMimeType && v5.overrideMimeType("text/plain; charset=x-user-defined"), v5.send(null), v5.status >= 200 && v5.status < 300 || v5.status === 304 || abort(`Couldn't load ${t2}. Status: ${v5.status}`), v5.response !== void 0 ? new Uint8Array(v5.response || []) : intArrayFromString(v5.responseText ?? "", true);
        }, A5 = this;
        A5.setDataGetter((d5) => {
          var g7 = d5 * E5, v5 = (d5 + 1) * E5 - 1;
          return v5 = Math.min(v5, f5 - 1), typeof A5.chunks[d5] > "u" && (A5.chunks[d5] = y6(g7, v5)), typeof A5.chunks[d5] > "u" && abort("doXHR failed!"), A5.chunks[d5];
        }), (S5 || !f5) && (E5 = f5 = 1, f5 = this.getter(0).length, E5 = f5, out("LazyFiles on gzip forces download of the whole file when length is accessed")), this._length = f5, this._chunkSize = E5, this.lengthKnown = true;
      }
      get length() {
        return this.lengthKnown || this.cacheLength(), this._length;
      }
      get chunkSize() {
        return this.lengthKnown || this.cacheLength(), this._chunkSize;
      }
    }
    if (globalThis.XMLHttpRequest) {
      ENVIRONMENT_IS_WORKER || abort("Cannot do synchronous binary XHRs outside webworkers in modern browsers. Use --embed-file or --preload-file in emcc");
      var a3 = new o5(), s4 = { isDevice: false, contents: a3 };
    } else s4 = { isDevice: false, url: t2 };
    var l2 = FS.createFile(e, r3, s4, n3, i2);
    s4.contents ? l2.contents = s4.contents : s4.url && (l2.contents = null, l2.url = s4.url), Object.defineProperties(l2, { usedBytes: { get: function() {
      return this.contents.length;
    } } });
    var u3 = {};
    for (let [_3, m7] of Object.entries(l2.stream_ops)) u3[_3] = (...f5) => (FS.forceLoadFile(l2), m7(...f5));
    function c4(_3, m7, f5, p5, F6) {
      var S5 = _3.node.contents;
      if (F6 >= S5.length) return 0;
      var E5 = Math.min(S5.length - F6, p5);
      if (S5.slice) for (var y6 = 0; y6 < E5; y6++) m7[f5 + y6] = S5[F6 + y6];
      else for (y6 = 0; y6 < E5; y6++) m7[f5 + y6] = S5.get(F6 + y6);
      return E5;
    }
    return u3.read = (_3, m7, f5, p5, F6) => (FS.forceLoadFile(l2), c4(_3, m7, f5, p5, F6)), u3.mmap = (_3, m7, f5) => {
      FS.forceLoadFile(l2);
      var p5 = mmapAlloc(m7);
      if (!p5) throw new FS.ErrnoError(48);
      return c4(_3, HEAP8, p5, m7, f5), { ptr: p5, allocated: true };
    }, l2.stream_ops = u3, l2;
  } }, findLibraryFS = (e, r3) => {
    if (runtimeInitialized) {
      if (PATH.isAbs(e)) try {
        return FS.lookupPath(e), e;
      } catch {
        return;
      }
      var t2 = (r3?.paths || []).map((n3) => replaceORIGIN(r3?.parentLibPath, n3));
      return withStackSave(() => {
        var n3 = stackAlloc(512), i2 = stringToUTF8OnStack(t2.join(":")), o5 = stringToUTF8OnStack(e), a3 = __emscripten_find_dylib(n3, i2, o5, 512);
        return a3 ? UTF8ToString(a3) : void 0;
      });
    }
  };
  function loadDynamicLibrary(e, r3 = { global: true, nodelete: true }, t2, n3) {
    var i2 = LDSO.loadedLibsByName[e];
    if (i2) return r3.global ? i2.global || (i2.global = true, mergeLibSymbols(i2.exports, e)) : t2 && Object.assign(t2, i2.exports), r3.nodelete && i2.refcount !== 1 / 0 && (i2.refcount = 1 / 0), i2.refcount++, n3 && (LDSO.loadedLibsByHandle[n3] = i2), r3.loadAsync ? Promise.resolve(true) : true;
    i2 = newDSO(e, n3, "loading"), i2.refcount = r3.nodelete ? 1 / 0 : 1, i2.global = r3.global;
    function o5() {
      if (n3) {
        var l2 = HEAPU32[n3 + 28 >> 2], u3 = HEAPU32[n3 + 32 >> 2];
        if (l2 && u3) {
          var c4 = HEAP8.slice(l2, l2 + u3);
          return r3.loadAsync ? Promise.resolve(c4) : c4;
        }
      }
      var _3 = findLibraryFS(e, r3.rpath);
      if (_3) return c4 = FS.readFile(_3, { encoding: "binary" }), r3.loadAsync ? Promise.resolve(c4) : c4;
      var m7 = locateFile(e);
      if (r3.loadAsync) return asyncLoad(m7);
      if (!readBinary) throw new Error(`${m7}: file not found, and synchronous loading of external files is not available`);
      return readBinary(m7);
    }
    function a3() {
      var l2 = preloadedWasm[e];
      return l2 ? r3.loadAsync ? Promise.resolve(l2) : l2 : r3.loadAsync ? o5().then((u3) => loadWebAssemblyModule(u3, r3, e, t2, n3)) : loadWebAssemblyModule(o5(), r3, e, t2, n3);
    }
    function s4(l2) {
      i2.global ? mergeLibSymbols(l2, e) : t2 && Object.assign(t2, l2), i2.exports = l2;
    }
    return r3.loadAsync ? a3().then((l2) => (s4(l2), true)) : (s4(a3()), true);
  }
  var reportUndefinedSymbols = () => {
    for (var [e, r3] of Object.entries(GOT)) if (r3.value == -1) {
      var t2 = resolveGlobalSymbol(e, true).sym;
      if (!t2 && !r3.required) {
        r3.value = 0;
        continue;
      }
      if (typeof t2 == "function") r3.value = addFunction(t2, t2.sig);
      else if (typeof t2 == "number") r3.value = t2;
      else if (typeof t2.value == "number") r3.value = t2;
      else throw new Error(`bad export type for '${e}': ${typeof t2} (${t2})`);
    }
  }, loadDylibs = async () => {
    if (!dynamicLibraries.length) {
      reportUndefinedSymbols();
      return;
    }
    for (var e of dynamicLibraries) await loadDynamicLibrary(e, { loadAsync: true, global: true, nodelete: true, allowUndefined: true });
    reportUndefinedSymbols();
  }, noExitRuntime = false, ___call_sighandler = (e, r3) => getWasmTableEntry(e)(r3);
  ___call_sighandler.sig = "vpi";
  var SYSCALLS = { currentUmask: 18, calculateAt(e, r3, t2 = false) {
    if (PATH.isAbs(r3)) return r3;
    var n3;
    if (e === -100) n3 = FS.cwd();
    else {
      var i2 = SYSCALLS.getStreamFromFD(e);
      n3 = i2.path;
    }
    if (r3.length == 0) {
      if (!t2) throw new FS.ErrnoError(44);
      return n3;
    }
    return n3 + "/" + r3;
  }, writeStat(e, r3) {
    HEAPU32[e >> 2] = r3.dev, HEAPU32[e + 4 >> 2] = r3.mode, HEAPU32[e + 8 >> 2] = r3.nlink, HEAPU32[e + 12 >> 2] = r3.uid, HEAPU32[e + 16 >> 2] = r3.gid, HEAPU32[e + 20 >> 2] = r3.rdev, HEAP64[e + 24 >> 3] = BigInt(r3.size), HEAP32[e + 32 >> 2] = 4096, HEAP32[e + 36 >> 2] = r3.blocks;
    var t2 = r3.atime.getTime(), n3 = r3.mtime.getTime(), i2 = r3.ctime.getTime();
    return HEAP64[e + 40 >> 3] = BigInt(Math.floor(t2 / 1e3)), HEAPU32[e + 48 >> 2] = t2 % 1e3 * 1e3 * 1e3, HEAP64[e + 56 >> 3] = BigInt(Math.floor(n3 / 1e3)), HEAPU32[e + 64 >> 2] = n3 % 1e3 * 1e3 * 1e3, HEAP64[e + 72 >> 3] = BigInt(Math.floor(i2 / 1e3)), HEAPU32[e + 80 >> 2] = i2 % 1e3 * 1e3 * 1e3, HEAP64[e + 88 >> 3] = BigInt(r3.ino), 0;
  }, writeStatFs(e, r3) {
    HEAPU32[e + 4 >> 2] = r3.bsize, HEAPU32[e + 60 >> 2] = r3.bsize, HEAP64[e + 8 >> 3] = BigInt(r3.blocks), HEAP64[e + 16 >> 3] = BigInt(r3.bfree), HEAP64[e + 24 >> 3] = BigInt(r3.bavail), HEAP64[e + 32 >> 3] = BigInt(r3.files), HEAP64[e + 40 >> 3] = BigInt(r3.ffree), HEAPU32[e + 48 >> 2] = r3.fsid, HEAPU32[e + 64 >> 2] = r3.flags, HEAPU32[e + 56 >> 2] = r3.namelen;
  }, doMsync(e, r3, t2, n3, i2) {
    if (!FS.isFile(r3.node.mode)) throw new FS.ErrnoError(43);
    if (n3 & 2) return 0;
    var o5 = HEAPU8.subarray(e, e + t2);
    FS.msync(r3, o5, i2, t2, n3);
  }, getStreamFromFD(e) {
    var r3 = FS.getStreamChecked(e);
    return r3;
  }, varargs: void 0, getStr(e) {
    var r3 = UTF8ToString(e);
    return r3;
  } };
  function ___syscall_chmod(e, r3) {
    try {
      return e = SYSCALLS.getStr(e), FS.chmod(e, r3), 0;
    } catch (t2) {
      if (typeof FS > "u" || t2.name !== "ErrnoError") throw t2;
      return -t2.errno;
    }
  }
  ___syscall_chmod.sig = "ipi";
  function ___syscall_dup3(e, r3, t2) {
    try {
      if (e === r3 || t2 & -524289) return -28;
      var n3 = SYSCALLS.getStreamFromFD(e);
      if (r3 < 0 || r3 >= FS.MAX_OPEN_FDS) return -8;
      var i2 = FS.getStream(r3);
      i2 && FS.close(i2);
      var o5 = FS.dupStream(n3, r3);
      return t2 & 524288 && (o5.flags |= 524288), o5.fd;
    } catch (a3) {
      if (typeof FS > "u" || a3.name !== "ErrnoError") throw a3;
      return -a3.errno;
    }
  }
  ___syscall_dup3.sig = "iiii";
  function ___syscall_faccessat(e, r3, t2) {
    try {
      if (r3 = SYSCALLS.getStr(r3), r3 = SYSCALLS.calculateAt(e, r3), t2 & -8) return -28;
      var n3 = FS.lookupPath(r3, { follow: true }), i2 = n3.node;
      if (!i2) return -44;
      var o5 = "";
      return t2 & 4 && (o5 += "r"), t2 & 2 && (o5 += "w"), t2 & 1 && (o5 += "x"), o5 && FS.nodePermissions(i2, o5) ? -2 : 0;
    } catch (a3) {
      if (typeof FS > "u" || a3.name !== "ErrnoError") throw a3;
      return -a3.errno;
    }
  }
  ___syscall_faccessat.sig = "iipii";
  var INT53_MAX = 9007199254740992, INT53_MIN = -9007199254740992, bigintToI53Checked = (e) => e < INT53_MIN || e > INT53_MAX ? NaN : Number(e);
  function ___syscall_fadvise64(e, r3, t2) {
    r3 = bigintToI53Checked(r3), t2 = bigintToI53Checked(t2);
    try {
      return SYSCALLS.getStreamFromFD(e).seekable ? 0 : -70;
    } catch (n3) {
      if (typeof FS > "u" || n3.name !== "ErrnoError") throw n3;
      return -n3.errno;
    }
  }
  ___syscall_fadvise64.sig = "iijji";
  var syscallGetVarargI = () => {
    var e = HEAP32[+SYSCALLS.varargs >> 2];
    return SYSCALLS.varargs += 4, e;
  }, syscallGetVarargP = syscallGetVarargI;
  function ___syscall_fcntl64(e, r3, t2) {
    SYSCALLS.varargs = t2;
    try {
      var n3 = SYSCALLS.getStreamFromFD(e);
      switch (r3) {
        case 0:
          var i2 = syscallGetVarargI();
          if (i2 < 0) return -28;
          for (; FS.streams[i2]; ) i2++;
          var o5;
          return o5 = FS.dupStream(n3, i2), o5.fd;
        case 1:
        case 2:
          return 0;
        case 3:
          return n3.flags;
        case 4:
          return i2 = syscallGetVarargI(), n3.flags = n3.flags & -289793 | i2 & 289792, 0;
        case 12:
          return i2 = syscallGetVarargP(), HEAP16[i2 + 0 >> 1] = 2, 0;
        case 13:
        case 14:
          return 0;
      }
      return -28;
    } catch (a3) {
      if (typeof FS > "u" || a3.name !== "ErrnoError") throw a3;
      return -a3.errno;
    }
  }
  ___syscall_fcntl64.sig = "iiip";
  function ___syscall_fstat64(e, r3) {
    try {
      return SYSCALLS.writeStat(r3, FS.fstat(e));
    } catch (t2) {
      if (typeof FS > "u" || t2.name !== "ErrnoError") throw t2;
      return -t2.errno;
    }
  }
  ___syscall_fstat64.sig = "iip";
  function ___syscall_getcwd(e, r3) {
    try {
      if (!r3) return -28;
      var t2 = FS.cwd(), n3 = lengthBytesUTF8(t2) + 1;
      return r3 < n3 ? -68 : (stringToUTF8(t2, e, r3), n3);
    } catch (i2) {
      if (typeof FS > "u" || i2.name !== "ErrnoError") throw i2;
      return -i2.errno;
    }
  }
  ___syscall_getcwd.sig = "ipp";
  function ___syscall_getdents64(e, r3, t2) {
    try {
      var n3 = SYSCALLS.getStreamFromFD(e);
      n3.getdents || (n3.getdents = FS.readdir(n3.path));
      for (var i2 = 0, o5 = FS.llseek(n3, 0, 1), a3 = Math.floor(o5 / 280), s4 = Math.min(n3.getdents.length, a3 + Math.floor(t2 / 280)), l2 = a3; l2 < s4; l2++) {
        var u3, c4, _3 = n3.getdents[l2];
        if (_3 === ".") u3 = n3.node.id, c4 = 4;
        else if (_3 === "..") {
          var m7 = FS.lookupPath(n3.path, { parent: true });
          u3 = m7.node.id, c4 = 4;
        } else {
          var f5;
          try {
            f5 = FS.lookupNode(n3.node, _3);
          } catch (p5) {
            if (p5?.errno === 28) continue;
            throw p5;
          }
          u3 = f5.id, c4 = FS.isChrdev(f5.mode) ? 2 : FS.isDir(f5.mode) ? 4 : FS.isLink(f5.mode) ? 10 : 8;
        }
        HEAP64[r3 + i2 >> 3] = BigInt(u3), HEAP64[r3 + i2 + 8 >> 3] = BigInt((l2 + 1) * 280), HEAP16[r3 + i2 + 16 >> 1] = 280, HEAP8[r3 + i2 + 18] = c4, stringToUTF8(_3, r3 + i2 + 19, 256), i2 += 280;
      }
      return FS.llseek(n3, l2 * 280, 0), i2;
    } catch (p5) {
      if (typeof FS > "u" || p5.name !== "ErrnoError") throw p5;
      return -p5.errno;
    }
  }
  ___syscall_getdents64.sig = "iipp";
  function ___syscall_ioctl(e, r3, t2) {
    SYSCALLS.varargs = t2;
    try {
      var n3 = SYSCALLS.getStreamFromFD(e);
      switch (r3) {
        case 21509:
          return n3.tty ? 0 : -59;
        case 21505:
          if (!n3.tty) return -59;
          if (n3.tty.ops.ioctl_tcgets) {
            var i2 = n3.tty.ops.ioctl_tcgets(n3), o5 = syscallGetVarargP();
            HEAP32[o5 >> 2] = i2.c_iflag || 0, HEAP32[o5 + 4 >> 2] = i2.c_oflag || 0, HEAP32[o5 + 8 >> 2] = i2.c_cflag || 0, HEAP32[o5 + 12 >> 2] = i2.c_lflag || 0;
            for (var a3 = 0; a3 < 32; a3++) HEAP8[o5 + a3 + 17] = i2.c_cc[a3] || 0;
            return 0;
          }
          return 0;
        case 21510:
        case 21511:
        case 21512:
          return n3.tty ? 0 : -59;
        case 21506:
        case 21507:
        case 21508:
          if (!n3.tty) return -59;
          if (n3.tty.ops.ioctl_tcsets) {
            o5 = syscallGetVarargP();
            var s4 = HEAP32[o5 >> 2], l2 = HEAP32[o5 + 4 >> 2], u3 = HEAP32[o5 + 8 >> 2], c4 = HEAP32[o5 + 12 >> 2], _3 = [];
            for (a3 = 0; a3 < 32; a3++) _3.push(HEAP8[o5 + a3 + 17]);
            return n3.tty.ops.ioctl_tcsets(n3.tty, r3, { c_iflag: s4, c_oflag: l2, c_cflag: u3, c_lflag: c4, c_cc: _3 });
          }
          return 0;
        case 21519:
          return n3.tty ? (o5 = syscallGetVarargP(), HEAP32[o5 >> 2] = 0, 0) : -59;
        case 21520:
          return n3.tty ? -28 : -59;
        case 21537:
        case 21531:
          return o5 = syscallGetVarargP(), FS.ioctl(n3, r3, o5);
        case 21523:
          if (!n3.tty) return -59;
          if (n3.tty.ops.ioctl_tiocgwinsz) {
            var m7 = n3.tty.ops.ioctl_tiocgwinsz(n3.tty);
            o5 = syscallGetVarargP(), HEAP16[o5 >> 1] = m7[0], HEAP16[o5 + 2 >> 1] = m7[1];
          }
          return 0;
        case 21524:
          return n3.tty ? 0 : -59;
        case 21515:
          return n3.tty ? 0 : -59;
        default:
          return -28;
      }
    } catch (f5) {
      if (typeof FS > "u" || f5.name !== "ErrnoError") throw f5;
      return -f5.errno;
    }
  }
  ___syscall_ioctl.sig = "iiip";
  function ___syscall_lstat64(e, r3) {
    try {
      return e = SYSCALLS.getStr(e), SYSCALLS.writeStat(r3, FS.lstat(e));
    } catch (t2) {
      if (typeof FS > "u" || t2.name !== "ErrnoError") throw t2;
      return -t2.errno;
    }
  }
  ___syscall_lstat64.sig = "ipp";
  function ___syscall_mkdirat(e, r3, t2) {
    try {
      return r3 = SYSCALLS.getStr(r3), r3 = SYSCALLS.calculateAt(e, r3), t2 &= ~SYSCALLS.currentUmask, FS.mkdir(r3, t2), 0;
    } catch (n3) {
      if (typeof FS > "u" || n3.name !== "ErrnoError") throw n3;
      return -n3.errno;
    }
  }
  ___syscall_mkdirat.sig = "iipi";
  function ___syscall_newfstatat(e, r3, t2, n3) {
    try {
      r3 = SYSCALLS.getStr(r3);
      var i2 = n3 & 256, o5 = n3 & 4096;
      return n3 &= -6401, r3 = SYSCALLS.calculateAt(e, r3, o5), SYSCALLS.writeStat(t2, i2 ? FS.lstat(r3) : FS.stat(r3));
    } catch (a3) {
      if (typeof FS > "u" || a3.name !== "ErrnoError") throw a3;
      return -a3.errno;
    }
  }
  ___syscall_newfstatat.sig = "iippi";
  function ___syscall_openat(e, r3, t2, n3) {
    SYSCALLS.varargs = n3;
    try {
      r3 = SYSCALLS.getStr(r3), r3 = SYSCALLS.calculateAt(e, r3);
      var i2 = n3 ? syscallGetVarargI() : 0;
      return t2 & 64 && (i2 &= ~SYSCALLS.currentUmask), FS.open(r3, t2, i2).fd;
    } catch (o5) {
      if (typeof FS > "u" || o5.name !== "ErrnoError") throw o5;
      return -o5.errno;
    }
  }
  ___syscall_openat.sig = "iipip";
  function ___syscall_readlinkat(e, r3, t2, n3) {
    try {
      if (r3 = SYSCALLS.getStr(r3), r3 = SYSCALLS.calculateAt(e, r3), n3 <= 0) return -28;
      var i2 = FS.readlink(r3), o5 = Math.min(n3, lengthBytesUTF8(i2)), a3 = HEAP8[t2 + o5];
      return stringToUTF8(i2, t2, n3 + 1), HEAP8[t2 + o5] = a3, o5;
    } catch (s4) {
      if (typeof FS > "u" || s4.name !== "ErrnoError") throw s4;
      return -s4.errno;
    }
  }
  ___syscall_readlinkat.sig = "iippp";
  function ___syscall_rmdir(e) {
    try {
      return e = SYSCALLS.getStr(e), FS.rmdir(e), 0;
    } catch (r3) {
      if (typeof FS > "u" || r3.name !== "ErrnoError") throw r3;
      return -r3.errno;
    }
  }
  ___syscall_rmdir.sig = "ip";
  function ___syscall_stat64(e, r3) {
    try {
      return e = SYSCALLS.getStr(e), SYSCALLS.writeStat(r3, FS.stat(e));
    } catch (t2) {
      if (typeof FS > "u" || t2.name !== "ErrnoError") throw t2;
      return -t2.errno;
    }
  }
  ___syscall_stat64.sig = "ipp";
  function ___syscall_symlinkat(e, r3, t2) {
    try {
      return e = SYSCALLS.getStr(e), t2 = SYSCALLS.getStr(t2), t2 = SYSCALLS.calculateAt(r3, t2), FS.symlink(e, t2), 0;
    } catch (n3) {
      if (typeof FS > "u" || n3.name !== "ErrnoError") throw n3;
      return -n3.errno;
    }
  }
  ___syscall_symlinkat.sig = "ipip";
  function ___syscall_umask(e) {
    try {
      var r3 = SYSCALLS.currentUmask;
      return SYSCALLS.currentUmask = e, r3;
    } catch (t2) {
      if (typeof FS > "u" || t2.name !== "ErrnoError") throw t2;
      return -t2.errno;
    }
  }
  ___syscall_umask.sig = "ii";
  function ___syscall_unlinkat(e, r3, t2) {
    try {
      if (r3 = SYSCALLS.getStr(r3), r3 = SYSCALLS.calculateAt(e, r3), !t2) FS.unlink(r3);
      else if (t2 === 512) FS.rmdir(r3);
      else return -28;
      return 0;
    } catch (n3) {
      if (typeof FS > "u" || n3.name !== "ErrnoError") throw n3;
      return -n3.errno;
    }
  }
  ___syscall_unlinkat.sig = "iipi";
  var __abort_js = () => abort("");
  __abort_js.sig = "v";
  var runtimeKeepaliveCounter = 0, __emscripten_runtime_keepalive_clear = () => {
    noExitRuntime = false, runtimeKeepaliveCounter = 0;
  };
  __emscripten_runtime_keepalive_clear.sig = "v";
  var __emscripten_throw_longjmp = () => {
    throw new EmscriptenSjLj();
  };
  __emscripten_throw_longjmp.sig = "v";
  var isLeapYear = (e) => e % 4 === 0 && (e % 100 !== 0 || e % 400 === 0), MONTH_DAYS_LEAP_CUMULATIVE = [0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335], MONTH_DAYS_REGULAR_CUMULATIVE = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334], ydayFromDate = (e) => {
    var r3 = isLeapYear(e.getFullYear()), t2 = r3 ? MONTH_DAYS_LEAP_CUMULATIVE : MONTH_DAYS_REGULAR_CUMULATIVE, n3 = t2[e.getMonth()] + e.getDate() - 1;
    return n3;
  };
  function __localtime_js(e, r3) {
    e = bigintToI53Checked(e);
    var t2 = new Date(e * 1e3);
    if (isNaN(t2.getTime())) return 1;
    HEAP32[r3 >> 2] = t2.getSeconds(), HEAP32[r3 + 4 >> 2] = t2.getMinutes(), HEAP32[r3 + 8 >> 2] = t2.getHours(), HEAP32[r3 + 12 >> 2] = t2.getDate(), HEAP32[r3 + 16 >> 2] = t2.getMonth(), HEAP32[r3 + 20 >> 2] = t2.getFullYear() - 1900, HEAP32[r3 + 24 >> 2] = t2.getDay();
    var n3 = ydayFromDate(t2) | 0;
    HEAP32[r3 + 28 >> 2] = n3, HEAP32[r3 + 36 >> 2] = -t2.getTimezoneOffset() * 60;
    var i2 = new Date(t2.getFullYear(), 0, 1), o5 = new Date(t2.getFullYear(), 6, 1).getTimezoneOffset(), a3 = i2.getTimezoneOffset(), s4 = (o5 != a3 && t2.getTimezoneOffset() == Math.min(a3, o5)) | 0;
    return HEAP32[r3 + 32 >> 2] = s4, 0;
  }
  __localtime_js.sig = "ijp";
  var __mktime_js = function(e) {
    var r3 = (() => {
      var t2 = new Date(HEAP32[e + 20 >> 2] + 1900, HEAP32[e + 16 >> 2], HEAP32[e + 12 >> 2], HEAP32[e + 8 >> 2], HEAP32[e + 4 >> 2], HEAP32[e >> 2], 0);
      if (isNaN(t2.getTime())) return -1;
      var n3 = HEAP32[e + 32 >> 2], i2 = t2.getTimezoneOffset(), o5 = new Date(t2.getFullYear(), 0, 1), a3 = new Date(t2.getFullYear(), 6, 1).getTimezoneOffset(), s4 = o5.getTimezoneOffset(), l2 = Math.min(s4, a3);
      if (n3 < 0) n3 = +(a3 != s4 && l2 == i2);
      else if (n3 > 0 != (l2 == i2)) {
        var u3 = Math.max(s4, a3), c4 = n3 > 0 ? l2 : u3;
        if (t2.setTime(t2.getTime() + 6e4 * (c4 - i2)), isNaN(t2.getTime())) return -1;
      }
      HEAP32[e + 32 >> 2] = n3, HEAP32[e + 24 >> 2] = t2.getDay();
      var _3 = ydayFromDate(t2) | 0;
      return HEAP32[e + 28 >> 2] = _3, HEAP32[e >> 2] = t2.getSeconds(), HEAP32[e + 4 >> 2] = t2.getMinutes(), HEAP32[e + 8 >> 2] = t2.getHours(), HEAP32[e + 12 >> 2] = t2.getDate(), HEAP32[e + 16 >> 2] = t2.getMonth(), HEAP32[e + 20 >> 2] = t2.getYear(), t2.getTime() / 1e3;
    })();
    return BigInt(r3);
  };
  __mktime_js.sig = "jp";
  function __mmap_js(e, r3, t2, n3, i2, o5, a3) {
    i2 = bigintToI53Checked(i2);
    try {
      var s4 = SYSCALLS.getStreamFromFD(n3), l2 = FS.mmap(s4, e, i2, r3, t2), u3 = l2.ptr;
      return HEAP32[o5 >> 2] = l2.allocated, HEAPU32[a3 >> 2] = u3, 0;
    } catch (c4) {
      if (typeof FS > "u" || c4.name !== "ErrnoError") throw c4;
      return -c4.errno;
    }
  }
  __mmap_js.sig = "ipiiijpp";
  function __munmap_js(e, r3, t2, n3, i2, o5) {
    o5 = bigintToI53Checked(o5);
    try {
      var a3 = SYSCALLS.getStreamFromFD(i2);
      t2 & 2 && SYSCALLS.doMsync(e, a3, r3, n3, o5);
    } catch (s4) {
      if (typeof FS > "u" || s4.name !== "ErrnoError") throw s4;
      return -s4.errno;
    }
  }
  __munmap_js.sig = "ippiiij";
  var timers = {}, clearTimers = () => {
    for (var e of Object.values(timers)) clearTimeout(e.id);
  }, handleException = (e) => {
    if (e instanceof ExitStatus || e == "unwind") return EXITSTATUS;
    quit_(1, e);
  }, keepRuntimeAlive = () => noExitRuntime || runtimeKeepaliveCounter > 0, _proc_exit = (e) => {
    EXITSTATUS = e, keepRuntimeAlive() || (Module.onExit?.(e), ABORT = true), quit_(e, new ExitStatus(e));
  };
  _proc_exit.sig = "vi";
  var exitJS = (e) => {
    EXITSTATUS = e, keepRuntimeAlive() || exitRuntime(), _proc_exit(e);
  }, _exit = exitJS;
  _exit.sig = "vi";
  var maybeExit = () => {
    if (!runtimeExited && !keepRuntimeAlive()) try {
      _exit(EXITSTATUS);
    } catch (e) {
      handleException(e);
    }
  }, callUserCallback = (e, ...r3) => {
    if (!(runtimeExited || ABORT)) try {
      return e(...r3);
    } catch (t2) {
      handleException(t2);
    } finally {
      maybeExit();
    }
  }, _emscripten_get_now = () => performance.now();
  _emscripten_get_now.sig = "d";
  var __setitimer_js = (e, r3) => {
    if (timers[e] && (clearTimeout(timers[e].id), delete timers[e]), !r3) return 0;
    var t2 = setTimeout(() => {
      delete timers[e], callUserCallback(__emscripten_timeout, e, _emscripten_get_now());
    }, r3);
    return timers[e] = { id: t2, timeout_ms: r3 }, 0;
  };
  __setitimer_js.sig = "iid";
  var __tzset_js = (e, r3, t2, n3) => {
    var i2 = (/* @__PURE__ */ new Date()).getFullYear(), o5 = new Date(i2, 0, 1), a3 = new Date(i2, 6, 1), s4 = o5.getTimezoneOffset(), l2 = a3.getTimezoneOffset(), u3 = Math.max(s4, l2);
    HEAPU32[e >> 2] = u3 * 60, HEAP32[r3 >> 2] = +(s4 != l2);
    var c4 = (f5) => {
      var p5 = f5 >= 0 ? "-" : "+", F6 = Math.abs(f5), S5 = String(Math.floor(F6 / 60)).padStart(2, "0"), E5 = String(F6 % 60).padStart(2, "0");
      return `UTC${p5}${S5}${E5}`;
    }, _3 = c4(s4), m7 = c4(l2);
    l2 < s4 ? (stringToUTF8(_3, t2, 17), stringToUTF8(m7, n3, 17)) : (stringToUTF8(_3, n3, 17), stringToUTF8(m7, t2, 17));
  };
  __tzset_js.sig = "vpppp";
  var _emscripten_date_now = () => Date.now();
  _emscripten_date_now.sig = "d";
  var getHeapMax = () => 2147483648, growMemory = (e) => {
    var r3 = wasmMemory.buffer.byteLength, t2 = (e - r3 + 65535) / 65536 | 0;
    try {
      return wasmMemory.grow(t2), updateMemoryViews(), 1;
    } catch {
    }
  }, _emscripten_resize_heap = (e) => {
    var r3 = HEAPU8.length;
    e >>>= 0;
    var t2 = getHeapMax();
    if (e > t2) return false;
    for (var n3 = 1; n3 <= 4; n3 *= 2) {
      var i2 = r3 * (1 + 0.2 / n3);
      i2 = Math.min(i2, e + 100663296);
      var o5 = Math.min(t2, alignMemory(Math.max(e, i2), 65536)), a3 = growMemory(o5);
      if (a3) return true;
    }
    return false;
  };
  _emscripten_resize_heap.sig = "ip";
  var ENV = {}, getExecutableName = () => thisProgram, getEnvStrings = () => {
    if (!getEnvStrings.strings) {
      var e = (globalThis.navigator?.language ?? "C").replace("-", "_") + ".UTF-8", r3 = { USER: "web_user", LOGNAME: "web_user", PATH: "/", PWD: "/", HOME: "/home/web_user", LANG: e, _: getExecutableName() };
      for (var t2 in ENV) ENV[t2] === void 0 ? delete r3[t2] : r3[t2] = ENV[t2];
      var n3 = [];
      for (var t2 in r3) n3.push(`${t2}=${r3[t2]}`);
      getEnvStrings.strings = n3;
    }
    return getEnvStrings.strings;
  }, _environ_get = (e, r3) => {
    var t2 = 0, n3 = 0;
    for (var i2 of getEnvStrings()) {
      var o5 = r3 + t2;
      HEAPU32[e + n3 >> 2] = o5, t2 += stringToUTF8(i2, o5, 1 / 0) + 1, n3 += 4;
    }
    return 0;
  };
  _environ_get.sig = "ipp";
  var _environ_sizes_get = (e, r3) => {
    var t2 = getEnvStrings();
    HEAPU32[e >> 2] = t2.length;
    var n3 = 0;
    for (var i2 of t2) n3 += lengthBytesUTF8(i2) + 1;
    return HEAPU32[r3 >> 2] = n3, 0;
  };
  _environ_sizes_get.sig = "ipp";
  function _fd_close(e) {
    try {
      var r3 = SYSCALLS.getStreamFromFD(e);
      return FS.close(r3), 0;
    } catch (t2) {
      if (typeof FS > "u" || t2.name !== "ErrnoError") throw t2;
      return t2.errno;
    }
  }
  _fd_close.sig = "ii";
  function _fd_fdstat_get(e, r3) {
    try {
      var t2 = SYSCALLS.getStreamFromFD(e), n3 = t2.tty ? 2 : FS.isDir(t2.mode) ? 3 : FS.isLink(t2.mode) ? 7 : 4;
      return HEAP8[r3] = n3, HEAP16[r3 + 2 >> 1] = 0, HEAP64[r3 + 8 >> 3] = BigInt(0), HEAP64[r3 + 16 >> 3] = BigInt(0), 0;
    } catch (i2) {
      if (typeof FS > "u" || i2.name !== "ErrnoError") throw i2;
      return i2.errno;
    }
  }
  _fd_fdstat_get.sig = "iip";
  var doReadv = (e, r3, t2, n3) => {
    for (var i2 = 0, o5 = 0; o5 < t2; o5++) {
      var a3 = HEAPU32[r3 >> 2], s4 = HEAPU32[r3 + 4 >> 2];
      r3 += 8;
      try {
        var l2 = FS.read(e, HEAP8, a3, s4, n3);
      } catch (u3) {
        if (i2 > 0 && u3 instanceof FS.ErrnoError && (u3.errno == 6 || u3.errno == 6)) break;
        throw u3;
      }
      if (l2 < 0) return -1;
      if (i2 += l2, l2 < s4) break;
      typeof n3 < "u" && (n3 += l2);
    }
    return i2;
  };
  function _fd_read(e, r3, t2, n3) {
    try {
      var i2 = SYSCALLS.getStreamFromFD(e), o5 = doReadv(i2, r3, t2);
      return HEAPU32[n3 >> 2] = o5, 0;
    } catch (a3) {
      if (typeof FS > "u" || a3.name !== "ErrnoError") throw a3;
      return a3.errno;
    }
  }
  _fd_read.sig = "iippp";
  function _fd_seek(e, r3, t2, n3) {
    r3 = bigintToI53Checked(r3);
    try {
      if (isNaN(r3)) return 22;
      var i2 = SYSCALLS.getStreamFromFD(e);
      return FS.llseek(i2, r3, t2), HEAP64[n3 >> 3] = BigInt(i2.position), i2.getdents && !r3 && t2 === 0 && (i2.getdents = null), 0;
    } catch (o5) {
      if (typeof FS > "u" || o5.name !== "ErrnoError") throw o5;
      return o5.errno;
    }
  }
  _fd_seek.sig = "iijip";
  function _fd_sync(e) {
    try {
      var r3 = SYSCALLS.getStreamFromFD(e), t2 = r3.stream_ops?.fsync?.(r3);
      return t2;
    } catch (n3) {
      if (typeof FS > "u" || n3.name !== "ErrnoError") throw n3;
      return n3.errno;
    }
  }
  _fd_sync.sig = "ii";
  var doWritev = (e, r3, t2, n3) => {
    if (t2 == 1) return FS.write(e, HEAP8, HEAPU32[r3 >> 2], HEAPU32[r3 + 4 >> 2], n3);
    for (var i2 = 0, o5 = 0, a3 = r3; o5 < t2; o5++, a3 += 8) i2 += HEAPU32[a3 + 4 >> 2];
    var s4 = new Uint8Array(i2), l2 = 0;
    for (o5 = 0; o5 < t2; o5++, r3 += 8) {
      var u3 = HEAPU32[r3 >> 2], c4 = HEAPU32[r3 + 4 >> 2];
      s4.set(HEAPU8.subarray(u3, u3 + c4), l2), l2 += c4;
    }
    return FS.write(e, s4, 0, i2, n3);
  };
  function _fd_write(e, r3, t2, n3) {
    try {
      var i2 = SYSCALLS.getStreamFromFD(e), o5 = doWritev(i2, r3, t2);
      return HEAPU32[n3 >> 2] = o5, 0;
    } catch (a3) {
      if (typeof FS > "u" || a3.name !== "ErrnoError") throw a3;
      return a3.errno;
    }
  }
  _fd_write.sig = "iippp";
  var inetPton4 = (e) => {
    for (var r3 = e.split("."), t2 = 0; t2 < 4; t2++) {
      var n3 = Number(r3[t2]);
      if (isNaN(n3)) return null;
      r3[t2] = n3;
    }
    return (r3[0] | r3[1] << 8 | r3[2] << 16 | r3[3] << 24) >>> 0;
  }, inetNtop4 = (e) => (e & 255) + "." + (e >> 8 & 255) + "." + (e >> 16 & 255) + "." + (e >> 24 & 255), inetPton6 = (e) => {
    var r3, t2, n3, i2, o5 = [];
    if (!/^((?=.*::)(?!.*::.+::)(::)?([\dA-F]{1,4}:(:|\b)|){5}|([\dA-F]{1,4}:){6})((([\dA-F]{1,4}((?!\3)::|:\b|$))|(?!\2\3)){2}|(((2[0-4]|1\d|[1-9])?\d|25[0-5])\.?\b){4})$/i.test(e)) return null;
    if (e === "::") return [0, 0, 0, 0, 0, 0, 0, 0];
    for (e.startsWith("::") ? e = e.replace("::", "Z:") : e = e.replace("::", ":Z:"), e.indexOf(".") > 0 ? (e = e.replace(new RegExp("[.]", "g"), ":"), r3 = e.split(":"), r3[r3.length - 4] = Number(r3[r3.length - 4]) + Number(r3[r3.length - 3]) * 256, r3[r3.length - 3] = Number(r3[r3.length - 2]) + Number(r3[r3.length - 1]) * 256, r3 = r3.slice(0, r3.length - 2)) : r3 = e.split(":"), n3 = 0, i2 = 0, t2 = 0; t2 < r3.length; t2++) if (typeof r3[t2] == "string") if (r3[t2] === "Z") {
      for (i2 = 0; i2 < 8 - r3.length + 1; i2++) o5[t2 + i2] = 0;
      n3 = i2 - 1;
    } else o5[t2 + n3] = _htons(parseInt(r3[t2], 16));
    else o5[t2 + n3] = r3[t2];
    return [o5[1] << 16 | o5[0], o5[3] << 16 | o5[2], o5[5] << 16 | o5[4], o5[7] << 16 | o5[6]];
  }, inetNtop6 = (e) => {
    var r3 = "", t2 = 0, n3 = 0, i2 = 0, o5 = 0, a3 = 0, s4 = 0, l2 = [e[0] & 65535, e[0] >> 16, e[1] & 65535, e[1] >> 16, e[2] & 65535, e[2] >> 16, e[3] & 65535, e[3] >> 16], u3 = true, c4 = "";
    for (s4 = 0; s4 < 5; s4++) if (l2[s4]) {
      u3 = false;
      break;
    }
    if (u3) {
      if (c4 = inetNtop4(l2[6] | l2[7] << 16), l2[5] === -1) return r3 = "::ffff:", r3 += c4, r3;
      if (!l2[5]) return r3 = "::", c4 === "0.0.0.0" && (c4 = ""), c4 === "0.0.0.1" && (c4 = "1"), r3 += c4, r3;
    }
    for (t2 = 0; t2 < 8; t2++) l2[t2] || (t2 - i2 > 1 && (a3 = 0), i2 = t2, a3++), a3 > n3 && (n3 = a3, o5 = t2 - n3 + 1);
    for (t2 = 0; t2 < 8; t2++) {
      if (n3 > 1 && !l2[t2] && t2 >= o5 && t2 < o5 + n3) {
        t2 === o5 && (r3 += ":", o5 || (r3 += ":"));
        continue;
      }
      r3 += Number(_ntohs(l2[t2] & 65535)).toString(16), r3 += t2 < 7 ? ":" : "";
    }
    return r3;
  }, DNS = { address_map: { id: 1, addrs: {}, names: {} }, lookup_name(e) {
    var r3 = inetPton4(e);
    if (r3 !== null || (r3 = inetPton6(e), r3 !== null)) return e;
    var t2;
    if (DNS.address_map.addrs[e]) t2 = DNS.address_map.addrs[e];
    else {
      var n3 = DNS.address_map.id++;
      t2 = "172.29." + (n3 & 255) + "." + (n3 & 65280), DNS.address_map.names[t2] = e, DNS.address_map.addrs[e] = t2;
    }
    return t2;
  }, lookup_addr(e) {
    return DNS.address_map.names[e] ? DNS.address_map.names[e] : null;
  } }, writeSockaddr = (e, r3, t2, n3, i2) => {
    switch (r3) {
      case 2:
        t2 = inetPton4(DNS.lookup_name(t2)), zeroMemory(e, 16), i2 && (HEAP32[i2 >> 2] = 16), HEAP16[e >> 1] = r3, HEAP32[e + 4 >> 2] = t2, HEAP16[e + 2 >> 1] = _htons(n3);
        break;
      case 10:
        t2 = inetPton6(DNS.lookup_name(t2)), zeroMemory(e, 28), i2 && (HEAP32[i2 >> 2] = 28), HEAP32[e >> 2] = r3, HEAP32[e + 8 >> 2] = t2[0], HEAP32[e + 12 >> 2] = t2[1], HEAP32[e + 16 >> 2] = t2[2], HEAP32[e + 20 >> 2] = t2[3], HEAP16[e + 2 >> 1] = _htons(n3);
        break;
      default:
        return 5;
    }
    return 0;
  }, _getaddrinfo = (e, r3, t2, n3) => {
    var i2 = 0, o5 = 0, a3 = 0, s4 = 0, l2 = 0, u3 = 0, c4;
    function _3(m7, f5, p5, F6, S5, E5) {
      var y6, A5, d5;
      return A5 = m7 === 10 ? 28 : 16, S5 = m7 === 10 ? inetNtop6(S5) : inetNtop4(S5), y6 = _malloc(A5), writeSockaddr(y6, m7, S5, E5), d5 = _malloc(32), HEAP32[d5 + 4 >> 2] = m7, HEAP32[d5 + 8 >> 2] = f5, HEAP32[d5 + 12 >> 2] = p5, HEAPU32[d5 + 24 >> 2] = F6, HEAPU32[d5 + 20 >> 2] = y6, m7 === 10 ? HEAP32[d5 + 16 >> 2] = 28 : HEAP32[d5 + 16 >> 2] = 16, HEAP32[d5 + 28 >> 2] = 0, d5;
    }
    if (t2 && (a3 = HEAP32[t2 >> 2], s4 = HEAP32[t2 + 4 >> 2], l2 = HEAP32[t2 + 8 >> 2], u3 = HEAP32[t2 + 12 >> 2]), l2 && !u3 && (u3 = l2 === 2 ? 17 : 6), !l2 && u3 && (l2 = u3 === 17 ? 2 : 1), u3 || (u3 = 6), l2 || (l2 = 1), !e && !r3) return -2;
    if (a3 & -1088 || t2 && HEAP32[t2 >> 2] & 2 && !e) return -1;
    if (a3 & 32) return -2;
    if (l2 && l2 !== 1 && l2 !== 2) return -7;
    if (s4 !== 0 && s4 !== 2 && s4 !== 10) return -6;
    if (r3 && (r3 = UTF8ToString(r3), o5 = parseInt(r3, 10), isNaN(o5))) return a3 & 1024 ? -2 : -8;
    if (!e) return s4 === 0 && (s4 = 2), a3 & 1 || (s4 === 2 ? i2 = _htonl(2130706433) : i2 = [0, 0, 0, _htonl(1)]), c4 = _3(s4, l2, u3, null, i2, o5), HEAPU32[n3 >> 2] = c4, 0;
    if (e = UTF8ToString(e), i2 = inetPton4(e), i2 !== null) if (s4 === 0 || s4 === 2) s4 = 2;
    else if (s4 === 10 && a3 & 8) i2 = [0, 0, _htonl(65535), i2], s4 = 10;
    else return -2;
    else if (i2 = inetPton6(e), i2 !== null) if (s4 === 0 || s4 === 10) s4 = 10;
    else return -2;
    return i2 != null ? (c4 = _3(s4, l2, u3, e, i2, o5), HEAPU32[n3 >> 2] = c4, 0) : a3 & 4 ? -2 : (e = DNS.lookup_name(e), i2 = inetPton4(e), s4 === 0 ? s4 = 2 : s4 === 10 && (i2 = [0, 0, _htonl(65535), i2]), c4 = _3(s4, l2, u3, null, i2, o5), HEAPU32[n3 >> 2] = c4, 0);
  };
  _getaddrinfo.sig = "ipppp";
  var removeFunction = (e) => {
    functionsInTableMap.delete(getWasmTableEntry(e)), setWasmTableEntry(e, null), freeTableIndexes.push(e);
  }, stringToNewUTF8 = (e) => {
    var r3 = lengthBytesUTF8(e) + 1, t2 = _malloc(r3);
    return t2 && stringToUTF8(e, t2, r3), t2;
  }, FS_createPath = (...e) => FS.createPath(...e), FS_unlink = (...e) => FS.unlink(...e), FS_createLazyFile = (...e) => FS.createLazyFile(...e), FS_createDevice = (...e) => FS.createDevice(...e);
  registerWasmPlugin(), FS.createPreloadedFile = FS_createPreloadedFile, FS.preloadFile = FS_preloadFile, FS.staticInit(), Module.noExitRuntime && (noExitRuntime = Module.noExitRuntime), Module.print && (out = Module.print), Module.printErr && (err = Module.printErr), Module.dynamicLibraries && (dynamicLibraries = Module.dynamicLibraries), Module.arguments && (programArgs = Module.arguments), Module.thisProgram && (thisProgram = Module.thisProgram);
  var preInit = Module.preInit;
  if (preInit) for (typeof preInit == "function" && (Module.preInit = preInit = [preInit]); preInit.length > 0; ) preInit.shift()();
  Module.callMain = callMain, Module.stackSave = stackSave, Module.stackRestore = stackRestore, Module.ENV = ENV, Module.addRunDependency = addRunDependency, Module.removeRunDependency = removeRunDependency, Module.addFunction = addFunction, Module.removeFunction = removeFunction, Module.UTF8ToString = UTF8ToString, Module.stringToNewUTF8 = stringToNewUTF8, Module.stringToUTF8OnStack = stringToUTF8OnStack, Module.FS_preloadFile = FS_preloadFile, Module.FS_unlink = FS_unlink, Module.FS_createPath = FS_createPath, Module.FS_createDevice = FS_createDevice, Module.FS = FS, Module.FS_createDataFile = FS_createDataFile, Module.FS_createLazyFile = FS_createLazyFile, Module.MEMFS = MEMFS, Module.PROXYFS = PROXYFS;
  var ASM_CONSTS = {}, _pgl_exit, ___errno_location, _fflush, _fopen, _fclose, _pgl_popen, _fputs, _main, _pgl_atexit, _pgl_geteuid, _pgl_system, _malloc, _calloc, _pgl_setsockopt, _pgl_connect, _pgl_send, _pgl_recv, _fgets, _pgl_getsockopt, _pgl_getsockname, _pgl_poll, _clear_setitimer, _pgl_longjmp, _pgl_siglongjmp, _pgl_set_system_fn, _pgl_set_popen_fn, _pgl_set_pclose_fn, _pgl_pclose, _pclose, _pgl_getuid, _pgl_getpwuid, _pgl_run_atexit_funcs, _pgl_freopen, _pgl_shmget, _pgl_shmat, _pgl_shmdt, _pgl_shmctl, _pgl_munmap, _pgl_set_rw_cbs, _pgl_fcntl, ___funcs_on_exit, ___dl_seterr, __emscripten_find_dylib, _htonl, _htons, _emscripten_builtin_memalign, _ntohs, __emscripten_timeout, _strerror, _emscripten_get_sbrk_ptr, _setThrew, __emscripten_stack_restore, __emscripten_stack_alloc, _emscripten_stack_get_current, memory, ___stack_pointer, __indirect_function_table, ___heap_base, wasmTable, wasmMemory;
  function assignWasmExports(e) {
    _pgl_exit = Module._pgl_exit = e.pgl_exit, ___errno_location = Module.___errno_location = e.__errno_location, _fflush = Module._fflush = e.fflush, _fopen = Module._fopen = e.fopen, _fclose = Module._fclose = e.fclose, _pgl_popen = Module._pgl_popen = e.pgl_popen, _fputs = Module._fputs = e.fputs, _main = Module._main = e.__main_argc_argv, _pgl_atexit = Module._pgl_atexit = e.pgl_atexit, _pgl_geteuid = Module._pgl_geteuid = e.pgl_geteuid, _pgl_system = Module._pgl_system = e.pgl_system, _malloc = e.malloc, _calloc = e.calloc, _pgl_setsockopt = Module._pgl_setsockopt = e.pgl_setsockopt, _pgl_connect = Module._pgl_connect = e.pgl_connect, _pgl_send = Module._pgl_send = e.pgl_send, _pgl_recv = Module._pgl_recv = e.pgl_recv, _fgets = Module._fgets = e.fgets, _pgl_getsockopt = Module._pgl_getsockopt = e.pgl_getsockopt, _pgl_getsockname = Module._pgl_getsockname = e.pgl_getsockname, _pgl_poll = Module._pgl_poll = e.pgl_poll, _clear_setitimer = Module._clear_setitimer = e.clear_setitimer, _pgl_longjmp = Module._pgl_longjmp = e.pgl_longjmp, _pgl_siglongjmp = Module._pgl_siglongjmp = e.pgl_siglongjmp, _pgl_set_system_fn = Module._pgl_set_system_fn = e.pgl_set_system_fn, _pgl_set_popen_fn = Module._pgl_set_popen_fn = e.pgl_set_popen_fn, _pgl_set_pclose_fn = Module._pgl_set_pclose_fn = e.pgl_set_pclose_fn, _pgl_pclose = Module._pgl_pclose = e.pgl_pclose, _pclose = Module._pclose = e.pclose, _pgl_getuid = Module._pgl_getuid = e.pgl_getuid, _pgl_getpwuid = Module._pgl_getpwuid = e.pgl_getpwuid, _pgl_run_atexit_funcs = Module._pgl_run_atexit_funcs = e.pgl_run_atexit_funcs, _pgl_freopen = Module._pgl_freopen = e.pgl_freopen, _pgl_shmget = Module._pgl_shmget = e.pgl_shmget, _pgl_shmat = Module._pgl_shmat = e.pgl_shmat, _pgl_shmdt = Module._pgl_shmdt = e.pgl_shmdt, _pgl_shmctl = Module._pgl_shmctl = e.pgl_shmctl, _pgl_munmap = Module._pgl_munmap = e.pgl_munmap, _pgl_set_rw_cbs = Module._pgl_set_rw_cbs = e.pgl_set_rw_cbs, _pgl_fcntl = Module._pgl_fcntl = e.pgl_fcntl, ___funcs_on_exit = e.__funcs_on_exit, ___dl_seterr = e.__dl_seterr, __emscripten_find_dylib = e._emscripten_find_dylib, _htonl = e.htonl, _htons = e.htons, _emscripten_builtin_memalign = e.emscripten_builtin_memalign, _ntohs = e.ntohs, __emscripten_timeout = e._emscripten_timeout, _strerror = Module._strerror = e.strerror, _emscripten_get_sbrk_ptr = e.emscripten_get_sbrk_ptr, _setThrew = e.setThrew, __emscripten_stack_restore = e._emscripten_stack_restore, __emscripten_stack_alloc = e._emscripten_stack_alloc, _emscripten_stack_get_current = e.emscripten_stack_get_current, memory = wasmMemory = e.memory, ___stack_pointer = e.__stack_pointer, __indirect_function_table = wasmTable = e.__indirect_function_table, ___heap_base = e.__heap_base.value;
  }
  var wasmImports = { __call_sighandler: ___call_sighandler, __syscall_chmod: ___syscall_chmod, __syscall_dup3: ___syscall_dup3, __syscall_faccessat: ___syscall_faccessat, __syscall_fadvise64: ___syscall_fadvise64, __syscall_fcntl64: ___syscall_fcntl64, __syscall_fstat64: ___syscall_fstat64, __syscall_getcwd: ___syscall_getcwd, __syscall_getdents64: ___syscall_getdents64, __syscall_ioctl: ___syscall_ioctl, __syscall_lstat64: ___syscall_lstat64, __syscall_mkdirat: ___syscall_mkdirat, __syscall_newfstatat: ___syscall_newfstatat, __syscall_openat: ___syscall_openat, __syscall_readlinkat: ___syscall_readlinkat, __syscall_rmdir: ___syscall_rmdir, __syscall_stat64: ___syscall_stat64, __syscall_symlinkat: ___syscall_symlinkat, __syscall_umask: ___syscall_umask, __syscall_unlinkat: ___syscall_unlinkat, _abort_js: __abort_js, _emscripten_runtime_keepalive_clear: __emscripten_runtime_keepalive_clear, _emscripten_throw_longjmp: __emscripten_throw_longjmp, _localtime_js: __localtime_js, _mktime_js: __mktime_js, _mmap_js: __mmap_js, _munmap_js: __munmap_js, _setitimer_js: __setitimer_js, _tzset_js: __tzset_js, emscripten_date_now: _emscripten_date_now, emscripten_get_now: _emscripten_get_now, emscripten_resize_heap: _emscripten_resize_heap, environ_get: _environ_get, environ_sizes_get: _environ_sizes_get, exit: _exit, fd_close: _fd_close, fd_fdstat_get: _fd_fdstat_get, fd_read: _fd_read, fd_seek: _fd_seek, fd_sync: _fd_sync, fd_write: _fd_write, getaddrinfo: _getaddrinfo, invoke_ii, invoke_iiii, invoke_vii, proc_exit: _proc_exit };
  function invoke_iiii(e, r3, t2, n3) {
    var i2 = stackSave();
    try {
      return getWasmTableEntry(e)(r3, t2, n3);
    } catch (o5) {
      if (stackRestore(i2), !(o5 instanceof EmscriptenEH)) throw o5;
      _setThrew(1, 0);
    }
  }
  function invoke_ii(e, r3) {
    var t2 = stackSave();
    try {
      return getWasmTableEntry(e)(r3);
    } catch (n3) {
      if (stackRestore(t2), !(n3 instanceof EmscriptenEH)) throw n3;
      _setThrew(1, 0);
    }
  }
  function invoke_vii(e, r3, t2) {
    var n3 = stackSave();
    try {
      getWasmTableEntry(e)(r3, t2);
    } catch (i2) {
      if (stackRestore(n3), !(i2 instanceof EmscriptenEH)) throw i2;
      _setThrew(1, 0);
    }
  }
  function callMain(e = []) {
    var r3 = resolveGlobalSymbol("main").sym;
    if (r3) {
      e.unshift(thisProgram);
      var t2 = e.length, n3 = stackAlloc((t2 + 1) * 4), i2 = n3;
      for (var o5 of e) HEAPU32[i2 >> 2] = stringToUTF8OnStack(o5), i2 += 4;
      HEAPU32[i2 >> 2] = 0;
      try {
        var a3 = r3(t2, n3);
        return exitJS(a3, true), a3;
      } catch (s4) {
        return handleException(s4);
      }
    }
  }
  async function run(e = programArgs) {
    preRun(), runDependencies && await resolveRunDependencies();
    var r3 = Module.setStatus;
    if (r3 && (r3("Running..."), await new Promise((n3) => setTimeout(n3, 1)), setTimeout(r3, 1, "")), !ABORT) {
      initRuntime(), Module.onRuntimeInitialized?.();
      var t2 = Module.noInitialRun || true;
      t2 || callMain(e), postRun();
    }
  }
  var wasmExports;
  return wasmExports = await createWasm(), await run(), quit_ = (e, r3) => {
    throw r3;
  }, Module;
}
function Dr(e, r3) {
  let t2 = r3.lastIndex, n3 = [], i2;
  for (; i2 = r3.exec(e); ) n3.push(i2), r3.lastIndex === i2.index && (r3.lastIndex += 1);
  return r3.lastIndex = t2, n3;
}
function Nr(e, r3, t2) {
  let n3 = typeof e == "function" ? e(t2) : e[t2];
  return typeof n3 > "u" && t2 !== "" ? n3 = "" : typeof n3 > "u" && (n3 = "$"), typeof n3 == "object" ? r3 + C + JSON.stringify(n3) + C : r3 + n3;
}
function Rr(e, r3, t2) {
  t2 || (t2 = {});
  let n3 = t2.escape || "\\", i2 = "(\\" + n3 + `['"` + Oe2 + `]|[^\\s'"` + Oe2 + "])+", o5 = new RegExp(["(" + Re2 + ")", "(" + i2 + "|" + Tr + "|" + Pr + ")+"].join("|"), "g"), a3 = Dr(e, o5);
  if (a3.length === 0) return [];
  r3 || (r3 = {});
  let s4 = false;
  return a3.map(function(l2) {
    let u3 = l2[0];
    if (!u3 || s4) return;
    if (Me2.test(u3)) return { op: u3 };
    let c4 = false, _3 = false, m7 = "", f5 = false, p5;
    function F6() {
      p5 += 1;
      let S5, E5, y6 = u3.charAt(p5);
      if (y6 === "{") {
        if (p5 += 1, u3.charAt(p5) === "}") throw new Error("Bad substitution: " + u3.slice(p5 - 2, p5 + 1));
        if (S5 = u3.indexOf("}", p5), S5 < 0) throw new Error("Bad substitution: " + u3.slice(p5));
        E5 = u3.slice(p5, S5), p5 = S5;
      } else if (/[*@#?$!_-]/.test(y6)) E5 = y6, p5 += 1;
      else {
        let A5 = u3.slice(p5), d5 = A5.match(/[^\w\d_]/);
        d5 ? (E5 = A5.slice(0, d5.index), p5 += d5.index - 1) : (E5 = A5, p5 = u3.length);
      }
      return Nr(r3, "", E5);
    }
    for (p5 = 0; p5 < u3.length; p5++) {
      let S5 = u3.charAt(p5);
      if (f5 = f5 || !c4 && (S5 === "*" || S5 === "?"), _3) m7 += S5, _3 = false;
      else if (c4) S5 === c4 ? c4 = false : c4 === De2 ? m7 += S5 : S5 === n3 ? (p5 += 1, S5 = u3.charAt(p5), S5 === Ne2 || S5 === n3 || S5 === oe2 ? m7 += S5 : m7 += n3 + S5) : S5 === oe2 ? m7 += F6() : m7 += S5;
      else if (S5 === Ne2 || S5 === De2) c4 = S5;
      else {
        if (Me2.test(S5)) return { op: u3 };
        if (kr.test(S5)) {
          s4 = true;
          let E5 = { comment: e.slice(l2.index + p5 + 1) };
          return m7.length ? [m7, E5] : [E5];
        } else S5 === n3 ? _3 = true : S5 === oe2 ? m7 += F6() : m7 += S5;
      }
    }
    return f5 ? { op: "glob", pattern: m7 } : m7;
  }).reduce(function(l2, u3) {
    return typeof u3 > "u" ? l2 : l2.concat(u3);
  }, []);
}
function ae2(e, r3, t2) {
  let n3 = Rr(e, r3, t2);
  return typeof r3 != "function" ? n3 : n3.reduce(function(i2, o5) {
    if (typeof o5 == "object") return i2.concat(o5);
    let a3 = o5.split(RegExp("(" + C + ".*?" + C + ")", "g"));
    return a3.length === 1 ? i2.concat(a3[0]) : i2.concat(a3.filter(Boolean).map(function(s4) {
      return Or.test(s4) ? JSON.parse(s4.split(C)[1]) : s4;
    }));
  }, []);
}
function Ur(e, r3) {
  if (!e) throw new Error(r3 ?? "Assertion failed");
}
function B2(e, ...r3) {
  e && e > 0 && console.log("initdb: ", ...r3);
}
async function Cr({ pg: e, debug: r3, args: t2, wasmModule: n3 }) {
  let i2, o5, a3, s4 = false, l2 = [], u3 = 0, c4 = -1, _3 = -1, m7 = "", f5 = "", p5 = (d5) => {
    let g7 = d5.shift();
    B2(r3, "initdb: firstArg", g7), Ur(g7 === "/pglite/bin/postgres", `trying to execute ${g7}`), e.Module.HEAPU8.set(F6), B2(r3, "executing pg main with", d5);
    let v5 = e.callMain(d5);
    return B2(r3, v5), l2 = [], v5;
  }, F6 = e.Module.HEAPU8.slice(), S5 = new WebAssembly.Memory({ initial: 8, maximum: 100 }), y6 = await ke2({ arguments: t2, noExitRuntime: false, wasmMemory: S5, thisProgram: Lr, stdin: () => null, print: (d5) => {
    f5 += d5, B2(r3, "initdbout", d5);
  }, printErr: (d5) => {
    m7 += d5, B2(r3, "initdberr", d5);
  }, instantiateWasm: (d5, g7) => (p3.instantiateWasm(d5, n3 ?? (() => new URL("./initdb.wasm", import.meta.url))).then(({ instance: v5, module: N5 }) => {
    g7(v5, N5);
  }), {}), locateFile: (d5, g7) => d5.endsWith(".so") ? "/pglite/lib/" + d5 : g7 + d5, preRun: [(d5) => {
    d5.ENV.PGDATA = I, d5.ENV.HOME = "/home/postgres", d5.ENV.USER = "postgres", d5.ENV.LOGNAME = "postgres", d5.ENV.ICU_DATA = Hr, d5.ENV.TZ = "UTC";
  }, (d5) => {
    d5.FS.mkdirTree(U3), d5.FS.mount(d5.PROXYFS, { root: U3, fs: e.Module.FS }, U3);
  }, (d5) => {
    d5.onRuntimeInitialized = () => {
      i2 = d5.addFunction((g7) => (l2 = Le2(d5.UTF8ToString(g7)), p5(l2)), "pi"), d5._pgl_set_system_fn(i2), o5 = d5.addFunction((g7, v5) => {
        let N5 = d5.UTF8ToString(v5);
        if (l2 = Le2(d5.UTF8ToString(g7)), N5 === "r") return u3 = p5(l2), c4;
        if (N5 === "w") return s4 = true, _3;
        throw `Unexpected popen mode value ${N5}`;
      }, "ppi"), d5._pgl_set_popen_fn(o5), a3 = d5.addFunction((g7) => g7 === c4 || g7 === _3 ? (s4 && (s4 = false, u3 = p5(l2)), u3) : d5._pclose(g7), "pi"), d5._pgl_set_pclose_fn(a3);
      {
        let g7 = e.Module.stringToUTF8OnStack(He2), v5 = e.Module.stringToUTF8OnStack("r");
        e.Module._pgl_freopen(g7, v5, 0);
        let N5 = e.Module.stringToUTF8OnStack(Ue2), K3 = e.Module.stringToUTF8OnStack("w");
        e.Module._pgl_freopen(N5, K3, 1);
      }
      {
        let g7 = d5.stringToUTF8OnStack(Ue2), v5 = d5.stringToUTF8OnStack("r");
        c4 = d5._fopen(g7, v5);
        let N5 = d5.stringToUTF8OnStack(He2), K3 = d5.stringToUTF8OnStack("w");
        _3 = d5._fopen(N5, K3);
      }
    };
  }] });
  return B2(r3, "calling initdb.main with", t2), { exitCode: y6.callMain(t2), stderr: m7, stdout: f5, dataFolder: I };
}
function Le2(e) {
  let r3 = [], t2 = ae2(e);
  for (let n3 = 0; n3 < t2.length; n3++) {
    let i2 = t2[n3];
    if (typeof i2 == "object" && "op" in i2) break;
    typeof i2 == "string" && r3.push(i2);
  }
  return r3;
}
async function St2({ pg: e, debug: r3, args: t2, wasmModule: n3 }) {
  return await Cr({ pg: e, debug: r3, args: ["--allow-group-access", "--encoding", "UTF8", "--locale=C.UTF-8", "--locale-provider=libc", "--auth=trust", ...t2 ?? []], wasmModule: n3 });
}
var j2, Y2, re, ye2, we2, be2, O2, Sr, Pe2, ke2, Re2, Me2, Oe2, Tr, Pr, kr, De2, Ne2, oe2, C, Mr, Or, U3, I, Hr, Lr, pt2, Ue2, He2, Ce2, Ie2, xe2, Ir;
var init_chunk_N66TTF7B = __esm({
  "../../node_modules/@electric-sql/pglite/dist/chunk-N66TTF7B.js"() {
    init_chunk_BD5WXLQO();
    init_chunk_ZSOCVAT7();
    j2 = D((xr, b4) => {
      "use strict";
      u();
      var le3 = 9007199254740991, ue3 = /* @__PURE__ */ (function(e) {
        return e;
      })();
      function Be3(e) {
        return e === ue3;
      }
      function ce3(e) {
        return typeof e == "string" || Object.prototype.toString.call(e) == "[object String]";
      }
      function je3(e) {
        return Object.prototype.toString.call(e) == "[object Date]";
      }
      function W3(e) {
        return e !== null && typeof e == "object";
      }
      function X2(e) {
        return typeof e == "function";
      }
      function Ye3(e) {
        return typeof e == "number" && e > -1 && e % 1 == 0 && e <= le3;
      }
      function Ge3(e) {
        return Object.prototype.toString.call(e) == "[object Array]";
      }
      function de2(e) {
        return W3(e) && !X2(e) && Ye3(e.length);
      }
      function J4(e) {
        return Object.prototype.toString.call(e) == "[object ArrayBuffer]";
      }
      function We3(e, r3) {
        return Array.prototype.map.call(e, r3);
      }
      function Xe3(e, r3) {
        var t2 = ue3;
        return X2(r3) && Array.prototype.every.call(e, function(n3, i2, o5) {
          var a3 = r3(n3, i2, o5);
          return a3 && (t2 = n3), !a3;
        }), t2;
      }
      function Ve3(e) {
        return Object.assign.apply(null, arguments);
      }
      function fe(e) {
        var r3, t2, n3;
        if (ce3(e)) {
          for (t2 = e.length, n3 = new Uint8Array(t2), r3 = 0; r3 < t2; r3++) n3[r3] = e.charCodeAt(r3) & 255;
          return n3;
        }
        return J4(e) ? new Uint8Array(e) : W3(e) && J4(e.buffer) ? new Uint8Array(e.buffer) : de2(e) ? new Uint8Array(e) : W3(e) && X2(e.toString) ? fe(e.toString()) : new Uint8Array();
      }
      b4.exports.MAX_SAFE_INTEGER = le3;
      b4.exports.isUndefined = Be3;
      b4.exports.isString = ce3;
      b4.exports.isObject = W3;
      b4.exports.isDateTime = je3;
      b4.exports.isFunction = X2;
      b4.exports.isArray = Ge3;
      b4.exports.isArrayLike = de2;
      b4.exports.isArrayBuffer = J4;
      b4.exports.map = We3;
      b4.exports.find = Xe3;
      b4.exports.extend = Ve3;
      b4.exports.toUint8Array = fe;
    });
    Y2 = D((Br, _e3) => {
      "use strict";
      u();
      var Q4 = "\0";
      _e3.exports = { NULL_CHAR: Q4, TMAGIC: "ustar" + Q4 + "00", OLDGNU_MAGIC: "ustar  " + Q4, REGTYPE: 0, LNKTYPE: 1, SYMTYPE: 2, CHRTYPE: 3, BLKTYPE: 4, DIRTYPE: 5, FIFOTYPE: 6, CONTTYPE: 7, TSUID: parseInt("4000", 8), TSGID: parseInt("2000", 8), TSVTX: parseInt("1000", 8), TUREAD: parseInt("0400", 8), TUWRITE: parseInt("0200", 8), TUEXEC: parseInt("0100", 8), TGREAD: parseInt("0040", 8), TGWRITE: parseInt("0020", 8), TGEXEC: parseInt("0010", 8), TOREAD: parseInt("0004", 8), TOWRITE: parseInt("0002", 8), TOEXEC: parseInt("0001", 8), TPERMALL: parseInt("0777", 8), TPERMMASK: parseInt("0777", 8) };
    });
    re = D((Yr, T6) => {
      "use strict";
      u();
      var me2 = j2(), w6 = Y2(), $e3 = 512, Z3 = w6.TPERMALL, pe3 = 0, Se2 = 0, ee3 = [["name", 100, 0, function(e, r3) {
        return G3(e[r3[0]], r3[1]);
      }, function(e, r3, t2) {
        return L5(e.slice(r3, r3 + t2[1]));
      }], ["mode", 8, 100, function(e, r3) {
        var t2 = e[r3[0]] || Z3;
        return t2 = t2 & w6.TPERMMASK, z6(t2, r3[1], Z3);
      }, function(e, r3, t2) {
        var n3 = R4(e.slice(r3, r3 + t2[1]));
        return n3 &= w6.TPERMMASK, n3;
      }], ["uid", 8, 108, function(e, r3) {
        return z6(e[r3[0]], r3[1], pe3);
      }, function(e, r3, t2) {
        return R4(e.slice(r3, r3 + t2[1]));
      }], ["gid", 8, 116, function(e, r3) {
        return z6(e[r3[0]], r3[1], Se2);
      }, function(e, r3, t2) {
        return R4(e.slice(r3, r3 + t2[1]));
      }], ["size", 12, 124, function(e, r3) {
        return z6(e.data.length, r3[1]);
      }, function(e, r3, t2) {
        return R4(e.slice(r3, r3 + t2[1]));
      }], ["modifyTime", 12, 136, function(e, r3) {
        return V3(e[r3[0]], r3[1]);
      }, function(e, r3, t2) {
        return $5(e.slice(r3, r3 + t2[1]));
      }], ["checksum", 8, 148, function(e, r3) {
        return "        ";
      }, function(e, r3, t2) {
        return R4(e.slice(r3, r3 + t2[1]));
      }], ["type", 1, 156, function(e, r3) {
        return "" + (parseInt(e[r3[0]], 10) || 0) % 8;
      }, function(e, r3, t2) {
        return (parseInt(String.fromCharCode(e[r3]), 10) || 0) % 8;
      }], ["linkName", 100, 157, function(e, r3) {
        return "";
      }, function(e, r3, t2) {
        return L5(e.slice(r3, r3 + t2[1]));
      }], ["ustar", 8, 257, function(e, r3) {
        return w6.TMAGIC;
      }, function(e, r3, t2) {
        return qe2(L5(e.slice(r3, r3 + t2[1]), true));
      }, function(e, r3) {
        return e[r3[0]] == w6.TMAGIC || e[r3[0]] == w6.OLDGNU_MAGIC;
      }], ["owner", 32, 265, function(e, r3) {
        return G3(e[r3[0]], r3[1]);
      }, function(e, r3, t2) {
        return L5(e.slice(r3, r3 + t2[1]));
      }], ["group", 32, 297, function(e, r3) {
        return G3(e[r3[0]], r3[1]);
      }, function(e, r3, t2) {
        return L5(e.slice(r3, r3 + t2[1]));
      }], ["majorNumber", 8, 329, function(e, r3) {
        return "";
      }, function(e, r3, t2) {
        return R4(e.slice(r3, r3 + t2[1]));
      }], ["minorNumber", 8, 337, function(e, r3) {
        return "";
      }, function(e, r3, t2) {
        return R4(e.slice(r3, r3 + t2[1]));
      }], ["prefix", 131, 345, function(e, r3) {
        return G3(e[r3[0]], r3[1]);
      }, function(e, r3, t2) {
        return L5(e.slice(r3, r3 + t2[1]));
      }], ["accessTime", 12, 476, function(e, r3) {
        return V3(e[r3[0]], r3[1]);
      }, function(e, r3, t2) {
        return $5(e.slice(r3, r3 + t2[1]));
      }], ["createTime", 12, 488, function(e, r3) {
        return V3(e[r3[0]], r3[1]);
      }, function(e, r3, t2) {
        return $5(e.slice(r3, r3 + t2[1]));
      }]], ge3 = (function(e) {
        var r3 = e[e.length - 1];
        return r3[2] + r3[1];
      })(ee3);
      function qe2(e) {
        if (e.length == 8) {
          var r3 = e.split("");
          if (r3[5] == w6.NULL_CHAR) return (r3[6] == " " || r3[6] == w6.NULL_CHAR) && (r3[6] = "0"), (r3[7] == " " || r3[7] == w6.NULL_CHAR) && (r3[7] = "0"), r3 = r3.join(""), r3 == w6.TMAGIC ? r3 : e;
          if (r3[7] == w6.NULL_CHAR) return r3[5] == w6.NULL_CHAR && (r3[5] = " "), r3[6] == w6.NULL_CHAR && (r3[6] = " "), r3 == w6.OLDGNU_MAGIC ? r3 : e;
        }
        return e;
      }
      function G3(e, r3) {
        return r3 -= 1, me2.isUndefined(e) && (e = ""), e = ("" + e).substr(0, r3), e + w6.NULL_CHAR;
      }
      function z6(e, r3, t2) {
        for (t2 = parseInt(t2) || 0, r3 -= 1, e = (parseInt(e) || t2).toString(8).substr(-r3, r3); e.length < r3; ) e = "0" + e;
        return e + w6.NULL_CHAR;
      }
      function V3(e, r3) {
        if (me2.isDateTime(e)) e = Math.floor(1 * e / 1e3);
        else if (e = parseInt(e, 10), isFinite(e)) {
          if (e <= 0) return "";
        } else e = Math.floor(1 * /* @__PURE__ */ new Date() / 1e3);
        return z6(e, r3, 0);
      }
      function L5(e, r3) {
        var t2 = String.fromCharCode.apply(null, e);
        if (r3) return t2;
        var n3 = t2.indexOf(w6.NULL_CHAR);
        return n3 >= 0 ? t2.substr(0, n3) : t2;
      }
      function R4(e) {
        var r3 = String.fromCharCode.apply(null, e);
        return parseInt(r3.replace(/^0+$/g, ""), 8) || 0;
      }
      function $5(e) {
        return e.length == 0 || e[0] == 0 ? null : new Date(1e3 * R4(e));
      }
      function Ke3(e, r3, t2) {
        var n3 = parseInt(r3, 10) || 0, i2 = Math.min(n3 + ge3, e.length), o5 = 0, a3 = 0, s4 = 0;
        t2 && ee3.every(function(_3) {
          return _3[0] == "checksum" ? (a3 = n3 + _3[2], s4 = a3 + _3[1], false) : true;
        });
        for (var l2 = 32, u3 = n3; u3 < i2; u3++) {
          var c4 = u3 >= a3 && u3 < s4 ? l2 : e[u3];
          o5 = (o5 + c4) % 262144;
        }
        return o5;
      }
      T6.exports.recordSize = $e3;
      T6.exports.defaultFileMode = Z3;
      T6.exports.defaultUid = pe3;
      T6.exports.defaultGid = Se2;
      T6.exports.posixHeader = ee3;
      T6.exports.effectiveHeaderSize = ge3;
      T6.exports.calculateChecksum = Ke3;
      T6.exports.formatTarString = G3;
      T6.exports.formatTarNumber = z6;
      T6.exports.formatTarDateTime = V3;
      T6.exports.parseTarString = L5;
      T6.exports.parseTarNumber = R4;
      T6.exports.parseTarDateTime = $5;
    });
    ye2 = D((Wr, Fe3) => {
      "use strict";
      u();
      var Je3 = Y2(), q5 = j2(), H4 = re();
      function ve2(e) {
        return H4.recordSize;
      }
      function Ee3(e) {
        return Math.ceil(e.data.length / H4.recordSize) * H4.recordSize;
      }
      function Qe3(e) {
        var r3 = 0;
        return e.forEach(function(t2) {
          r3 += ve2(t2) + Ee3(t2);
        }), r3 += H4.recordSize * 2, new Uint8Array(r3);
      }
      function Ze3(e, r3, t2) {
        t2 = parseInt(t2) || 0;
        var n3 = t2;
        H4.posixHeader.forEach(function(l2) {
          for (var u3 = l2[3](r3, l2), c4 = u3.length, _3 = 0; _3 < c4; _3 += 1) e[n3 + _3] = u3.charCodeAt(_3) & 255;
          n3 += l2[1];
        });
        var i2 = q5.find(H4.posixHeader, function(l2) {
          return l2[0] == "checksum";
        });
        if (i2) {
          var o5 = H4.calculateChecksum(e, t2, true), a3 = H4.formatTarNumber(o5, i2[1] - 2) + Je3.NULL_CHAR + " ";
          n3 = t2 + i2[2];
          for (var s4 = 0; s4 < a3.length; s4 += 1) e[n3] = a3.charCodeAt(s4) & 255, n3++;
        }
        return t2 + ve2(r3);
      }
      function er(e, r3, t2) {
        return t2 = parseInt(t2, 10) || 0, e.set(r3.data, t2), t2 + Ee3(r3);
      }
      function rr(e) {
        e = q5.map(e, function(n3) {
          return q5.extend({}, n3, { data: q5.toUint8Array(n3.data) });
        });
        var r3 = Qe3(e), t2 = 0;
        return e.forEach(function(n3) {
          t2 = Ze3(r3, n3, t2), t2 = er(r3, n3, t2);
        }), r3;
      }
      Fe3.exports.tar = rr;
    });
    we2 = D((Vr, he2) => {
      "use strict";
      u();
      var tr = Y2(), ne2 = j2(), D8 = re(), nr = { extractData: true, checkHeader: true, checkChecksum: true, checkFileSize: true }, ir = { size: true, checksum: true, ustar: true }, te3 = { unexpectedEndOfFile: "Unexpected end of file.", fileCorrupted: "File is corrupted.", checksumCheckFailed: "Checksum check failed." };
      function or(e) {
        return D8.recordSize;
      }
      function ar(e) {
        return Math.ceil(e / D8.recordSize) * D8.recordSize;
      }
      function sr(e, r3) {
        for (var t2 = r3, n3 = Math.min(e.length, r3 + D8.recordSize * 2), i2 = t2; i2 < n3; i2++) if (e[i2] != 0) return false;
        return true;
      }
      function lr(e, r3, t2) {
        if (e.length - r3 < D8.recordSize) {
          if (t2.checkFileSize) throw new Error(te3.unexpectedEndOfFile);
          return null;
        }
        r3 = parseInt(r3) || 0;
        var n3 = {}, i2 = r3;
        if (D8.posixHeader.forEach(function(s4) {
          n3[s4[0]] = s4[4](e, i2, s4), i2 += s4[1];
        }), n3.type != 0 && (n3.size = 0), t2.checkHeader && D8.posixHeader.forEach(function(s4) {
          if (ne2.isFunction(s4[5]) && !s4[5](n3, s4)) {
            var l2 = new Error(te3.fileCorrupted);
            throw l2.data = { offset: r3 + s4[2], field: s4[0] }, l2;
          }
        }), t2.checkChecksum) {
          var o5 = D8.calculateChecksum(e, r3, true);
          if (o5 != n3.checksum) {
            var a3 = new Error(te3.checksumCheckFailed);
            throw a3.data = { offset: r3, header: n3, checksum: o5 }, a3;
          }
        }
        return n3;
      }
      function ur(e, r3, t2, n3) {
        return n3.extractData ? t2.size <= 0 ? new Uint8Array() : e.slice(r3, r3 + t2.size) : null;
      }
      function cr(e, r3) {
        var t2 = {};
        return D8.posixHeader.forEach(function(n3) {
          var i2 = n3[0];
          ir[i2] || (t2[i2] = e[i2]);
        }), t2.isOldGNUFormat = e.ustar == tr.OLDGNU_MAGIC, r3 && (t2.data = r3), t2;
      }
      function dr(e, r3) {
        r3 = ne2.extend({}, nr, r3);
        for (var t2 = [], n3 = 0, i2 = e.length; i2 - n3 >= D8.recordSize; ) {
          e = ne2.toUint8Array(e);
          var o5 = lr(e, n3, r3);
          if (!o5) break;
          n3 += or(o5);
          var a3 = ur(e, n3, o5, r3);
          if (t2.push(cr(o5, a3)), n3 += ar(o5.size), sr(e, n3)) break;
        }
        return t2;
      }
      he2.exports.untar = dr;
    });
    be2 = D((qr, Ae2) => {
      "use strict";
      u();
      var fr = j2(), _r = Y2(), mr = ye2(), pr = we2();
      fr.extend(Ae2.exports, mr, pr, _r);
    });
    u();
    u();
    O2 = L(be2(), 1);
    Sr = ["application/x-gtar", "application/x-tar+gzip", "application/x-gzip", "application/gzip"];
    u();
    u();
    u();
    Pe2 = br;
    ke2 = Pe2;
    u();
    Re2 = "(?:" + ["\\|\\|", "\\&\\&", ";;", "\\|\\&", "\\<\\(", "\\<\\<\\<", ">>", ">\\&", "<\\&", "[&;()|<>]"].join("|") + ")";
    Me2 = new RegExp("^" + Re2 + "$");
    Oe2 = "|&;()<> \\t";
    Tr = '"((\\\\"|[^"])*?)"';
    Pr = "'((\\\\'|[^'])*?)'";
    kr = /^#$/;
    De2 = "'";
    Ne2 = '"';
    oe2 = "$";
    C = "";
    Mr = 4294967296;
    for (let e = 0; e < 4; e++) C += (Mr * Math.random()).toString(16);
    Or = new RegExp("^" + C);
    U3 = "/pglite";
    I = U3 + "/data";
    Hr = U3 + "/icu";
    Lr = U3 + "/bin/initdb";
    pt2 = U3 + "/bin/postgres";
    Ue2 = U3 + "/pgstdout";
    He2 = U3 + "/pgstdin";
    Ce2 = class {
      constructor(r3) {
        this.dataDir = r3;
      }
      async init(r3, t2) {
        return this.pg = r3, { emscriptenOpts: t2 };
      }
      async syncToFs(r3) {
      }
      async initialSyncFs() {
      }
      async closeFs() {
      }
      async dumpTar(r3, t2) {
        return ie2(this.pg.Module.FS, I, r3, t2);
      }
    };
    Ie2 = class {
      constructor(r3, { debug: t2 = false } = {}) {
        this.dataDir = r3, this.debug = t2;
      }
      async syncToFs(r3) {
      }
      async initialSyncFs() {
      }
      async closeFs() {
      }
      async dumpTar(r3, t2) {
        return ie2(this.pg.Module.FS, I, r3, t2);
      }
      async init(r3, t2) {
        return this.pg = r3, { emscriptenOpts: { ...t2, preRun: [...t2.preRun || [], (i2) => {
          let o5 = Ir(i2, this);
          i2.FS.mkdirTree(I), i2.FS.mount(o5, {}, I);
        }] } };
      }
    };
    xe2 = { EBADF: 8, EBADFD: 127, EEXIST: 20, EINVAL: 28, EISDIR: 31, ENODEV: 43, ENOENT: 44, ENOTDIR: 54, ENOTEMPTY: 55 };
    Ir = (e, r3) => {
      let t2 = e.FS, n3 = r3.debug ? console.log : null, i2 = { tryFSOperation(o5) {
        try {
          return o5();
        } catch (a3) {
          throw a3.code ? a3.code === "UNKNOWN" ? new t2.ErrnoError(xe2.EINVAL) : new t2.ErrnoError(a3.code) : a3;
        }
      }, mount(o5) {
        return i2.createNode(null, "/", 16895, 0);
      }, syncfs(o5, a3, s4) {
      }, createNode(o5, a3, s4, l2) {
        if (!t2.isDir(s4) && !t2.isFile(s4)) throw new t2.ErrnoError(28);
        let u3 = t2.createNode(o5, a3, s4);
        return u3.node_ops = i2.node_ops, u3.stream_ops = i2.stream_ops, u3;
      }, getMode: function(o5) {
        return n3?.("getMode", o5), i2.tryFSOperation(() => r3.lstat(o5).mode);
      }, realPath: function(o5) {
        let a3 = [];
        for (; o5.parent !== o5; ) a3.push(o5.name), o5 = o5.parent;
        return a3.push(o5.mount.opts.root), a3.reverse(), a3.join("/");
      }, node_ops: { getattr(o5) {
        n3?.("getattr", i2.realPath(o5));
        let a3 = i2.realPath(o5);
        return i2.tryFSOperation(() => {
          let s4 = r3.lstat(a3);
          return { ...s4, dev: 0, ino: o5.id, nlink: 1, rdev: o5.rdev, atime: new Date(s4.atime), mtime: new Date(s4.mtime), ctime: new Date(s4.ctime) };
        });
      }, setattr(o5, a3) {
        n3?.("setattr", i2.realPath(o5), a3);
        let s4 = i2.realPath(o5);
        i2.tryFSOperation(() => {
          if (a3.mode !== void 0 && r3.chmod(s4, a3.mode), a3.size !== void 0 && r3.truncate(s4, a3.size), a3.timestamp !== void 0 && r3.utimes(s4, a3.timestamp, a3.timestamp), a3.atime || a3.mtime) {
            let l2 = new Date(a3.atime || a3.mtime).getTime(), u3 = new Date(a3.mtime || a3.atime).getTime();
            r3.utimes(s4, l2, u3);
          }
          a3.size !== void 0 && r3.truncate(s4, a3.size);
        });
      }, lookup(o5, a3) {
        n3?.("lookup", i2.realPath(o5), a3);
        let s4 = [i2.realPath(o5), a3].join("/"), l2 = i2.getMode(s4);
        return i2.createNode(o5, a3, l2);
      }, mknod(o5, a3, s4, l2) {
        n3?.("mknod", i2.realPath(o5), a3, s4, l2);
        let u3 = i2.createNode(o5, a3, s4, l2), c4 = i2.realPath(u3);
        return i2.tryFSOperation(() => (t2.isDir(u3.mode) ? r3.mkdir(c4, { mode: s4 }) : r3.writeFile(c4, "", { mode: s4 }), u3));
      }, rename(o5, a3, s4) {
        n3?.("rename", i2.realPath(o5), i2.realPath(a3), s4);
        let l2 = i2.realPath(o5), u3 = [i2.realPath(a3), s4].join("/");
        i2.tryFSOperation(() => {
          r3.rename(l2, u3);
        }), o5.name = s4;
      }, unlink(o5, a3) {
        n3?.("unlink", i2.realPath(o5), a3);
        let s4 = [i2.realPath(o5), a3].join("/");
        try {
          r3.unlink(s4);
        } catch {
        }
      }, rmdir(o5, a3) {
        n3?.("rmdir", i2.realPath(o5), a3);
        let s4 = [i2.realPath(o5), a3].join("/");
        return i2.tryFSOperation(() => {
          r3.rmdir(s4);
        });
      }, readdir(o5) {
        n3?.("readdir", i2.realPath(o5));
        let a3 = i2.realPath(o5);
        return i2.tryFSOperation(() => r3.readdir(a3));
      }, symlink(o5, a3, s4) {
        throw n3?.("symlink", i2.realPath(o5), a3, s4), new t2.ErrnoError(63);
      }, readlink(o5) {
        throw n3?.("readlink", i2.realPath(o5)), new t2.ErrnoError(63);
      } }, stream_ops: { open(o5) {
        n3?.("open stream", i2.realPath(o5.node));
        let a3 = i2.realPath(o5.node);
        return i2.tryFSOperation(() => {
          t2.isFile(o5.node.mode) && (o5.shared.refcount = 1, o5.nfd = r3.open(a3));
        });
      }, close(o5) {
        return n3?.("close stream", i2.realPath(o5.node)), i2.tryFSOperation(() => {
          t2.isFile(o5.node.mode) && o5.nfd && --o5.shared.refcount === 0 && r3.close(o5.nfd);
        });
      }, dup(o5) {
        n3?.("dup stream", i2.realPath(o5.node)), o5.shared.refcount++;
      }, read(o5, a3, s4, l2, u3) {
        return n3?.("read stream", i2.realPath(o5.node), s4, l2, u3), l2 === 0 ? 0 : i2.tryFSOperation(() => r3.read(o5.nfd, a3, s4, l2, u3));
      }, write(o5, a3, s4, l2, u3) {
        return n3?.("write stream", i2.realPath(o5.node), s4, l2, u3), i2.tryFSOperation(() => r3.write(o5.nfd, a3.buffer, s4, l2, u3));
      }, llseek(o5, a3, s4) {
        n3?.("llseek stream", i2.realPath(o5.node), a3, s4);
        let l2 = a3;
        if (s4 === 1 ? l2 += o5.position : s4 === 2 && t2.isFile(o5.node.mode) && i2.tryFSOperation(() => {
          let u3 = r3.fstat(o5.nfd);
          l2 += u3.size;
        }), l2 < 0) throw new t2.ErrnoError(28);
        return l2;
      }, mmap(o5, a3, s4, l2, u3) {
        if (n3?.("mmap stream", i2.realPath(o5.node), a3, s4, l2, u3), !t2.isFile(o5.node.mode)) throw new t2.ErrnoError(xe2.ENODEV);
        let c4 = e.mmapAlloc(a3);
        return i2.stream_ops.read(o5, e.HEAPU8, c4, a3, s4), { ptr: c4, allocated: true };
      }, msync(o5, a3, s4, l2, u3) {
        return n3?.("msync stream", i2.realPath(o5.node), s4, l2, u3), i2.stream_ops.write(o5, a3, 0, l2, s4), 0;
      } } };
      return i2;
    };
  }
});

// (disabled):fs
var require_fs = __commonJS({
  "(disabled):fs"() {
  }
});

// (disabled):stream
var require_stream = __commonJS({
  "(disabled):stream"() {
  }
});

// (disabled):stream/promises
var require_promises2 = __commonJS({
  "(disabled):stream/promises"() {
  }
});

// (disabled):path
var require_path = __commonJS({
  "(disabled):path"() {
  }
});

// ../../node_modules/@electric-sql/pglite/dist/fs/nodefs.js
var nodefs_exports = {};
__export(nodefs_exports, {
  NodeFS: () => m3
});
var o4, r, m3;
var init_nodefs = __esm({
  "../../node_modules/@electric-sql/pglite/dist/fs/nodefs.js"() {
    init_chunk_N66TTF7B();
    init_chunk_BD5WXLQO();
    init_chunk_ZSOCVAT7();
    o4 = __toESM(require_fs(), 1);
    r = __toESM(require_path(), 1);
    u();
    m3 = class extends Ce2 {
      constructor(t2) {
        super(t2), this.rootDir = (void 0)(t2), (void 0)((void 0)(this.rootDir)) || (void 0)(this.rootDir);
      }
      async init(t2, e) {
        return this.pg = t2, { emscriptenOpts: { ...e, preRun: [...e.preRun || [], (s4) => {
          let c4 = s4.NODEFS;
          s4.FS.mkdirTree(I), s4.FS.mount(c4, { root: this.rootDir }, I);
        }] } };
      }
      async closeFs() {
        this.pg.Module.FS.quit();
      }
    };
  }
});

// ../../node_modules/@electric-sql/pglite/dist/fs/opfs-ahp.js
var opfs_ahp_exports = {};
__export(opfs_ahp_exports, {
  OpfsAhpFS: () => z3
});
var U4, $2, M, I2, k2, N2, H2, y3, f4, x4, F4, P4, S3, r2, L3, D4, E, w3, m4, A2, C2, T4, z3, d3;
var init_opfs_ahp = __esm({
  "../../node_modules/@electric-sql/pglite/dist/fs/opfs-ahp.js"() {
    init_chunk_N66TTF7B();
    init_chunk_BD5WXLQO();
    init_chunk_ZSOCVAT7();
    u();
    U4 = "state.txt";
    $2 = "data";
    M = { DIR: 16384, FILE: 32768 };
    z3 = class extends Ie2 {
      constructor(e, { initialPoolSize: t2 = 1e3, maintainedPoolSize: s4 = 100, debug: i2 = false } = {}) {
        super(e, { debug: i2 });
        R(this, r2);
        R(this, I2);
        R(this, k2);
        R(this, N2);
        R(this, H2);
        R(this, y3);
        R(this, f4, /* @__PURE__ */ new Map());
        R(this, x4, 0);
        R(this, F4, /* @__PURE__ */ new Map());
        R(this, P4, /* @__PURE__ */ new Map());
        this.lastCheckpoint = 0;
        this.checkpointInterval = 1e3 * 60;
        this.poolCounter = 0;
        R(this, S3, /* @__PURE__ */ new Set());
        this.initialPoolSize = t2, this.maintainedPoolSize = s4;
      }
      async init(e, t2) {
        return await T(this, r2, L3).call(this), super.init(e, t2);
      }
      async syncToFs(e = false) {
        await this.maybeCheckpointState(), await this.maintainPool(), e || this.flush();
      }
      async closeFs() {
        for (let e of h(this, f4).values()) e.sh.close();
        h(this, y3).flush(), h(this, y3).close(), this.pg.Module.FS.quit();
      }
      async maintainPool(e) {
        e = e || this.maintainedPoolSize;
        let t2 = e - this.state.pool.length, s4 = [];
        for (let i2 = 0; i2 < t2; i2++) s4.push(new Promise(async (a3) => {
          ++this.poolCounter;
          let c4 = `${(Date.now() - 1704063600).toString(16).padStart(8, "0")}-${this.poolCounter.toString(16).padStart(8, "0")}`, h3 = await h(this, N2).getFileHandle(c4, { create: true }), p5 = await h3.createSyncAccessHandle();
          h(this, f4).set(c4, { fh: h3, sh: p5 }), T(this, r2, E).call(this, { opp: "createPoolFile", args: [c4] }), this.state.pool.push(c4), a3();
        }));
        for (let i2 = 0; i2 > t2; i2--) s4.push(new Promise(async (a3) => {
          let c4 = this.state.pool.pop();
          T(this, r2, E).call(this, { opp: "deletePoolFile", args: [c4] });
          let h3 = h(this, f4).get(c4);
          h3?.sh?.close(), await h(this, N2).removeEntry(h3.fh.name), h(this, f4).delete(c4), a3();
        }));
        await Promise.all(s4);
      }
      _createPoolFileState(e) {
        this.state.pool.push(e);
      }
      _deletePoolFileState(e) {
        let t2 = this.state.pool.indexOf(e);
        t2 > -1 && this.state.pool.splice(t2, 1);
      }
      async maybeCheckpointState() {
        Date.now() - this.lastCheckpoint > this.checkpointInterval && await this.checkpointState();
      }
      async checkpointState() {
        let e = new TextEncoder().encode(JSON.stringify(this.state));
        h(this, y3).truncate(0), h(this, y3).write(e, { at: 0 }), h(this, y3).flush(), this.lastCheckpoint = Date.now();
      }
      flush() {
        for (let e of h(this, S3)) try {
          e.flush();
        } catch {
        }
        h(this, S3).clear();
      }
      chmod(e, t2) {
        T(this, r2, D4).call(this, { opp: "chmod", args: [e, t2] }, () => {
          this._chmodState(e, t2);
        });
      }
      _chmodState(e, t2) {
        let s4 = T(this, r2, m4).call(this, e);
        s4.mode = t2;
      }
      close(e) {
        let t2 = T(this, r2, A2).call(this, e);
        h(this, F4).delete(e), h(this, P4).delete(t2);
      }
      fstat(e) {
        let t2 = T(this, r2, A2).call(this, e);
        return this.lstat(t2);
      }
      lstat(e) {
        let t2 = T(this, r2, m4).call(this, e), s4 = t2.type === "file" ? h(this, f4).get(t2.backingFilename).sh.getSize() : 0, i2 = 4096;
        return { dev: 0, ino: 0, mode: t2.mode, nlink: 1, uid: 0, gid: 0, rdev: 0, size: s4, blksize: i2, blocks: Math.ceil(s4 / i2), atime: t2.lastModified, mtime: t2.lastModified, ctime: t2.lastModified };
      }
      mkdir(e, t2) {
        T(this, r2, D4).call(this, { opp: "mkdir", args: [e, t2] }, () => {
          this._mkdirState(e, t2);
        });
      }
      _mkdirState(e, t2) {
        let s4 = T(this, r2, w3).call(this, e), i2 = s4.pop(), a3 = [], c4 = this.state.root;
        for (let p5 of s4) {
          if (a3.push(e), !Object.prototype.hasOwnProperty.call(c4.children, p5)) if (t2?.recursive) this.mkdir(a3.join("/"));
          else throw new d3("ENOENT", "No such file or directory");
          if (c4.children[p5].type !== "directory") throw new d3("ENOTDIR", "Not a directory");
          c4 = c4.children[p5];
        }
        if (Object.prototype.hasOwnProperty.call(c4.children, i2)) throw new d3("EEXIST", "File exists");
        let h3 = { type: "directory", lastModified: Date.now(), mode: t2?.mode || M.DIR, children: {} };
        c4.children[i2] = h3;
      }
      open(e, t2, s4) {
        if (T(this, r2, m4).call(this, e).type !== "file") throw new d3("EISDIR", "Is a directory");
        let a3 = T(this, r2, C2).call(this);
        return h(this, F4).set(a3, e), h(this, P4).set(e, a3), a3;
      }
      readdir(e) {
        let t2 = T(this, r2, m4).call(this, e);
        if (t2.type !== "directory") throw new d3("ENOTDIR", "Not a directory");
        return Object.keys(t2.children);
      }
      read(e, t2, s4, i2, a3) {
        let c4 = T(this, r2, A2).call(this, e), h3 = T(this, r2, m4).call(this, c4);
        if (h3.type !== "file") throw new d3("EISDIR", "Is a directory");
        return h(this, f4).get(h3.backingFilename).sh.read(new Uint8Array(t2.buffer, s4, i2), { at: a3 });
      }
      rename(e, t2) {
        T(this, r2, D4).call(this, { opp: "rename", args: [e, t2] }, () => {
          this._renameState(e, t2, true);
        });
      }
      _renameState(e, t2, s4 = false) {
        let i2 = T(this, r2, w3).call(this, e), a3 = i2.pop(), c4 = T(this, r2, m4).call(this, i2.join("/"));
        if (!Object.prototype.hasOwnProperty.call(c4.children, a3)) throw new d3("ENOENT", "No such file or directory");
        let h3 = T(this, r2, w3).call(this, t2), p5 = h3.pop(), l2 = T(this, r2, m4).call(this, h3.join("/"));
        if (s4 && Object.prototype.hasOwnProperty.call(l2.children, p5)) {
          let u3 = l2.children[p5];
          h(this, f4).get(u3.backingFilename).sh.truncate(0), this.state.pool.push(u3.backingFilename);
        }
        l2.children[p5] = c4.children[a3], delete c4.children[a3];
      }
      rmdir(e) {
        T(this, r2, D4).call(this, { opp: "rmdir", args: [e] }, () => {
          this._rmdirState(e);
        });
      }
      _rmdirState(e) {
        let t2 = T(this, r2, w3).call(this, e), s4 = t2.pop(), i2 = T(this, r2, m4).call(this, t2.join("/"));
        if (!Object.prototype.hasOwnProperty.call(i2.children, s4)) throw new d3("ENOENT", "No such file or directory");
        let a3 = i2.children[s4];
        if (a3.type !== "directory") throw new d3("ENOTDIR", "Not a directory");
        if (Object.keys(a3.children).length > 0) throw new d3("ENOTEMPTY", "Directory not empty");
        delete i2.children[s4];
      }
      truncate(e, t2 = 0) {
        let s4 = T(this, r2, m4).call(this, e);
        if (s4.type !== "file") throw new d3("EISDIR", "Is a directory");
        let i2 = h(this, f4).get(s4.backingFilename)?.sh;
        if (!i2) throw new d3("ENOENT", "No such file or directory");
        i2.truncate(t2), h(this, S3).add(i2);
      }
      unlink(e) {
        T(this, r2, D4).call(this, { opp: "unlink", args: [e] }, () => {
          this._unlinkState(e, true);
        });
      }
      _unlinkState(e, t2 = false) {
        let s4 = T(this, r2, w3).call(this, e), i2 = s4.pop(), a3 = T(this, r2, m4).call(this, s4.join("/"));
        if (!Object.prototype.hasOwnProperty.call(a3.children, i2)) throw new d3("ENOENT", "No such file or directory");
        let c4 = a3.children[i2];
        if (c4.type !== "file") throw new d3("EISDIR", "Is a directory");
        if (delete a3.children[i2], t2) {
          let h3 = h(this, f4).get(c4.backingFilename).sh;
          h3?.truncate(0), h(this, S3).add(h3), h(this, P4).has(e) && (h(this, F4).delete(h(this, P4).get(e)), h(this, P4).delete(e));
        }
        this.state.pool.push(c4.backingFilename);
      }
      utimes(e, t2, s4) {
        T(this, r2, D4).call(this, { opp: "utimes", args: [e, t2, s4] }, () => {
          this._utimesState(e, t2, s4);
        });
      }
      _utimesState(e, t2, s4) {
        let i2 = T(this, r2, m4).call(this, e);
        i2.lastModified = s4;
      }
      writeFile(e, t2, s4) {
        let i2 = T(this, r2, w3).call(this, e), a3 = i2.pop(), c4 = T(this, r2, m4).call(this, i2.join("/"));
        if (Object.prototype.hasOwnProperty.call(c4.children, a3)) {
          let l2 = c4.children[a3];
          l2.lastModified = Date.now(), T(this, r2, E).call(this, { opp: "setLastModified", args: [e, l2.lastModified] });
        } else {
          if (this.state.pool.length === 0) throw new Error("No more file handles available in the pool");
          let l2 = { type: "file", lastModified: Date.now(), mode: s4?.mode || M.FILE, backingFilename: this.state.pool.pop() };
          c4.children[a3] = l2, T(this, r2, E).call(this, { opp: "createFileNode", args: [e, l2] });
        }
        let h3 = c4.children[a3], p5 = h(this, f4).get(h3.backingFilename).sh;
        t2.length > 0 && (p5.write(typeof t2 == "string" ? new TextEncoder().encode(t2) : new Uint8Array(t2), { at: 0 }), e.startsWith("/pg_wal") && h(this, S3).add(p5));
      }
      _createFileNodeState(e, t2) {
        let s4 = T(this, r2, w3).call(this, e), i2 = s4.pop(), a3 = T(this, r2, m4).call(this, s4.join("/"));
        a3.children[i2] = t2;
        let c4 = this.state.pool.indexOf(t2.backingFilename);
        return c4 > -1 && this.state.pool.splice(c4, 1), t2;
      }
      _setLastModifiedState(e, t2) {
        let s4 = T(this, r2, m4).call(this, e);
        s4.lastModified = t2;
      }
      write(e, t2, s4, i2, a3) {
        let c4 = T(this, r2, A2).call(this, e), h3 = T(this, r2, m4).call(this, c4);
        if (h3.type !== "file") throw new d3("EISDIR", "Is a directory");
        let p5 = h(this, f4).get(h3.backingFilename)?.sh;
        if (!p5) throw new d3("EBADF", "Bad file descriptor");
        let l2 = p5.write(new Uint8Array(t2, s4, i2), { at: a3 });
        return c4.startsWith("/pg_wal") && h(this, S3).add(p5), l2;
      }
    };
    I2 = /* @__PURE__ */ new WeakMap(), k2 = /* @__PURE__ */ new WeakMap(), N2 = /* @__PURE__ */ new WeakMap(), H2 = /* @__PURE__ */ new WeakMap(), y3 = /* @__PURE__ */ new WeakMap(), f4 = /* @__PURE__ */ new WeakMap(), x4 = /* @__PURE__ */ new WeakMap(), F4 = /* @__PURE__ */ new WeakMap(), P4 = /* @__PURE__ */ new WeakMap(), S3 = /* @__PURE__ */ new WeakMap(), r2 = /* @__PURE__ */ new WeakSet(), L3 = async function() {
      x(this, I2, await navigator.storage.getDirectory()), x(this, k2, await T(this, r2, T4).call(this, this.dataDir, { create: true })), x(this, N2, await T(this, r2, T4).call(this, $2, { from: h(this, k2), create: true })), x(this, H2, await h(this, k2).getFileHandle(U4, { create: true })), x(this, y3, await h(this, H2).createSyncAccessHandle());
      let e = new ArrayBuffer(h(this, y3).getSize());
      h(this, y3).read(e, { at: 0 });
      let t2, s4 = new TextDecoder().decode(e).split(`
`), i2 = false;
      try {
        t2 = JSON.parse(s4[0]);
      } catch {
        t2 = { root: { type: "directory", lastModified: Date.now(), mode: M.DIR, children: {} }, pool: [] }, h(this, y3).truncate(0), h(this, y3).write(new TextEncoder().encode(JSON.stringify(t2)), { at: 0 }), i2 = true;
      }
      this.state = t2;
      let a3 = s4.slice(1).filter(Boolean).map((l2) => JSON.parse(l2));
      for (let l2 of a3) {
        let u3 = `_${l2.opp}State`;
        if (typeof this[u3] == "function") try {
          this[u3].bind(this)(...l2.args);
        } catch (b4) {
          console.warn("Error applying OPFS AHP WAL entry", l2, b4);
        }
      }
      let c4 = [], h3 = async (l2) => {
        if (l2.type === "file") try {
          let u3 = await h(this, N2).getFileHandle(l2.backingFilename), b4 = await u3.createSyncAccessHandle();
          h(this, f4).set(l2.backingFilename, { sh: b4, fh: u3 });
        } catch (u3) {
          console.error("Error opening file handle for node", l2, u3);
        }
        else for (let u3 of Object.values(l2.children)) c4.push(h3(u3));
      };
      await h3(this.state.root);
      let p5 = [];
      for (let l2 of this.state.pool) p5.push(new Promise(async (u3) => {
        h(this, f4).has(l2) && console.warn("File handle already exists for pool file", l2);
        let b4 = await h(this, N2).getFileHandle(l2), J4 = await b4.createSyncAccessHandle();
        h(this, f4).set(l2, { fh: b4, sh: J4 }), u3();
      }));
      await Promise.all([...c4, ...p5]), await this.maintainPool(i2 ? this.initialPoolSize : this.maintainedPoolSize);
    }, D4 = function(e, t2) {
      let s4 = T(this, r2, E).call(this, e);
      try {
        t2();
      } catch (i2) {
        throw h(this, y3).truncate(s4), i2;
      }
    }, E = function(e) {
      let t2 = JSON.stringify(e), s4 = new TextEncoder().encode(`
${t2}`), i2 = h(this, y3).getSize();
      return h(this, y3).write(s4, { at: i2 }), h(this, S3).add(h(this, y3)), i2;
    }, w3 = function(e) {
      return e.split("/").filter(Boolean);
    }, m4 = function(e, t2) {
      let s4 = T(this, r2, w3).call(this, e), i2 = t2 || this.state.root;
      for (let a3 of s4) {
        if (i2.type !== "directory") throw new d3("ENOTDIR", "Not a directory");
        if (!Object.prototype.hasOwnProperty.call(i2.children, a3)) throw new d3("ENOENT", "No such file or directory");
        i2 = i2.children[a3];
      }
      return i2;
    }, A2 = function(e) {
      let t2 = h(this, F4).get(e);
      if (!t2) throw new d3("EBADF", "Bad file descriptor");
      return t2;
    }, C2 = function() {
      let e = ++U(this, x4)._;
      for (; h(this, F4).has(e); ) U(this, x4)._++;
      return e;
    }, T4 = async function(e, t2) {
      let s4 = T(this, r2, w3).call(this, e), i2 = t2?.from || h(this, I2);
      for (let a3 of s4) i2 = await i2.getDirectoryHandle(a3, { create: t2?.create });
      return i2;
    };
    d3 = class extends Error {
      constructor(v5, e) {
        super(e), typeof v5 == "number" ? this.code = v5 : typeof v5 == "string" && (this.code = xe2[v5]);
      }
    };
  }
});

// ../../node_modules/@electric-sql/pglite/dist/chunk-UCFNZJLR.js
function R3(S5) {
  let N5 = [...S5].sort((t2, r3) => t2[0] - r3[0]), e = [];
  for (let [t2, r3] of N5) {
    let s4 = e[e.length - 1];
    s4 && t2 <= s4[1] ? s4[1] = Math.max(s4[1], r3) : e.push([t2, r3]);
  }
  return e;
}
function Q2(S5, N5, e) {
  return S5 ? new Uint8Array(S5.subarray ? S5.subarray(N5, e) : S5.slice(N5, e)) : new Uint8Array(e - N5);
}
var K2, A3, F5, g5, m5, y4, E2, v3, n2, J2, H3, j3, z4, B3, U5, x5, D5, q2, I3, L4, C3, w4, T5, $3;
var init_chunk_UCFNZJLR = __esm({
  "../../node_modules/@electric-sql/pglite/dist/chunk-UCFNZJLR.js"() {
    init_chunk_N66TTF7B();
    init_chunk_ZSOCVAT7();
    u();
    K2 = 1024;
    $3 = class extends Ce2 {
      constructor(e, { debug: t2 = false } = {}) {
        super();
        R(this, n2);
        R(this, A3);
        R(this, F5);
        R(this, g5, true);
        R(this, m5, []);
        R(this, y4, /* @__PURE__ */ new Map());
        R(this, E2, Promise.resolve());
        R(this, v3, false);
        this.backend = e, this.debug = t2;
      }
      async init(e, t2) {
        return this.pg = e, await this.backend.init(), { emscriptenOpts: { ...t2, preRun: [...t2.preRun || [], (s4) => {
          s4.FS.mkdirTree(I), s4.FS.mount(T(this, n2, J2).call(this, s4), {}, I);
        }] } };
      }
      async initialSyncFs() {
        let e = this.pg.Module.FS;
        x(this, g5, false);
        try {
          for await (let t2 of this.backend.load()) {
            let r3 = I + t2.path;
            t2.kind === "dir" ? e.mkdir(r3, 448) : (e.writeFile(r3, t2.data, { mode: 384, canOwn: true }), t2.mtime !== void 0 && e.utime(r3, t2.mtime, t2.mtime));
          }
        } finally {
          x(this, g5, true);
        }
      }
      async syncToFs(e = false) {
        let t2 = h(this, E2).then(() => T(this, n2, q2).call(this, e));
        x(this, E2, t2.catch(() => {
        })), await t2;
      }
      async closeFs() {
        await this.syncToFs(), await this.backend.close(), this.pg.Module.FS.quit();
      }
    };
    A3 = /* @__PURE__ */ new WeakMap(), F5 = /* @__PURE__ */ new WeakMap(), g5 = /* @__PURE__ */ new WeakMap(), m5 = /* @__PURE__ */ new WeakMap(), y4 = /* @__PURE__ */ new WeakMap(), E2 = /* @__PURE__ */ new WeakMap(), v3 = /* @__PURE__ */ new WeakMap(), n2 = /* @__PURE__ */ new WeakSet(), J2 = function(e) {
      let t2 = e.MEMFS;
      return { mount: (r3) => {
        let s4 = t2.mount(r3);
        return h(this, F5) ?? x(this, F5, T(this, n2, H3).call(this, e, t2.ops_table)), T(this, n2, j3).call(this, e, s4), x(this, A3, s4), s4;
      }, syncfs: (r3, s4, u3) => {
        u3(null);
      } };
    }, H3 = function(e, t2) {
      let r3 = e.FS, s4 = t2.dir.node, u3 = t2.file.node, l2 = t2.file.stream, M2 = (i2, h3) => {
        u3.setattr(i2, h3), h3.size !== void 0 && r3.isFile(i2.mode) && T(this, n2, U5).call(this, i2);
      };
      return { dir: { node: { ...s4, setattr: M2, mknod: (i2, h3, d5, c4) => {
        let f5 = s4.mknod(i2, h3, d5, c4);
        return T(this, n2, j3).call(this, e, f5), T(this, n2, D5).call(this, e, f5), f5;
      }, rename: (i2, h3, d5) => {
        let c4 = T(this, n2, w4).call(this, e, i2);
        s4.rename(i2, h3, d5), T(this, n2, x5).call(this, c4), T(this, n2, D5).call(this, e, i2);
      }, unlink: (i2, h3) => {
        s4.unlink(i2, h3), T(this, n2, x5).call(this, T(this, n2, T5).call(this, T(this, n2, w4).call(this, e, i2), h3));
      }, rmdir: (i2, h3) => {
        s4.rmdir(i2, h3), T(this, n2, x5).call(this, T(this, n2, T5).call(this, T(this, n2, w4).call(this, e, i2), h3));
      }, symlink: (i2, h3, d5) => (h(this, g5) && !h(this, v3) && (x(this, v3, true), console.warn("MEMFS frontend: symlinks are not persisted")), s4.symlink(i2, h3, d5)) }, stream: t2.dir.stream }, file: { node: { ...u3, setattr: M2 }, stream: { ...l2, write: (i2, h3, d5, c4, f5, k4) => {
        let _3 = l2.write(i2, h3, d5, c4, f5, k4);
        return T(this, n2, B3).call(this, i2.node, f5, f5 + _3), _3;
      }, msync: (i2, h3, d5, c4, f5) => {
        let k4 = l2.msync(i2, h3, d5, c4, f5);
        return T(this, n2, B3).call(this, i2.node, d5, d5 + c4), k4;
      }, allocate: (i2, h3, d5) => {
        l2.allocate(i2, h3, d5), T(this, n2, U5).call(this, i2.node);
      } } } };
    }, j3 = function(e, t2) {
      let r3 = e.FS;
      r3.isDir(t2.mode) ? (t2.node_ops = h(this, F5).dir.node, t2.stream_ops = h(this, F5).dir.stream) : r3.isFile(t2.mode) && (t2.node_ops = h(this, F5).file.node, t2.stream_ops = h(this, F5).file.stream);
    }, z4 = function(e) {
      let t2 = h(this, y4).get(e);
      return t2 || (t2 = { full: false, resized: false, ranges: [] }, h(this, y4).set(e, t2)), t2;
    }, B3 = function(e, t2, r3) {
      if (!h(this, g5) || r3 <= t2) return;
      let s4 = T(this, n2, z4).call(this, e);
      if (s4.full) return;
      let u3 = s4.ranges, l2 = u3[u3.length - 1];
      l2 && t2 <= l2[1] && r3 >= l2[0] ? (l2[0] = Math.min(l2[0], t2), l2[1] = Math.max(l2[1], r3)) : (u3.push([t2, r3]), u3.length > K2 && (s4.ranges = R3(u3)));
    }, U5 = function(e) {
      h(this, g5) && (T(this, n2, z4).call(this, e).resized = true);
    }, x5 = function(e) {
      h(this, g5) && h(this, m5).push({ op: "remove", path: e });
    }, D5 = function(e, t2) {
      if (!h(this, g5)) return;
      let r3 = e.FS;
      if (r3.isDir(t2.mode)) {
        h(this, m5).push({ op: "mkdir", node: t2 });
        for (let s4 of Object.values(t2.contents)) T(this, n2, D5).call(this, e, s4);
      } else if (r3.isFile(t2.mode)) {
        let s4 = T(this, n2, z4).call(this, t2);
        s4.full = true, s4.ranges = [];
      }
    }, q2 = async function(e) {
      if (h(this, m5).length === 0 && h(this, y4).size === 0) return;
      let t2 = T(this, n2, I3).call(this);
      try {
        await this.backend.apply(t2.changes, { relaxedDurability: e });
      } catch (r3) {
        throw T(this, n2, L4).call(this, t2), r3;
      }
      if (this.debug) {
        let { ops: r3, files: s4 } = t2.changes, u3 = s4.wal.length + s4.data.length + s4.control.length;
        console.log(`MEMFS frontend: flushed ${r3.length} ops, ${u3} files`);
      }
    }, I3 = function() {
      let e = this.pg.Module, t2 = e.FS, r3 = [];
      for (let l2 of h(this, m5)) l2.op === "remove" ? r3.push(l2) : t2.isDir(l2.node.mode) && T(this, n2, C3).call(this, l2.node) && r3.push({ op: "mkdir", path: T(this, n2, w4).call(this, e, l2.node) });
      let s4 = { wal: [], data: [], control: [] };
      for (let [l2, M2] of h(this, y4)) {
        if (!t2.isFile(l2.mode) || !T(this, n2, C3).call(this, l2)) continue;
        let i2 = l2.usedBytes, h3 = M2.full ? [[0, i2]] : R3(M2.ranges), d5 = [];
        for (let [k4, _3] of h3) {
          let W3 = Math.min(_3, i2);
          k4 >= W3 || d5.push({ at: k4, data: Q2(l2.contents, k4, W3) });
        }
        let c4 = T(this, n2, w4).call(this, e, l2);
        (c4.startsWith("/pg_wal/") ? s4.wal : c4 === "/global/pg_control" ? s4.control : s4.data).push({ path: c4, size: i2, full: M2.full, truncate: M2.full || M2.resized, chunks: d5 });
      }
      let u3 = { changes: { ops: r3, files: s4 }, journal: h(this, m5), dirty: h(this, y4) };
      return x(this, m5, []), x(this, y4, /* @__PURE__ */ new Map()), u3;
    }, L4 = function(e) {
      x(this, m5, [...e.journal, ...h(this, m5)]);
      for (let [t2, r3] of e.dirty) {
        let s4 = h(this, y4).get(t2);
        s4 ? (s4.full || (s4.full = r3.full), s4.resized || (s4.resized = r3.resized), s4.ranges = s4.full ? [] : R3([...r3.ranges, ...s4.ranges])) : h(this, y4).set(t2, r3);
      }
    }, C3 = function(e) {
      for (; e.parent !== e; ) {
        if (e.parent.contents?.[e.name] !== e) return false;
        e = e.parent;
      }
      return e === h(this, A3);
    }, w4 = function(e, t2) {
      return e.FS.getPath(t2).slice(I.length);
    }, T5 = function(e, t2) {
      return `${e}/${t2}`;
    };
  }
});

// ../../node_modules/@electric-sql/pglite/dist/fs/memfs2opfs.js
var memfs2opfs_exports = {};
__export(memfs2opfs_exports, {
  Memfs2OpfsFS: () => D6,
  OpfsBackend: () => p4
});
async function* E3(n3, t2) {
  for await (let [r3, e] of n3.entries()) {
    let s4 = `${t2}/${r3}`;
    if (e.kind === "directory") yield { kind: "dir", path: s4 }, yield* E3(e, s4);
    else {
      let u3 = await e.getFile();
      yield { kind: "file", path: s4, data: new Uint8Array(await u3.arrayBuffer()), mtime: u3.lastModified };
    }
  }
}
function g6(n3) {
  return n3.split("/").filter(Boolean);
}
async function b3(n3, t2, r3) {
  if ("createSyncAccessHandle" in n3) {
    let e = await n3.createSyncAccessHandle();
    try {
      C4(e, t2, r3);
    } finally {
      e.close();
    }
  } else {
    let e = await n3.createWritable({ keepExistingData: !t2.full });
    try {
      t2.truncate && !t2.full && await e.truncate(t2.size);
      for (let s4 of t2.chunks) await e.write({ type: "write", position: s4.at, data: s4.data });
      await e.close();
    } catch (s4) {
      throw await e.abort().catch(() => {
      }), s4;
    }
  }
}
function C4(n3, t2, r3) {
  t2.truncate && n3.truncate(t2.size);
  for (let e of t2.chunks) n3.write(e.data, { at: e.at });
  r3 || n3.flush();
}
function W2(n3) {
  try {
    n3.close();
  } catch {
  }
}
async function k3(n3, t2, r3) {
  let e = 0, s4 = async () => {
    for (; e < n3.length; ) await r3(n3[e++]);
  };
  await Promise.all(Array.from({ length: Math.min(t2, n3.length) }, s4));
}
var B4, N3, m6, y5, d4, P5, w5, x6, p4, D6;
var init_memfs2opfs = __esm({
  "../../node_modules/@electric-sql/pglite/dist/fs/memfs2opfs.js"() {
    init_chunk_UCFNZJLR();
    init_chunk_N66TTF7B();
    init_chunk_BD5WXLQO();
    init_chunk_ZSOCVAT7();
    u();
    B4 = 2;
    N3 = /^\/pg_wal\/[0-9A-F]{24}$/;
    p4 = class {
      constructor(t2, { maxConcurrentWrites: r3 = 16 } = {}) {
        R(this, d4);
        R(this, m6);
        R(this, y5, /* @__PURE__ */ new Map());
        this.dataDir = t2, this.maxConcurrentWrites = r3;
      }
      async init() {
        x(this, m6, await T(this, d4, x6).call(this, this.dataDir, { from: await navigator.storage.getDirectory(), create: true }));
      }
      load() {
        return E3(h(this, m6), "");
      }
      async apply(t2, { relaxedDurability: r3 }) {
        let e = /* @__PURE__ */ new Map(), s4 = (a3) => {
          let i2 = a3.join("/"), c4 = e.get(i2);
          if (!c4) {
            let o5 = a3.length ? s4(a3.slice(0, -1)).then((z6) => z6.getDirectoryHandle(a3[a3.length - 1], { create: true })) : Promise.resolve(h(this, m6));
            e.set(i2, o5), o5.catch(() => e.delete(i2)), c4 = o5;
          }
          return c4;
        };
        for (let a3 of t2.ops) {
          let i2 = g6(a3.path);
          if (a3.op === "mkdir") {
            await s4(i2);
            continue;
          }
          T(this, d4, w5).call(this, a3.path);
          let c4 = i2.join("/");
          for (let o5 of [...e.keys()]) (o5 === c4 || o5.startsWith(c4 + "/")) && e.delete(o5);
          try {
            await (await s4(i2.slice(0, -1))).removeEntry(i2[i2.length - 1], { recursive: true });
          } catch (o5) {
            if (o5?.name !== "NotFoundError") throw o5;
          }
        }
        let u3 = async (a3) => {
          let i2 = g6(a3);
          return (await s4(i2.slice(0, -1))).getFileHandle(i2[i2.length - 1], { create: true });
        }, S5 = async (a3) => {
          await b3(await u3(a3.path), a3, r3);
        }, v5 = async (a3) => {
          if (!N3.test(a3.path)) return S5(a3);
          let i2 = h(this, y5).get(a3.path);
          if (!i2) {
            let c4 = await u3(a3.path);
            if (!("createSyncAccessHandle" in c4)) return b3(c4, a3, r3);
            i2 = await c4.createSyncAccessHandle();
          }
          h(this, y5).delete(a3.path), h(this, y5).set(a3.path, i2);
          try {
            C4(i2, a3, r3);
          } catch (c4) {
            throw T(this, d4, w5).call(this, a3.path), c4;
          }
        }, { wal: M2, data: O4, control: _3 } = t2.files;
        await k3(M2, this.maxConcurrentWrites, v5), T(this, d4, P5).call(this);
        for (let a3 of [O4, _3]) await k3(a3, this.maxConcurrentWrites, S5);
      }
      async close() {
        T(this, d4, w5).call(this);
      }
    };
    m6 = /* @__PURE__ */ new WeakMap(), y5 = /* @__PURE__ */ new WeakMap(), d4 = /* @__PURE__ */ new WeakSet(), P5 = function() {
      for (let [t2, r3] of h(this, y5)) {
        if (h(this, y5).size <= B4) break;
        h(this, y5).delete(t2), W2(r3);
      }
    }, w5 = function(t2) {
      for (let [r3, e] of h(this, y5)) t2 && r3 !== t2 && !r3.startsWith(t2 + "/") || (h(this, y5).delete(r3), W2(e));
    }, x6 = async function(t2, r3) {
      let e = r3.from;
      for (let s4 of g6(t2)) e = await e.getDirectoryHandle(s4, { create: r3.create });
      return e;
    };
    D6 = class extends $3 {
      constructor(t2, r3 = {}) {
        super(new p4(t2, r3), { debug: r3.debug }), this.dataDir = t2;
      }
    };
  }
});

// ../../node_modules/@electric-sql/pglite/dist/chunk-Y6PULSM7.js
init_chunk_ZSOCVAT7();
var yn = {};
F(yn, { ABSTIME: () => Et, ACLITEM: () => Ot, BIT: () => Qt, BOOL: () => ye, BPCHAR: () => ve, BYTEA: () => he, CHAR: () => bt, CID: () => St, CIDR: () => Rt, CIRCLE: () => Nt, DATE: () => ze, FLOAT4: () => Qe, FLOAT8: () => _e, GTSVECTOR: () => nn, INET: () => kt, INT2: () => Ve, INT4: () => Fe, INT8: () => be, INTERVAL: () => Ft, JSON: () => we, JSONB: () => Ye, MACADDR: () => Lt, MACADDR8: () => Pt, MONEY: () => Ut, NUMERIC: () => vt, OID: () => Ge, PATH: () => xt, PG_DEPENDENCIES: () => Zt, PG_LSN: () => $t, PG_NDISTINCT: () => Xt, PG_NODE_TREE: () => Dt, POLYGON: () => Mt, REFCURSOR: () => Ht, REGCLASS: () => jt, REGCONFIG: () => rn, REGDICTIONARY: () => sn, REGNAMESPACE: () => an, REGOPER: () => qt, REGOPERATOR: () => Yt, REGPROC: () => gt, REGPROCEDURE: () => zt, REGROLE: () => on, REGTYPE: () => Wt, RELTIME: () => Ct, SMGR: () => It, TEXT: () => ge, TID: () => wt, TIME: () => Vt, TIMESTAMP: () => qe, TIMESTAMPTZ: () => Ae, TIMETZ: () => Gt, TINTERVAL: () => Tt, TSQUERY: () => tn, TSVECTOR: () => en, TXID_SNAPSHOT: () => Jt, UUID: () => Kt, VARBIT: () => _t, VARCHAR: () => He, XID: () => At, XML: () => Bt, arrayParser: () => mn, arraySerializer: () => We, parseType: () => se, parsers: () => un, serializers: () => cn, types: () => je });
u();
var yt = globalThis.JSON.parse;
var ht = globalThis.JSON.stringify;
var ye = 16;
var he = 17;
var bt = 18;
var be = 20;
var Ve = 21;
var Fe = 23;
var gt = 24;
var ge = 25;
var Ge = 26;
var wt = 27;
var At = 28;
var St = 29;
var we = 114;
var Bt = 142;
var Dt = 194;
var It = 210;
var xt = 602;
var Mt = 604;
var Rt = 650;
var Qe = 700;
var _e = 701;
var Et = 702;
var Ct = 703;
var Tt = 704;
var Nt = 718;
var Pt = 774;
var Ut = 790;
var Lt = 829;
var kt = 869;
var Ot = 1033;
var ve = 1042;
var He = 1043;
var ze = 1082;
var Vt = 1083;
var qe = 1114;
var Ae = 1184;
var Ft = 1186;
var Gt = 1266;
var Qt = 1560;
var _t = 1562;
var vt = 1700;
var Ht = 1790;
var zt = 2202;
var qt = 2203;
var Yt = 2204;
var jt = 2205;
var Wt = 2206;
var Kt = 2950;
var Jt = 2970;
var $t = 3220;
var Xt = 3361;
var Zt = 3402;
var en = 3614;
var tn = 3615;
var nn = 3642;
var rn = 3734;
var sn = 3769;
var Ye = 3802;
var an = 4089;
var on = 4096;
var je = { string: { to: ge, from: [ge, He, ve], serialize: (e) => e instanceof Date ? e.toISOString() : e.toString(), parse: (e) => e }, number: { to: 0, from: [Ve, Fe, Ge, Qe, _e], serialize: (e) => e.toString(), parse: (e) => +e }, bigint: { to: be, from: [be], serialize: (e) => e.toString(), parse: (e) => {
  let t2 = BigInt(e);
  return t2 < Number.MIN_SAFE_INTEGER || t2 > Number.MAX_SAFE_INTEGER ? t2 : Number(t2);
} }, json: { to: we, from: [we, Ye], serialize: (e) => typeof e == "string" ? e : ht(e, (t2, n3) => typeof n3 == "bigint" ? n3.toString() : n3), parse: (e) => yt(e) }, boolean: { to: ye, from: [ye], serialize: (e) => {
  if (typeof e == "boolean") return e ? "t" : "f";
  if (typeof e == "number") {
    if (e === 1) return "t";
    if (e === 0) return "f";
  } else if (typeof e == "string") {
    let t2 = e.trim().toLowerCase();
    if (["true", "t", "yes", "y", "on", "1"].includes(t2)) return "t";
    if (["false", "f", "no", "n", "off", "0"].includes(t2)) return "f";
  }
  throw new Error("Invalid input for boolean type");
}, parse: (e) => e === "t" }, date: { to: Ae, from: [ze, qe, Ae], serialize: (e) => {
  if (typeof e == "string") return e;
  if (e === 1 / 0) return "infinity";
  if (e === -1 / 0) return "-infinity";
  if (typeof e == "number") return new Date(e).toISOString();
  if (e instanceof Date) return e.toISOString();
  throw new Error("Invalid input for date type");
}, parse: (e) => e === "infinity" ? 1 / 0 : e === "-infinity" ? -1 / 0 : new Date(e) }, bytea: { to: he, from: [he], serialize: (e) => {
  if (!(e instanceof Uint8Array)) throw new Error("Invalid input for bytea type");
  return "\\x" + Array.from(e).map((t2) => t2.toString(16).padStart(2, "0")).join("");
}, parse: (e) => {
  let t2 = e.slice(2);
  return Uint8Array.from({ length: t2.length / 2 }, (n3, s4) => parseInt(t2.substring(s4 * 2, (s4 + 1) * 2), 16));
} } };
var Se = ln(je);
var un = Se.parsers;
var cn = Se.serializers;
function se(e, t2, n3) {
  if (e === null) return null;
  let s4 = n3?.[t2] ?? Se.parsers[t2];
  return s4 ? s4(e, t2) : e;
}
function ln(e) {
  return Object.keys(e).reduce(({ parsers: t2, serializers: n3 }, s4) => {
    let { to: i2, from: a3, serialize: u3, parse: m7 } = e[s4];
    return n3[i2] = u3, n3[s4] = u3, t2[s4] = m7, Array.isArray(a3) ? a3.forEach((p5) => {
      t2[p5] = m7, n3[p5] = u3;
    }) : (t2[a3] = m7, n3[a3] = u3), { parsers: t2, serializers: n3 };
  }, { parsers: {}, serializers: {} });
}
var pn = /\\/g;
var dn = /"/g;
function fn(e) {
  return e.replace(pn, "\\\\").replace(dn, '\\"');
}
function We(e, t2, n3) {
  if (Array.isArray(e) === false) return e;
  if (!e.length) return "{}";
  let s4 = e[0], i2 = n3 === 1020 ? ";" : ",";
  return Array.isArray(s4) ? `{${e.map((a3) => We(a3, t2, n3)).join(i2)}}` : `{${e.map((a3) => (a3 === void 0 && (a3 = null), a3 === null ? "null" : '"' + fn(t2 ? t2(a3) : a3.toString()) + '"')).join(i2)}}`;
}
var me = { i: 0, char: null, str: "", quoted: false, last: 0, p: null };
function mn(e, t2, n3) {
  return me.i = me.last = 0, Ke(me, e, t2, n3)[0];
}
function Ke(e, t2, n3, s4) {
  let i2 = [], a3 = s4 === 1020 ? ";" : ",";
  for (; e.i < t2.length; e.i++) {
    if (e.char = t2[e.i], e.quoted) e.char === "\\" ? e.str += t2[++e.i] : e.char === '"' ? (i2.push(n3 ? n3(e.str) : e.str), e.str = "", e.quoted = t2[e.i + 1] === '"', e.last = e.i + 2) : e.str += e.char;
    else if (e.char === '"') e.quoted = true;
    else if (e.char === "{") e.last = ++e.i, i2.push(Ke(e, t2, n3, s4));
    else if (e.char === "}") {
      if (e.last < e.i) {
        let u3 = t2.slice(e.last, e.i);
        u3 === "NULL" && !e.quoted ? i2.push(null) : i2.push(n3 ? n3(u3) : u3);
      }
      e.quoted = false, e.last = e.i + 1;
      break;
    } else if (e.char === a3 && e.p !== "}" && e.p !== '"') {
      let u3 = t2.slice(e.last, e.i);
      u3 === "NULL" && !e.quoted ? i2.push(null) : i2.push(n3 ? n3(u3) : u3), e.last = e.i + 1;
    }
    e.p = e.char;
  }
  return e.last < e.i && i2.push(n3 ? n3(t2.slice(e.last, e.i + 1)) : t2.slice(e.last, e.i + 1)), i2;
}
var gn = {};
F(gn, { parseDescribeStatementResults: () => bn, parseResults: () => hn });
u();
function hn(e, t2, n3, s4) {
  let i2 = [], a3 = { rows: [], fields: [] }, u3 = 0, m7 = n3?.parsers ? { ...t2, ...n3.parsers } : t2;
  return e.forEach((p5) => {
    switch (p5.name) {
      case "rowDescription": {
        let E5 = p5;
        a3.fields = E5.fields.map((I4) => ({ name: I4.name, dataTypeID: I4.dataTypeID }));
        break;
      }
      case "dataRow": {
        if (!a3) break;
        let E5 = p5;
        n3?.rowMode === "array" ? a3.rows.push(E5.fields.map((I4, C5) => se(I4, a3.fields[C5].dataTypeID, m7))) : a3.rows.push(Object.fromEntries(E5.fields.map((I4, C5) => [a3.fields[C5].name, se(I4, a3.fields[C5].dataTypeID, m7)])));
        break;
      }
      case "commandComplete": {
        let I4 = p5.text.split(" "), C5 = I4[0], de2 = parseInt(I4[I4.length - 1], 10);
        switch (C5) {
          case "INSERT":
          case "UPDATE":
          case "DELETE":
          case "COPY":
          case "MERGE":
            u3 += de2;
            break;
        }
        let fe = { ...a3, command: C5, affectedRows: u3 };
        Number.isNaN(de2) || (fe.rowCount = de2), s4 && (fe.blob = s4), i2.push(fe), a3 = { rows: [], fields: [] };
        break;
      }
    }
  }), i2.length === 0 && i2.push({ affectedRows: 0, rows: [], fields: [] }), i2;
}
function bn(e) {
  let t2 = e.find((n3) => n3.name === "parameterDescription");
  return t2 ? t2.dataTypeIDs : [];
}
u();
u();
u();
function U2(e) {
  let t2 = e.length;
  for (let n3 = e.length - 1; n3 >= 0; n3--) {
    let s4 = e.charCodeAt(n3);
    s4 > 127 && s4 <= 2047 ? t2++ : s4 > 2047 && s4 <= 65535 && (t2 += 2), s4 >= 56320 && s4 <= 57343 && n3--;
  }
  return t2;
}
var g2;
var b;
var N;
var ae;
var L2;
var A;
var ie;
var T2;
var Je;
var P2 = class {
  constructor(t2 = 256) {
    this.size = t2;
    R(this, A);
    R(this, g2);
    R(this, b, 5);
    R(this, N, false);
    R(this, ae, new TextEncoder());
    R(this, L2, 0);
    x(this, g2, T(this, A, ie).call(this, t2));
  }
  addInt32(t2) {
    return T(this, A, T2).call(this, 4), h(this, g2).setInt32(h(this, b), t2, h(this, N)), x(this, b, h(this, b) + 4), this;
  }
  addInt16(t2) {
    return T(this, A, T2).call(this, 2), h(this, g2).setInt16(h(this, b), t2, h(this, N)), x(this, b, h(this, b) + 2), this;
  }
  addUint16(t2) {
    return T(this, A, T2).call(this, 2), h(this, g2).setUint16(h(this, b), t2, h(this, N)), x(this, b, h(this, b) + 2), this;
  }
  addCString(t2) {
    return t2 && this.addString(t2), T(this, A, T2).call(this, 1), h(this, g2).setUint8(h(this, b), 0), U(this, b)._++, this;
  }
  addString(t2 = "") {
    let n3 = U2(t2);
    return T(this, A, T2).call(this, n3), h(this, ae).encodeInto(t2, new Uint8Array(h(this, g2).buffer, h(this, b))), x(this, b, h(this, b) + n3), this;
  }
  add(t2) {
    return T(this, A, T2).call(this, t2.byteLength), new Uint8Array(h(this, g2).buffer).set(new Uint8Array(t2), h(this, b)), x(this, b, h(this, b) + t2.byteLength), this;
  }
  flush(t2) {
    let n3 = T(this, A, Je).call(this, t2);
    return x(this, b, 5), x(this, g2, T(this, A, ie).call(this, this.size)), new Uint8Array(n3);
  }
};
g2 = /* @__PURE__ */ new WeakMap(), b = /* @__PURE__ */ new WeakMap(), N = /* @__PURE__ */ new WeakMap(), ae = /* @__PURE__ */ new WeakMap(), L2 = /* @__PURE__ */ new WeakMap(), A = /* @__PURE__ */ new WeakSet(), ie = function(t2) {
  return new DataView(new ArrayBuffer(t2));
}, T2 = function(t2) {
  if (h(this, g2).byteLength - h(this, b) < t2) {
    let s4 = h(this, g2).buffer, i2 = s4.byteLength + (s4.byteLength >> 1) + t2;
    x(this, g2, T(this, A, ie).call(this, i2)), new Uint8Array(h(this, g2).buffer).set(new Uint8Array(s4));
  }
}, Je = function(t2) {
  if (t2) {
    h(this, g2).setUint8(h(this, L2), t2);
    let n3 = h(this, b) - (h(this, L2) + 1);
    h(this, g2).setInt32(h(this, L2) + 1, n3, h(this, N));
  }
  return h(this, g2).buffer.slice(t2 ? 0 : 5, h(this, b));
};
var f2 = new P2();
var wn = (e) => {
  f2.addInt16(3).addInt16(0);
  for (let s4 of Object.keys(e)) f2.addCString(s4).addCString(e[s4]);
  f2.addCString("client_encoding").addCString("UTF8");
  let t2 = f2.addCString("").flush(), n3 = t2.byteLength + 4;
  return new P2().addInt32(n3).add(t2).flush();
};
var An = () => {
  let e = new DataView(new ArrayBuffer(8));
  return e.setInt32(0, 8, false), e.setInt32(4, 80877103, false), new Uint8Array(e.buffer);
};
var Sn = (e) => f2.addCString(e).flush(112);
var Bn = (e, t2) => (f2.addCString(e).addInt32(U2(t2)).addString(t2), f2.flush(112));
var Dn = (e) => f2.addString(e).flush(112);
var In = (e) => f2.addCString(e).flush(81);
var xn = [];
var Mn = (e) => {
  let t2 = e.name ?? "";
  t2.length > 63 && (console.error("Warning! Postgres only supports 63 characters for query names."), console.error("You supplied %s (%s)", t2, t2.length), console.error("This can cause conflicts and silent errors executing queries"));
  let n3 = f2.addCString(t2).addCString(e.text).addInt16(e.types?.length ?? 0);
  return e.types?.forEach((s4) => n3.addInt32(s4)), f2.flush(80);
};
var k = new P2();
var Rn = (e, t2) => {
  for (let n3 = 0; n3 < e.length; n3++) {
    let s4 = t2 ? t2(e[n3], n3) : e[n3];
    if (s4 === null) f2.addInt16(0), k.addInt32(-1);
    else if (s4 instanceof ArrayBuffer || ArrayBuffer.isView(s4)) {
      let i2 = ArrayBuffer.isView(s4) ? s4.buffer.slice(s4.byteOffset, s4.byteOffset + s4.byteLength) : s4;
      f2.addInt16(1), k.addInt32(i2.byteLength), k.add(i2);
    } else f2.addInt16(0), k.addInt32(U2(s4)), k.addString(s4);
  }
};
var En = (e = {}) => {
  let t2 = e.portal ?? "", n3 = e.statement ?? "", s4 = e.binary ?? false, i2 = e.values ?? xn, a3 = i2.length;
  return f2.addCString(t2).addCString(n3), f2.addUint16(a3), Rn(i2, e.valueMapper), f2.addUint16(a3), f2.add(k.flush()), f2.addInt16(s4 ? 1 : 0), f2.flush(66);
};
var Cn = new Uint8Array([69, 0, 0, 0, 9, 0, 0, 0, 0, 0]);
var Tn = (e) => {
  if (!e || !e.portal && !e.rows) return Cn;
  let t2 = e.portal ?? "", n3 = e.rows ?? 0, s4 = U2(t2), i2 = 4 + s4 + 1 + 4, a3 = new DataView(new ArrayBuffer(1 + i2));
  return a3.setUint8(0, 69), a3.setInt32(1, i2, false), new TextEncoder().encodeInto(t2, new Uint8Array(a3.buffer, 5)), a3.setUint8(s4 + 5, 0), a3.setUint32(a3.byteLength - 4, n3, false), new Uint8Array(a3.buffer);
};
var Nn = (e, t2) => {
  let n3 = new DataView(new ArrayBuffer(16));
  return n3.setInt32(0, 16, false), n3.setInt16(4, 1234, false), n3.setInt16(6, 5678, false), n3.setInt32(8, e, false), n3.setInt32(12, t2, false), new Uint8Array(n3.buffer);
};
var Be = (e, t2) => {
  let n3 = new P2();
  return n3.addCString(t2), n3.flush(e);
};
var Pn = f2.addCString("P").flush(68);
var Un = f2.addCString("S").flush(68);
var Ln = (e) => e.name ? Be(68, `${e.type}${e.name ?? ""}`) : e.type === "P" ? Pn : Un;
var kn = (e) => {
  let t2 = `${e.type}${e.name ?? ""}`;
  return Be(67, t2);
};
var On = (e) => f2.add(e).flush(100);
var Vn = (e) => Be(102, e);
var oe = (e) => new Uint8Array([e, 0, 0, 0, 4]);
var Fn = oe(72);
var Gn = oe(83);
var Qn = oe(88);
var _n = oe(99);
var $e = { startup: wn, password: Sn, requestSsl: An, sendSASLInitialResponseMessage: Bn, sendSCRAMClientFinalMessage: Dn, query: In, parse: Mn, bind: En, execute: Tn, describe: Ln, close: kn, flush: () => Fn, sync: () => Gn, end: () => Qn, copyData: On, copyDone: () => _n, copyFail: Vn, cancel: Nn };
var Ne = {};
F(Ne, { AuthenticationCleartextPassword: () => G, AuthenticationMD5Password: () => Q, AuthenticationOk: () => F2, AuthenticationSASL: () => _2, AuthenticationSASLContinue: () => v, AuthenticationSASLFinal: () => H, BackendKeyDataMessage: () => J, CommandCompleteMessage: () => Z, CopyDataMessage: () => z, CopyResponse: () => q, DataRowMessage: () => ee, DatabaseError: () => O, Field: () => Y, NoticeMessage: () => te, NotificationResponseMessage: () => $, ParameterDescriptionMessage: () => W, ParameterStatusMessage: () => K, ReadyForQueryMessage: () => X, RowDescriptionMessage: () => j, bindComplete: () => Ie, closeComplete: () => xe, copyDone: () => Te, emptyQuery: () => Ce, noData: () => Me, parseComplete: () => De, portalSuspended: () => Re, replicationStart: () => Ee });
u();
var De = { name: "parseComplete", length: 5 };
var Ie = { name: "bindComplete", length: 5 };
var xe = { name: "closeComplete", length: 5 };
var Me = { name: "noData", length: 5 };
var Re = { name: "portalSuspended", length: 5 };
var Ee = { name: "replicationStart", length: 4 };
var Ce = { name: "emptyQuery", length: 4 };
var Te = { name: "copyDone", length: 4 };
var F2 = class {
  constructor(t2) {
    this.length = t2;
    this.name = "authenticationOk";
  }
};
var G = class {
  constructor(t2) {
    this.length = t2;
    this.name = "authenticationCleartextPassword";
  }
};
var Q = class {
  constructor(t2, n3) {
    this.length = t2;
    this.salt = n3;
    this.name = "authenticationMD5Password";
  }
};
var _2 = class {
  constructor(t2, n3) {
    this.length = t2;
    this.mechanisms = n3;
    this.name = "authenticationSASL";
  }
};
var v = class {
  constructor(t2, n3) {
    this.length = t2;
    this.data = n3;
    this.name = "authenticationSASLContinue";
  }
};
var H = class {
  constructor(t2, n3) {
    this.length = t2;
    this.data = n3;
    this.name = "authenticationSASLFinal";
  }
};
var O = class extends Error {
  constructor(n3, s4, i2) {
    super(n3);
    this.length = s4;
    this.name = i2;
  }
};
var z = class {
  constructor(t2, n3) {
    this.length = t2;
    this.chunk = n3;
    this.name = "copyData";
  }
};
var q = class {
  constructor(t2, n3, s4, i2) {
    this.length = t2;
    this.name = n3;
    this.binary = s4;
    this.columnTypes = new Array(i2);
  }
};
var Y = class {
  constructor(t2, n3, s4, i2, a3, u3, m7) {
    this.name = t2;
    this.tableID = n3;
    this.columnID = s4;
    this.dataTypeID = i2;
    this.dataTypeSize = a3;
    this.dataTypeModifier = u3;
    this.format = m7;
  }
};
var j = class {
  constructor(t2, n3) {
    this.length = t2;
    this.fieldCount = n3;
    this.name = "rowDescription";
    this.fields = new Array(this.fieldCount);
  }
};
var W = class {
  constructor(t2, n3) {
    this.length = t2;
    this.parameterCount = n3;
    this.name = "parameterDescription";
    this.dataTypeIDs = new Array(this.parameterCount);
  }
};
var K = class {
  constructor(t2, n3, s4) {
    this.length = t2;
    this.parameterName = n3;
    this.parameterValue = s4;
    this.name = "parameterStatus";
  }
};
var J = class {
  constructor(t2, n3, s4) {
    this.length = t2;
    this.processID = n3;
    this.secretKey = s4;
    this.name = "backendKeyData";
  }
};
var $ = class {
  constructor(t2, n3, s4, i2) {
    this.length = t2;
    this.processId = n3;
    this.channel = s4;
    this.payload = i2;
    this.name = "notification";
  }
};
var X = class {
  constructor(t2, n3) {
    this.length = t2;
    this.status = n3;
    this.name = "readyForQuery";
  }
};
var Z = class {
  constructor(t2, n3) {
    this.length = t2;
    this.text = n3;
    this.name = "commandComplete";
  }
};
var ee = class {
  constructor(t2, n3) {
    this.length = t2;
    this.fields = n3;
    this.name = "dataRow";
    this.fieldCount = n3.length;
  }
};
var te = class {
  constructor(t2, n3) {
    this.length = t2;
    this.message = n3;
    this.name = "notice";
  }
};
var zn = {};
F(zn, { Parser: () => pe, messages: () => Ne, serialize: () => $e });
u();
u();
u();
var Pe = { text: 0, binary: 1 };
u();
var vn = new ArrayBuffer(0);
var x2;
var w;
var ce;
var le;
var V;
var ue = class {
  constructor(t2 = 0) {
    R(this, x2, new DataView(vn));
    R(this, w);
    R(this, ce, "utf-8");
    R(this, le, new TextDecoder(h(this, ce)));
    R(this, V, false);
    x(this, w, t2);
  }
  setBuffer(t2, n3) {
    x(this, w, t2), x(this, x2, new DataView(n3));
  }
  int16() {
    let t2 = h(this, x2).getInt16(h(this, w), h(this, V));
    return x(this, w, h(this, w) + 2), t2;
  }
  uint16() {
    let t2 = h(this, x2).getUint16(h(this, w), h(this, V));
    return x(this, w, h(this, w) + 2), t2;
  }
  byte() {
    let t2 = h(this, x2).getUint8(h(this, w));
    return U(this, w)._++, t2;
  }
  int32() {
    let t2 = h(this, x2).getInt32(h(this, w), h(this, V));
    return x(this, w, h(this, w) + 4), t2;
  }
  string(t2) {
    return h(this, le).decode(this.bytes(t2));
  }
  cstring() {
    let t2 = h(this, w), n3 = t2;
    for (; h(this, x2).getUint8(n3++) !== 0; ) ;
    let s4 = this.string(n3 - t2 - 1);
    return x(this, w, n3), s4;
  }
  bytes(t2) {
    let n3 = h(this, x2).buffer.slice(h(this, w), h(this, w) + t2);
    return x(this, w, h(this, w) + t2), new Uint8Array(n3);
  }
};
x2 = /* @__PURE__ */ new WeakMap(), w = /* @__PURE__ */ new WeakMap(), ce = /* @__PURE__ */ new WeakMap(), le = /* @__PURE__ */ new WeakMap(), V = /* @__PURE__ */ new WeakMap();
var Ue = 1;
var Hn = 4;
var Xe = Ue + Hn;
var Ze = new ArrayBuffer(0);
var S;
var B;
var D2;
var o;
var c2;
var Le;
var et;
var tt;
var nt;
var rt;
var st;
var it;
var at;
var ke;
var ot;
var ut;
var ct;
var lt;
var pt;
var dt;
var ft;
var mt;
var Oe;
var pe = class {
  constructor() {
    R(this, c2);
    R(this, S, new DataView(Ze));
    R(this, B, 0);
    R(this, D2, 0);
    R(this, o, new ue());
  }
  parse(t2, n3) {
    T(this, c2, et).call(this, ArrayBuffer.isView(t2) ? t2.buffer.slice(t2.byteOffset, t2.byteOffset + t2.byteLength) : t2);
    let s4 = h(this, D2) + h(this, B), i2 = h(this, D2);
    for (; i2 + Xe <= s4; ) {
      let a3 = h(this, S).getUint8(i2), u3 = h(this, S).getUint32(i2 + Ue, false), m7 = Ue + u3;
      if (m7 + i2 <= s4 && u3 > 0) {
        let p5;
        try {
          p5 = T(this, c2, tt).call(this, i2 + Xe, a3, u3, h(this, S).buffer);
        } catch (E5) {
          throw T(this, c2, Le).call(this), E5;
        }
        n3(p5), i2 += m7;
      } else break;
    }
    i2 === s4 ? T(this, c2, Le).call(this) : (x(this, B, s4 - i2), x(this, D2, i2));
  }
};
S = /* @__PURE__ */ new WeakMap(), B = /* @__PURE__ */ new WeakMap(), D2 = /* @__PURE__ */ new WeakMap(), o = /* @__PURE__ */ new WeakMap(), c2 = /* @__PURE__ */ new WeakSet(), Le = function() {
  x(this, S, new DataView(Ze)), x(this, B, 0), x(this, D2, 0);
}, et = function(t2) {
  if (h(this, B) > 0) {
    let n3 = h(this, B) + t2.byteLength;
    if (n3 + h(this, D2) > h(this, S).byteLength) {
      let i2;
      if (n3 <= h(this, S).byteLength && h(this, D2) >= h(this, B)) i2 = h(this, S).buffer;
      else {
        let a3 = h(this, S).byteLength * 2;
        for (; n3 >= a3; ) a3 *= 2;
        i2 = new ArrayBuffer(a3);
      }
      new Uint8Array(i2).set(new Uint8Array(h(this, S).buffer, h(this, D2), h(this, B))), x(this, S, new DataView(i2)), x(this, D2, 0);
    }
    new Uint8Array(h(this, S).buffer).set(new Uint8Array(t2), h(this, D2) + h(this, B)), x(this, B, n3);
  } else x(this, S, new DataView(t2)), x(this, D2, 0), x(this, B, t2.byteLength);
}, tt = function(t2, n3, s4, i2) {
  switch (n3) {
    case 50:
      return Ie;
    case 49:
      return De;
    case 51:
      return xe;
    case 110:
      return Me;
    case 115:
      return Re;
    case 99:
      return Te;
    case 87:
      return Ee;
    case 73:
      return Ce;
    case 68:
      return T(this, c2, pt).call(this, t2, s4, i2);
    case 67:
      return T(this, c2, rt).call(this, t2, s4, i2);
    case 90:
      return T(this, c2, nt).call(this, t2, s4, i2);
    case 65:
      return T(this, c2, ot).call(this, t2, s4, i2);
    case 82:
      return T(this, c2, mt).call(this, t2, s4, i2);
    case 83:
      return T(this, c2, dt).call(this, t2, s4, i2);
    case 75:
      return T(this, c2, ft).call(this, t2, s4, i2);
    case 69:
      return T(this, c2, Oe).call(this, t2, s4, i2, "error");
    case 78:
      return T(this, c2, Oe).call(this, t2, s4, i2, "notice");
    case 84:
      return T(this, c2, ut).call(this, t2, s4, i2);
    case 116:
      return T(this, c2, lt).call(this, t2, s4, i2);
    case 71:
      return T(this, c2, it).call(this, t2, s4, i2);
    case 72:
      return T(this, c2, at).call(this, t2, s4, i2);
    case 100:
      return T(this, c2, st).call(this, t2, s4, i2);
    default:
      return new O("received invalid response: " + n3.toString(16), s4, "error");
  }
}, nt = function(t2, n3, s4) {
  h(this, o).setBuffer(t2, s4);
  let i2 = h(this, o).string(1);
  return new X(n3, i2);
}, rt = function(t2, n3, s4) {
  h(this, o).setBuffer(t2, s4);
  let i2 = h(this, o).cstring();
  return new Z(n3, i2);
}, st = function(t2, n3, s4) {
  let i2 = s4.slice(t2, t2 + (n3 - 4));
  return new z(n3, new Uint8Array(i2));
}, it = function(t2, n3, s4) {
  return T(this, c2, ke).call(this, t2, n3, s4, "copyInResponse");
}, at = function(t2, n3, s4) {
  return T(this, c2, ke).call(this, t2, n3, s4, "copyOutResponse");
}, ke = function(t2, n3, s4, i2) {
  h(this, o).setBuffer(t2, s4);
  let a3 = h(this, o).byte() !== 0, u3 = h(this, o).int16(), m7 = new q(n3, i2, a3, u3);
  for (let p5 = 0; p5 < u3; p5++) m7.columnTypes[p5] = h(this, o).int16();
  return m7;
}, ot = function(t2, n3, s4) {
  h(this, o).setBuffer(t2, s4);
  let i2 = h(this, o).int32(), a3 = h(this, o).cstring(), u3 = h(this, o).cstring();
  return new $(n3, i2, a3, u3);
}, ut = function(t2, n3, s4) {
  h(this, o).setBuffer(t2, s4);
  let i2 = h(this, o).int16(), a3 = new j(n3, i2);
  for (let u3 = 0; u3 < i2; u3++) a3.fields[u3] = T(this, c2, ct).call(this);
  return a3;
}, ct = function() {
  let t2 = h(this, o).cstring(), n3 = h(this, o).int32(), s4 = h(this, o).int16(), i2 = h(this, o).int32(), a3 = h(this, o).int16(), u3 = h(this, o).int32(), m7 = h(this, o).int16() === 0 ? Pe.text : Pe.binary;
  return new Y(t2, n3, s4, i2, a3, u3, m7);
}, lt = function(t2, n3, s4) {
  h(this, o).setBuffer(t2, s4);
  let i2 = h(this, o).uint16(), a3 = new W(n3, i2);
  for (let u3 = 0; u3 < i2; u3++) a3.dataTypeIDs[u3] = h(this, o).int32();
  return a3;
}, pt = function(t2, n3, s4) {
  h(this, o).setBuffer(t2, s4);
  let i2 = h(this, o).int16(), a3 = new Array(i2);
  for (let u3 = 0; u3 < i2; u3++) {
    let m7 = h(this, o).int32();
    a3[u3] = m7 === -1 ? null : h(this, o).string(m7);
  }
  return new ee(n3, a3);
}, dt = function(t2, n3, s4) {
  h(this, o).setBuffer(t2, s4);
  let i2 = h(this, o).cstring(), a3 = h(this, o).cstring();
  return new K(n3, i2, a3);
}, ft = function(t2, n3, s4) {
  h(this, o).setBuffer(t2, s4);
  let i2 = h(this, o).int32(), a3 = h(this, o).int32();
  return new J(n3, i2, a3);
}, mt = function(t2, n3, s4) {
  h(this, o).setBuffer(t2, s4);
  let i2 = h(this, o).int32();
  switch (i2) {
    case 0:
      return new F2(n3);
    case 3:
      return new G(n3);
    case 5:
      return new Q(n3, h(this, o).bytes(4));
    case 10: {
      let a3 = [];
      for (; ; ) {
        let u3 = h(this, o).cstring();
        if (u3.length === 0) return new _2(n3, a3);
        a3.push(u3);
      }
    }
    case 11:
      return new v(n3, h(this, o).string(n3 - 8));
    case 12:
      return new H(n3, h(this, o).string(n3 - 8));
    default:
      throw new Error("Unknown authenticationOk message type " + i2);
  }
}, Oe = function(t2, n3, s4, i2) {
  h(this, o).setBuffer(t2, s4);
  let a3 = {}, u3 = h(this, o).string(1);
  for (; u3 !== "\0"; ) a3[u3] = h(this, o).cstring(), u3 = h(this, o).string(1);
  let m7 = a3.M, p5 = i2 === "notice" ? new te(n3, m7) : new O(m7, n3, i2);
  return p5.severity = a3.S, p5.code = a3.C, p5.detail = a3.D, p5.hint = a3.H, p5.position = a3.P, p5.internalPosition = a3.p, p5.internalQuery = a3.q, p5.where = a3.W, p5.schema = a3.s, p5.table = a3.t, p5.column = a3.c, p5.dataType = a3.d, p5.constraint = a3.n, p5.file = a3.F, p5.line = a3.L, p5.routine = a3.R, p5;
};

// ../../node_modules/@electric-sql/pglite/dist/chunk-VQDTEBLE.js
init_chunk_ZSOCVAT7();
u();

// ../../node_modules/@electric-sql/pglite/dist/chunk-KLBW4PNS.js
init_chunk_ZSOCVAT7();
u();
var o2 = { part: "part", container: "container" };
function s2(t2, r3, ...e) {
  let a3 = t2.length - 1, p5 = e.length - 1;
  if (p5 !== -1) {
    if (p5 === 0) {
      t2[a3] = t2[a3] + e[0] + r3;
      return;
    }
    t2[a3] = t2[a3] + e[0], t2.push(...e.slice(1, p5)), t2.push(e[p5] + r3);
  }
}
function y(t2, ...r3) {
  let e = [t2[0]];
  e.raw = [t2.raw[0]];
  let a3 = [];
  for (let p5 = 0; p5 < r3.length; p5++) {
    let n3 = r3[p5], i2 = p5 + 1;
    if (n3?._templateType === o2.part) {
      s2(e, t2[i2], n3.str), s2(e.raw, t2.raw[i2], n3.str);
      continue;
    }
    if (n3?._templateType === o2.container) {
      s2(e, t2[i2], ...n3.strings), s2(e.raw, t2.raw[i2], ...n3.strings.raw), a3.push(...n3.values);
      continue;
    }
    e.push(t2[i2]), e.raw.push(t2.raw[i2]), a3.push(n3);
  }
  return { _templateType: "container", strings: e, values: a3 };
}
function g3(t2, ...r3) {
  let { strings: e, values: a3 } = y(t2, ...r3);
  return { query: [e[0], ...a3.flatMap((p5, n3) => [`$${n3 + 1}`, e[n3 + 1]])].join(""), params: a3 };
}

// ../../node_modules/@electric-sql/pglite/dist/chunk-UYHX356B.js
init_chunk_ZSOCVAT7();
u();
var x3 = class extends O {
  constructor() {
    super("Transaction was rolled back instead of committed", 0, "error"), this.severity = "ERROR", this.code = "25P02";
  }
};
function P3(h3) {
  let s4 = h3.e;
  return s4.query = h3.query, s4.params = h3.params, s4.queryOptions = h3.options, s4;
}
u();
var T3;
var p2;
var t;
var u2;
var R2;
var m;
var F3;
var D3;
var z2 = class {
  constructor() {
    R(this, t);
    this.serializers = { ...cn };
    this.parsers = { ...un };
    R(this, T3, false);
    R(this, p2, false);
  }
  async _initArrayTypes({ force: s4 = false } = {}) {
    if (h(this, T3) && !s4) return;
    x(this, T3, true);
    let e = await this.query(`
      SELECT b.oid, b.typarray
      FROM pg_catalog.pg_type a
      LEFT JOIN pg_catalog.pg_type b ON b.oid = a.typelem
      WHERE a.typcategory = 'A'
      GROUP BY b.oid, b.typarray
      ORDER BY b.oid
    `);
    for (let r3 of e.rows) this.serializers[r3.typarray] = (c4) => We(c4, this.serializers[r3.oid], r3.typarray), this.parsers[r3.typarray] = (c4) => mn(c4, this.parsers[r3.oid], r3.typarray);
  }
  async refreshArrayTypes() {
    await this._initArrayTypes({ force: true });
  }
  async query(s4, e, r3) {
    return await this._checkReady(), await this._runExclusiveTransaction(async () => await T(this, t, R2).call(this, s4, e, r3));
  }
  async sql(s4, ...e) {
    let { query: r3, params: c4 } = g3(s4, ...e);
    return await this.query(r3, c4);
  }
  async exec(s4, e) {
    return await this._checkReady(), await this._runExclusiveTransaction(async () => await T(this, t, m).call(this, s4, e));
  }
  async describeQuery(s4, e) {
    return await this._checkReady(), await this._runExclusiveTransaction(() => this._runExclusiveQuery(() => T(this, t, F3).call(this, s4, e)));
  }
  async transaction(s4) {
    return await this._checkReady(), await this._runExclusiveTransaction(async () => {
      await T(this, t, m).call(this, "BEGIN"), x(this, p2, true);
      let e = false, r3 = () => {
        if (e) throw new Error("Transaction is closed");
      }, c4 = { query: async (i2, n3, y6) => (r3(), await T(this, t, R2).call(this, i2, n3, y6)), sql: async (i2, ...n3) => {
        r3();
        let { query: y6, params: o5 } = g3(i2, ...n3);
        return await T(this, t, R2).call(this, y6, o5);
      }, exec: async (i2, n3) => (r3(), await T(this, t, m).call(this, i2, n3)), rollback: async () => {
        r3(), await T(this, t, m).call(this, "ROLLBACK"), e = true;
      }, listen: async (i2, n3) => (r3(), await this.listen(i2, n3, c4)), get closed() {
        return e;
      } };
      try {
        let i2 = await s4(c4);
        if (!e) {
          e = true;
          let [n3] = await T(this, t, m).call(this, "COMMIT");
          if (n3.command === "ROLLBACK") throw P3({ e: new x3(), query: "COMMIT", params: void 0, options: void 0 });
        }
        return x(this, p2, false), i2;
      } catch (i2) {
        throw e || (e = true, await T(this, t, m).call(this, "ROLLBACK")), x(this, p2, false), i2;
      }
    });
  }
  async runExclusive(s4) {
    return await this._runExclusiveQuery(s4);
  }
};
T3 = /* @__PURE__ */ new WeakMap(), p2 = /* @__PURE__ */ new WeakMap(), t = /* @__PURE__ */ new WeakSet(), u2 = async function(s4, e = {}) {
  return await this.execProtocolStream(s4, { ...e, syncToFs: false });
}, R2 = async function(s4, e = [], r3) {
  return await this._runExclusiveQuery(async () => {
    T(this, t, D3).call(this, "runQuery", s4, e, r3), await this._handleBlob(r3?.blob);
    let c4 = [];
    try {
      let n3 = await T(this, t, u2).call(this, $e.parse({ text: s4, types: r3?.paramTypes }), r3), y6 = bn(await T(this, t, u2).call(this, $e.describe({ type: "S" }), r3)), o5 = e.map((b4, M2) => {
        let Q4 = y6[M2];
        if (b4 == null) return null;
        let v5 = r3?.serializers?.[Q4] ?? this.serializers[Q4];
        return v5 ? v5(b4) : b4.toString();
      });
      c4 = [...n3, ...await T(this, t, u2).call(this, $e.bind({ values: o5 }), r3), ...await T(this, t, u2).call(this, $e.describe({ type: "P" }), r3), ...await T(this, t, u2).call(this, $e.execute({}), r3)];
    } catch (n3) {
      throw n3 instanceof O ? P3({ e: n3, options: r3, params: e, query: s4 }) : n3;
    } finally {
      c4.push(...await T(this, t, u2).call(this, $e.sync(), r3));
    }
    await this._cleanupBlob(), h(this, p2) || await this.syncToFs();
    let i2 = await this._getWrittenBlob();
    return hn(c4, this.parsers, r3, i2)[0];
  });
}, m = async function(s4, e) {
  return await this._runExclusiveQuery(async () => {
    T(this, t, D3).call(this, "runExec", s4, e), await this._handleBlob(e?.blob);
    let r3 = [];
    try {
      r3 = await T(this, t, u2).call(this, $e.query(s4), e);
    } catch (i2) {
      throw i2 instanceof O ? P3({ e: i2, options: e, params: void 0, query: s4 }) : i2;
    } finally {
      r3.push(...await T(this, t, u2).call(this, $e.sync(), e));
    }
    this._cleanupBlob(), h(this, p2) || await this.syncToFs();
    let c4 = await this._getWrittenBlob();
    return hn(r3, this.parsers, e, c4);
  });
}, F3 = async function(s4, e) {
  let r3 = [];
  try {
    await T(this, t, u2).call(this, $e.parse({ text: s4, types: e?.paramTypes }), e), r3 = await T(this, t, u2).call(this, $e.describe({ type: "S" }), e);
  } catch (o5) {
    throw o5 instanceof O ? P3({ e: o5, options: e, params: void 0, query: s4 }) : o5;
  } finally {
    r3.push(...await T(this, t, u2).call(this, $e.sync(), e));
  }
  let c4 = r3.find((o5) => o5.name === "parameterDescription"), i2 = r3.find((o5) => o5.name === "rowDescription"), n3 = c4?.dataTypeIDs.map((o5) => ({ dataTypeID: o5, serializer: this.serializers[o5] })) ?? [], y6 = i2?.fields.map((o5) => ({ name: o5.name, dataTypeID: o5.dataTypeID, parser: this.parsers[o5.dataTypeID] })) ?? [];
  return { queryParams: n3, resultFields: y6 };
}, D3 = function(...s4) {
  this.debug > 0 && console.log(...s4);
};

// ../../node_modules/@electric-sql/pglite/dist/chunk-XZUEO4BZ.js
init_chunk_N66TTF7B();
init_chunk_BD5WXLQO();
init_chunk_ZSOCVAT7();
u();
var lt2 = new Error("timeout while waiting for mutex to become available");
var ot2 = new Error("mutex already locked");
var tt2 = new Error("request for lock canceled");
var rt2 = function(e, t2, r3, _3) {
  function n3(a3) {
    return a3 instanceof r3 ? a3 : new r3(function(i2) {
      i2(a3);
    });
  }
  return new (r3 || (r3 = Promise))(function(a3, i2) {
    function l2(c4) {
      try {
        s4(_3.next(c4));
      } catch (p5) {
        i2(p5);
      }
    }
    function o5(c4) {
      try {
        s4(_3.throw(c4));
      } catch (p5) {
        i2(p5);
      }
    }
    function s4(c4) {
      c4.done ? a3(c4.value) : n3(c4.value).then(l2, o5);
    }
    s4((_3 = _3.apply(e, t2 || [])).next());
  });
};
var ke3 = class {
  constructor(t2, r3 = tt2) {
    this._value = t2, this._cancelError = r3, this._weightedQueues = [], this._weightedWaiters = [];
  }
  acquire(t2 = 1) {
    if (t2 <= 0) throw new Error(`invalid weight ${t2}: must be positive`);
    return new Promise((r3, _3) => {
      this._weightedQueues[t2 - 1] || (this._weightedQueues[t2 - 1] = []), this._weightedQueues[t2 - 1].push({ resolve: r3, reject: _3 }), this._dispatch();
    });
  }
  runExclusive(t2, r3 = 1) {
    return rt2(this, void 0, void 0, function* () {
      let [_3, n3] = yield this.acquire(r3);
      try {
        return yield t2(_3);
      } finally {
        n3();
      }
    });
  }
  waitForUnlock(t2 = 1) {
    if (t2 <= 0) throw new Error(`invalid weight ${t2}: must be positive`);
    return new Promise((r3) => {
      this._weightedWaiters[t2 - 1] || (this._weightedWaiters[t2 - 1] = []), this._weightedWaiters[t2 - 1].push(r3), this._dispatch();
    });
  }
  isLocked() {
    return this._value <= 0;
  }
  getValue() {
    return this._value;
  }
  setValue(t2) {
    this._value = t2, this._dispatch();
  }
  release(t2 = 1) {
    if (t2 <= 0) throw new Error(`invalid weight ${t2}: must be positive`);
    this._value += t2, this._dispatch();
  }
  cancel() {
    this._weightedQueues.forEach((t2) => t2.forEach((r3) => r3.reject(this._cancelError))), this._weightedQueues = [];
  }
  _dispatch() {
    var t2;
    for (let r3 = this._value; r3 > 0; r3--) {
      let _3 = (t2 = this._weightedQueues[r3 - 1]) === null || t2 === void 0 ? void 0 : t2.shift();
      if (!_3) continue;
      let n3 = this._value, a3 = r3;
      this._value -= r3, r3 = this._value + 1, _3.resolve([n3, this._newReleaser(a3)]);
    }
    this._drainUnlockWaiters();
  }
  _newReleaser(t2) {
    let r3 = false;
    return () => {
      r3 || (r3 = true, this.release(t2));
    };
  }
  _drainUnlockWaiters() {
    for (let t2 = this._value; t2 > 0; t2--) this._weightedWaiters[t2 - 1] && (this._weightedWaiters[t2 - 1].forEach((r3) => r3()), this._weightedWaiters[t2 - 1] = []);
  }
};
var _t2 = function(e, t2, r3, _3) {
  function n3(a3) {
    return a3 instanceof r3 ? a3 : new r3(function(i2) {
      i2(a3);
    });
  }
  return new (r3 || (r3 = Promise))(function(a3, i2) {
    function l2(c4) {
      try {
        s4(_3.next(c4));
      } catch (p5) {
        i2(p5);
      }
    }
    function o5(c4) {
      try {
        s4(_3.throw(c4));
      } catch (p5) {
        i2(p5);
      }
    }
    function s4(c4) {
      c4.done ? a3(c4.value) : n3(c4.value).then(l2, o5);
    }
    s4((_3 = _3.apply(e, t2 || [])).next());
  });
};
var V2 = class {
  constructor(t2) {
    this._semaphore = new ke3(1, t2);
  }
  acquire() {
    return _t2(this, void 0, void 0, function* () {
      let [, t2] = yield this._semaphore.acquire();
      return t2;
    });
  }
  runExclusive(t2) {
    return this._semaphore.runExclusive(() => t2());
  }
  isLocked() {
    return this._semaphore.isLocked();
  }
  waitForUnlock() {
    return this._semaphore.waitForUnlock();
  }
  release() {
    this._semaphore.isLocked() && this._semaphore.release();
  }
  cancel() {
    return this._semaphore.cancel();
  }
};
u();
var ye3 = class extends Ce2 {
  async init(t2, r3) {
    return this.pg = t2, { emscriptenOpts: { ...r3, preRun: [...r3.preRun || [], (n3) => {
      let a3 = n3.IDBFS;
      n3.FS.mkdirTree(`${U3}/${this.dataDir}`), n3.FS.mount(a3, {}, `${U3}/${this.dataDir}`), n3.FS.symlink(`${U3}/${this.dataDir}`, I);
    }] } };
  }
  initialSyncFs() {
    return new Promise((t2, r3) => {
      this.pg.Module.FS.syncfs(true, (_3) => {
        _3 ? r3(_3) : t2();
      });
    });
  }
  syncToFs(t2) {
    return new Promise((r3, _3) => {
      this.pg.Module.FS.syncfs(false, (n3) => {
        n3 ? _3(n3) : r3();
      });
    });
  }
  async closeFs() {
    let t2 = this.pg.Module.IDBFS.dbs[this.dataDir];
    t2 && t2.close(), this.pg.Module.FS.quit();
  }
};
u();
var ee2 = class extends Ce2 {
  async closeFs() {
    this.pg.Module.FS.quit();
  }
};
u();
u();
var Ne3 = L(be2(), 1);
async function Fe2(e) {
  if (p3.IN_NODE) {
    let t2 = await Promise.resolve().then(() => __toESM(require_fs(), 1)), r3 = await Promise.resolve().then(() => __toESM(require_zlib(), 1)), { Writable: _3 } = await Promise.resolve().then(() => __toESM(require_stream(), 1)), { pipeline: n3 } = await Promise.resolve().then(() => __toESM(require_promises2(), 1));
    if (!t2.existsSync(e)) throw new Error(`Extension bundle not found: ${e}`);
    let a3 = r3.createGunzip(), i2 = [];
    return await n3(t2.createReadStream(e), a3, new _3({ write(l2, o5, s4) {
      i2.push(l2), s4();
    } })), new Blob(i2);
  } else {
    let t2 = await fetch(e.toString());
    if (!t2.ok || !t2.body) return null;
    if (t2.headers.get("Content-Encoding") === "gzip") return t2.blob();
    {
      let r3 = new DecompressionStream("gzip");
      return new Response(t2.body.pipeThrough(r3)).blob();
    }
  }
}
async function Le3(e, t2) {
  let r3 = new Array();
  for (let _3 in e.pg_extensions) {
    let n3;
    try {
      n3 = await e.pg_extensions[_3];
    } catch (a3) {
      console.error("Failed to fetch extension:", _3, a3);
      continue;
    }
    if (n3) {
      let a3 = new Uint8Array(await n3.arrayBuffer());
      r3.push(...nt2(e, _3, a3, t2));
    } else console.error("Could not get binary data for extension:", _3);
  }
  return Promise.all(r3);
}
function nt2(e, t2, r3, _3) {
  let n3 = [];
  return Ne3.default.untar(r3).sort((i2, l2) => i2.name > l2.name ? 1 : i2.name < l2.name ? -1 : 0).forEach((i2) => {
    if (i2.name.endsWith("/")) {
      let l2 = `${e.WASM_PREFIX}/${i2.name}`;
      e.FS.analyzePath(l2).exists === false && e.FS.mkdirTree(l2);
    } else if (!i2.name.startsWith(".")) {
      let l2 = e.WASM_PREFIX + "/" + i2.name;
      if (i2.name.endsWith(".so")) {
        _3(`pgfs:ext preloading ${l2}`);
        let o5 = i2.name.split("/").pop(), s4 = at2(l2), c4 = new Promise((p5, d5) => {
          let u3 = (...m7) => {
            _3("pgfs:ext OK", l2, m7), p5();
          }, f5 = (...m7) => {
            _3("pgfs:ext FAIL", l2, m7), se2(e.FS, l2, i2.data), p5();
          };
          e.FS.createPreloadedFile(s4, o5, i2.data, true, true, u3, f5, false);
        });
        n3.push(c4);
      } else se2(e.FS, l2, i2.data);
    }
  }), n3;
}
function se2(e, t2, r3, _3) {
  try {
    let n3 = t2.substring(0, t2.lastIndexOf("/"));
    e.analyzePath(n3).exists === false && e.mkdirTree(n3), e.writeFile(t2, r3), _3 && e.chmod(t2, _3);
  } catch (n3) {
    throw console.error(`Error writing file ${t2}`, n3), n3;
  }
}
function at2(e) {
  let t2 = e.lastIndexOf("/");
  return t2 > 0 ? e.slice(0, t2) : e;
}
u();
function Be2(e) {
  let t2;
  if (e?.startsWith("file://")) {
    if (e = e.slice(7), !e) throw new Error("Invalid dataDir, must be a valid path");
    t2 = "nodefs";
  } else e?.startsWith("idb://") ? (e = e.slice(6), t2 = "idbfs") : e?.startsWith("opfs-ahp://") ? (e = e.slice(11), t2 = "opfs-ahp") : e?.startsWith("memfs2opfs://") ? (e = e.slice(13), t2 = "memfs2opfs") : !e || e?.startsWith("memory://") ? t2 = "memoryfs" : t2 = "nodefs";
  return { dataDir: e, fsType: t2 };
}
async function Ge2(e, t2) {
  let r3;
  if (e && t2 === "nodefs") {
    let { NodeFS: _3 } = await Promise.resolve().then(() => (init_nodefs(), nodefs_exports));
    r3 = new _3(e);
  } else if (e && t2 === "idbfs") r3 = new ye3(e);
  else if (e && t2 === "opfs-ahp") {
    let { OpfsAhpFS: _3 } = await Promise.resolve().then(() => (init_opfs_ahp(), opfs_ahp_exports));
    r3 = new _3(e);
  } else if (e && t2 === "memfs2opfs") {
    let { Memfs2OpfsFS: _3 } = await Promise.resolve().then(() => (init_memfs2opfs(), memfs2opfs_exports));
    r3 = new _3(e);
  } else r3 = new ee2();
  return r3;
}
u();
u();
async function it2(moduleArg = {}) {
  var Module = moduleArg, ENVIRONMENT_IS_WEB = !!globalThis.window, ENVIRONMENT_IS_WORKER = !!globalThis.WorkerGlobalScope, ENVIRONMENT_IS_NODE = globalThis.process?.versions?.node && globalThis.process?.type != "renderer";
  if (ENVIRONMENT_IS_NODE) {
    let { createRequire: e } = await import("node:module");
    var require = e(import.meta.url);
  }
  Module.expectedDataFileDownloads || (Module.expectedDataFileDownloads = 0), Module.expectedDataFileDownloads++, (() => {
    var e = typeof ENVIRONMENT_IS_PTHREAD < "u" && ENVIRONMENT_IS_PTHREAD, t2 = typeof ENVIRONMENT_IS_WASM_WORKER < "u" && ENVIRONMENT_IS_WASM_WORKER;
    if (!(e || t2)) {
      var r3 = globalThis.process && globalThis.process.versions && globalThis.process.versions.node && globalThis.process.type != "renderer";
      (async function(_3) {
        typeof window == "object" ? window.encodeURIComponent(window.location.pathname.substring(0, window.location.pathname.lastIndexOf("/")) + "/") : typeof process > "u" && typeof location < "u" && encodeURIComponent(location.pathname.substring(0, location.pathname.lastIndexOf("/")) + "/");
        var n3 = Module.locateFile ? Module.locateFile("pglite.data", "") : "pglite.data", a3 = _3.remote_package_size, i2, l2 = Module.getPreloadedPackage && Module.getPreloadedPackage(n3, a3);
        l2 || (i2 = (async function(s4, c4) {
          if (r3) {
            var p5 = require("fs").readFileSync(s4);
            return new Uint8Array(p5).buffer;
          }
          Module.dataFileDownloads || (Module.dataFileDownloads = {});
          try {
            var d5 = await fetch(s4);
          } catch (v5) {
            throw new Error(`Network Error: ${s4}`, { e: v5 });
          }
          if (!d5.ok) throw new Error(`${d5.status}: ${d5.url}`);
          let u3 = [], f5 = d5.headers, m7 = Number(f5.get("Content-Length") || c4), y6 = 0;
          Module.setStatus && Module.setStatus("Downloading data...");
          let b4 = d5.body.getReader();
          for (; ; ) {
            var { done: k4, value: P6 } = await b4.read();
            if (k4) break;
            u3.push(P6), y6 += P6.length, Module.dataFileDownloads[s4] = { loaded: y6, total: m7 };
            let v5 = 0, H4 = 0;
            for (let Ae2 of Object.values(Module.dataFileDownloads)) v5 += Ae2.loaded, H4 += Ae2.total;
            Module.setStatus && Module.setStatus(`Downloading data... (${v5}/${H4})`);
          }
          let M2 = new Uint8Array(u3.map((v5) => v5.length).reduce((v5, H4) => v5 + H4, 0)), C5 = 0;
          for (let v5 of u3) M2.set(v5, C5), C5 += v5.length;
          return M2.buffer;
        })(n3, a3));
        async function o5(s4) {
          function c4(p5, d5) {
            if (!p5) throw new Error(d5);
          }
          s4.FS_createPath("/", "home", true, true), s4.FS_createPath("/home", "postgres", true, true), s4.FS_createPath("/", "pglite", true, true), s4.FS_createPath("/pglite", "bin", true, true), s4.FS_createPath("/pglite", "icu", true, true), s4.FS_createPath("/pglite/icu", "icudt76l", true, true), s4.FS_createPath("/pglite/icu/icudt76l", "coll", true, true), s4.FS_createPath("/pglite", "lib", true, true), s4.FS_createPath("/pglite/lib", "postgresql", true, true), s4.FS_createPath("/pglite/lib/postgresql", "pgxs", true, true), s4.FS_createPath("/pglite/lib/postgresql/pgxs", "config", true, true), s4.FS_createPath("/pglite/lib/postgresql/pgxs", "src", true, true), s4.FS_createPath("/pglite/lib/postgresql/pgxs/src", "makefiles", true, true), s4.FS_createPath("/pglite/lib/postgresql/pgxs/src", "test", true, true), s4.FS_createPath("/pglite/lib/postgresql/pgxs/src/test", "isolation", true, true), s4.FS_createPath("/pglite/lib/postgresql/pgxs/src/test", "regress", true, true), s4.FS_createPath("/pglite", "share", true, true), s4.FS_createPath("/pglite/share", "postgresql", true, true), s4.FS_createPath("/pglite/share/postgresql", "extension", true, true), s4.FS_createPath("/pglite/share/postgresql", "timezone", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone", "Africa", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone", "America", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone/America", "Argentina", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone/America", "Indiana", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone/America", "Kentucky", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone/America", "North_Dakota", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone", "Antarctica", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone", "Arctic", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone", "Asia", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone", "Atlantic", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone", "Australia", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone", "Brazil", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone", "Canada", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone", "Chile", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone", "Etc", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone", "Europe", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone", "Indian", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone", "Mexico", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone", "Pacific", true, true), s4.FS_createPath("/pglite/share/postgresql/timezone", "US", true, true), s4.FS_createPath("/pglite/share/postgresql", "timezonesets", true, true), s4.FS_createPath("/pglite/share/postgresql", "tsearch_data", true, true), s4.addRunDependency("datafile_pglite.data"), s4.preloadResults || (s4.preloadResults = {}), s4.preloadResults["pglite.data"] = { fromCache: false }, l2 || (l2 = await i2), await (async function(p5) {
            c4(p5, "Loading data file failed."), c4(p5.constructor.name === ArrayBuffer.name, "bad input to processPackageData " + p5.constructor.name);
            var d5 = new Uint8Array(p5);
            for (var u3 of _3.files) {
              var f5 = u3.filename, m7 = d5.subarray(u3.start, u3.end);
              s4.FS_createDataFile(f5, null, m7, true, true, true);
            }
            s4.removeRunDependency("datafile_pglite.data");
          })(l2);
        }
        Module.FS_createPath ? o5(Module) : (Module.preRun || (Module.preRun = []), Module.preRun.push(o5));
      })({ files: [{ filename: "/home/postgres/.pgpass", start: 0, end: 204 }, { filename: "/pglite/bin/initdb", start: 204, end: 223 }, { filename: "/pglite/bin/pg_dump", start: 223, end: 242 }, { filename: "/pglite/bin/postgres", start: 242, end: 261 }, { filename: "/pglite/icu/LICENSE", start: 261, end: 26748 }, { filename: "/pglite/icu/icudt76l/coll/root.res", start: 26748, end: 365756 }, { filename: "/pglite/icu/icudt76l/coll/ucadata.icu", start: 365756, end: 943260 }, { filename: "/pglite/lib/postgresql/cyrillic_and_mic.so", start: 943260, end: 947850 }, { filename: "/pglite/lib/postgresql/dict_snowball.so", start: 947850, end: 1530311 }, { filename: "/pglite/lib/postgresql/euc2004_sjis2004.so", start: 1530311, end: 1532439 }, { filename: "/pglite/lib/postgresql/euc_cn_and_mic.so", start: 1532439, end: 1533462 }, { filename: "/pglite/lib/postgresql/euc_jp_and_sjis.so", start: 1533462, end: 1540934 }, { filename: "/pglite/lib/postgresql/euc_kr_and_mic.so", start: 1540934, end: 1541977 }, { filename: "/pglite/lib/postgresql/euc_tw_and_big5.so", start: 1541977, end: 1546629 }, { filename: "/pglite/lib/postgresql/latin2_and_win1250.so", start: 1546629, end: 1548128 }, { filename: "/pglite/lib/postgresql/latin_and_mic.so", start: 1548128, end: 1549237 }, { filename: "/pglite/lib/postgresql/libpqwalreceiver.so", start: 1549237, end: 1687240 }, { filename: "/pglite/lib/postgresql/pgoutput.so", start: 1687240, end: 1701296 }, { filename: "/pglite/lib/postgresql/pgxs/config/install-sh", start: 1701296, end: 1715293 }, { filename: "/pglite/lib/postgresql/pgxs/config/missing", start: 1715293, end: 1716641 }, { filename: "/pglite/lib/postgresql/pgxs/src/Makefile.global", start: 1716641, end: 1754746 }, { filename: "/pglite/lib/postgresql/pgxs/src/Makefile.port", start: 1754746, end: 1755938 }, { filename: "/pglite/lib/postgresql/pgxs/src/Makefile.shlib", start: 1755938, end: 1770766 }, { filename: "/pglite/lib/postgresql/pgxs/src/makefiles/pgxs.mk", start: 1770766, end: 1786913 }, { filename: "/pglite/lib/postgresql/pgxs/src/nls-global.mk", start: 1786913, end: 1793977 }, { filename: "/pglite/lib/postgresql/pgxs/src/test/isolation/isolationtester.js", start: 1793977, end: 1892521 }, { filename: "/pglite/lib/postgresql/pgxs/src/test/isolation/pg_isolation_regress.js", start: 1892521, end: 1994850 }, { filename: "/pglite/lib/postgresql/pgxs/src/test/regress/pg_regress.js", start: 1994850, end: 2096602 }, { filename: "/pglite/lib/postgresql/plpgsql.so", start: 2096602, end: 2252354 }, { filename: "/pglite/lib/postgresql/utf8_and_big5.so", start: 2252354, end: 2367178 }, { filename: "/pglite/lib/postgresql/utf8_and_cyrillic.so", start: 2367178, end: 2373223 }, { filename: "/pglite/lib/postgresql/utf8_and_euc2004.so", start: 2373223, end: 2578231 }, { filename: "/pglite/lib/postgresql/utf8_and_euc_cn.so", start: 2578231, end: 2653487 }, { filename: "/pglite/lib/postgresql/utf8_and_euc_jp.so", start: 2653487, end: 2804791 }, { filename: "/pglite/lib/postgresql/utf8_and_euc_kr.so", start: 2804791, end: 2907723 }, { filename: "/pglite/lib/postgresql/utf8_and_euc_tw.so", start: 2907723, end: 3107355 }, { filename: "/pglite/lib/postgresql/utf8_and_gb18030.so", start: 3107355, end: 3369748 }, { filename: "/pglite/lib/postgresql/utf8_and_gbk.so", start: 3369748, end: 3516356 }, { filename: "/pglite/lib/postgresql/utf8_and_iso8859.so", start: 3516356, end: 3539832 }, { filename: "/pglite/lib/postgresql/utf8_and_iso8859_1.so", start: 3539832, end: 3540899 }, { filename: "/pglite/lib/postgresql/utf8_and_johab.so", start: 3540899, end: 3702679 }, { filename: "/pglite/lib/postgresql/utf8_and_sjis.so", start: 3702679, end: 3784415 }, { filename: "/pglite/lib/postgresql/utf8_and_sjis2004.so", start: 3784415, end: 3911123 }, { filename: "/pglite/lib/postgresql/utf8_and_uhc.so", start: 3911123, end: 4078471 }, { filename: "/pglite/lib/postgresql/utf8_and_win.so", start: 4078471, end: 4104908 }, { filename: "/pglite/locale-a", start: 4104908, end: 4104933 }, { filename: "/pglite/password", start: 4104933, end: 4104941 }, { filename: "/pglite/pgstdin", start: 4104941, end: 4104960 }, { filename: "/pglite/pgstdout", start: 4104960, end: 4104979 }, { filename: "/pglite/share/postgresql/errcodes.txt", start: 4104979, end: 4138718 }, { filename: "/pglite/share/postgresql/extension/plpgsql--1.0.sql", start: 4138718, end: 4139376 }, { filename: "/pglite/share/postgresql/extension/plpgsql.control", start: 4139376, end: 4139569 }, { filename: "/pglite/share/postgresql/information_schema.sql", start: 4139569, end: 4253566 }, { filename: "/pglite/share/postgresql/pg_hba.conf.sample", start: 4253566, end: 4259201 }, { filename: "/pglite/share/postgresql/pg_ident.conf.sample", start: 4259201, end: 4261882 }, { filename: "/pglite/share/postgresql/pg_service.conf.sample", start: 4261882, end: 4262486 }, { filename: "/pglite/share/postgresql/postgres.bki", start: 4262486, end: 5236255 }, { filename: "/pglite/share/postgresql/postgresql.conf.sample", start: 5236255, end: 5268907 }, { filename: "/pglite/share/postgresql/psqlrc.sample", start: 5268907, end: 5269185 }, { filename: "/pglite/share/postgresql/snowball_create.sql", start: 5269185, end: 5314895 }, { filename: "/pglite/share/postgresql/sql_features.txt", start: 5314895, end: 5350656 }, { filename: "/pglite/share/postgresql/system_constraints.sql", start: 5350656, end: 5359551 }, { filename: "/pglite/share/postgresql/system_functions.sql", start: 5359551, end: 5384430 }, { filename: "/pglite/share/postgresql/system_views.sql", start: 5384430, end: 5437794 }, { filename: "/pglite/share/postgresql/timezone/Africa/Abidjan", start: 5437794, end: 5437942 }, { filename: "/pglite/share/postgresql/timezone/Africa/Accra", start: 5437942, end: 5438090 }, { filename: "/pglite/share/postgresql/timezone/Africa/Addis_Ababa", start: 5438090, end: 5438355 }, { filename: "/pglite/share/postgresql/timezone/Africa/Algiers", start: 5438355, end: 5439090 }, { filename: "/pglite/share/postgresql/timezone/Africa/Asmara", start: 5439090, end: 5439355 }, { filename: "/pglite/share/postgresql/timezone/Africa/Asmera", start: 5439355, end: 5439620 }, { filename: "/pglite/share/postgresql/timezone/Africa/Bamako", start: 5439620, end: 5439768 }, { filename: "/pglite/share/postgresql/timezone/Africa/Bangui", start: 5439768, end: 5440003 }, { filename: "/pglite/share/postgresql/timezone/Africa/Banjul", start: 5440003, end: 5440151 }, { filename: "/pglite/share/postgresql/timezone/Africa/Bissau", start: 5440151, end: 5440345 }, { filename: "/pglite/share/postgresql/timezone/Africa/Blantyre", start: 5440345, end: 5440494 }, { filename: "/pglite/share/postgresql/timezone/Africa/Brazzaville", start: 5440494, end: 5440729 }, { filename: "/pglite/share/postgresql/timezone/Africa/Bujumbura", start: 5440729, end: 5440878 }, { filename: "/pglite/share/postgresql/timezone/Africa/Cairo", start: 5440878, end: 5443277 }, { filename: "/pglite/share/postgresql/timezone/Africa/Casablanca", start: 5443277, end: 5444491 }, { filename: "/pglite/share/postgresql/timezone/Africa/Ceuta", start: 5444491, end: 5446543 }, { filename: "/pglite/share/postgresql/timezone/Africa/Conakry", start: 5446543, end: 5446691 }, { filename: "/pglite/share/postgresql/timezone/Africa/Dakar", start: 5446691, end: 5446839 }, { filename: "/pglite/share/postgresql/timezone/Africa/Dar_es_Salaam", start: 5446839, end: 5447104 }, { filename: "/pglite/share/postgresql/timezone/Africa/Djibouti", start: 5447104, end: 5447369 }, { filename: "/pglite/share/postgresql/timezone/Africa/Douala", start: 5447369, end: 5447604 }, { filename: "/pglite/share/postgresql/timezone/Africa/El_Aaiun", start: 5447604, end: 5448684 }, { filename: "/pglite/share/postgresql/timezone/Africa/Freetown", start: 5448684, end: 5448832 }, { filename: "/pglite/share/postgresql/timezone/Africa/Gaborone", start: 5448832, end: 5448981 }, { filename: "/pglite/share/postgresql/timezone/Africa/Harare", start: 5448981, end: 5449130 }, { filename: "/pglite/share/postgresql/timezone/Africa/Johannesburg", start: 5449130, end: 5449376 }, { filename: "/pglite/share/postgresql/timezone/Africa/Juba", start: 5449376, end: 5450055 }, { filename: "/pglite/share/postgresql/timezone/Africa/Kampala", start: 5450055, end: 5450320 }, { filename: "/pglite/share/postgresql/timezone/Africa/Khartoum", start: 5450320, end: 5450999 }, { filename: "/pglite/share/postgresql/timezone/Africa/Kigali", start: 5450999, end: 5451148 }, { filename: "/pglite/share/postgresql/timezone/Africa/Kinshasa", start: 5451148, end: 5451383 }, { filename: "/pglite/share/postgresql/timezone/Africa/Lagos", start: 5451383, end: 5451618 }, { filename: "/pglite/share/postgresql/timezone/Africa/Libreville", start: 5451618, end: 5451853 }, { filename: "/pglite/share/postgresql/timezone/Africa/Lome", start: 5451853, end: 5452001 }, { filename: "/pglite/share/postgresql/timezone/Africa/Luanda", start: 5452001, end: 5452236 }, { filename: "/pglite/share/postgresql/timezone/Africa/Lubumbashi", start: 5452236, end: 5452385 }, { filename: "/pglite/share/postgresql/timezone/Africa/Lusaka", start: 5452385, end: 5452534 }, { filename: "/pglite/share/postgresql/timezone/Africa/Malabo", start: 5452534, end: 5452769 }, { filename: "/pglite/share/postgresql/timezone/Africa/Maputo", start: 5452769, end: 5452918 }, { filename: "/pglite/share/postgresql/timezone/Africa/Maseru", start: 5452918, end: 5453164 }, { filename: "/pglite/share/postgresql/timezone/Africa/Mbabane", start: 5453164, end: 5453410 }, { filename: "/pglite/share/postgresql/timezone/Africa/Mogadishu", start: 5453410, end: 5453675 }, { filename: "/pglite/share/postgresql/timezone/Africa/Monrovia", start: 5453675, end: 5453883 }, { filename: "/pglite/share/postgresql/timezone/Africa/Nairobi", start: 5453883, end: 5454148 }, { filename: "/pglite/share/postgresql/timezone/Africa/Ndjamena", start: 5454148, end: 5454347 }, { filename: "/pglite/share/postgresql/timezone/Africa/Niamey", start: 5454347, end: 5454582 }, { filename: "/pglite/share/postgresql/timezone/Africa/Nouakchott", start: 5454582, end: 5454730 }, { filename: "/pglite/share/postgresql/timezone/Africa/Ouagadougou", start: 5454730, end: 5454878 }, { filename: "/pglite/share/postgresql/timezone/Africa/Porto-Novo", start: 5454878, end: 5455113 }, { filename: "/pglite/share/postgresql/timezone/Africa/Sao_Tome", start: 5455113, end: 5455367 }, { filename: "/pglite/share/postgresql/timezone/Africa/Timbuktu", start: 5455367, end: 5455515 }, { filename: "/pglite/share/postgresql/timezone/Africa/Tripoli", start: 5455515, end: 5456140 }, { filename: "/pglite/share/postgresql/timezone/Africa/Tunis", start: 5456140, end: 5456829 }, { filename: "/pglite/share/postgresql/timezone/Africa/Windhoek", start: 5456829, end: 5457784 }, { filename: "/pglite/share/postgresql/timezone/America/Adak", start: 5457784, end: 5460140 }, { filename: "/pglite/share/postgresql/timezone/America/Anchorage", start: 5460140, end: 5462511 }, { filename: "/pglite/share/postgresql/timezone/America/Anguilla", start: 5462511, end: 5462757 }, { filename: "/pglite/share/postgresql/timezone/America/Antigua", start: 5462757, end: 5463003 }, { filename: "/pglite/share/postgresql/timezone/America/Araguaina", start: 5463003, end: 5463887 }, { filename: "/pglite/share/postgresql/timezone/America/Argentina/Buenos_Aires", start: 5463887, end: 5464963 }, { filename: "/pglite/share/postgresql/timezone/America/Argentina/Catamarca", start: 5464963, end: 5466039 }, { filename: "/pglite/share/postgresql/timezone/America/Argentina/ComodRivadavia", start: 5466039, end: 5467115 }, { filename: "/pglite/share/postgresql/timezone/America/Argentina/Cordoba", start: 5467115, end: 5468191 }, { filename: "/pglite/share/postgresql/timezone/America/Argentina/Jujuy", start: 5468191, end: 5469239 }, { filename: "/pglite/share/postgresql/timezone/America/Argentina/La_Rioja", start: 5469239, end: 5470329 }, { filename: "/pglite/share/postgresql/timezone/America/Argentina/Mendoza", start: 5470329, end: 5471405 }, { filename: "/pglite/share/postgresql/timezone/America/Argentina/Rio_Gallegos", start: 5471405, end: 5472481 }, { filename: "/pglite/share/postgresql/timezone/America/Argentina/Salta", start: 5472481, end: 5473529 }, { filename: "/pglite/share/postgresql/timezone/America/Argentina/San_Juan", start: 5473529, end: 5474619 }, { filename: "/pglite/share/postgresql/timezone/America/Argentina/San_Luis", start: 5474619, end: 5475721 }, { filename: "/pglite/share/postgresql/timezone/America/Argentina/Tucuman", start: 5475721, end: 5476825 }, { filename: "/pglite/share/postgresql/timezone/America/Argentina/Ushuaia", start: 5476825, end: 5477901 }, { filename: "/pglite/share/postgresql/timezone/America/Aruba", start: 5477901, end: 5478147 }, { filename: "/pglite/share/postgresql/timezone/America/Asuncion", start: 5478147, end: 5479805 }, { filename: "/pglite/share/postgresql/timezone/America/Atikokan", start: 5479805, end: 5479987 }, { filename: "/pglite/share/postgresql/timezone/America/Atka", start: 5479987, end: 5482343 }, { filename: "/pglite/share/postgresql/timezone/America/Bahia", start: 5482343, end: 5483367 }, { filename: "/pglite/share/postgresql/timezone/America/Bahia_Banderas", start: 5483367, end: 5484467 }, { filename: "/pglite/share/postgresql/timezone/America/Barbados", start: 5484467, end: 5484903 }, { filename: "/pglite/share/postgresql/timezone/America/Belem", start: 5484903, end: 5485479 }, { filename: "/pglite/share/postgresql/timezone/America/Belize", start: 5485479, end: 5487093 }, { filename: "/pglite/share/postgresql/timezone/America/Blanc-Sablon", start: 5487093, end: 5487339 }, { filename: "/pglite/share/postgresql/timezone/America/Boa_Vista", start: 5487339, end: 5487971 }, { filename: "/pglite/share/postgresql/timezone/America/Bogota", start: 5487971, end: 5488217 }, { filename: "/pglite/share/postgresql/timezone/America/Boise", start: 5488217, end: 5490627 }, { filename: "/pglite/share/postgresql/timezone/America/Buenos_Aires", start: 5490627, end: 5491703 }, { filename: "/pglite/share/postgresql/timezone/America/Cambridge_Bay", start: 5491703, end: 5493957 }, { filename: "/pglite/share/postgresql/timezone/America/Campo_Grande", start: 5493957, end: 5495401 }, { filename: "/pglite/share/postgresql/timezone/America/Cancun", start: 5495401, end: 5496265 }, { filename: "/pglite/share/postgresql/timezone/America/Caracas", start: 5496265, end: 5496529 }, { filename: "/pglite/share/postgresql/timezone/America/Catamarca", start: 5496529, end: 5497605 }, { filename: "/pglite/share/postgresql/timezone/America/Cayenne", start: 5497605, end: 5497803 }, { filename: "/pglite/share/postgresql/timezone/America/Cayman", start: 5497803, end: 5497985 }, { filename: "/pglite/share/postgresql/timezone/America/Chicago", start: 5497985, end: 5501577 }, { filename: "/pglite/share/postgresql/timezone/America/Chihuahua", start: 5501577, end: 5502679 }, { filename: "/pglite/share/postgresql/timezone/America/Ciudad_Juarez", start: 5502679, end: 5504217 }, { filename: "/pglite/share/postgresql/timezone/America/Coral_Harbour", start: 5504217, end: 5504399 }, { filename: "/pglite/share/postgresql/timezone/America/Cordoba", start: 5504399, end: 5505475 }, { filename: "/pglite/share/postgresql/timezone/America/Costa_Rica", start: 5505475, end: 5505791 }, { filename: "/pglite/share/postgresql/timezone/America/Coyhaique", start: 5505791, end: 5507931 }, { filename: "/pglite/share/postgresql/timezone/America/Creston", start: 5507931, end: 5508291 }, { filename: "/pglite/share/postgresql/timezone/America/Cuiaba", start: 5508291, end: 5509707 }, { filename: "/pglite/share/postgresql/timezone/America/Curacao", start: 5509707, end: 5509953 }, { filename: "/pglite/share/postgresql/timezone/America/Danmarkshavn", start: 5509953, end: 5510651 }, { filename: "/pglite/share/postgresql/timezone/America/Dawson", start: 5510651, end: 5512265 }, { filename: "/pglite/share/postgresql/timezone/America/Dawson_Creek", start: 5512265, end: 5513315 }, { filename: "/pglite/share/postgresql/timezone/America/Denver", start: 5513315, end: 5515775 }, { filename: "/pglite/share/postgresql/timezone/America/Detroit", start: 5515775, end: 5518005 }, { filename: "/pglite/share/postgresql/timezone/America/Dominica", start: 5518005, end: 5518251 }, { filename: "/pglite/share/postgresql/timezone/America/Edmonton", start: 5518251, end: 5520281 }, { filename: "/pglite/share/postgresql/timezone/America/Eirunepe", start: 5520281, end: 5520937 }, { filename: "/pglite/share/postgresql/timezone/America/El_Salvador", start: 5520937, end: 5521161 }, { filename: "/pglite/share/postgresql/timezone/America/Ensenada", start: 5521161, end: 5524067 }, { filename: "/pglite/share/postgresql/timezone/America/Fort_Nelson", start: 5524067, end: 5526307 }, { filename: "/pglite/share/postgresql/timezone/America/Fort_Wayne", start: 5526307, end: 5527989 }, { filename: "/pglite/share/postgresql/timezone/America/Fortaleza", start: 5527989, end: 5528705 }, { filename: "/pglite/share/postgresql/timezone/America/Glace_Bay", start: 5528705, end: 5530897 }, { filename: "/pglite/share/postgresql/timezone/America/Godthab", start: 5530897, end: 5532800 }, { filename: "/pglite/share/postgresql/timezone/America/Goose_Bay", start: 5532800, end: 5536010 }, { filename: "/pglite/share/postgresql/timezone/America/Grand_Turk", start: 5536010, end: 5537844 }, { filename: "/pglite/share/postgresql/timezone/America/Grenada", start: 5537844, end: 5538090 }, { filename: "/pglite/share/postgresql/timezone/America/Guadeloupe", start: 5538090, end: 5538336 }, { filename: "/pglite/share/postgresql/timezone/America/Guatemala", start: 5538336, end: 5538616 }, { filename: "/pglite/share/postgresql/timezone/America/Guayaquil", start: 5538616, end: 5538862 }, { filename: "/pglite/share/postgresql/timezone/America/Guyana", start: 5538862, end: 5539124 }, { filename: "/pglite/share/postgresql/timezone/America/Halifax", start: 5539124, end: 5542548 }, { filename: "/pglite/share/postgresql/timezone/America/Havana", start: 5542548, end: 5544964 }, { filename: "/pglite/share/postgresql/timezone/America/Hermosillo", start: 5544964, end: 5545352 }, { filename: "/pglite/share/postgresql/timezone/America/Indiana/Indianapolis", start: 5545352, end: 5547034 }, { filename: "/pglite/share/postgresql/timezone/America/Indiana/Knox", start: 5547034, end: 5549478 }, { filename: "/pglite/share/postgresql/timezone/America/Indiana/Marengo", start: 5549478, end: 5551216 }, { filename: "/pglite/share/postgresql/timezone/America/Indiana/Petersburg", start: 5551216, end: 5553136 }, { filename: "/pglite/share/postgresql/timezone/America/Indiana/Tell_City", start: 5553136, end: 5554836 }, { filename: "/pglite/share/postgresql/timezone/America/Indiana/Vevay", start: 5554836, end: 5556266 }, { filename: "/pglite/share/postgresql/timezone/America/Indiana/Vincennes", start: 5556266, end: 5557976 }, { filename: "/pglite/share/postgresql/timezone/America/Indiana/Winamac", start: 5557976, end: 5559770 }, { filename: "/pglite/share/postgresql/timezone/America/Indianapolis", start: 5559770, end: 5561452 }, { filename: "/pglite/share/postgresql/timezone/America/Inuvik", start: 5561452, end: 5563526 }, { filename: "/pglite/share/postgresql/timezone/America/Iqaluit", start: 5563526, end: 5565728 }, { filename: "/pglite/share/postgresql/timezone/America/Jamaica", start: 5565728, end: 5566210 }, { filename: "/pglite/share/postgresql/timezone/America/Jujuy", start: 5566210, end: 5567258 }, { filename: "/pglite/share/postgresql/timezone/America/Juneau", start: 5567258, end: 5569611 }, { filename: "/pglite/share/postgresql/timezone/America/Kentucky/Louisville", start: 5569611, end: 5572399 }, { filename: "/pglite/share/postgresql/timezone/America/Kentucky/Monticello", start: 5572399, end: 5574767 }, { filename: "/pglite/share/postgresql/timezone/America/Knox_IN", start: 5574767, end: 5577211 }, { filename: "/pglite/share/postgresql/timezone/America/Kralendijk", start: 5577211, end: 5577457 }, { filename: "/pglite/share/postgresql/timezone/America/La_Paz", start: 5577457, end: 5577689 }, { filename: "/pglite/share/postgresql/timezone/America/Lima", start: 5577689, end: 5578095 }, { filename: "/pglite/share/postgresql/timezone/America/Los_Angeles", start: 5578095, end: 5580947 }, { filename: "/pglite/share/postgresql/timezone/America/Louisville", start: 5580947, end: 5583735 }, { filename: "/pglite/share/postgresql/timezone/America/Lower_Princes", start: 5583735, end: 5583981 }, { filename: "/pglite/share/postgresql/timezone/America/Maceio", start: 5583981, end: 5584725 }, { filename: "/pglite/share/postgresql/timezone/America/Managua", start: 5584725, end: 5585155 }, { filename: "/pglite/share/postgresql/timezone/America/Manaus", start: 5585155, end: 5585759 }, { filename: "/pglite/share/postgresql/timezone/America/Marigot", start: 5585759, end: 5586005 }, { filename: "/pglite/share/postgresql/timezone/America/Martinique", start: 5586005, end: 5586237 }, { filename: "/pglite/share/postgresql/timezone/America/Matamoros", start: 5586237, end: 5587655 }, { filename: "/pglite/share/postgresql/timezone/America/Mazatlan", start: 5587655, end: 5588715 }, { filename: "/pglite/share/postgresql/timezone/America/Mendoza", start: 5588715, end: 5589791 }, { filename: "/pglite/share/postgresql/timezone/America/Menominee", start: 5589791, end: 5592065 }, { filename: "/pglite/share/postgresql/timezone/America/Merida", start: 5592065, end: 5593069 }, { filename: "/pglite/share/postgresql/timezone/America/Metlakatla", start: 5593069, end: 5594492 }, { filename: "/pglite/share/postgresql/timezone/America/Mexico_City", start: 5594492, end: 5595714 }, { filename: "/pglite/share/postgresql/timezone/America/Miquelon", start: 5595714, end: 5597380 }, { filename: "/pglite/share/postgresql/timezone/America/Moncton", start: 5597380, end: 5600534 }, { filename: "/pglite/share/postgresql/timezone/America/Monterrey", start: 5600534, end: 5601648 }, { filename: "/pglite/share/postgresql/timezone/America/Montevideo", start: 5601648, end: 5603158 }, { filename: "/pglite/share/postgresql/timezone/America/Montreal", start: 5603158, end: 5606652 }, { filename: "/pglite/share/postgresql/timezone/America/Montserrat", start: 5606652, end: 5606898 }, { filename: "/pglite/share/postgresql/timezone/America/Nassau", start: 5606898, end: 5610392 }, { filename: "/pglite/share/postgresql/timezone/America/New_York", start: 5610392, end: 5613944 }, { filename: "/pglite/share/postgresql/timezone/America/Nipigon", start: 5613944, end: 5617438 }, { filename: "/pglite/share/postgresql/timezone/America/Nome", start: 5617438, end: 5619805 }, { filename: "/pglite/share/postgresql/timezone/America/Noronha", start: 5619805, end: 5620521 }, { filename: "/pglite/share/postgresql/timezone/America/North_Dakota/Beulah", start: 5620521, end: 5622917 }, { filename: "/pglite/share/postgresql/timezone/America/North_Dakota/Center", start: 5622917, end: 5625313 }, { filename: "/pglite/share/postgresql/timezone/America/North_Dakota/New_Salem", start: 5625313, end: 5627709 }, { filename: "/pglite/share/postgresql/timezone/America/Nuuk", start: 5627709, end: 5629612 }, { filename: "/pglite/share/postgresql/timezone/America/Ojinaga", start: 5629612, end: 5631136 }, { filename: "/pglite/share/postgresql/timezone/America/Panama", start: 5631136, end: 5631318 }, { filename: "/pglite/share/postgresql/timezone/America/Pangnirtung", start: 5631318, end: 5633520 }, { filename: "/pglite/share/postgresql/timezone/America/Paramaribo", start: 5633520, end: 5633782 }, { filename: "/pglite/share/postgresql/timezone/America/Phoenix", start: 5633782, end: 5634142 }, { filename: "/pglite/share/postgresql/timezone/America/Port-au-Prince", start: 5634142, end: 5635576 }, { filename: "/pglite/share/postgresql/timezone/America/Port_of_Spain", start: 5635576, end: 5635822 }, { filename: "/pglite/share/postgresql/timezone/America/Porto_Acre", start: 5635822, end: 5636450 }, { filename: "/pglite/share/postgresql/timezone/America/Porto_Velho", start: 5636450, end: 5637026 }, { filename: "/pglite/share/postgresql/timezone/America/Puerto_Rico", start: 5637026, end: 5637272 }, { filename: "/pglite/share/postgresql/timezone/America/Punta_Arenas", start: 5637272, end: 5639188 }, { filename: "/pglite/share/postgresql/timezone/America/Rainy_River", start: 5639188, end: 5642056 }, { filename: "/pglite/share/postgresql/timezone/America/Rankin_Inlet", start: 5642056, end: 5644122 }, { filename: "/pglite/share/postgresql/timezone/America/Recife", start: 5644122, end: 5644838 }, { filename: "/pglite/share/postgresql/timezone/America/Regina", start: 5644838, end: 5645818 }, { filename: "/pglite/share/postgresql/timezone/America/Resolute", start: 5645818, end: 5647884 }, { filename: "/pglite/share/postgresql/timezone/America/Rio_Branco", start: 5647884, end: 5648512 }, { filename: "/pglite/share/postgresql/timezone/America/Rosario", start: 5648512, end: 5649588 }, { filename: "/pglite/share/postgresql/timezone/America/Santa_Isabel", start: 5649588, end: 5652494 }, { filename: "/pglite/share/postgresql/timezone/America/Santarem", start: 5652494, end: 5653096 }, { filename: "/pglite/share/postgresql/timezone/America/Santiago", start: 5653096, end: 5655625 }, { filename: "/pglite/share/postgresql/timezone/America/Santo_Domingo", start: 5655625, end: 5656083 }, { filename: "/pglite/share/postgresql/timezone/America/Sao_Paulo", start: 5656083, end: 5657527 }, { filename: "/pglite/share/postgresql/timezone/America/Scoresbysund", start: 5657527, end: 5659476 }, { filename: "/pglite/share/postgresql/timezone/America/Shiprock", start: 5659476, end: 5661936 }, { filename: "/pglite/share/postgresql/timezone/America/Sitka", start: 5661936, end: 5664265 }, { filename: "/pglite/share/postgresql/timezone/America/St_Barthelemy", start: 5664265, end: 5664511 }, { filename: "/pglite/share/postgresql/timezone/America/St_Johns", start: 5664511, end: 5668166 }, { filename: "/pglite/share/postgresql/timezone/America/St_Kitts", start: 5668166, end: 5668412 }, { filename: "/pglite/share/postgresql/timezone/America/St_Lucia", start: 5668412, end: 5668658 }, { filename: "/pglite/share/postgresql/timezone/America/St_Thomas", start: 5668658, end: 5668904 }, { filename: "/pglite/share/postgresql/timezone/America/St_Vincent", start: 5668904, end: 5669150 }, { filename: "/pglite/share/postgresql/timezone/America/Swift_Current", start: 5669150, end: 5669710 }, { filename: "/pglite/share/postgresql/timezone/America/Tegucigalpa", start: 5669710, end: 5669962 }, { filename: "/pglite/share/postgresql/timezone/America/Thule", start: 5669962, end: 5671464 }, { filename: "/pglite/share/postgresql/timezone/America/Thunder_Bay", start: 5671464, end: 5674958 }, { filename: "/pglite/share/postgresql/timezone/America/Tijuana", start: 5674958, end: 5677864 }, { filename: "/pglite/share/postgresql/timezone/America/Toronto", start: 5677864, end: 5681358 }, { filename: "/pglite/share/postgresql/timezone/America/Tortola", start: 5681358, end: 5681604 }, { filename: "/pglite/share/postgresql/timezone/America/Vancouver", start: 5681604, end: 5684194 }, { filename: "/pglite/share/postgresql/timezone/America/Virgin", start: 5684194, end: 5684440 }, { filename: "/pglite/share/postgresql/timezone/America/Whitehorse", start: 5684440, end: 5686054 }, { filename: "/pglite/share/postgresql/timezone/America/Winnipeg", start: 5686054, end: 5688922 }, { filename: "/pglite/share/postgresql/timezone/America/Yakutat", start: 5688922, end: 5691227 }, { filename: "/pglite/share/postgresql/timezone/America/Yellowknife", start: 5691227, end: 5693257 }, { filename: "/pglite/share/postgresql/timezone/Antarctica/Casey", start: 5693257, end: 5693694 }, { filename: "/pglite/share/postgresql/timezone/Antarctica/Davis", start: 5693694, end: 5693991 }, { filename: "/pglite/share/postgresql/timezone/Antarctica/DumontDUrville", start: 5693991, end: 5694177 }, { filename: "/pglite/share/postgresql/timezone/Antarctica/Macquarie", start: 5694177, end: 5696437 }, { filename: "/pglite/share/postgresql/timezone/Antarctica/Mawson", start: 5696437, end: 5696636 }, { filename: "/pglite/share/postgresql/timezone/Antarctica/McMurdo", start: 5696636, end: 5699073 }, { filename: "/pglite/share/postgresql/timezone/Antarctica/Palmer", start: 5699073, end: 5700491 }, { filename: "/pglite/share/postgresql/timezone/Antarctica/Rothera", start: 5700491, end: 5700655 }, { filename: "/pglite/share/postgresql/timezone/Antarctica/South_Pole", start: 5700655, end: 5703092 }, { filename: "/pglite/share/postgresql/timezone/Antarctica/Syowa", start: 5703092, end: 5703257 }, { filename: "/pglite/share/postgresql/timezone/Antarctica/Troll", start: 5703257, end: 5704419 }, { filename: "/pglite/share/postgresql/timezone/Antarctica/Vostok", start: 5704419, end: 5704646 }, { filename: "/pglite/share/postgresql/timezone/Arctic/Longyearbyen", start: 5704646, end: 5706944 }, { filename: "/pglite/share/postgresql/timezone/Asia/Aden", start: 5706944, end: 5707109 }, { filename: "/pglite/share/postgresql/timezone/Asia/Almaty", start: 5707109, end: 5708106 }, { filename: "/pglite/share/postgresql/timezone/Asia/Amman", start: 5708106, end: 5709553 }, { filename: "/pglite/share/postgresql/timezone/Asia/Anadyr", start: 5709553, end: 5710741 }, { filename: "/pglite/share/postgresql/timezone/Asia/Aqtau", start: 5710741, end: 5711724 }, { filename: "/pglite/share/postgresql/timezone/Asia/Aqtobe", start: 5711724, end: 5712735 }, { filename: "/pglite/share/postgresql/timezone/Asia/Ashgabat", start: 5712735, end: 5713354 }, { filename: "/pglite/share/postgresql/timezone/Asia/Ashkhabad", start: 5713354, end: 5713973 }, { filename: "/pglite/share/postgresql/timezone/Asia/Atyrau", start: 5713973, end: 5714964 }, { filename: "/pglite/share/postgresql/timezone/Asia/Baghdad", start: 5714964, end: 5715947 }, { filename: "/pglite/share/postgresql/timezone/Asia/Bahrain", start: 5715947, end: 5716146 }, { filename: "/pglite/share/postgresql/timezone/Asia/Baku", start: 5716146, end: 5717373 }, { filename: "/pglite/share/postgresql/timezone/Asia/Bangkok", start: 5717373, end: 5717572 }, { filename: "/pglite/share/postgresql/timezone/Asia/Barnaul", start: 5717572, end: 5718793 }, { filename: "/pglite/share/postgresql/timezone/Asia/Beirut", start: 5718793, end: 5720947 }, { filename: "/pglite/share/postgresql/timezone/Asia/Bishkek", start: 5720947, end: 5721930 }, { filename: "/pglite/share/postgresql/timezone/Asia/Brunei", start: 5721930, end: 5722413 }, { filename: "/pglite/share/postgresql/timezone/Asia/Calcutta", start: 5722413, end: 5722698 }, { filename: "/pglite/share/postgresql/timezone/Asia/Chita", start: 5722698, end: 5723919 }, { filename: "/pglite/share/postgresql/timezone/Asia/Choibalsan", start: 5723919, end: 5724810 }, { filename: "/pglite/share/postgresql/timezone/Asia/Chongqing", start: 5724810, end: 5725371 }, { filename: "/pglite/share/postgresql/timezone/Asia/Chungking", start: 5725371, end: 5725932 }, { filename: "/pglite/share/postgresql/timezone/Asia/Colombo", start: 5725932, end: 5726304 }, { filename: "/pglite/share/postgresql/timezone/Asia/Dacca", start: 5726304, end: 5726641 }, { filename: "/pglite/share/postgresql/timezone/Asia/Damascus", start: 5726641, end: 5728528 }, { filename: "/pglite/share/postgresql/timezone/Asia/Dhaka", start: 5728528, end: 5728865 }, { filename: "/pglite/share/postgresql/timezone/Asia/Dili", start: 5728865, end: 5729136 }, { filename: "/pglite/share/postgresql/timezone/Asia/Dubai", start: 5729136, end: 5729301 }, { filename: "/pglite/share/postgresql/timezone/Asia/Dushanbe", start: 5729301, end: 5729892 }, { filename: "/pglite/share/postgresql/timezone/Asia/Famagusta", start: 5729892, end: 5731920 }, { filename: "/pglite/share/postgresql/timezone/Asia/Gaza", start: 5731920, end: 5735764 }, { filename: "/pglite/share/postgresql/timezone/Asia/Harbin", start: 5735764, end: 5736325 }, { filename: "/pglite/share/postgresql/timezone/Asia/Hebron", start: 5736325, end: 5740197 }, { filename: "/pglite/share/postgresql/timezone/Asia/Ho_Chi_Minh", start: 5740197, end: 5740548 }, { filename: "/pglite/share/postgresql/timezone/Asia/Hong_Kong", start: 5740548, end: 5741781 }, { filename: "/pglite/share/postgresql/timezone/Asia/Hovd", start: 5741781, end: 5742672 }, { filename: "/pglite/share/postgresql/timezone/Asia/Irkutsk", start: 5742672, end: 5743915 }, { filename: "/pglite/share/postgresql/timezone/Asia/Istanbul", start: 5743915, end: 5745862 }, { filename: "/pglite/share/postgresql/timezone/Asia/Jakarta", start: 5745862, end: 5746245 }, { filename: "/pglite/share/postgresql/timezone/Asia/Jayapura", start: 5746245, end: 5746466 }, { filename: "/pglite/share/postgresql/timezone/Asia/Jerusalem", start: 5746466, end: 5748854 }, { filename: "/pglite/share/postgresql/timezone/Asia/Kabul", start: 5748854, end: 5749062 }, { filename: "/pglite/share/postgresql/timezone/Asia/Kamchatka", start: 5749062, end: 5750228 }, { filename: "/pglite/share/postgresql/timezone/Asia/Karachi", start: 5750228, end: 5750607 }, { filename: "/pglite/share/postgresql/timezone/Asia/Kashgar", start: 5750607, end: 5750772 }, { filename: "/pglite/share/postgresql/timezone/Asia/Kathmandu", start: 5750772, end: 5750984 }, { filename: "/pglite/share/postgresql/timezone/Asia/Katmandu", start: 5750984, end: 5751196 }, { filename: "/pglite/share/postgresql/timezone/Asia/Khandyga", start: 5751196, end: 5752467 }, { filename: "/pglite/share/postgresql/timezone/Asia/Kolkata", start: 5752467, end: 5752752 }, { filename: "/pglite/share/postgresql/timezone/Asia/Krasnoyarsk", start: 5752752, end: 5753959 }, { filename: "/pglite/share/postgresql/timezone/Asia/Kuala_Lumpur", start: 5753959, end: 5754374 }, { filename: "/pglite/share/postgresql/timezone/Asia/Kuching", start: 5754374, end: 5754857 }, { filename: "/pglite/share/postgresql/timezone/Asia/Kuwait", start: 5754857, end: 5755022 }, { filename: "/pglite/share/postgresql/timezone/Asia/Macao", start: 5755022, end: 5756249 }, { filename: "/pglite/share/postgresql/timezone/Asia/Macau", start: 5756249, end: 5757476 }, { filename: "/pglite/share/postgresql/timezone/Asia/Magadan", start: 5757476, end: 5758698 }, { filename: "/pglite/share/postgresql/timezone/Asia/Makassar", start: 5758698, end: 5758952 }, { filename: "/pglite/share/postgresql/timezone/Asia/Manila", start: 5758952, end: 5759374 }, { filename: "/pglite/share/postgresql/timezone/Asia/Muscat", start: 5759374, end: 5759539 }, { filename: "/pglite/share/postgresql/timezone/Asia/Nicosia", start: 5759539, end: 5761541 }, { filename: "/pglite/share/postgresql/timezone/Asia/Novokuznetsk", start: 5761541, end: 5762706 }, { filename: "/pglite/share/postgresql/timezone/Asia/Novosibirsk", start: 5762706, end: 5763927 }, { filename: "/pglite/share/postgresql/timezone/Asia/Omsk", start: 5763927, end: 5765134 }, { filename: "/pglite/share/postgresql/timezone/Asia/Oral", start: 5765134, end: 5766139 }, { filename: "/pglite/share/postgresql/timezone/Asia/Phnom_Penh", start: 5766139, end: 5766338 }, { filename: "/pglite/share/postgresql/timezone/Asia/Pontianak", start: 5766338, end: 5766691 }, { filename: "/pglite/share/postgresql/timezone/Asia/Pyongyang", start: 5766691, end: 5766928 }, { filename: "/pglite/share/postgresql/timezone/Asia/Qatar", start: 5766928, end: 5767127 }, { filename: "/pglite/share/postgresql/timezone/Asia/Qostanay", start: 5767127, end: 5768166 }, { filename: "/pglite/share/postgresql/timezone/Asia/Qyzylorda", start: 5768166, end: 5769191 }, { filename: "/pglite/share/postgresql/timezone/Asia/Rangoon", start: 5769191, end: 5769459 }, { filename: "/pglite/share/postgresql/timezone/Asia/Riyadh", start: 5769459, end: 5769624 }, { filename: "/pglite/share/postgresql/timezone/Asia/Saigon", start: 5769624, end: 5769975 }, { filename: "/pglite/share/postgresql/timezone/Asia/Sakhalin", start: 5769975, end: 5771177 }, { filename: "/pglite/share/postgresql/timezone/Asia/Samarkand", start: 5771177, end: 5771754 }, { filename: "/pglite/share/postgresql/timezone/Asia/Seoul", start: 5771754, end: 5772371 }, { filename: "/pglite/share/postgresql/timezone/Asia/Shanghai", start: 5772371, end: 5772932 }, { filename: "/pglite/share/postgresql/timezone/Asia/Singapore", start: 5772932, end: 5773347 }, { filename: "/pglite/share/postgresql/timezone/Asia/Srednekolymsk", start: 5773347, end: 5774555 }, { filename: "/pglite/share/postgresql/timezone/Asia/Taipei", start: 5774555, end: 5775316 }, { filename: "/pglite/share/postgresql/timezone/Asia/Tashkent", start: 5775316, end: 5775907 }, { filename: "/pglite/share/postgresql/timezone/Asia/Tbilisi", start: 5775907, end: 5776942 }, { filename: "/pglite/share/postgresql/timezone/Asia/Tehran", start: 5776942, end: 5778204 }, { filename: "/pglite/share/postgresql/timezone/Asia/Tel_Aviv", start: 5778204, end: 5780592 }, { filename: "/pglite/share/postgresql/timezone/Asia/Thimbu", start: 5780592, end: 5780795 }, { filename: "/pglite/share/postgresql/timezone/Asia/Thimphu", start: 5780795, end: 5780998 }, { filename: "/pglite/share/postgresql/timezone/Asia/Tokyo", start: 5780998, end: 5781307 }, { filename: "/pglite/share/postgresql/timezone/Asia/Tomsk", start: 5781307, end: 5782528 }, { filename: "/pglite/share/postgresql/timezone/Asia/Ujung_Pandang", start: 5782528, end: 5782782 }, { filename: "/pglite/share/postgresql/timezone/Asia/Ulaanbaatar", start: 5782782, end: 5783673 }, { filename: "/pglite/share/postgresql/timezone/Asia/Ulan_Bator", start: 5783673, end: 5784564 }, { filename: "/pglite/share/postgresql/timezone/Asia/Urumqi", start: 5784564, end: 5784729 }, { filename: "/pglite/share/postgresql/timezone/Asia/Ust-Nera", start: 5784729, end: 5785981 }, { filename: "/pglite/share/postgresql/timezone/Asia/Vientiane", start: 5785981, end: 5786180 }, { filename: "/pglite/share/postgresql/timezone/Asia/Vladivostok", start: 5786180, end: 5787388 }, { filename: "/pglite/share/postgresql/timezone/Asia/Yakutsk", start: 5787388, end: 5788595 }, { filename: "/pglite/share/postgresql/timezone/Asia/Yangon", start: 5788595, end: 5788863 }, { filename: "/pglite/share/postgresql/timezone/Asia/Yekaterinburg", start: 5788863, end: 5790106 }, { filename: "/pglite/share/postgresql/timezone/Asia/Yerevan", start: 5790106, end: 5791257 }, { filename: "/pglite/share/postgresql/timezone/Atlantic/Azores", start: 5791257, end: 5794713 }, { filename: "/pglite/share/postgresql/timezone/Atlantic/Bermuda", start: 5794713, end: 5797109 }, { filename: "/pglite/share/postgresql/timezone/Atlantic/Canary", start: 5797109, end: 5799006 }, { filename: "/pglite/share/postgresql/timezone/Atlantic/Cape_Verde", start: 5799006, end: 5799276 }, { filename: "/pglite/share/postgresql/timezone/Atlantic/Faeroe", start: 5799276, end: 5801091 }, { filename: "/pglite/share/postgresql/timezone/Atlantic/Faroe", start: 5801091, end: 5802906 }, { filename: "/pglite/share/postgresql/timezone/Atlantic/Jan_Mayen", start: 5802906, end: 5805204 }, { filename: "/pglite/share/postgresql/timezone/Atlantic/Madeira", start: 5805204, end: 5808581 }, { filename: "/pglite/share/postgresql/timezone/Atlantic/Reykjavik", start: 5808581, end: 5808729 }, { filename: "/pglite/share/postgresql/timezone/Atlantic/South_Georgia", start: 5808729, end: 5808893 }, { filename: "/pglite/share/postgresql/timezone/Atlantic/St_Helena", start: 5808893, end: 5809041 }, { filename: "/pglite/share/postgresql/timezone/Atlantic/Stanley", start: 5809041, end: 5810255 }, { filename: "/pglite/share/postgresql/timezone/Australia/ACT", start: 5810255, end: 5812445 }, { filename: "/pglite/share/postgresql/timezone/Australia/Adelaide", start: 5812445, end: 5814653 }, { filename: "/pglite/share/postgresql/timezone/Australia/Brisbane", start: 5814653, end: 5815072 }, { filename: "/pglite/share/postgresql/timezone/Australia/Broken_Hill", start: 5815072, end: 5817301 }, { filename: "/pglite/share/postgresql/timezone/Australia/Canberra", start: 5817301, end: 5819491 }, { filename: "/pglite/share/postgresql/timezone/Australia/Currie", start: 5819491, end: 5821849 }, { filename: "/pglite/share/postgresql/timezone/Australia/Darwin", start: 5821849, end: 5822174 }, { filename: "/pglite/share/postgresql/timezone/Australia/Eucla", start: 5822174, end: 5822644 }, { filename: "/pglite/share/postgresql/timezone/Australia/Hobart", start: 5822644, end: 5825002 }, { filename: "/pglite/share/postgresql/timezone/Australia/LHI", start: 5825002, end: 5826862 }, { filename: "/pglite/share/postgresql/timezone/Australia/Lindeman", start: 5826862, end: 5827337 }, { filename: "/pglite/share/postgresql/timezone/Australia/Lord_Howe", start: 5827337, end: 5829197 }, { filename: "/pglite/share/postgresql/timezone/Australia/Melbourne", start: 5829197, end: 5831387 }, { filename: "/pglite/share/postgresql/timezone/Australia/NSW", start: 5831387, end: 5833577 }, { filename: "/pglite/share/postgresql/timezone/Australia/North", start: 5833577, end: 5833902 }, { filename: "/pglite/share/postgresql/timezone/Australia/Perth", start: 5833902, end: 5834348 }, { filename: "/pglite/share/postgresql/timezone/Australia/Queensland", start: 5834348, end: 5834767 }, { filename: "/pglite/share/postgresql/timezone/Australia/South", start: 5834767, end: 5836975 }, { filename: "/pglite/share/postgresql/timezone/Australia/Sydney", start: 5836975, end: 5839165 }, { filename: "/pglite/share/postgresql/timezone/Australia/Tasmania", start: 5839165, end: 5841523 }, { filename: "/pglite/share/postgresql/timezone/Australia/Victoria", start: 5841523, end: 5843713 }, { filename: "/pglite/share/postgresql/timezone/Australia/West", start: 5843713, end: 5844159 }, { filename: "/pglite/share/postgresql/timezone/Australia/Yancowinna", start: 5844159, end: 5846388 }, { filename: "/pglite/share/postgresql/timezone/Brazil/Acre", start: 5846388, end: 5847016 }, { filename: "/pglite/share/postgresql/timezone/Brazil/DeNoronha", start: 5847016, end: 5847732 }, { filename: "/pglite/share/postgresql/timezone/Brazil/East", start: 5847732, end: 5849176 }, { filename: "/pglite/share/postgresql/timezone/Brazil/West", start: 5849176, end: 5849780 }, { filename: "/pglite/share/postgresql/timezone/CET", start: 5849780, end: 5852713 }, { filename: "/pglite/share/postgresql/timezone/CST6CDT", start: 5852713, end: 5856305 }, { filename: "/pglite/share/postgresql/timezone/Canada/Atlantic", start: 5856305, end: 5859729 }, { filename: "/pglite/share/postgresql/timezone/Canada/Central", start: 5859729, end: 5862597 }, { filename: "/pglite/share/postgresql/timezone/Canada/Eastern", start: 5862597, end: 5866091 }, { filename: "/pglite/share/postgresql/timezone/Canada/Mountain", start: 5866091, end: 5868121 }, { filename: "/pglite/share/postgresql/timezone/Canada/Newfoundland", start: 5868121, end: 5871776 }, { filename: "/pglite/share/postgresql/timezone/Canada/Pacific", start: 5871776, end: 5874366 }, { filename: "/pglite/share/postgresql/timezone/Canada/Saskatchewan", start: 5874366, end: 5875346 }, { filename: "/pglite/share/postgresql/timezone/Canada/Yukon", start: 5875346, end: 5876960 }, { filename: "/pglite/share/postgresql/timezone/Chile/Continental", start: 5876960, end: 5879489 }, { filename: "/pglite/share/postgresql/timezone/Chile/EasterIsland", start: 5879489, end: 5881722 }, { filename: "/pglite/share/postgresql/timezone/Cuba", start: 5881722, end: 5884138 }, { filename: "/pglite/share/postgresql/timezone/EET", start: 5884138, end: 5886400 }, { filename: "/pglite/share/postgresql/timezone/EST", start: 5886400, end: 5886582 }, { filename: "/pglite/share/postgresql/timezone/EST5EDT", start: 5886582, end: 5890134 }, { filename: "/pglite/share/postgresql/timezone/Egypt", start: 5890134, end: 5892533 }, { filename: "/pglite/share/postgresql/timezone/Eire", start: 5892533, end: 5896025 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT", start: 5896025, end: 5896139 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT+0", start: 5896139, end: 5896253 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT+1", start: 5896253, end: 5896369 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT+10", start: 5896369, end: 5896486 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT+11", start: 5896486, end: 5896603 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT+12", start: 5896603, end: 5896720 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT+2", start: 5896720, end: 5896836 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT+3", start: 5896836, end: 5896952 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT+4", start: 5896952, end: 5897068 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT+5", start: 5897068, end: 5897184 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT+6", start: 5897184, end: 5897300 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT+7", start: 5897300, end: 5897416 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT+8", start: 5897416, end: 5897532 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT+9", start: 5897532, end: 5897648 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT-0", start: 5897648, end: 5897762 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT-1", start: 5897762, end: 5897879 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT-10", start: 5897879, end: 5897997 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT-11", start: 5897997, end: 5898115 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT-12", start: 5898115, end: 5898233 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT-13", start: 5898233, end: 5898351 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT-14", start: 5898351, end: 5898469 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT-2", start: 5898469, end: 5898586 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT-3", start: 5898586, end: 5898703 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT-4", start: 5898703, end: 5898820 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT-5", start: 5898820, end: 5898937 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT-6", start: 5898937, end: 5899054 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT-7", start: 5899054, end: 5899171 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT-8", start: 5899171, end: 5899288 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT-9", start: 5899288, end: 5899405 }, { filename: "/pglite/share/postgresql/timezone/Etc/GMT0", start: 5899405, end: 5899519 }, { filename: "/pglite/share/postgresql/timezone/Etc/Greenwich", start: 5899519, end: 5899633 }, { filename: "/pglite/share/postgresql/timezone/Etc/UCT", start: 5899633, end: 5899747 }, { filename: "/pglite/share/postgresql/timezone/Etc/UTC", start: 5899747, end: 5899861 }, { filename: "/pglite/share/postgresql/timezone/Etc/Universal", start: 5899861, end: 5899975 }, { filename: "/pglite/share/postgresql/timezone/Etc/Zulu", start: 5899975, end: 5900089 }, { filename: "/pglite/share/postgresql/timezone/Europe/Amsterdam", start: 5900089, end: 5903022 }, { filename: "/pglite/share/postgresql/timezone/Europe/Andorra", start: 5903022, end: 5904764 }, { filename: "/pglite/share/postgresql/timezone/Europe/Astrakhan", start: 5904764, end: 5905929 }, { filename: "/pglite/share/postgresql/timezone/Europe/Athens", start: 5905929, end: 5908191 }, { filename: "/pglite/share/postgresql/timezone/Europe/Belfast", start: 5908191, end: 5911855 }, { filename: "/pglite/share/postgresql/timezone/Europe/Belgrade", start: 5911855, end: 5913775 }, { filename: "/pglite/share/postgresql/timezone/Europe/Berlin", start: 5913775, end: 5916073 }, { filename: "/pglite/share/postgresql/timezone/Europe/Bratislava", start: 5916073, end: 5918374 }, { filename: "/pglite/share/postgresql/timezone/Europe/Brussels", start: 5918374, end: 5921307 }, { filename: "/pglite/share/postgresql/timezone/Europe/Bucharest", start: 5921307, end: 5923491 }, { filename: "/pglite/share/postgresql/timezone/Europe/Budapest", start: 5923491, end: 5925859 }, { filename: "/pglite/share/postgresql/timezone/Europe/Busingen", start: 5925859, end: 5927768 }, { filename: "/pglite/share/postgresql/timezone/Europe/Chisinau", start: 5927768, end: 5930192 }, { filename: "/pglite/share/postgresql/timezone/Europe/Copenhagen", start: 5930192, end: 5932490 }, { filename: "/pglite/share/postgresql/timezone/Europe/Dublin", start: 5932490, end: 5935982 }, { filename: "/pglite/share/postgresql/timezone/Europe/Gibraltar", start: 5935982, end: 5939050 }, { filename: "/pglite/share/postgresql/timezone/Europe/Guernsey", start: 5939050, end: 5942714 }, { filename: "/pglite/share/postgresql/timezone/Europe/Helsinki", start: 5942714, end: 5944614 }, { filename: "/pglite/share/postgresql/timezone/Europe/Isle_of_Man", start: 5944614, end: 5948278 }, { filename: "/pglite/share/postgresql/timezone/Europe/Istanbul", start: 5948278, end: 5950225 }, { filename: "/pglite/share/postgresql/timezone/Europe/Jersey", start: 5950225, end: 5953889 }, { filename: "/pglite/share/postgresql/timezone/Europe/Kaliningrad", start: 5953889, end: 5955382 }, { filename: "/pglite/share/postgresql/timezone/Europe/Kiev", start: 5955382, end: 5957502 }, { filename: "/pglite/share/postgresql/timezone/Europe/Kirov", start: 5957502, end: 5958687 }, { filename: "/pglite/share/postgresql/timezone/Europe/Kyiv", start: 5958687, end: 5960807 }, { filename: "/pglite/share/postgresql/timezone/Europe/Lisbon", start: 5960807, end: 5964334 }, { filename: "/pglite/share/postgresql/timezone/Europe/Ljubljana", start: 5964334, end: 5966254 }, { filename: "/pglite/share/postgresql/timezone/Europe/London", start: 5966254, end: 5969918 }, { filename: "/pglite/share/postgresql/timezone/Europe/Luxembourg", start: 5969918, end: 5972851 }, { filename: "/pglite/share/postgresql/timezone/Europe/Madrid", start: 5972851, end: 5975465 }, { filename: "/pglite/share/postgresql/timezone/Europe/Malta", start: 5975465, end: 5978085 }, { filename: "/pglite/share/postgresql/timezone/Europe/Mariehamn", start: 5978085, end: 5979985 }, { filename: "/pglite/share/postgresql/timezone/Europe/Minsk", start: 5979985, end: 5981306 }, { filename: "/pglite/share/postgresql/timezone/Europe/Monaco", start: 5981306, end: 5984268 }, { filename: "/pglite/share/postgresql/timezone/Europe/Moscow", start: 5984268, end: 5985803 }, { filename: "/pglite/share/postgresql/timezone/Europe/Nicosia", start: 5985803, end: 5987805 }, { filename: "/pglite/share/postgresql/timezone/Europe/Oslo", start: 5987805, end: 5990103 }, { filename: "/pglite/share/postgresql/timezone/Europe/Paris", start: 5990103, end: 5993065 }, { filename: "/pglite/share/postgresql/timezone/Europe/Podgorica", start: 5993065, end: 5994985 }, { filename: "/pglite/share/postgresql/timezone/Europe/Prague", start: 5994985, end: 5997286 }, { filename: "/pglite/share/postgresql/timezone/Europe/Riga", start: 5997286, end: 5999484 }, { filename: "/pglite/share/postgresql/timezone/Europe/Rome", start: 5999484, end: 6002125 }, { filename: "/pglite/share/postgresql/timezone/Europe/Samara", start: 6002125, end: 6003340 }, { filename: "/pglite/share/postgresql/timezone/Europe/San_Marino", start: 6003340, end: 6005981 }, { filename: "/pglite/share/postgresql/timezone/Europe/Sarajevo", start: 6005981, end: 6007901 }, { filename: "/pglite/share/postgresql/timezone/Europe/Saratov", start: 6007901, end: 6009084 }, { filename: "/pglite/share/postgresql/timezone/Europe/Simferopol", start: 6009084, end: 6010553 }, { filename: "/pglite/share/postgresql/timezone/Europe/Skopje", start: 6010553, end: 6012473 }, { filename: "/pglite/share/postgresql/timezone/Europe/Sofia", start: 6012473, end: 6014550 }, { filename: "/pglite/share/postgresql/timezone/Europe/Stockholm", start: 6014550, end: 6016848 }, { filename: "/pglite/share/postgresql/timezone/Europe/Tallinn", start: 6016848, end: 6018996 }, { filename: "/pglite/share/postgresql/timezone/Europe/Tirane", start: 6018996, end: 6021080 }, { filename: "/pglite/share/postgresql/timezone/Europe/Tiraspol", start: 6021080, end: 6023504 }, { filename: "/pglite/share/postgresql/timezone/Europe/Ulyanovsk", start: 6023504, end: 6024771 }, { filename: "/pglite/share/postgresql/timezone/Europe/Uzhgorod", start: 6024771, end: 6026891 }, { filename: "/pglite/share/postgresql/timezone/Europe/Vaduz", start: 6026891, end: 6028800 }, { filename: "/pglite/share/postgresql/timezone/Europe/Vatican", start: 6028800, end: 6031441 }, { filename: "/pglite/share/postgresql/timezone/Europe/Vienna", start: 6031441, end: 6033641 }, { filename: "/pglite/share/postgresql/timezone/Europe/Vilnius", start: 6033641, end: 6035803 }, { filename: "/pglite/share/postgresql/timezone/Europe/Volgograd", start: 6035803, end: 6036996 }, { filename: "/pglite/share/postgresql/timezone/Europe/Warsaw", start: 6036996, end: 6039650 }, { filename: "/pglite/share/postgresql/timezone/Europe/Zagreb", start: 6039650, end: 6041570 }, { filename: "/pglite/share/postgresql/timezone/Europe/Zaporozhye", start: 6041570, end: 6043690 }, { filename: "/pglite/share/postgresql/timezone/Europe/Zurich", start: 6043690, end: 6045599 }, { filename: "/pglite/share/postgresql/timezone/Factory", start: 6045599, end: 6045715 }, { filename: "/pglite/share/postgresql/timezone/GB", start: 6045715, end: 6049379 }, { filename: "/pglite/share/postgresql/timezone/GB-Eire", start: 6049379, end: 6053043 }, { filename: "/pglite/share/postgresql/timezone/GMT", start: 6053043, end: 6053157 }, { filename: "/pglite/share/postgresql/timezone/GMT+0", start: 6053157, end: 6053271 }, { filename: "/pglite/share/postgresql/timezone/GMT-0", start: 6053271, end: 6053385 }, { filename: "/pglite/share/postgresql/timezone/GMT0", start: 6053385, end: 6053499 }, { filename: "/pglite/share/postgresql/timezone/Greenwich", start: 6053499, end: 6053613 }, { filename: "/pglite/share/postgresql/timezone/HST", start: 6053613, end: 6053942 }, { filename: "/pglite/share/postgresql/timezone/Hongkong", start: 6053942, end: 6055175 }, { filename: "/pglite/share/postgresql/timezone/Iceland", start: 6055175, end: 6055323 }, { filename: "/pglite/share/postgresql/timezone/Indian/Antananarivo", start: 6055323, end: 6055588 }, { filename: "/pglite/share/postgresql/timezone/Indian/Chagos", start: 6055588, end: 6055787 }, { filename: "/pglite/share/postgresql/timezone/Indian/Christmas", start: 6055787, end: 6055986 }, { filename: "/pglite/share/postgresql/timezone/Indian/Cocos", start: 6055986, end: 6056254 }, { filename: "/pglite/share/postgresql/timezone/Indian/Comoro", start: 6056254, end: 6056519 }, { filename: "/pglite/share/postgresql/timezone/Indian/Kerguelen", start: 6056519, end: 6056718 }, { filename: "/pglite/share/postgresql/timezone/Indian/Mahe", start: 6056718, end: 6056883 }, { filename: "/pglite/share/postgresql/timezone/Indian/Maldives", start: 6056883, end: 6057082 }, { filename: "/pglite/share/postgresql/timezone/Indian/Mauritius", start: 6057082, end: 6057323 }, { filename: "/pglite/share/postgresql/timezone/Indian/Mayotte", start: 6057323, end: 6057588 }, { filename: "/pglite/share/postgresql/timezone/Indian/Reunion", start: 6057588, end: 6057753 }, { filename: "/pglite/share/postgresql/timezone/Iran", start: 6057753, end: 6059015 }, { filename: "/pglite/share/postgresql/timezone/Israel", start: 6059015, end: 6061403 }, { filename: "/pglite/share/postgresql/timezone/Jamaica", start: 6061403, end: 6061885 }, { filename: "/pglite/share/postgresql/timezone/Japan", start: 6061885, end: 6062194 }, { filename: "/pglite/share/postgresql/timezone/Kwajalein", start: 6062194, end: 6062510 }, { filename: "/pglite/share/postgresql/timezone/Libya", start: 6062510, end: 6063135 }, { filename: "/pglite/share/postgresql/timezone/MET", start: 6063135, end: 6066068 }, { filename: "/pglite/share/postgresql/timezone/MST", start: 6066068, end: 6066428 }, { filename: "/pglite/share/postgresql/timezone/MST7MDT", start: 6066428, end: 6068888 }, { filename: "/pglite/share/postgresql/timezone/Mexico/BajaNorte", start: 6068888, end: 6071794 }, { filename: "/pglite/share/postgresql/timezone/Mexico/BajaSur", start: 6071794, end: 6072854 }, { filename: "/pglite/share/postgresql/timezone/Mexico/General", start: 6072854, end: 6074076 }, { filename: "/pglite/share/postgresql/timezone/NZ", start: 6074076, end: 6076513 }, { filename: "/pglite/share/postgresql/timezone/NZ-CHAT", start: 6076513, end: 6078581 }, { filename: "/pglite/share/postgresql/timezone/Navajo", start: 6078581, end: 6081041 }, { filename: "/pglite/share/postgresql/timezone/PRC", start: 6081041, end: 6081602 }, { filename: "/pglite/share/postgresql/timezone/PST8PDT", start: 6081602, end: 6084454 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Apia", start: 6084454, end: 6085066 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Auckland", start: 6085066, end: 6087503 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Bougainville", start: 6087503, end: 6087771 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Chatham", start: 6087771, end: 6089839 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Chuuk", start: 6089839, end: 6090025 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Easter", start: 6090025, end: 6092258 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Efate", start: 6092258, end: 6092796 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Enderbury", start: 6092796, end: 6093030 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Fakaofo", start: 6093030, end: 6093230 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Fiji", start: 6093230, end: 6093808 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Funafuti", start: 6093808, end: 6093974 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Galapagos", start: 6093974, end: 6094212 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Gambier", start: 6094212, end: 6094376 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Guadalcanal", start: 6094376, end: 6094542 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Guam", start: 6094542, end: 6095036 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Honolulu", start: 6095036, end: 6095365 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Johnston", start: 6095365, end: 6095694 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Kanton", start: 6095694, end: 6095928 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Kiritimati", start: 6095928, end: 6096166 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Kosrae", start: 6096166, end: 6096517 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Kwajalein", start: 6096517, end: 6096833 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Majuro", start: 6096833, end: 6096999 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Marquesas", start: 6096999, end: 6097172 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Midway", start: 6097172, end: 6097347 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Nauru", start: 6097347, end: 6097599 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Niue", start: 6097599, end: 6097802 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Norfolk", start: 6097802, end: 6098682 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Noumea", start: 6098682, end: 6098986 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Pago_Pago", start: 6098986, end: 6099161 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Palau", start: 6099161, end: 6099341 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Pitcairn", start: 6099341, end: 6099543 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Pohnpei", start: 6099543, end: 6099709 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Ponape", start: 6099709, end: 6099875 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Port_Moresby", start: 6099875, end: 6100061 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Rarotonga", start: 6100061, end: 6100664 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Saipan", start: 6100664, end: 6101158 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Samoa", start: 6101158, end: 6101333 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Tahiti", start: 6101333, end: 6101498 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Tarawa", start: 6101498, end: 6101664 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Tongatapu", start: 6101664, end: 6102036 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Truk", start: 6102036, end: 6102222 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Wake", start: 6102222, end: 6102388 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Wallis", start: 6102388, end: 6102554 }, { filename: "/pglite/share/postgresql/timezone/Pacific/Yap", start: 6102554, end: 6102740 }, { filename: "/pglite/share/postgresql/timezone/Poland", start: 6102740, end: 6105394 }, { filename: "/pglite/share/postgresql/timezone/Portugal", start: 6105394, end: 6108921 }, { filename: "/pglite/share/postgresql/timezone/ROC", start: 6108921, end: 6109682 }, { filename: "/pglite/share/postgresql/timezone/ROK", start: 6109682, end: 6110299 }, { filename: "/pglite/share/postgresql/timezone/Singapore", start: 6110299, end: 6110714 }, { filename: "/pglite/share/postgresql/timezone/Turkey", start: 6110714, end: 6112661 }, { filename: "/pglite/share/postgresql/timezone/UCT", start: 6112661, end: 6112775 }, { filename: "/pglite/share/postgresql/timezone/US/Alaska", start: 6112775, end: 6115146 }, { filename: "/pglite/share/postgresql/timezone/US/Aleutian", start: 6115146, end: 6117502 }, { filename: "/pglite/share/postgresql/timezone/US/Arizona", start: 6117502, end: 6117862 }, { filename: "/pglite/share/postgresql/timezone/US/Central", start: 6117862, end: 6121454 }, { filename: "/pglite/share/postgresql/timezone/US/East-Indiana", start: 6121454, end: 6123136 }, { filename: "/pglite/share/postgresql/timezone/US/Eastern", start: 6123136, end: 6126688 }, { filename: "/pglite/share/postgresql/timezone/US/Hawaii", start: 6126688, end: 6127017 }, { filename: "/pglite/share/postgresql/timezone/US/Indiana-Starke", start: 6127017, end: 6129461 }, { filename: "/pglite/share/postgresql/timezone/US/Michigan", start: 6129461, end: 6131691 }, { filename: "/pglite/share/postgresql/timezone/US/Mountain", start: 6131691, end: 6134151 }, { filename: "/pglite/share/postgresql/timezone/US/Pacific", start: 6134151, end: 6137003 }, { filename: "/pglite/share/postgresql/timezone/US/Samoa", start: 6137003, end: 6137178 }, { filename: "/pglite/share/postgresql/timezone/UTC", start: 6137178, end: 6137292 }, { filename: "/pglite/share/postgresql/timezone/Universal", start: 6137292, end: 6137406 }, { filename: "/pglite/share/postgresql/timezone/W-SU", start: 6137406, end: 6138941 }, { filename: "/pglite/share/postgresql/timezone/WET", start: 6138941, end: 6142468 }, { filename: "/pglite/share/postgresql/timezone/Zulu", start: 6142468, end: 6142582 }, { filename: "/pglite/share/postgresql/timezonesets/Africa.txt", start: 6142582, end: 6149555 }, { filename: "/pglite/share/postgresql/timezonesets/America.txt", start: 6149555, end: 6160562 }, { filename: "/pglite/share/postgresql/timezonesets/Antarctica.txt", start: 6160562, end: 6161696 }, { filename: "/pglite/share/postgresql/timezonesets/Asia.txt", start: 6161696, end: 6170007 }, { filename: "/pglite/share/postgresql/timezonesets/Atlantic.txt", start: 6170007, end: 6173540 }, { filename: "/pglite/share/postgresql/timezonesets/Australia", start: 6173540, end: 6174675 }, { filename: "/pglite/share/postgresql/timezonesets/Australia.txt", start: 6174675, end: 6178059 }, { filename: "/pglite/share/postgresql/timezonesets/Default", start: 6178059, end: 6205273 }, { filename: "/pglite/share/postgresql/timezonesets/Etc.txt", start: 6205273, end: 6206523 }, { filename: "/pglite/share/postgresql/timezonesets/Europe.txt", start: 6206523, end: 6215269 }, { filename: "/pglite/share/postgresql/timezonesets/India", start: 6215269, end: 6215862 }, { filename: "/pglite/share/postgresql/timezonesets/Indian.txt", start: 6215862, end: 6217123 }, { filename: "/pglite/share/postgresql/timezonesets/Pacific.txt", start: 6217123, end: 6220891 }, { filename: "/pglite/share/postgresql/tsearch_data/danish.stop", start: 6220891, end: 6221315 }, { filename: "/pglite/share/postgresql/tsearch_data/dutch.stop", start: 6221315, end: 6221768 }, { filename: "/pglite/share/postgresql/tsearch_data/english.stop", start: 6221768, end: 6222390 }, { filename: "/pglite/share/postgresql/tsearch_data/finnish.stop", start: 6222390, end: 6223969 }, { filename: "/pglite/share/postgresql/tsearch_data/french.stop", start: 6223969, end: 6224774 }, { filename: "/pglite/share/postgresql/tsearch_data/german.stop", start: 6224774, end: 6226123 }, { filename: "/pglite/share/postgresql/tsearch_data/hungarian.stop", start: 6226123, end: 6227350 }, { filename: "/pglite/share/postgresql/tsearch_data/hunspell_sample.affix", start: 6227350, end: 6227593 }, { filename: "/pglite/share/postgresql/tsearch_data/hunspell_sample_long.affix", start: 6227593, end: 6228226 }, { filename: "/pglite/share/postgresql/tsearch_data/hunspell_sample_long.dict", start: 6228226, end: 6228324 }, { filename: "/pglite/share/postgresql/tsearch_data/hunspell_sample_num.affix", start: 6228324, end: 6228786 }, { filename: "/pglite/share/postgresql/tsearch_data/hunspell_sample_num.dict", start: 6228786, end: 6228915 }, { filename: "/pglite/share/postgresql/tsearch_data/ispell_sample.affix", start: 6228915, end: 6229380 }, { filename: "/pglite/share/postgresql/tsearch_data/ispell_sample.dict", start: 6229380, end: 6229461 }, { filename: "/pglite/share/postgresql/tsearch_data/italian.stop", start: 6229461, end: 6231115 }, { filename: "/pglite/share/postgresql/tsearch_data/nepali.stop", start: 6231115, end: 6235376 }, { filename: "/pglite/share/postgresql/tsearch_data/norwegian.stop", start: 6235376, end: 6236227 }, { filename: "/pglite/share/postgresql/tsearch_data/portuguese.stop", start: 6236227, end: 6237494 }, { filename: "/pglite/share/postgresql/tsearch_data/russian.stop", start: 6237494, end: 6238729 }, { filename: "/pglite/share/postgresql/tsearch_data/spanish.stop", start: 6238729, end: 6240907 }, { filename: "/pglite/share/postgresql/tsearch_data/swedish.stop", start: 6240907, end: 6241466 }, { filename: "/pglite/share/postgresql/tsearch_data/synonym_sample.syn", start: 6241466, end: 6241539 }, { filename: "/pglite/share/postgresql/tsearch_data/thesaurus_sample.ths", start: 6241539, end: 6242012 }, { filename: "/pglite/share/postgresql/tsearch_data/turkish.stop", start: 6242012, end: 6242272 }], remote_package_size: 6242272 });
    }
  })();
  var programArgs = [], thisProgram = "./this.program", quit_ = (e, t2) => {
    throw t2;
  }, _scriptName = import.meta.url, scriptDirectory = "";
  function locateFile(e) {
    return Module.locateFile ? Module.locateFile(e, scriptDirectory) : scriptDirectory + e;
  }
  var readAsync, readBinary;
  if (ENVIRONMENT_IS_NODE) {
    var fs = require("node:fs");
    _scriptName.startsWith("file:") && (scriptDirectory = require("node:path").dirname(require("node:url").fileURLToPath(_scriptName)) + "/"), readBinary = (e) => {
      e = isFileURI(e) ? new URL(e) : e;
      var t2 = fs.readFileSync(e);
      return t2;
    }, readAsync = async (e, t2 = true) => {
      e = isFileURI(e) ? new URL(e) : e;
      var r3 = fs.readFileSync(e, t2 ? void 0 : "utf8");
      return r3;
    }, process.argv.length > 1 && (thisProgram = process.argv[1].replace(/\\/g, "/")), programArgs = process.argv.slice(2), quit_ = (e, t2) => {
      throw process.exitCode = e, t2;
    };
  } else if (ENVIRONMENT_IS_WEB || ENVIRONMENT_IS_WORKER) {
    try {
      scriptDirectory = new URL(".", _scriptName).href;
    } catch {
    }
    ENVIRONMENT_IS_WORKER && (readBinary = (e) => {
      var t2 = new XMLHttpRequest();
      return t2.open("GET", e, false), t2.responseType = "arraybuffer", t2.send(null), new Uint8Array(t2.response);
    }), readAsync = async (e) => {
      var t2 = await fetch(e, { credentials: "same-origin" });
      if (t2.ok) return t2.arrayBuffer();
      throw new Error(t2.status + " : " + t2.url);
    };
  }
  var out = console.log.bind(console), err = console.error.bind(console), dynamicLibraries = [], wasmBinary, ABORT = false, EXITSTATUS, isFileURI = (e) => e.startsWith("file://");
  class EmscriptenEH {
  }
  class EmscriptenSjLj extends EmscriptenEH {
  }
  var runtimeInitialized = false, runtimeExited = false;
  function getMemoryBuffer() {
    return wasmMemory.buffer;
  }
  function updateMemoryViews() {
    if (!HEAP8?.buffer?.resizable) {
      var e = getMemoryBuffer();
      HEAP8 = new Int8Array(e), HEAP16 = new Int16Array(e), Module.HEAPU8 = HEAPU8 = new Uint8Array(e), HEAPU16 = new Uint16Array(e), HEAP32 = new Int32Array(e), HEAPU32 = new Uint32Array(e), HEAPF32 = new Float32Array(e), HEAPF64 = new Float64Array(e), HEAP64 = new BigInt64Array(e), HEAPU64 = new BigUint64Array(e);
    }
  }
  function initMemory() {
    if (Module.wasmMemory) wasmMemory = Module.wasmMemory;
    else {
      var e = Module.INITIAL_MEMORY || 134217728;
      wasmMemory = new WebAssembly.Memory({ initial: e / 65536, maximum: 32768 });
    }
    updateMemoryViews();
  }
  var __RELOC_FUNCS__ = [];
  function preRun() {
    var e = Module.preRun;
    e && (typeof e == "function" && (e = [e]), onPreRuns.push(...e)), callRuntimeCallbacks(onPreRuns);
  }
  function initRuntime() {
    runtimeInitialized = true, callRuntimeCallbacks(__RELOC_FUNCS__), !Module.noFSInit && !FS.initialized && FS.init(), TTY.init(), SOCKFS.root = FS.mount(SOCKFS, {}, null), PIPEFS.root = FS.mount(PIPEFS, {}, null), wasmExports.__wasm_call_ctors(), callRuntimeCallbacks(onPostCtors), FS.ignorePermissions = false;
  }
  function exitRuntime() {
    ___funcs_on_exit(), FS.quit(), TTY.shutdown(), IDBFS.quit(), clearTimers(), runtimeExited = true;
  }
  function postRun() {
    var e = Module.postRun;
    e && (typeof e == "function" && (e = [e]), onPostRuns.push(...e)), callRuntimeCallbacks(onPostRuns);
  }
  function abort(e) {
    throw Module.onAbort?.(e), e = `Aborted(${e})`, err(e), ABORT = true, e += ". Build with -sASSERTIONS for more info.", new WebAssembly.RuntimeError(e);
  }
  var wasmBinaryFile;
  function findWasmBinary() {
    return Module.locateFile ? locateFile("pglite.wasm") : new URL("pglite.wasm", import.meta.url).href;
  }
  function getBinarySync(e) {
    if (readBinary) return readBinary(e);
    throw "both async and sync fetching of the wasm failed";
  }
  async function getWasmBinary(e) {
    if (!wasmBinary) try {
      var t2 = await readAsync(e);
      return new Uint8Array(t2);
    } catch {
    }
    return getBinarySync(e);
  }
  async function instantiateArrayBuffer(e, t2) {
    try {
      var r3 = await getWasmBinary(e), _3 = await WebAssembly.instantiate(r3, t2);
      return _3;
    } catch (n3) {
      err(`failed to asynchronously prepare wasm: ${n3}`), abort(n3);
    }
  }
  async function instantiateAsync(e, t2, r3) {
    if (!e && !ENVIRONMENT_IS_NODE) try {
      var _3 = fetch(t2, { credentials: "same-origin" }), n3 = await WebAssembly.instantiateStreaming(_3, r3);
      return n3;
    } catch (a3) {
      err(`wasm streaming compile failed: ${a3}`), err("falling back to ArrayBuffer instantiation");
    }
    return instantiateArrayBuffer(t2, r3);
  }
  function getWasmImports() {
    var e = new Proxy(/* @__PURE__ */ new Set([]), GOTHandler), t2 = { env: wasmImports, wasi_snapshot_preview1: wasmImports, "GOT.mem": e, "GOT.func": e };
    return t2;
  }
  async function createWasm() {
    async function e(a3, i2) {
      wasmExports = a3.exports;
      var l2 = wasmExports;
      mergeLibSymbols(wasmExports, "main");
      var o5 = getDylinkMetadata(i2);
      return o5.neededDynlibs && (dynamicLibraries = o5.neededDynlibs.concat(dynamicLibraries)), assignWasmExports(wasmExports), updateGOT(l2), LDSO.init(), await loadDylibs(), wasmExports;
    }
    var t2 = getWasmImports(), r3 = Module.instantiateWasm;
    if (r3) return new Promise((a3) => {
      r3(t2, (i2, l2) => a3(e(i2, l2)));
    });
    wasmBinaryFile ?? (wasmBinaryFile = findWasmBinary());
    var _3 = await instantiateAsync(wasmBinary, wasmBinaryFile, t2), n3 = await (function(a3) {
      return e(a3.instance, a3.module);
    })(_3);
    return n3;
  }
  class ExitStatus {
    constructor(t2) {
      P(this, "name", "ExitStatus");
      this.message = `Program terminated with exit(${t2})`, this.status = t2;
    }
  }
  var GOT = {}, GOTHandler = { get(e, t2) {
    var r3 = GOT[t2];
    return r3 || (r3 = GOT[t2] = new WebAssembly.Global({ value: "i32", mutable: true }, -1)), e.has(t2) || (r3.required = true), r3;
  } }, HEAP16, HEAP32, HEAP64, HEAP8, HEAPF32, HEAPF64, HEAPU16, HEAPU32, HEAPU64, HEAPU8, callRuntimeCallbacks = (e) => {
    for (; e.length > 0; ) e.shift()(Module);
  }, onPostRuns = [], onPreRuns = [], UTF8Decoder = globalThis.TextDecoder && new TextDecoder(), findStringEnd = (e, t2, r3, _3) => {
    var n3 = t2 + r3;
    if (_3) return n3;
    for (; e[t2] && !(t2 >= n3); ) ++t2;
    return t2;
  }, UTF8ArrayToString = (e, t2 = 0, r3, _3) => {
    var n3 = findStringEnd(e, t2, r3, _3);
    if (n3 - t2 > 16 && e.buffer && UTF8Decoder) return UTF8Decoder.decode(e.subarray(t2, n3));
    for (var a3 = ""; t2 < n3; ) {
      var i2 = e[t2++];
      if (!(i2 & 128)) {
        a3 += String.fromCharCode(i2);
        continue;
      }
      var l2 = e[t2++] & 63;
      if ((i2 & 224) == 192) {
        a3 += String.fromCharCode((i2 & 31) << 6 | l2);
        continue;
      }
      var o5 = e[t2++] & 63;
      if ((i2 & 240) == 224 ? i2 = (i2 & 15) << 12 | l2 << 6 | o5 : i2 = (i2 & 7) << 18 | l2 << 12 | o5 << 6 | e[t2++] & 63, i2 < 65536) a3 += String.fromCharCode(i2);
      else {
        var s4 = i2 - 65536;
        a3 += String.fromCharCode(55296 | s4 >> 10, 56320 | s4 & 1023);
      }
    }
    return a3;
  }, getDylinkMetadata = (e) => {
    var t2 = 0, r3 = 0;
    function _3() {
      return e[t2++];
    }
    function n3() {
      for (var M2 = 0, C5 = 1; ; ) {
        var v5 = e[t2++];
        if (M2 += (v5 & 127) * C5, C5 *= 128, !(v5 & 128)) break;
      }
      return M2;
    }
    function a3() {
      var M2 = n3();
      return t2 += M2, UTF8ArrayToString(e, t2 - M2, M2);
    }
    function i2() {
      for (var M2 = n3(), C5 = []; M2--; ) C5.push(a3());
      return C5;
    }
    function l2(M2, C5) {
      if (M2) throw new Error(C5);
    }
    if (e instanceof WebAssembly.Module) {
      var o5 = WebAssembly.Module.customSections(e, "dylink.0");
      l2(!o5.length, "need dylink section"), e = new Uint8Array(o5[0]), r3 = e.length;
    } else {
      var s4 = new Uint32Array(new Uint8Array(e.subarray(0, 24)).buffer), c4 = s4[0] == 1836278016;
      l2(!c4, "need to see wasm magic number"), l2(e[8], "need the dylink section to be first"), t2 = 9;
      var p5 = n3();
      r3 = t2 + p5;
      var d5 = a3();
      l2(d5 !== "dylink.0");
    }
    for (var u3 = { neededDynlibs: [], tlsExports: /* @__PURE__ */ new Set(), weakImports: /* @__PURE__ */ new Set(), runtimePaths: [] }; t2 < r3; ) {
      var f5 = _3(), m7 = n3();
      if (f5 === 1) u3.memorySize = n3(), u3.memoryAlign = n3(), u3.tableSize = n3(), u3.tableAlign = n3();
      else if (f5 === 2) u3.neededDynlibs = i2();
      else if (f5 === 3) for (var y6 = n3(); y6--; ) {
        var b4 = a3(), k4 = n3();
        k4 & 256 && u3.tlsExports.add(b4);
      }
      else if (f5 === 4) for (y6 = n3(); y6--; ) a3(), b4 = a3(), k4 = n3(), (k4 & 3) == 1 && u3.weakImports.add(b4);
      else if (f5 === 5) u3.runtimePaths = i2();
      else if (f5 === 6) {
        var P6 = a3();
        l2(P6 !== "wasm32", `incorrect architecture (${P6} vs wasm32)`);
      } else t2 += m7;
    }
    return u3;
  };
  function getValue(e, t2 = "i8") {
    switch (t2.endsWith("*") && (t2 = "*"), t2) {
      case "i1":
        return HEAP8[e];
      case "i8":
        return HEAP8[e];
      case "i16":
        return HEAP16[e >> 1];
      case "i32":
        return HEAP32[e >> 2];
      case "i64":
        return HEAP64[e >> 3];
      case "float":
        return HEAPF32[e >> 2];
      case "double":
        return HEAPF64[e >> 3];
      case "*":
        return HEAPU32[e >> 2];
      default:
        abort(`invalid type for getValue: ${t2}`);
    }
  }
  var newDSO = (e, t2, r3) => {
    var _3 = { refcount: 1 / 0, name: e, exports: r3, global: true };
    return LDSO.loadedLibsByName[e] = _3, t2 != null && (LDSO.loadedLibsByHandle[t2] = _3), _3;
  }, LDSO = { loadedLibsByName: {}, loadedLibsByHandle: {}, init() {
    newDSO("__main__", 0, wasmImports);
  } }, alignMemory = (e, t2) => Math.ceil(e / t2) * t2, getMemory = (e) => {
    if (runtimeInitialized) return _calloc(e, 1);
    var t2 = ___heap_base, r3 = t2 + alignMemory(e, 16);
    ___heap_base = r3;
    var _3 = _emscripten_get_sbrk_ptr();
    return HEAPU32[_3 >> 2] = r3, t2;
  }, isInternalSym = (e) => ["memory", "__memory_base", "__table_base", "__stack_pointer", "__indirect_function_table", "__cpp_exception", "__c_longjmp", "__wasm_apply_data_relocs", "__dso_handle", "__tls_size", "__tls_align", "__set_stack_limits", "_emscripten_tls_init", "__wasm_init_tls", "__wasm_call_ctors", "__start_em_asm", "__stop_em_asm", "__start_em_js", "__stop_em_js"].includes(e) || e.startsWith("__em_js__"), wasmTableMirror = [], getWasmTableEntry = (e) => {
    var t2 = wasmTableMirror[e];
    return t2 || (wasmTableMirror[e] = t2 = wasmTable.get(e)), t2;
  }, updateTableMap = (e, t2) => {
    if (functionsInTableMap) for (var r3 = e; r3 < e + t2; r3++) {
      var _3 = getWasmTableEntry(r3);
      _3 && functionsInTableMap.set(_3, r3);
    }
  }, functionsInTableMap, getFunctionAddress = (e) => (functionsInTableMap || (functionsInTableMap = /* @__PURE__ */ new WeakMap(), updateTableMap(0, wasmTable.length)), functionsInTableMap.get(e) || 0), freeTableIndexes = [], getEmptyTableSlot = () => freeTableIndexes.length ? freeTableIndexes.pop() : wasmTable.grow(1), setWasmTableEntry = (e, t2) => {
    wasmTable.set(e, t2), wasmTableMirror[e] = wasmTable.get(e);
  }, uleb128EncodeWithLen = (e) => {
    let t2 = e.length;
    return [t2 % 128 | 128, t2 >> 7, ...e];
  }, wasmTypeCodes = { i: 127, p: 127, j: 126, f: 125, d: 124, e: 111 }, generateTypePack = (e) => uleb128EncodeWithLen(Array.from(e, (t2) => {
    var r3 = wasmTypeCodes[t2];
    return r3;
  })), convertJsFunctionToWasm = (e, t2) => {
    var r3 = Uint8Array.of(0, 97, 115, 109, 1, 0, 0, 0, 1, ...uleb128EncodeWithLen([1, 96, ...generateTypePack(t2.slice(1)), ...generateTypePack(t2[0] === "v" ? "" : t2[0])]), 2, 7, 1, 1, 101, 1, 102, 0, 0, 7, 5, 1, 1, 102, 0, 0), _3 = new WebAssembly.Module(r3), n3 = new WebAssembly.Instance(_3, { e: { f: e } }), a3 = n3.exports.f;
    return a3;
  }, addFunction = (e, t2) => {
    var r3 = getFunctionAddress(e);
    if (r3) return r3;
    var _3 = getEmptyTableSlot();
    try {
      setWasmTableEntry(_3, e);
    } catch (a3) {
      if (!(a3 instanceof TypeError)) throw a3;
      var n3 = convertJsFunctionToWasm(e, t2);
      setWasmTableEntry(_3, n3);
    }
    return functionsInTableMap.set(e, _3), _3;
  }, updateGOT = (e, t2) => {
    for (var r3 in e) if (!isInternalSym(r3)) {
      var _3 = e[r3], n3 = GOT[r3] && GOT[r3].value != -1;
      if (t2 || !n3) {
        var a3;
        if (typeof _3 == "function") a3 = addFunction(_3);
        else if (typeof _3.value == "number") a3 = _3;
        else continue;
        GOT[r3] ?? (GOT[r3] = new WebAssembly.Global({ value: "i32", mutable: true })), GOT[r3].value = a3;
      }
    }
  }, isImmutableGlobal = (e) => {
    if (e instanceof WebAssembly.Global) try {
      e.value = e.value;
    } catch {
      return true;
    }
    return false;
  }, relocateExports = (e, t2 = 0) => {
    function r3(a3, i2) {
      return isImmutableGlobal(i2) ? new WebAssembly.Global({ value: "i32" }, i2.value + t2) : i2;
    }
    var _3 = {};
    for (var n3 in e) _3[n3] = r3(0, e[n3]);
    return _3;
  }, isSymbolDefined = (e) => {
    var t2 = wasmImports[e];
    return !(!t2 || t2.stub);
  }, createNamedFunction = (e, t2) => Object.defineProperty(t2, "name", { value: e }), dynCall = (e, t2, r3 = []) => {
    var _3 = getWasmTableEntry(t2), n3 = _3(...r3);
    return /* @__PURE__ */ (function(a3) {
      return a3;
    })(n3);
  }, stackSave = () => _emscripten_stack_get_current(), stackRestore = (e) => __emscripten_stack_restore(e), createInvokeFunction = (e) => (t2, ...r3) => {
    var _3 = stackSave();
    try {
      return dynCall(e, t2, r3);
    } catch (n3) {
      if (stackRestore(_3), !(n3 instanceof EmscriptenEH)) throw n3;
      if (_setThrew(1, 0), e[0] == "j") return 0n;
    }
  }, resolveGlobalSymbol = (e) => {
    var t2;
    return isSymbolDefined(e) ? t2 = wasmImports[e] : e.startsWith("invoke_") && (t2 = wasmImports[e] = createNamedFunction(e, createInvokeFunction(e.split("_")[1]))), { sym: t2, name: e };
  }, onPostCtors = [], addOnPostCtor = (e) => {
    onPostCtors.push(e);
  }, UTF8ToString = (e, t2, r3) => e ? UTF8ArrayToString(HEAPU8, e, t2, r3) : "", loadWebAssemblyModule = (binary, flags, libName, localScope, handle) => {
    var metadata = getDylinkMetadata(binary);
    function loadModule() {
      var memAlign = Math.pow(2, metadata.memoryAlign), memoryBase = metadata.memorySize ? alignMemory(getMemory(metadata.memorySize + memAlign), memAlign) : 0, tableBase = metadata.tableSize ? wasmTable.length : 0;
      handle && (HEAP8[handle + 8] = 1, HEAPU32[handle + 12 >> 2] = memoryBase, HEAP32[handle + 16 >> 2] = metadata.memorySize, HEAPU32[handle + 20 >> 2] = tableBase, HEAP32[handle + 24 >> 2] = metadata.tableSize), metadata.tableSize && wasmTable.grow(metadata.tableSize);
      var moduleExports;
      function resolveSymbol(e) {
        var t2 = resolveGlobalSymbol(e).sym;
        return !t2 && localScope && (t2 = localScope[e]), t2 || (t2 = moduleExports[e]), t2;
      }
      var proxyHandler = { get(e, t2) {
        switch (t2) {
          case "__memory_base":
            return memoryBase;
          case "__table_base":
            return tableBase;
        }
        if (t2 in wasmImports && !wasmImports[t2].stub) {
          var r3 = wasmImports[t2];
          return r3;
        }
        if (!(t2 in e)) {
          var _3;
          e[t2] = (...n3) => (_3 || (_3 = resolveSymbol(t2)), _3(...n3));
        }
        return e[t2];
      } }, proxy = new Proxy({}, proxyHandler), GOTProxy = new Proxy(metadata.weakImports, GOTHandler), info = { "GOT.mem": GOTProxy, "GOT.func": GOTProxy, env: proxy, wasi_snapshot_preview1: proxy };
      function postInstantiation(module, instance) {
        updateTableMap(tableBase, metadata.tableSize), moduleExports = relocateExports(instance.exports, memoryBase), updateGOT(moduleExports), flags.allowUndefined || reportUndefinedSymbols();
        function addEmAsm(addr, body) {
          for (var args = [], arity = 0; ; arity++) {
            var argName = "$" + arity;
            if (!body.includes(argName)) break;
            args.push(argName);
          }
          args = args.join();
          var func = `(${args}) => { ${body} };`;
          ASM_CONSTS[start] = eval(func);
        }
        if ("__start_em_asm" in moduleExports) for (var start = moduleExports.__start_em_asm.value, stop = moduleExports.__stop_em_asm.value; start < stop; ) {
          var jsString = UTF8ToString(start);
          addEmAsm(start, jsString), start = HEAPU8.indexOf(0, start) + 1;
        }
        function addEmJs(name, cSig, body) {
          var jsArgs = [];
          if (cSig = cSig.slice(1, -1), cSig != "void") {
            cSig = cSig.split(",");
            for (var arg of cSig) {
              var jsArg = arg.split(" ").pop();
              jsArgs.push(jsArg.replaceAll("*", ""));
            }
          }
          var func = `(${jsArgs}) => ${body};`;
          moduleExports[name] = eval(func);
        }
        for (var name in moduleExports) if (name.startsWith("__em_js__")) {
          var start = moduleExports[name].value, jsString = UTF8ToString(start), [sig, body] = jsString.split("<::>");
          addEmJs(name.replace("__em_js__", ""), sig, body), delete moduleExports[name];
        }
        var applyRelocs = moduleExports.__wasm_apply_data_relocs;
        applyRelocs && (runtimeInitialized ? applyRelocs() : __RELOC_FUNCS__.push(applyRelocs));
        var init = moduleExports.__wasm_call_ctors;
        return init && (runtimeInitialized ? init() : addOnPostCtor(init)), moduleExports;
      }
      if (flags.loadAsync) return (async () => {
        var e;
        return binary instanceof WebAssembly.Module ? e = new WebAssembly.Instance(binary, info) : { module: binary, instance: e } = await WebAssembly.instantiate(binary, info), postInstantiation(binary, e);
      })();
      var module = binary instanceof WebAssembly.Module ? binary : new WebAssembly.Module(binary), instance = new WebAssembly.Instance(module, info);
      return postInstantiation(module, instance);
    }
    if (flags = { ...flags, rpath: { parentLibPath: libName, paths: metadata.runtimePaths } }, flags.loadAsync) return metadata.neededDynlibs.reduce((e, t2) => e.then(() => (t2 = findLibraryFS(t2, flags.rpath) ?? t2, loadDynamicLibrary(t2, flags, localScope))), Promise.resolve()).then(loadModule);
    for (var needed of metadata.neededDynlibs) needed = findLibraryFS(needed, flags.rpath) ?? needed, loadDynamicLibrary(needed, flags, localScope);
    return loadModule();
  }, mergeLibSymbols = (e) => {
    for (var [t2, r3] of Object.entries(e)) {
      let _3 = (a3) => {
        isSymbolDefined(a3) || (wasmImports[a3] = r3);
      };
      _3(t2);
      let n3 = "__main_argc_argv";
      t2 == "main" && _3(n3), t2 == n3 && _3("main");
    }
  }, asyncLoad = async (e) => {
    var t2 = await readAsync(e);
    return new Uint8Array(t2);
  }, preloadPlugins = [], registerWasmPlugin = () => {
    var e = { canHandle: (t2) => !Module.noWasmDecoding && t2.endsWith(".so"), handle: async (t2, r3) => {
      try {
        var _3 = await loadWebAssemblyModule(t2, { loadAsync: true, nodelete: true }, r3, {});
      } catch (n3) {
        throw new Error(`failed to instantiate wasm: ${r3}: ${n3}`);
      }
      return preloadedWasm[r3] = _3, t2;
    } };
    preloadPlugins.push(e);
  }, preloadedWasm = {}, PATH = { isAbs: (e) => e.charAt(0) === "/", splitPath: (e) => /^(\/?|)([\s\S]*?)((?:\.{1,2}|[^\/]+?|)(\.[^.\/]*|))(?:[\/]*)$/.exec(e).slice(1), normalizeArray: (e, t2) => {
    for (var r3 = 0, _3 = e.length - 1; _3 >= 0; _3--) {
      var n3 = e[_3];
      n3 === "." ? e.splice(_3, 1) : n3 === ".." ? (e.splice(_3, 1), r3++) : r3 && (e.splice(_3, 1), r3--);
    }
    if (t2) for (; r3; r3--) e.unshift("..");
    return e;
  }, normalize: (e) => {
    var t2 = PATH.isAbs(e), r3 = e.slice(-1) === "/";
    return e = PATH.normalizeArray(e.split("/").filter((_3) => !!_3), !t2).join("/"), !e && !t2 && (e = "."), e && r3 && (e += "/"), (t2 ? "/" : "") + e;
  }, dirname: (e) => {
    var t2 = PATH.splitPath(e), r3 = t2[0], _3 = t2[1];
    return !r3 && !_3 ? "." : (_3 && (_3 = _3.slice(0, -1)), r3 + _3);
  }, basename: (e) => e && e.match(/([^\/]+|\/)\/*$/)[1], join: (...e) => PATH.normalize(e.join("/")), join2: (e, t2) => PATH.normalize(e + "/" + t2) }, replaceORIGIN = (e, t2) => {
    if (t2.startsWith("$ORIGIN")) {
      var r3 = PATH.dirname(e);
      return t2.replace("$ORIGIN", r3);
    }
    return t2;
  }, withStackSave = (e) => {
    var t2 = stackSave(), r3 = e();
    return stackRestore(t2), r3;
  }, stackAlloc = (e) => __emscripten_stack_alloc(e), lengthBytesUTF8 = (e) => {
    for (var t2 = 0, r3 = 0; r3 < e.length; ++r3) {
      var _3 = e.charCodeAt(r3);
      _3 <= 127 ? t2++ : _3 <= 2047 ? t2 += 2 : _3 >= 55296 && _3 <= 57343 ? (t2 += 4, ++r3) : t2 += 3;
    }
    return t2;
  }, stringToUTF8Array = (e, t2, r3, _3) => {
    if (!(_3 > 0)) return 0;
    for (var n3 = r3, a3 = r3 + _3 - 1, i2 = 0; i2 < e.length; ++i2) {
      var l2 = e.codePointAt(i2);
      if (l2 <= 127) {
        if (r3 >= a3) break;
        t2[r3++] = l2;
      } else if (l2 <= 2047) {
        if (r3 + 1 >= a3) break;
        t2[r3++] = 192 | l2 >> 6, t2[r3++] = 128 | l2 & 63;
      } else if (l2 <= 65535) {
        if (r3 + 2 >= a3) break;
        t2[r3++] = 224 | l2 >> 12, t2[r3++] = 128 | l2 >> 6 & 63, t2[r3++] = 128 | l2 & 63;
      } else {
        if (r3 + 3 >= a3) break;
        t2[r3++] = 240 | l2 >> 18, t2[r3++] = 128 | l2 >> 12 & 63, t2[r3++] = 128 | l2 >> 6 & 63, t2[r3++] = 128 | l2 & 63, i2++;
      }
    }
    return t2[r3] = 0, r3 - n3;
  }, stringToUTF8 = (e, t2, r3) => stringToUTF8Array(e, HEAPU8, t2, r3), stringToUTF8OnStack = (e) => {
    var t2 = lengthBytesUTF8(e) + 1, r3 = stackAlloc(t2);
    return stringToUTF8(e, r3, t2), r3;
  }, initRandomFill = () => {
    if (ENVIRONMENT_IS_NODE) {
      var e = require("node:crypto");
      return (t2) => (e.randomFillSync(t2), 0);
    }
    return (t2) => (crypto.getRandomValues(t2), 0);
  }, randomFill = (e) => (randomFill = initRandomFill())(e), PATH_FS = { resolve: (...e) => {
    for (var t2 = "", r3 = false, _3 = e.length - 1; _3 >= -1 && !r3; _3--) {
      var n3 = _3 >= 0 ? e[_3] : FS.cwd();
      if (typeof n3 != "string") throw new TypeError("Arguments to path.resolve must be strings");
      if (!n3) return "";
      t2 = n3 + "/" + t2, r3 = PATH.isAbs(n3);
    }
    return t2 = PATH.normalizeArray(t2.split("/").filter((a3) => !!a3), !r3).join("/"), (r3 ? "/" : "") + t2 || ".";
  }, relative: (e, t2) => {
    e = PATH_FS.resolve(e).slice(1), t2 = PATH_FS.resolve(t2).slice(1);
    function r3(s4) {
      for (var c4 = 0; c4 < s4.length && s4[c4] === ""; c4++) ;
      for (var p5 = s4.length - 1; p5 >= 0 && s4[p5] === ""; p5--) ;
      return c4 > p5 ? [] : s4.slice(c4, p5 - c4 + 1);
    }
    for (var _3 = r3(e.split("/")), n3 = r3(t2.split("/")), a3 = Math.min(_3.length, n3.length), i2 = a3, l2 = 0; l2 < a3; l2++) if (_3[l2] !== n3[l2]) {
      i2 = l2;
      break;
    }
    var o5 = [];
    for (l2 = i2; l2 < _3.length; l2++) o5.push("..");
    return o5 = o5.concat(n3.slice(i2)), o5.join("/");
  } }, FS_stdin_getChar_buffer = [], intArrayFromString = (e, t2, r3) => {
    var _3 = r3 > 0 ? r3 : lengthBytesUTF8(e) + 1, n3 = new Array(_3), a3 = stringToUTF8Array(e, n3, 0, n3.length);
    return t2 && (n3.length = a3), n3;
  }, FS_stdin_getChar = () => {
    if (!FS_stdin_getChar_buffer.length) {
      var e = null;
      if (ENVIRONMENT_IS_NODE) {
        var t2 = Buffer.alloc(256), r3 = 0;
        try {
          r3 = fs.readSync(process.stdin.fd, t2, 0, 256);
        } catch (_3) {
          if (_3.toString().includes("EOF")) r3 = 0;
          else throw _3;
        }
        r3 > 0 && (e = t2.toString("utf-8", 0, r3));
      } else globalThis.window?.prompt && (e = window.prompt("Input: "), e !== null && (e += `
`));
      if (!e) return null;
      FS_stdin_getChar_buffer = intArrayFromString(e, true);
    }
    return FS_stdin_getChar_buffer.shift();
  }, TTY = { ttys: [], init() {
  }, shutdown() {
  }, register(e, t2) {
    TTY.ttys[e] = { input: [], output: [], ops: t2 }, FS.registerDevice(e, TTY.stream_ops);
  }, stream_ops: { open(e) {
    var t2 = TTY.ttys[e.node.rdev];
    if (!t2) throw new FS.ErrnoError(43);
    e.tty = t2, e.seekable = false;
  }, close(e) {
    e.tty.ops.fsync(e.tty);
  }, fsync(e) {
    e.tty.ops.fsync(e.tty);
  }, read(e, t2, r3, _3, n3) {
    if (!e.tty || !e.tty.ops.get_char) throw new FS.ErrnoError(60);
    for (var a3 = 0, i2 = 0; i2 < _3; i2++) {
      var l2;
      try {
        l2 = e.tty.ops.get_char(e.tty);
      } catch {
        throw new FS.ErrnoError(29);
      }
      if (l2 === void 0 && !a3) throw new FS.ErrnoError(6);
      if (l2 == null || (a3++, t2[r3 + i2] = l2, l2 === 10)) break;
    }
    return a3 && (e.node.atime = Date.now()), a3;
  }, write(e, t2, r3, _3, n3) {
    if (!e.tty || !e.tty.ops.put_char) throw new FS.ErrnoError(60);
    try {
      for (var a3 = 0; a3 < _3; a3++) e.tty.ops.put_char(e.tty, t2[r3 + a3]);
    } catch {
      throw new FS.ErrnoError(29);
    }
    return _3 && (e.node.mtime = e.node.ctime = Date.now()), a3;
  } }, default_tty_ops: { get_char(e) {
    return FS_stdin_getChar();
  }, put_char(e, t2) {
    t2 === null || t2 === 10 ? (out(UTF8ArrayToString(e.output)), e.output = []) : t2 != 0 && e.output.push(t2);
  }, fsync(e) {
    e.output?.length > 0 && (out(UTF8ArrayToString(e.output)), e.output = []);
  }, ioctl_tcgets(e) {
    return { c_iflag: 25856, c_oflag: 5, c_cflag: 191, c_lflag: 35387, c_cc: [3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] };
  }, ioctl_tcsets(e, t2, r3) {
    return 0;
  }, ioctl_tiocgwinsz(e) {
    return [24, 80];
  } }, default_tty1_ops: { put_char(e, t2) {
    t2 === null || t2 === 10 ? (err(UTF8ArrayToString(e.output)), e.output = []) : t2 != 0 && e.output.push(t2);
  }, fsync(e) {
    e.output?.length > 0 && (err(UTF8ArrayToString(e.output)), e.output = []);
  } } }, zeroMemory = (e, t2) => HEAPU8.fill(0, e, e + t2), mmapAlloc = (e) => {
    e = alignMemory(e, 65536);
    var t2 = _emscripten_builtin_memalign(65536, e);
    return t2 && zeroMemory(t2, e), t2;
  }, MEMFS = { ops_table: null, mount(e) {
    return MEMFS.createNode(null, "/", 16895, 0);
  }, createNode(e, t2, r3, _3) {
    if (FS.isBlkdev(r3) || FS.isFIFO(r3)) throw new FS.ErrnoError(63);
    MEMFS.ops_table || (MEMFS.ops_table = { dir: { node: { getattr: MEMFS.node_ops.getattr, setattr: MEMFS.node_ops.setattr, lookup: MEMFS.node_ops.lookup, mknod: MEMFS.node_ops.mknod, rename: MEMFS.node_ops.rename, unlink: MEMFS.node_ops.unlink, rmdir: MEMFS.node_ops.rmdir, readdir: MEMFS.node_ops.readdir, symlink: MEMFS.node_ops.symlink }, stream: { llseek: MEMFS.stream_ops.llseek } }, file: { node: { getattr: MEMFS.node_ops.getattr, setattr: MEMFS.node_ops.setattr }, stream: { llseek: MEMFS.stream_ops.llseek, read: MEMFS.stream_ops.read, write: MEMFS.stream_ops.write, mmap: MEMFS.stream_ops.mmap, msync: MEMFS.stream_ops.msync } }, link: { node: { getattr: MEMFS.node_ops.getattr, setattr: MEMFS.node_ops.setattr, readlink: MEMFS.node_ops.readlink }, stream: {} }, chrdev: { node: { getattr: MEMFS.node_ops.getattr, setattr: MEMFS.node_ops.setattr }, stream: FS.chrdev_stream_ops } });
    var n3 = FS.createNode(e, t2, r3, _3);
    return FS.isDir(n3.mode) ? (n3.node_ops = MEMFS.ops_table.dir.node, n3.stream_ops = MEMFS.ops_table.dir.stream, n3.contents = {}) : FS.isFile(n3.mode) ? (n3.node_ops = MEMFS.ops_table.file.node, n3.stream_ops = MEMFS.ops_table.file.stream, n3.usedBytes = 0, n3.contents = MEMFS.emptyFileContents ?? (MEMFS.emptyFileContents = new Uint8Array(0))) : FS.isLink(n3.mode) ? (n3.node_ops = MEMFS.ops_table.link.node, n3.stream_ops = MEMFS.ops_table.link.stream) : FS.isChrdev(n3.mode) && (n3.node_ops = MEMFS.ops_table.chrdev.node, n3.stream_ops = MEMFS.ops_table.chrdev.stream), n3.atime = n3.mtime = n3.ctime = Date.now(), e && (e.contents[t2] = n3, e.atime = e.mtime = e.ctime = n3.atime), n3;
  }, getFileDataAsTypedArray(e) {
    return e.contents.subarray(0, e.usedBytes);
  }, expandFileStorage(e, t2) {
    var r3 = e.contents.length;
    if (!(r3 >= t2)) {
      t2 = Math.max(t2, r3 * (r3 < 1048576 ? 2 : 1.125) >>> 0), r3 && (t2 = Math.max(t2, 256));
      var _3 = MEMFS.getFileDataAsTypedArray(e);
      e.contents = new Uint8Array(t2), e.contents.set(_3);
    }
  }, resizeFileStorage(e, t2) {
    if (e.usedBytes != t2) {
      var r3 = e.contents;
      e.contents = new Uint8Array(t2), e.contents.set(r3.subarray(0, Math.min(t2, e.usedBytes))), e.usedBytes = t2;
    }
  }, node_ops: { getattr(e) {
    var t2 = {};
    return t2.dev = FS.isChrdev(e.mode) ? e.id : 1, t2.ino = e.id, t2.mode = e.mode, t2.nlink = 1, t2.uid = 0, t2.gid = 0, t2.rdev = e.rdev, FS.isDir(e.mode) ? t2.size = 4096 : FS.isFile(e.mode) ? t2.size = e.usedBytes : FS.isLink(e.mode) ? t2.size = e.link.length : t2.size = 0, t2.atime = new Date(e.atime), t2.mtime = new Date(e.mtime), t2.ctime = new Date(e.ctime), t2.blksize = 4096, t2.blocks = Math.ceil(t2.size / t2.blksize), t2;
  }, setattr(e, t2) {
    for (let r3 of ["mode", "atime", "mtime", "ctime"]) t2[r3] != null && (e[r3] = t2[r3]);
    t2.size !== void 0 && MEMFS.resizeFileStorage(e, t2.size);
  }, lookup(e, t2) {
    throw MEMFS.doesNotExistError || (MEMFS.doesNotExistError = new FS.ErrnoError(44), MEMFS.doesNotExistError.stack = "<generic error, no stack>"), MEMFS.doesNotExistError;
  }, mknod(e, t2, r3, _3) {
    return MEMFS.createNode(e, t2, r3, _3);
  }, rename(e, t2, r3) {
    var _3;
    try {
      _3 = FS.lookupNode(t2, r3);
    } catch {
    }
    if (_3 && FS.isDir(e.mode)) for (var n3 in _3.contents) throw new FS.ErrnoError(55);
    delete e.parent.contents[e.name], t2.contents[r3] = e, e.name = r3, t2.ctime = t2.mtime = e.parent.ctime = e.parent.mtime = Date.now();
  }, unlink(e, t2) {
    delete e.contents[t2], e.ctime = e.mtime = Date.now();
  }, rmdir(e, t2) {
    var r3 = FS.lookupNode(e, t2);
    for (var _3 in r3.contents) throw new FS.ErrnoError(55);
    delete e.contents[t2], e.ctime = e.mtime = Date.now();
  }, readdir(e) {
    return [".", "..", ...Object.keys(e.contents)];
  }, symlink(e, t2, r3) {
    var _3 = MEMFS.createNode(e, t2, 41471, 0);
    return _3.link = r3, _3;
  }, readlink(e) {
    if (!FS.isLink(e.mode)) throw new FS.ErrnoError(28);
    return e.link;
  } }, stream_ops: { read(e, t2, r3, _3, n3) {
    var a3 = e.node.contents;
    if (n3 >= e.node.usedBytes) return 0;
    var i2 = Math.min(e.node.usedBytes - n3, _3);
    return t2.set(a3.subarray(n3, n3 + i2), r3), i2;
  }, write(e, t2, r3, _3, n3, a3) {
    if (t2.buffer === HEAP8.buffer && (a3 = false), !_3) return 0;
    var i2 = e.node;
    return i2.mtime = i2.ctime = Date.now(), a3 ? (i2.contents = t2.subarray(r3, r3 + _3), i2.usedBytes = _3) : !i2.usedBytes && !n3 ? (i2.contents = t2.slice(r3, r3 + _3), i2.usedBytes = _3) : (MEMFS.expandFileStorage(i2, n3 + _3), i2.contents.set(t2.subarray(r3, r3 + _3), n3), i2.usedBytes = Math.max(i2.usedBytes, n3 + _3)), _3;
  }, llseek(e, t2, r3) {
    var _3 = t2;
    if (r3 === 1 ? _3 += e.position : r3 === 2 && FS.isFile(e.node.mode) && (_3 += e.node.usedBytes), _3 < 0) throw new FS.ErrnoError(28);
    return _3;
  }, mmap(e, t2, r3, _3, n3) {
    if (!FS.isFile(e.node.mode)) throw new FS.ErrnoError(43);
    var a3, i2, l2 = e.node.contents;
    if (!(n3 & 2) && l2.buffer === HEAP8.buffer) i2 = false, a3 = l2.byteOffset;
    else {
      if (i2 = true, a3 = mmapAlloc(t2), !a3) throw new FS.ErrnoError(48);
      l2 && ((r3 > 0 || r3 + t2 < l2.length) && (l2.subarray ? l2 = l2.subarray(r3, r3 + t2) : l2 = Array.prototype.slice.call(l2, r3, r3 + t2)), HEAP8.set(l2, a3));
    }
    return { ptr: a3, allocated: i2 };
  }, msync(e, t2, r3, _3, n3) {
    return MEMFS.stream_ops.write(e, t2, 0, _3, r3, false), 0;
  } } }, FS_modeStringToFlags = (e) => {
    if (typeof e != "string") return e;
    var t2 = { r: 0, "r+": 2, w: 577, "w+": 578, a: 1089, "a+": 1090 }[e];
    if (typeof t2 > "u") throw new Error(`Unknown file open mode: ${e}`);
    return t2;
  }, FS_fileDataToTypedArray = (e) => (typeof e == "string" && (e = intArrayFromString(e, true)), e.subarray || (e = new Uint8Array(e)), e), FS_getMode = (e, t2) => {
    var r3 = 0;
    return e && (r3 |= 365), t2 && (r3 |= 146), r3;
  }, IDBFS = { dbs: {}, indexedDB: () => indexedDB, DB_VERSION: 21, DB_STORE_NAME: "FILE_DATA", queuePersist: (e) => {
    function t2() {
      e.idbPersistState === "again" ? r3() : (e.idbPersistState = 0, IDBFS.onAutoPersistStateChanged?.(false));
    }
    function r3() {
      e.idbPersistState = "idb", IDBFS.onAutoPersistStateChanged?.(true), IDBFS.syncfs(e, false, t2);
    }
    e.idbPersistState ? e.idbPersistState === "idb" && (e.idbPersistState = "again") : e.idbPersistState = setTimeout(r3, 0);
  }, mount: (e) => {
    var t2 = MEMFS.mount(e);
    if (e?.opts?.autoPersist) {
      e.idbPersistState = 0;
      var r3 = t2.node_ops;
      t2.node_ops = { ...t2.node_ops }, t2.node_ops.mknod = (_3, n3, a3, i2) => {
        var l2 = r3.mknod(_3, n3, a3, i2);
        return l2.node_ops = t2.node_ops, l2.idbfs_mount = t2.mount, l2.memfs_stream_ops = l2.stream_ops, l2.stream_ops = { ...l2.stream_ops }, l2.stream_ops.write = (o5, s4, c4, p5, d5, u3) => (o5.node.isModified = true, l2.memfs_stream_ops.write(o5, s4, c4, p5, d5, u3)), l2.stream_ops.close = (o5) => {
          var s4 = o5.node;
          if (s4.isModified && (IDBFS.queuePersist(s4.idbfs_mount), s4.isModified = false), s4.memfs_stream_ops.close) return s4.memfs_stream_ops.close(o5);
        }, IDBFS.queuePersist(t2.mount), l2;
      }, t2.node_ops.rmdir = (..._3) => (IDBFS.queuePersist(t2.mount), r3.rmdir(..._3)), t2.node_ops.symlink = (..._3) => (IDBFS.queuePersist(t2.mount), r3.symlink(..._3)), t2.node_ops.unlink = (..._3) => (IDBFS.queuePersist(t2.mount), r3.unlink(..._3)), t2.node_ops.rename = (..._3) => (IDBFS.queuePersist(t2.mount), r3.rename(..._3));
    }
    return t2;
  }, syncfs: (e, t2, r3) => {
    IDBFS.getLocalSet(e, (_3, n3) => {
      if (_3) return r3(_3);
      IDBFS.getRemoteSet(e, (a3, i2) => {
        if (a3) return r3(a3);
        var l2 = t2 ? i2 : n3, o5 = t2 ? n3 : i2;
        IDBFS.reconcile(l2, o5, r3);
      });
    });
  }, quit: () => {
    for (var e of Object.values(IDBFS.dbs)) e.close();
    IDBFS.dbs = {};
  }, getDB: (e, t2) => {
    var r3 = IDBFS.dbs[e];
    if (r3) return t2(null, r3);
    var _3;
    try {
      _3 = IDBFS.indexedDB().open(e, IDBFS.DB_VERSION);
    } catch (n3) {
      return t2(n3);
    }
    if (!_3) return t2("Unable to connect to IndexedDB");
    _3.onupgradeneeded = (n3) => {
      var a3 = n3.target.result, i2 = n3.target.transaction, l2;
      a3.objectStoreNames.contains(IDBFS.DB_STORE_NAME) ? l2 = i2.objectStore(IDBFS.DB_STORE_NAME) : l2 = a3.createObjectStore(IDBFS.DB_STORE_NAME), l2.indexNames.contains("timestamp") || l2.createIndex("timestamp", "timestamp", { unique: false });
    }, _3.onsuccess = () => {
      r3 = _3.result, IDBFS.dbs[e] = r3, t2(null, r3);
    }, _3.onerror = (n3) => {
      t2(n3.target.error), n3.preventDefault();
    };
  }, getLocalSet: (e, t2) => {
    var r3 = {};
    function _3(o5) {
      return o5 !== "." && o5 !== "..";
    }
    function n3(o5) {
      return (s4) => PATH.join2(o5, s4);
    }
    for (var a3 = FS.readdir(e.mountpoint).filter(_3).map(n3(e.mountpoint)); a3.length; ) {
      var i2 = a3.pop(), l2;
      try {
        l2 = FS.lstat(i2);
      } catch (o5) {
        return t2(o5);
      }
      FS.isDir(l2.mode) && a3.push(...FS.readdir(i2).filter(_3).map(n3(i2))), r3[i2] = { timestamp: l2.mtime };
    }
    return t2(null, { type: "local", entries: r3 });
  }, getRemoteSet: (e, t2) => {
    var r3 = {};
    IDBFS.getDB(e.mountpoint, (_3, n3) => {
      if (_3) return t2(_3);
      try {
        var a3 = n3.transaction([IDBFS.DB_STORE_NAME], "readonly");
        a3.onerror = (o5) => {
          t2(o5.target.error), o5.preventDefault();
        };
        var i2 = a3.objectStore(IDBFS.DB_STORE_NAME), l2 = i2.index("timestamp");
        l2.openKeyCursor().onsuccess = (o5) => {
          var s4 = o5.target.result;
          if (!s4) return t2(null, { type: "remote", db: n3, entries: r3 });
          r3[s4.primaryKey] = { timestamp: s4.key }, s4.continue();
        };
      } catch (o5) {
        return t2(o5);
      }
    });
  }, loadLocalEntry: (e, t2) => {
    var r3, _3;
    try {
      var n3 = FS.lookupPath(e);
      _3 = n3.node, r3 = FS.lstat(e);
    } catch (a3) {
      return t2(a3);
    }
    return FS.isDir(r3.mode) ? t2(null, { timestamp: r3.mtime, mode: r3.mode }) : FS.isLink(r3.mode) ? t2(null, { timestamp: r3.mtime, mode: r3.mode, link: _3.link }) : FS.isFile(r3.mode) ? (_3.contents = MEMFS.getFileDataAsTypedArray(_3), t2(null, { timestamp: r3.mtime, mode: r3.mode, contents: _3.contents })) : t2(new Error("node type not supported"));
  }, storeLocalEntry: (e, t2, r3) => {
    try {
      if (FS.isDir(t2.mode)) FS.mkdirTree(e, t2.mode);
      else if (FS.isLink(t2.mode)) FS.symlink(t2.link, e);
      else if (FS.isFile(t2.mode)) FS.writeFile(e, t2.contents, { canOwn: true });
      else return r3(new Error("node type not supported"));
      FS.chmod(e, t2.mode), FS.utime(e, t2.timestamp, t2.timestamp);
    } catch (_3) {
      return r3(_3);
    }
    r3(null);
  }, removeLocalEntry: (e, t2) => {
    try {
      var r3 = FS.lstat(e);
      FS.isDir(r3.mode) ? FS.rmdir(e) : FS.unlink(e);
    } catch (_3) {
      return t2(_3);
    }
    t2(null);
  }, loadRemoteEntry: (e, t2, r3) => {
    var _3 = e.get(t2);
    _3.onsuccess = (n3) => r3(null, n3.target.result), _3.onerror = (n3) => {
      r3(n3.target.error), n3.preventDefault();
    };
  }, storeRemoteEntry: (e, t2, r3, _3) => {
    try {
      var n3 = e.put(r3, t2);
    } catch (a3) {
      _3(a3);
      return;
    }
    n3.onsuccess = () => _3(), n3.onerror = (a3) => {
      _3(a3.target.error), a3.preventDefault();
    };
  }, removeRemoteEntry: (e, t2, r3) => {
    var _3 = e.delete(t2);
    _3.onsuccess = () => r3(), _3.onerror = (n3) => {
      r3(n3.target.error), n3.preventDefault();
    };
  }, reconcile: (e, t2, r3) => {
    var _3 = 0, n3 = [];
    for (var [a3, i2] of Object.entries(e.entries)) {
      var l2 = t2.entries[a3];
      (!l2 || i2.timestamp.getTime() != l2.timestamp.getTime()) && (n3.push(a3), _3++);
    }
    var o5 = [];
    for (var a3 of Object.keys(t2.entries)) e.entries[a3] || (o5.push(a3), _3++);
    if (!_3) return r3(null);
    var s4 = false, c4 = e.type === "remote" ? e.db : t2.db, p5 = c4.transaction([IDBFS.DB_STORE_NAME], "readwrite"), d5 = p5.objectStore(IDBFS.DB_STORE_NAME);
    function u3(m7) {
      if (m7 && !s4) return s4 = true, r3(m7);
    }
    p5.onerror = p5.onabort = (m7) => {
      u3(m7.target.error), m7.preventDefault();
    }, p5.oncomplete = () => {
      s4 || r3(null);
    };
    for (let m7 of n3.sort()) t2.type === "local" ? IDBFS.loadRemoteEntry(d5, m7, (y6, b4) => {
      if (y6) return u3(y6);
      IDBFS.storeLocalEntry(m7, b4, u3);
    }) : IDBFS.loadLocalEntry(m7, (y6, b4) => {
      if (y6) return u3(y6);
      IDBFS.storeRemoteEntry(d5, m7, b4, u3);
    });
    for (var f5 of o5.sort().reverse()) t2.type === "local" ? IDBFS.removeLocalEntry(f5, u3) : IDBFS.removeRemoteEntry(d5, f5, u3);
  } }, ERRNO_CODES = { EPERM: 63, ENOENT: 44, ESRCH: 71, EINTR: 27, EIO: 29, ENXIO: 60, E2BIG: 1, ENOEXEC: 45, EBADF: 8, ECHILD: 12, EAGAIN: 6, EWOULDBLOCK: 6, ENOMEM: 48, EACCES: 2, EFAULT: 21, ENOTBLK: 105, EBUSY: 10, EEXIST: 20, EXDEV: 75, ENODEV: 43, ENOTDIR: 54, EISDIR: 31, EINVAL: 28, ENFILE: 41, EMFILE: 33, ENOTTY: 59, ETXTBSY: 74, EFBIG: 22, ENOSPC: 51, ESPIPE: 70, EROFS: 69, EMLINK: 34, EPIPE: 64, EDOM: 18, ERANGE: 68, ENOMSG: 49, EIDRM: 24, ECHRNG: 106, EL2NSYNC: 156, EL3HLT: 107, EL3RST: 108, ELNRNG: 109, EUNATCH: 110, ENOCSI: 111, EL2HLT: 112, EDEADLK: 16, ENOLCK: 46, EBADE: 113, EBADR: 114, EXFULL: 115, ENOANO: 104, EBADRQC: 103, EBADSLT: 102, EDEADLOCK: 16, EBFONT: 101, ENOSTR: 100, ENODATA: 116, ETIME: 117, ENOSR: 118, ENONET: 119, ENOPKG: 120, EREMOTE: 121, ENOLINK: 47, EADV: 122, ESRMNT: 123, ECOMM: 124, EPROTO: 65, EMULTIHOP: 36, EDOTDOT: 125, EBADMSG: 9, ENOTUNIQ: 126, EBADFD: 127, EREMCHG: 128, ELIBACC: 129, ELIBBAD: 130, ELIBSCN: 131, ELIBMAX: 132, ELIBEXEC: 133, ENOSYS: 52, ENOTEMPTY: 55, ENAMETOOLONG: 37, ELOOP: 32, EOPNOTSUPP: 138, EPFNOSUPPORT: 139, ECONNRESET: 15, ENOBUFS: 42, EAFNOSUPPORT: 5, EPROTOTYPE: 67, ENOTSOCK: 57, ENOPROTOOPT: 50, ESHUTDOWN: 140, ECONNREFUSED: 14, EADDRINUSE: 3, ECONNABORTED: 13, ENETUNREACH: 40, ENETDOWN: 38, ETIMEDOUT: 73, EHOSTDOWN: 142, EHOSTUNREACH: 23, EINPROGRESS: 26, EALREADY: 7, EDESTADDRREQ: 17, EMSGSIZE: 35, EPROTONOSUPPORT: 66, ESOCKTNOSUPPORT: 137, EADDRNOTAVAIL: 4, ENETRESET: 39, EISCONN: 30, ENOTCONN: 53, ETOOMANYREFS: 141, EUSERS: 136, EDQUOT: 19, ESTALE: 72, ENOTSUP: 138, ENOMEDIUM: 148, EILSEQ: 25, EOVERFLOW: 61, ECANCELED: 11, ENOTRECOVERABLE: 56, EOWNERDEAD: 62, ESTRPIPE: 135 }, NODEFS = { isWindows: false, staticInit() {
    NODEFS.isWindows = !!process.platform.match(/^win/);
    var e = { fs: require("fs").constants }.fs;
    NODEFS.flagsForNodeMap = { 1024: e.O_APPEND, 64: e.O_CREAT, 128: e.O_EXCL, 256: e.O_NOCTTY, 0: e.O_RDONLY, 2: e.O_RDWR, 4096: e.O_SYNC, 512: e.O_TRUNC, 1: e.O_WRONLY, 131072: e.O_NOFOLLOW };
  }, convertNodeCode(e) {
    var t2 = e.code;
    return ERRNO_CODES[t2];
  }, tryFSOperation(e) {
    try {
      return e();
    } catch (t2) {
      throw t2.code ? t2.code === "UNKNOWN" ? new FS.ErrnoError(28) : new FS.ErrnoError(NODEFS.convertNodeCode(t2)) : t2;
    }
  }, mount(e) {
    return NODEFS.createNode(null, "/", NODEFS.getMode(e.opts.root), 0);
  }, createNode(e, t2, r3, _3) {
    if (!FS.isDir(r3) && !FS.isFile(r3) && !FS.isLink(r3)) throw new FS.ErrnoError(28);
    var n3 = FS.createNode(e, t2, r3);
    return n3.node_ops = NODEFS.node_ops, n3.stream_ops = NODEFS.stream_ops, n3;
  }, getMode(e) {
    return NODEFS.tryFSOperation(() => {
      var t2 = fs.lstatSync(e).mode;
      return NODEFS.isWindows && (t2 |= (t2 & 292) >> 2), t2;
    });
  }, realPath(e) {
    for (var t2 = []; e.parent !== e; ) t2.push(e.name), e = e.parent;
    return t2.push(e.mount.opts.root), t2.reverse(), PATH.join(...t2);
  }, flagsForNode(e) {
    e &= -2097153, e &= -2049, e &= -32769, e &= -524289, e &= -65537;
    var t2 = 0;
    for (var r3 in NODEFS.flagsForNodeMap) e & r3 && (t2 |= NODEFS.flagsForNodeMap[r3], e ^= r3);
    if (e) throw new FS.ErrnoError(28);
    return t2;
  }, doGetAttr(e, t2) {
    var r3 = NODEFS.tryFSOperation(e);
    return NODEFS.isWindows && (r3.blksize || (r3.blksize = 4096), r3.blocks || (r3.blocks = (r3.size + r3.blksize - 1) / r3.blksize | 0), r3.mode |= (r3.mode & 292) >> 2), { dev: r3.dev, ino: t2.id, mode: r3.mode, nlink: r3.nlink, uid: r3.uid, gid: r3.gid, rdev: r3.rdev, size: r3.size, atime: r3.atime, mtime: r3.mtime, ctime: r3.ctime, blksize: r3.blksize, blocks: r3.blocks };
  }, doSetAttr(e, t2, r3, _3, n3, a3, i2) {
    NODEFS.tryFSOperation(() => {
      if (r3.mode !== void 0) {
        var l2 = r3.mode;
        NODEFS.isWindows && (l2 &= 384), _3(e, l2), t2.mode = r3.mode;
      }
      if (typeof (r3.atime ?? r3.mtime) == "number") {
        var o5 = r3.atime, s4 = r3.mtime;
        if (o5 == null || s4 == null) {
          var c4 = i2(e);
          o5 ?? (o5 = c4.atimeMs), s4 ?? (s4 = c4.mtimeMs);
        }
        n3(e, o5 / 1e3, s4 / 1e3);
      }
      r3.size !== void 0 && a3(e, r3.size);
    });
  }, node_ops: { getattr(e) {
    var t2 = NODEFS.realPath(e);
    return NODEFS.doGetAttr(() => fs.lstatSync(t2), e);
  }, setattr(e, t2) {
    var r3 = NODEFS.realPath(e);
    if (t2.mode != null && t2.dontFollow) throw new FS.ErrnoError(52);
    var _3 = t2.dontFollow ? fs.lutimesSync : fs.utimesSync;
    NODEFS.doSetAttr(r3, e, t2, fs.chmodSync, _3, fs.truncateSync, fs.lstatSync);
  }, lookup(e, t2) {
    var r3 = PATH.join2(NODEFS.realPath(e), t2), _3 = NODEFS.getMode(r3);
    return NODEFS.createNode(e, t2, _3);
  }, mknod(e, t2, r3, _3) {
    var n3 = NODEFS.createNode(e, t2, r3, _3), a3 = NODEFS.realPath(n3);
    return NODEFS.tryFSOperation(() => {
      FS.isDir(n3.mode) ? fs.mkdirSync(a3, n3.mode) : fs.writeFileSync(a3, "", { mode: n3.mode });
    }), n3;
  }, rename(e, t2, r3) {
    var _3 = NODEFS.realPath(e), n3 = PATH.join2(NODEFS.realPath(t2), r3);
    NODEFS.tryFSOperation(() => fs.renameSync(_3, n3)), e.name = r3;
  }, unlink(e, t2) {
    var r3 = PATH.join2(NODEFS.realPath(e), t2);
    NODEFS.tryFSOperation(() => fs.unlinkSync(r3));
  }, rmdir(e, t2) {
    var r3 = PATH.join2(NODEFS.realPath(e), t2);
    NODEFS.tryFSOperation(() => fs.rmdirSync(r3));
  }, readdir(e) {
    var t2 = NODEFS.realPath(e);
    return NODEFS.tryFSOperation(() => fs.readdirSync(t2));
  }, symlink(e, t2, r3) {
    var _3 = PATH.join2(NODEFS.realPath(e), t2);
    NODEFS.tryFSOperation(() => fs.symlinkSync(r3, _3));
  }, readlink(e) {
    var t2 = NODEFS.realPath(e);
    return NODEFS.tryFSOperation(() => fs.readlinkSync(t2));
  }, statfs(e) {
    var t2 = NODEFS.tryFSOperation(() => fs.statfsSync(e));
    return t2.frsize = t2.bsize, t2;
  } }, stream_ops: { getattr(e) {
    return NODEFS.doGetAttr(() => fs.fstatSync(e.nfd), e.node);
  }, setattr(e, t2) {
    NODEFS.doSetAttr(e.nfd, e.node, t2, fs.fchmodSync, fs.futimesSync, fs.ftruncateSync, fs.fstatSync);
  }, open(e) {
    var t2 = NODEFS.realPath(e.node);
    NODEFS.tryFSOperation(() => {
      e.shared.refcount = 1, e.nfd = fs.openSync(t2, NODEFS.flagsForNode(e.flags));
    });
  }, close(e) {
    NODEFS.tryFSOperation(() => {
      e.nfd && !--e.shared.refcount && fs.closeSync(e.nfd);
    });
  }, dup(e) {
    e.shared.refcount++;
  }, read(e, t2, r3, _3, n3) {
    return NODEFS.tryFSOperation(() => fs.readSync(e.nfd, t2, r3, _3, n3));
  }, write(e, t2, r3, _3, n3) {
    return NODEFS.tryFSOperation(() => fs.writeSync(e.nfd, t2, r3, _3, n3));
  }, llseek(e, t2, r3) {
    var _3 = t2;
    if (r3 === 1 ? _3 += e.position : r3 === 2 && FS.isFile(e.node.mode) && NODEFS.tryFSOperation(() => {
      var n3 = fs.fstatSync(e.nfd);
      _3 += n3.size;
    }), _3 < 0) throw new FS.ErrnoError(28);
    return _3;
  }, mmap(e, t2, r3, _3, n3) {
    if (!FS.isFile(e.node.mode)) throw new FS.ErrnoError(43);
    var a3 = mmapAlloc(t2);
    return NODEFS.stream_ops.read(e, HEAP8, a3, t2, r3), { ptr: a3, allocated: true };
  }, msync(e, t2, r3, _3, n3) {
    return NODEFS.stream_ops.write(e, t2, 0, _3, r3), 0;
  } } }, PROXYFS = { mount(e) {
    return PROXYFS.createNode(null, "/", e.opts.fs.lstat(e.opts.root).mode, 0);
  }, createNode(e, t2, r3, _3) {
    if (!FS.isDir(r3) && !FS.isFile(r3) && !FS.isLink(r3)) throw new FS.ErrnoError(ERRNO_CODES.EINVAL);
    var n3 = FS.createNode(e, t2, r3);
    return n3.node_ops = PROXYFS.node_ops, n3.stream_ops = PROXYFS.stream_ops, n3;
  }, realPath(e) {
    for (var t2 = []; e.parent !== e; ) t2.push(e.name), e = e.parent;
    return t2.push(e.mount.opts.root), t2.reverse(), PATH.join(...t2);
  }, node_ops: { getattr(e) {
    var t2 = PROXYFS.realPath(e), r3;
    try {
      r3 = e.mount.opts.fs.lstat(t2);
    } catch (_3) {
      throw _3.code ? new FS.ErrnoError(ERRNO_CODES[_3.code]) : _3;
    }
    return { dev: r3.dev, ino: r3.ino, mode: r3.mode, nlink: r3.nlink, uid: r3.uid, gid: r3.gid, rdev: r3.rdev, size: r3.size, atime: r3.atime, mtime: r3.mtime, ctime: r3.ctime, blksize: r3.blksize, blocks: r3.blocks };
  }, setattr(e, t2) {
    var r3 = PROXYFS.realPath(e);
    try {
      if (t2.mode !== void 0 && (e.mount.opts.fs.chmod(r3, t2.mode), e.mode = t2.mode), t2.atime || t2.mtime) {
        var _3 = new Date(t2.atime || t2.mtime), n3 = new Date(t2.mtime || t2.atime);
        e.mount.opts.fs.utime(r3, _3, n3);
      }
      t2.size !== void 0 && e.mount.opts.fs.truncate(r3, t2.size);
    } catch (a3) {
      throw a3.code ? new FS.ErrnoError(ERRNO_CODES[a3.code]) : a3;
    }
  }, lookup(e, t2) {
    try {
      var r3 = PATH.join2(PROXYFS.realPath(e), t2), _3 = e.mount.opts.fs.lstat(r3).mode, n3 = PROXYFS.createNode(e, t2, _3);
      return n3;
    } catch (a3) {
      throw a3.code ? new FS.ErrnoError(ERRNO_CODES[a3.code]) : a3;
    }
  }, mknod(e, t2, r3, _3) {
    var n3 = PROXYFS.createNode(e, t2, r3, _3), a3 = PROXYFS.realPath(n3);
    try {
      FS.isDir(n3.mode) ? n3.mount.opts.fs.mkdir(a3, n3.mode) : n3.mount.opts.fs.writeFile(a3, "", { mode: n3.mode });
    } catch (i2) {
      throw i2.code ? new FS.ErrnoError(ERRNO_CODES[i2.code]) : i2;
    }
    return n3;
  }, rename(e, t2, r3) {
    var _3 = PROXYFS.realPath(e), n3 = PATH.join2(PROXYFS.realPath(t2), r3);
    try {
      e.mount.opts.fs.rename(_3, n3), e.name = r3;
    } catch (a3) {
      throw a3.code ? new FS.ErrnoError(ERRNO_CODES[a3.code]) : a3;
    }
  }, unlink(e, t2) {
    var r3 = PATH.join2(PROXYFS.realPath(e), t2);
    try {
      e.mount.opts.fs.unlink(r3);
    } catch (_3) {
      throw _3.code ? new FS.ErrnoError(ERRNO_CODES[_3.code]) : _3;
    }
  }, rmdir(e, t2) {
    var r3 = PATH.join2(PROXYFS.realPath(e), t2);
    try {
      e.mount.opts.fs.rmdir(r3);
    } catch (_3) {
      throw _3.code ? new FS.ErrnoError(ERRNO_CODES[_3.code]) : _3;
    }
  }, readdir(e) {
    var t2 = PROXYFS.realPath(e);
    try {
      return e.mount.opts.fs.readdir(t2);
    } catch (r3) {
      throw r3.code ? new FS.ErrnoError(ERRNO_CODES[r3.code]) : r3;
    }
  }, symlink(e, t2, r3) {
    var _3 = PATH.join2(PROXYFS.realPath(e), t2);
    try {
      e.mount.opts.fs.symlink(r3, _3);
    } catch (n3) {
      throw n3.code ? new FS.ErrnoError(ERRNO_CODES[n3.code]) : n3;
    }
  }, readlink(e) {
    var t2 = PROXYFS.realPath(e);
    try {
      return e.mount.opts.fs.readlink(t2);
    } catch (r3) {
      throw r3.code ? new FS.ErrnoError(ERRNO_CODES[r3.code]) : r3;
    }
  } }, stream_ops: { open(e) {
    var t2 = PROXYFS.realPath(e.node);
    try {
      e.nfd = e.node.mount.opts.fs.open(t2, e.flags);
    } catch (r3) {
      throw r3.code ? new FS.ErrnoError(ERRNO_CODES[r3.code]) : r3;
    }
  }, close(e) {
    try {
      e.node.mount.opts.fs.close(e.nfd);
    } catch (t2) {
      throw t2.code ? new FS.ErrnoError(ERRNO_CODES[t2.code]) : t2;
    }
  }, read(e, t2, r3, _3, n3) {
    try {
      return e.node.mount.opts.fs.read(e.nfd, t2, r3, _3, n3);
    } catch (a3) {
      throw a3.code ? new FS.ErrnoError(ERRNO_CODES[a3.code]) : a3;
    }
  }, write(e, t2, r3, _3, n3) {
    try {
      return e.node.mount.opts.fs.write(e.nfd, t2, r3, _3, n3);
    } catch (a3) {
      throw a3.code ? new FS.ErrnoError(ERRNO_CODES[a3.code]) : a3;
    }
  }, llseek(e, t2, r3) {
    var _3 = t2;
    if (r3 === 1) _3 += e.position;
    else if (r3 === 2 && FS.isFile(e.node.mode)) try {
      var n3 = e.node.node_ops.getattr(e.node);
      _3 += n3.size;
    } catch (a3) {
      throw new FS.ErrnoError(ERRNO_CODES[a3.code]);
    }
    if (_3 < 0) throw new FS.ErrnoError(ERRNO_CODES.EINVAL);
    return _3;
  } } }, FS_createDataFile = (...e) => FS.createDataFile(...e), getUniqueRunDependency = (e) => e, dependenciesPromise = null, resolveRunDependencies = async () => dependenciesPromise, runDependencies = 0, dependenciesPromiseResolve = null, removeRunDependency = () => {
    runDependencies--, Module.monitorRunDependencies?.(runDependencies), runDependencies || dependenciesPromiseResolve();
  }, addRunDependency = () => {
    runDependencies || (dependenciesPromise = new Promise((e) => dependenciesPromiseResolve = e)), runDependencies++, Module.monitorRunDependencies?.(runDependencies);
  }, FS_handledByPreloadPlugin = async (e, t2) => {
    typeof Browser < "u" && Browser.init();
    for (var r3 of preloadPlugins) if (r3.canHandle(t2)) return r3.handle(e, t2);
    return e;
  }, FS_preloadFile = async (e, t2, r3, _3, n3, a3, i2, l2) => {
    var o5 = t2 ? PATH_FS.resolve(PATH.join2(e, t2)) : e, s4 = getUniqueRunDependency(`cp ${o5}`);
    addRunDependency(s4);
    try {
      var c4 = r3;
      typeof r3 == "string" && (c4 = await asyncLoad(r3)), c4 = await FS_handledByPreloadPlugin(c4, o5), l2?.(), a3 || FS_createDataFile(e, t2, c4, _3, n3, i2);
    } finally {
      removeRunDependency(s4);
    }
  }, FS_createPreloadedFile = (e, t2, r3, _3, n3, a3, i2, l2, o5, s4) => {
    FS_preloadFile(e, t2, r3, _3, n3, l2, o5, s4).then(a3).catch(i2);
  }, FS = { root: null, mounts: [], devices: {}, streams: [], nextInode: 1, nameTable: [], currentPath: "/", initialized: false, ignorePermissions: true, syncFSRequests: 0, ErrnoError: class {
    constructor(e) {
      P(this, "name", "ErrnoError");
      this.errno = e;
    }
  }, FSStream: class {
    constructor() {
      P(this, "shared", {});
    }
    get object() {
      return this.node;
    }
    set object(e) {
      this.node = e;
    }
    get isRead() {
      return (this.flags & 2097155) !== 1;
    }
    get isWrite() {
      return (this.flags & 2097155) !== 0;
    }
    get isAppend() {
      return this.flags & 1024;
    }
    get flags() {
      return this.shared.flags;
    }
    set flags(e) {
      this.shared.flags = e;
    }
    get position() {
      return this.shared.position;
    }
    set position(e) {
      this.shared.position = e;
    }
  }, FSNode: class {
    constructor(e, t2, r3, _3) {
      P(this, "node_ops", {});
      P(this, "stream_ops", {});
      P(this, "readMode", 365);
      P(this, "writeMode", 146);
      P(this, "mounted", null);
      e || (e = this), this.parent = e, this.mount = e.mount, this.id = FS.nextInode++, this.name = t2, this.mode = r3, this.rdev = _3, this.atime = this.mtime = this.ctime = Date.now();
    }
    get read() {
      return (this.mode & this.readMode) === this.readMode;
    }
    set read(e) {
      e ? this.mode |= this.readMode : this.mode &= ~this.readMode;
    }
    get write() {
      return (this.mode & this.writeMode) === this.writeMode;
    }
    set write(e) {
      e ? this.mode |= this.writeMode : this.mode &= ~this.writeMode;
    }
    get isFolder() {
      return FS.isDir(this.mode);
    }
    get isDevice() {
      return FS.isChrdev(this.mode);
    }
    addListener(e, t2 = false) {
      var r3 = { cb: e, exclusive: t2 }, _3 = this.listeners ?? (this.listeners = /* @__PURE__ */ new Set());
      return _3.add(r3), { listeners: _3, entry: r3 };
    }
    notifyListeners(e) {
      if (this.listeners) {
        var t2;
        for (var r3 of this.listeners) r3.exclusive ? (t2 || (t2 = [])).push(r3) : r3.cb(e);
        if (t2) {
          var _3 = (this.exclTurn || 0) % t2.length;
          this.exclTurn = _3 + 1, t2[_3].cb(e);
        }
      }
    }
  }, lookupPath(e, t2 = {}) {
    if (!e) throw new FS.ErrnoError(44);
    t2.follow_mount ?? (t2.follow_mount = true), PATH.isAbs(e) || (e = FS.cwd() + "/" + e);
    e: for (var r3 = 0; r3 < 40; r3++) {
      for (var _3 = e.split("/").filter((s4) => !!s4), n3 = FS.root, a3 = "/", i2 = 0; i2 < _3.length; i2++) {
        var l2 = i2 === _3.length - 1;
        if (l2 && t2.parent) break;
        if (_3[i2] !== ".") {
          if (_3[i2] === "..") {
            if (a3 = PATH.dirname(a3), FS.isRoot(n3)) {
              e = a3 + "/" + _3.slice(i2 + 1).join("/"), r3--;
              continue e;
            } else n3 = n3.parent;
            continue;
          }
          a3 = PATH.join2(a3, _3[i2]);
          try {
            n3 = FS.lookupNode(n3, _3[i2]);
          } catch (s4) {
            if (s4?.errno === 44 && l2 && t2.noent_okay) return { path: a3 };
            throw s4;
          }
          if (FS.isMountpoint(n3) && (!l2 || t2.follow_mount) && (n3 = n3.mounted.root), FS.isLink(n3.mode) && (!l2 || t2.follow)) {
            if (!n3.node_ops.readlink) throw new FS.ErrnoError(52);
            var o5 = n3.node_ops.readlink(n3);
            PATH.isAbs(o5) || (o5 = PATH.dirname(a3) + "/" + o5), e = o5 + "/" + _3.slice(i2 + 1).join("/");
            continue e;
          }
        }
      }
      return { path: a3, node: n3 };
    }
    throw new FS.ErrnoError(32);
  }, getPath(e) {
    for (var t2; ; ) {
      if (FS.isRoot(e)) {
        var r3 = e.mount.mountpoint;
        return t2 ? r3[r3.length - 1] !== "/" ? `${r3}/${t2}` : r3 + t2 : r3;
      }
      t2 = t2 ? `${e.name}/${t2}` : e.name, e = e.parent;
    }
  }, hashName(e, t2) {
    for (var r3 = 0, _3 = 0; _3 < t2.length; _3++) r3 = (r3 << 5) - r3 + t2.charCodeAt(_3) | 0;
    return (e + r3 >>> 0) % FS.nameTable.length;
  }, hashAddNode(e) {
    var t2 = FS.hashName(e.parent.id, e.name);
    e.name_next = FS.nameTable[t2], FS.nameTable[t2] = e;
  }, hashRemoveNode(e) {
    var t2 = FS.hashName(e.parent.id, e.name);
    if (FS.nameTable[t2] === e) FS.nameTable[t2] = e.name_next;
    else for (var r3 = FS.nameTable[t2]; r3; ) {
      if (r3.name_next === e) {
        r3.name_next = e.name_next;
        break;
      }
      r3 = r3.name_next;
    }
  }, lookupNode(e, t2) {
    var r3 = FS.mayLookup(e);
    if (r3) throw new FS.ErrnoError(r3);
    for (var _3 = FS.hashName(e.id, t2), n3 = FS.nameTable[_3]; n3; n3 = n3.name_next) {
      var a3 = n3.name;
      if (n3.parent.id === e.id && a3 === t2) return n3;
    }
    return FS.lookup(e, t2);
  }, createNode(e, t2, r3, _3) {
    var n3 = new FS.FSNode(e, t2, r3, _3);
    return FS.hashAddNode(n3), n3;
  }, destroyNode(e) {
    FS.hashRemoveNode(e);
  }, isRoot(e) {
    return e === e.parent;
  }, isMountpoint(e) {
    return !!e.mounted;
  }, isFile(e) {
    return (e & 61440) === 32768;
  }, isDir(e) {
    return (e & 61440) === 16384;
  }, isLink(e) {
    return (e & 61440) === 40960;
  }, isChrdev(e) {
    return (e & 61440) === 8192;
  }, isBlkdev(e) {
    return (e & 61440) === 24576;
  }, isFIFO(e) {
    return (e & 61440) === 4096;
  }, isSocket(e) {
    return (e & 49152) === 49152;
  }, flagsToPermissionString(e) {
    var t2 = ["r", "w", "rw"][e & 3];
    return e & 512 && (t2 += "w"), t2;
  }, nodePermissions(e, t2) {
    return FS.ignorePermissions ? 0 : t2.includes("r") && !(e.mode & 292) || t2.includes("w") && !(e.mode & 146) || t2.includes("x") && !(e.mode & 73) ? 2 : 0;
  }, mayLookup(e) {
    if (!FS.isDir(e.mode)) return 54;
    var t2 = FS.nodePermissions(e, "x");
    return t2 || (e.node_ops.lookup ? 0 : 2);
  }, mayCreate(e, t2) {
    if (!FS.isDir(e.mode)) return 54;
    try {
      return FS.lookupNode(e, t2), 20;
    } catch {
    }
    return FS.nodePermissions(e, "wx");
  }, mayDelete(e, t2, r3) {
    var _3;
    try {
      _3 = FS.lookupNode(e, t2);
    } catch (a3) {
      return a3.errno;
    }
    var n3 = FS.nodePermissions(e, "wx");
    if (n3) return n3;
    if (r3) {
      if (!FS.isDir(_3.mode)) return 54;
      if (FS.isRoot(_3) || FS.getPath(_3) === FS.cwd()) return 10;
    } else if (FS.isDir(_3.mode)) return 31;
    return 0;
  }, mayOpen(e, t2) {
    if (!e) return 44;
    if (FS.isLink(e.mode)) return 32;
    var r3 = FS.flagsToPermissionString(t2);
    return FS.isDir(e.mode) && (r3 !== "r" || t2 & 576) ? 31 : FS.nodePermissions(e, r3);
  }, checkOpExists(e, t2) {
    if (!e) throw new FS.ErrnoError(t2);
    return e;
  }, MAX_OPEN_FDS: 4096, nextfd() {
    for (var e = 0; e <= FS.MAX_OPEN_FDS; e++) if (!FS.streams[e]) return e;
    throw new FS.ErrnoError(33);
  }, getStreamChecked(e) {
    var t2 = FS.getStream(e);
    if (!t2) throw new FS.ErrnoError(8);
    return t2;
  }, getStream: (e) => FS.streams[e], createStream(e, t2 = -1) {
    return e = Object.assign(new FS.FSStream(), e), t2 == -1 && (t2 = FS.nextfd()), e.fd = t2, FS.streams[t2] = e, e;
  }, closeStream(e) {
    FS.streams[e] = null;
  }, dupStream(e, t2 = -1) {
    var r3 = FS.createStream(e, t2);
    return r3.stream_ops?.dup?.(r3), r3;
  }, doSetAttr(e, t2, r3) {
    var _3 = e?.stream_ops.setattr, n3 = _3 ? e : t2;
    _3 ?? (_3 = t2.node_ops.setattr), FS.checkOpExists(_3, 63);
    try {
      _3(n3, r3);
    } catch (a3) {
      throw a3 instanceof RangeError ? new FS.ErrnoError(22) : a3;
    }
  }, chrdev_stream_ops: { open(e) {
    var t2 = FS.getDevice(e.node.rdev);
    e.stream_ops = t2.stream_ops, e.stream_ops.open?.(e);
  }, llseek() {
    throw new FS.ErrnoError(70);
  } }, major: (e) => e >> 8, minor: (e) => e & 255, makedev: (e, t2) => e << 8 | t2, registerDevice(e, t2) {
    FS.devices[e] = { stream_ops: t2 };
  }, getDevice: (e) => FS.devices[e], getMounts(e) {
    for (var t2 = [], r3 = [e]; r3.length; ) {
      var _3 = r3.pop();
      t2.push(_3), r3.push(..._3.mounts);
    }
    return t2;
  }, syncfs(e, t2) {
    typeof e == "function" && (t2 = e, e = false), FS.syncFSRequests++, FS.syncFSRequests > 1 && err(`warning: ${FS.syncFSRequests} FS.syncfs operations in flight at once, probably just doing extra work`);
    var r3 = FS.getMounts(FS.root.mount), _3 = 0;
    function n3(l2) {
      return FS.syncFSRequests--, t2(l2);
    }
    function a3(l2) {
      if (l2) return a3.errored ? void 0 : (a3.errored = true, n3(l2));
      ++_3 >= r3.length && n3(null);
    }
    for (var i2 of r3) i2.type.syncfs ? i2.type.syncfs(i2, e, a3) : a3(null);
  }, mount(e, t2, r3) {
    var _3 = r3 === "/", n3 = !r3, a3;
    if (_3 && FS.root) throw new FS.ErrnoError(10);
    if (!_3 && !n3) {
      var i2 = FS.lookupPath(r3, { follow_mount: false });
      if (r3 = i2.path, a3 = i2.node, FS.isMountpoint(a3)) throw new FS.ErrnoError(10);
      if (!FS.isDir(a3.mode)) throw new FS.ErrnoError(54);
    }
    var l2 = { type: e, opts: t2, mountpoint: r3, mounts: [] }, o5 = e.mount(l2);
    return o5.mount = l2, l2.root = o5, _3 ? FS.root = o5 : a3 && (a3.mounted = l2, a3.mount && a3.mount.mounts.push(l2)), o5;
  }, unmount(e) {
    var t2 = FS.lookupPath(e, { follow_mount: false });
    if (!FS.isMountpoint(t2.node)) throw new FS.ErrnoError(28);
    var r3 = t2.node, _3 = r3.mounted, n3 = FS.getMounts(_3);
    for (var [a3, i2] of Object.entries(FS.nameTable)) for (; i2; ) {
      var l2 = i2.name_next;
      n3.includes(i2.mount) && FS.destroyNode(i2), i2 = l2;
    }
    r3.mounted = null;
    var o5 = r3.mount.mounts.indexOf(_3);
    r3.mount.mounts.splice(o5, 1);
  }, lookup(e, t2) {
    return e.node_ops.lookup(e, t2);
  }, mknod(e, t2, r3) {
    var _3 = FS.lookupPath(e, { parent: true }), n3 = _3.node, a3 = PATH.basename(e);
    if (!a3) throw new FS.ErrnoError(28);
    if (a3 === "." || a3 === "..") throw new FS.ErrnoError(20);
    var i2 = FS.mayCreate(n3, a3);
    if (i2) throw new FS.ErrnoError(i2);
    if (!n3.node_ops.mknod) throw new FS.ErrnoError(63);
    return n3.node_ops.mknod(n3, a3, t2, r3);
  }, statfs(e) {
    return FS.statfsNode(FS.lookupPath(e, { follow: true }).node);
  }, statfsStream(e) {
    return FS.statfsNode(e.node);
  }, statfsNode(e) {
    var t2 = { bsize: 4096, frsize: 4096, blocks: 1e6, bfree: 5e5, bavail: 5e5, files: FS.nextInode, ffree: FS.nextInode - 1, fsid: 42, flags: 2, namelen: 255 };
    return e.node_ops.statfs && Object.assign(t2, e.node_ops.statfs(e.mount.opts.root)), t2;
  }, create(e, t2 = 438) {
    return t2 &= 4095, t2 |= 32768, FS.mknod(e, t2, 0);
  }, mkdir(e, t2 = 511) {
    return t2 &= 1023, t2 |= 16384, FS.mknod(e, t2, 0);
  }, mkdirTree(e, t2 = 511) {
    var r3 = e.split("/"), _3 = "";
    for (var n3 of r3) if (n3) {
      (_3 || PATH.isAbs(e)) && (_3 += "/"), _3 += n3;
      try {
        FS.mkdir(_3, t2);
      } catch (a3) {
        if (a3.errno != 20) throw a3;
      }
    }
  }, mkdev(e, t2, r3) {
    return typeof r3 > "u" && (r3 = t2, t2 = 438), t2 |= 8192, FS.mknod(e, t2, r3);
  }, symlink(e, t2) {
    if (!PATH_FS.resolve(e)) throw new FS.ErrnoError(44);
    var r3 = FS.lookupPath(t2, { parent: true }), _3 = r3.node;
    if (!_3) throw new FS.ErrnoError(44);
    var n3 = PATH.basename(t2), a3 = FS.mayCreate(_3, n3);
    if (a3) throw new FS.ErrnoError(a3);
    if (!_3.node_ops.symlink) throw new FS.ErrnoError(63);
    return _3.node_ops.symlink(_3, n3, e);
  }, link(e, t2, r3) {
    var _3 = FS.lookupPath(t2, { parent: true }), n3 = _3.node;
    if (!n3) throw new FS.ErrnoError(44);
    var a3 = PATH.basename(t2), i2 = FS.mayCreate(n3, a3);
    if (i2) throw new FS.ErrnoError(i2);
    if (!n3.node_ops.link) throw new FS.ErrnoError(34);
    return n3.node_ops.link(n3, a3, e, r3);
  }, rename(e, t2) {
    var r3 = PATH.dirname(e), _3 = PATH.dirname(t2), n3 = PATH.basename(e), a3 = PATH.basename(t2), i2, l2, o5;
    if (i2 = FS.lookupPath(e, { parent: true }), l2 = i2.node, i2 = FS.lookupPath(t2, { parent: true }), o5 = i2.node, !l2 || !o5) throw new FS.ErrnoError(44);
    if (l2.mount !== o5.mount) throw new FS.ErrnoError(75);
    var s4 = FS.lookupNode(l2, n3), c4 = PATH_FS.relative(e, _3);
    if (c4.charAt(0) !== ".") throw new FS.ErrnoError(28);
    if (c4 = PATH_FS.relative(t2, r3), c4.charAt(0) !== ".") throw new FS.ErrnoError(55);
    var p5;
    try {
      p5 = FS.lookupNode(o5, a3);
    } catch {
    }
    if (s4 !== p5) {
      var d5 = FS.isDir(s4.mode), u3 = FS.mayDelete(l2, n3, d5);
      if (u3) throw new FS.ErrnoError(u3);
      if (u3 = p5 ? FS.mayDelete(o5, a3, d5) : FS.mayCreate(o5, a3), u3) throw new FS.ErrnoError(u3);
      if (!l2.node_ops.rename) throw new FS.ErrnoError(63);
      if (FS.isMountpoint(s4) || p5 && FS.isMountpoint(p5)) throw new FS.ErrnoError(10);
      if (o5 !== l2 && (u3 = FS.nodePermissions(l2, "w"), u3)) throw new FS.ErrnoError(u3);
      FS.hashRemoveNode(s4);
      try {
        l2.node_ops.rename(s4, o5, a3), p5 && FS.hashRemoveNode(p5), s4.parent = o5;
      } catch (f5) {
        throw f5;
      } finally {
        FS.hashAddNode(s4);
      }
    }
  }, rmdir(e) {
    var t2 = FS.lookupPath(e, { parent: true }), r3 = t2.node, _3 = PATH.basename(e), n3 = FS.lookupNode(r3, _3), a3 = FS.mayDelete(r3, _3, true);
    if (a3) throw new FS.ErrnoError(a3);
    if (!r3.node_ops.rmdir) throw new FS.ErrnoError(63);
    if (FS.isMountpoint(n3)) throw new FS.ErrnoError(10);
    r3.node_ops.rmdir(r3, _3), FS.destroyNode(n3);
  }, readdir(e) {
    var t2 = FS.lookupPath(e, { follow: true }), r3 = t2.node, _3 = FS.checkOpExists(r3.node_ops.readdir, 54);
    return _3(r3);
  }, unlink(e) {
    var t2 = FS.lookupPath(e, { parent: true }), r3 = t2.node;
    if (!r3) throw new FS.ErrnoError(44);
    var _3 = PATH.basename(e), n3 = FS.lookupNode(r3, _3), a3 = FS.mayDelete(r3, _3, false);
    if (a3) throw new FS.ErrnoError(a3);
    if (!r3.node_ops.unlink) throw new FS.ErrnoError(63);
    if (FS.isMountpoint(n3)) throw new FS.ErrnoError(10);
    r3.node_ops.unlink(r3, _3), FS.destroyNode(n3);
  }, readlink(e) {
    var t2 = FS.lookupPath(e), r3 = t2.node;
    if (!r3) throw new FS.ErrnoError(44);
    if (!r3.node_ops.readlink) throw new FS.ErrnoError(28);
    return r3.node_ops.readlink(r3);
  }, stat(e, t2 = false) {
    var r3 = FS.lookupPath(e, { follow: !t2 }), _3 = r3.node, n3 = FS.checkOpExists(_3.node_ops.getattr, 63);
    return n3(_3);
  }, fstat(e) {
    var t2 = FS.getStreamChecked(e), r3 = t2.node, _3 = t2.stream_ops.getattr, n3 = _3 ? t2 : r3;
    return _3 ?? (_3 = r3.node_ops.getattr), FS.checkOpExists(_3, 63), _3(n3);
  }, lstat(e) {
    return FS.stat(e, true);
  }, doChmod(e, t2, r3, _3 = false) {
    FS.doSetAttr(e, t2, { mode: r3 & 4095 | t2.mode & -4096, ctime: Date.now(), dontFollow: _3 });
  }, chmod(e, t2, r3 = false) {
    var _3;
    if (typeof e == "string") {
      var n3 = FS.lookupPath(e, { follow: !r3 });
      _3 = n3.node;
    } else _3 = e;
    FS.doChmod(null, _3, t2, r3);
  }, lchmod(e, t2) {
    FS.chmod(e, t2, true);
  }, fchmod(e, t2) {
    var r3 = FS.getStreamChecked(e);
    FS.doChmod(r3, r3.node, t2, false);
  }, doChown(e, t2, r3 = false) {
    FS.doSetAttr(e, t2, { timestamp: Date.now(), dontFollow: r3 });
  }, chown(e, t2, r3, _3 = false) {
    var n3;
    if (typeof e == "string") {
      var a3 = FS.lookupPath(e, { follow: !_3 });
      n3 = a3.node;
    } else n3 = e;
    FS.doChown(null, n3, _3);
  }, lchown(e, t2, r3) {
    FS.chown(e, t2, r3, true);
  }, fchown(e, t2, r3) {
    var _3 = FS.getStreamChecked(e);
    FS.doChown(_3, _3.node, false);
  }, doTruncate(e, t2, r3) {
    if (FS.isDir(t2.mode)) throw new FS.ErrnoError(31);
    if (!FS.isFile(t2.mode)) throw new FS.ErrnoError(28);
    var _3 = FS.nodePermissions(t2, "w");
    if (_3) throw new FS.ErrnoError(_3);
    FS.doSetAttr(e, t2, { size: r3, timestamp: Date.now() });
  }, truncate(e, t2) {
    if (t2 < 0) throw new FS.ErrnoError(28);
    var r3;
    if (typeof e == "string") {
      var _3 = FS.lookupPath(e, { follow: true });
      r3 = _3.node;
    } else r3 = e;
    FS.doTruncate(null, r3, t2);
  }, ftruncate(e, t2) {
    var r3 = FS.getStreamChecked(e);
    if (t2 < 0 || (r3.flags & 2097155) === 0) throw new FS.ErrnoError(28);
    FS.doTruncate(r3, r3.node, t2);
  }, utime(e, t2, r3, _3 = false) {
    var n3 = FS.lookupPath(e, { follow: !_3 });
    FS.doSetAttr(null, n3.node, { atime: t2, mtime: r3, dontFollow: _3 });
  }, open(e, t2, r3 = 438) {
    if (e === "") throw new FS.ErrnoError(44);
    t2 = FS_modeStringToFlags(t2), t2 & 64 ? r3 = r3 & 4095 | 32768 : r3 = 0;
    var _3, n3;
    if (typeof e == "object") _3 = e;
    else {
      n3 = e.endsWith("/");
      var a3 = FS.lookupPath(e, { follow: !(t2 & 131072), noent_okay: true });
      _3 = a3.node, e = a3.path;
    }
    var i2 = false;
    if (t2 & 64) if (_3) {
      if (t2 & 128) throw new FS.ErrnoError(20);
    } else {
      if (n3) throw new FS.ErrnoError(31);
      _3 = FS.mknod(e, r3 | 511, 0), i2 = true;
    }
    if (!_3) throw new FS.ErrnoError(44);
    if (FS.isChrdev(_3.mode) && (t2 &= -513), t2 & 65536 && !FS.isDir(_3.mode)) throw new FS.ErrnoError(54);
    if (!i2) {
      var l2 = FS.mayOpen(_3, t2);
      if (l2) throw new FS.ErrnoError(l2);
    }
    t2 & 512 && !i2 && FS.truncate(_3, 0), t2 &= -131713;
    var o5 = FS.createStream({ node: _3, path: FS.getPath(_3), flags: t2, seekable: true, position: 0, stream_ops: _3.stream_ops, ungotten: [], error: false });
    return o5.stream_ops.open && o5.stream_ops.open(o5), i2 && FS.chmod(_3, r3 & 511), o5;
  }, close(e) {
    if (FS.isClosed(e)) throw new FS.ErrnoError(8);
    e.getdents && (e.getdents = null), e.node?.notifyListeners(32);
    try {
      e.stream_ops.close && e.stream_ops.close(e);
    } catch (t2) {
      throw t2;
    } finally {
      FS.closeStream(e.fd);
    }
    e.fd = null;
  }, isClosed(e) {
    return e.fd === null;
  }, llseek(e, t2, r3) {
    if (FS.isClosed(e)) throw new FS.ErrnoError(8);
    if (!e.seekable || !e.stream_ops.llseek) throw new FS.ErrnoError(70);
    if (r3 != 0 && r3 != 1 && r3 != 2) throw new FS.ErrnoError(28);
    return e.position = e.stream_ops.llseek(e, t2, r3), e.ungotten = [], e.position;
  }, read(e, t2, r3, _3, n3) {
    if (_3 < 0 || n3 < 0) throw new FS.ErrnoError(28);
    if (FS.isClosed(e)) throw new FS.ErrnoError(8);
    if ((e.flags & 2097155) === 1) throw new FS.ErrnoError(8);
    if (FS.isDir(e.node.mode)) throw new FS.ErrnoError(31);
    if (!e.stream_ops.read) throw new FS.ErrnoError(28);
    var a3 = typeof n3 < "u";
    if (!a3) n3 = e.position;
    else if (!e.seekable) throw new FS.ErrnoError(70);
    var i2 = e.stream_ops.read(e, t2, r3, _3, n3);
    return a3 || (e.position += i2), i2;
  }, write(e, t2, r3, _3, n3, a3) {
    if (_3 < 0 || n3 < 0) throw new FS.ErrnoError(28);
    if (FS.isClosed(e)) throw new FS.ErrnoError(8);
    if ((e.flags & 2097155) === 0) throw new FS.ErrnoError(8);
    if (FS.isDir(e.node.mode)) throw new FS.ErrnoError(31);
    if (!e.stream_ops.write) throw new FS.ErrnoError(28);
    e.seekable && e.flags & 1024 && FS.llseek(e, 0, 2);
    var i2 = typeof n3 < "u";
    if (!i2) n3 = e.position;
    else if (!e.seekable) throw new FS.ErrnoError(70);
    var l2 = e.stream_ops.write(e, t2, r3, _3, n3, a3);
    return i2 || (e.position += l2), l2;
  }, mmap(e, t2, r3, _3, n3) {
    if (_3 & 2 && !(n3 & 2) && (e.flags & 2097155) !== 2) throw new FS.ErrnoError(2);
    if ((e.flags & 2097155) === 1) throw new FS.ErrnoError(2);
    if (!e.stream_ops.mmap) throw new FS.ErrnoError(43);
    if (!t2) throw new FS.ErrnoError(28);
    return e.stream_ops.mmap(e, t2, r3, _3, n3);
  }, msync(e, t2, r3, _3, n3) {
    return e.stream_ops.msync ? e.stream_ops.msync(e, t2, r3, _3, n3) : 0;
  }, ioctl(e, t2, r3) {
    if (!e.stream_ops.ioctl) throw new FS.ErrnoError(59);
    return e.stream_ops.ioctl(e, t2, r3);
  }, readFile(e, t2 = {}) {
    t2.flags ?? (t2.flags = 0), t2.encoding ?? (t2.encoding = "binary"), t2.encoding !== "utf8" && t2.encoding !== "binary" && abort(`Invalid encoding type "${t2.encoding}"`);
    var r3 = FS.open(e, t2.flags), _3 = FS.stat(e), n3 = _3.size, a3 = new Uint8Array(n3);
    return FS.read(r3, a3, 0, n3, 0), t2.encoding === "utf8" && (a3 = UTF8ArrayToString(a3)), FS.close(r3), a3;
  }, writeFile(e, t2, r3 = {}) {
    r3.flags ?? (r3.flags = 577);
    var _3 = FS.open(e, r3.flags, r3.mode);
    t2 = FS_fileDataToTypedArray(t2), FS.write(_3, t2, 0, t2.byteLength, void 0, r3.canOwn), FS.close(_3);
  }, cwd: () => FS.currentPath, chdir(e) {
    var t2 = FS.lookupPath(e, { follow: true });
    if (t2.node === null) throw new FS.ErrnoError(44);
    if (!FS.isDir(t2.node.mode)) throw new FS.ErrnoError(54);
    var r3 = FS.nodePermissions(t2.node, "x");
    if (r3) throw new FS.ErrnoError(r3);
    FS.currentPath = t2.path;
  }, createDefaultDirectories() {
    FS.mkdir("/tmp"), FS.mkdir("/home"), FS.mkdir("/home/web_user");
  }, createDefaultDevices() {
    FS.mkdir("/dev"), FS.registerDevice(FS.makedev(1, 3), { read: () => 0, write: (_3, n3, a3, i2) => i2, llseek: () => 0 }), FS.mkdev("/dev/null", FS.makedev(1, 3)), TTY.register(FS.makedev(5, 0), TTY.default_tty_ops), TTY.register(FS.makedev(6, 0), TTY.default_tty1_ops), FS.mkdev("/dev/tty", FS.makedev(5, 0)), FS.mkdev("/dev/tty1", FS.makedev(6, 0));
    var e = new Uint8Array(1024), t2 = 0, r3 = () => (t2 || (randomFill(e), t2 = e.byteLength), e[--t2]);
    FS.createDevice("/dev", "random", r3), FS.createDevice("/dev", "urandom", r3), FS.mkdir("/dev/shm"), FS.mkdir("/dev/shm/tmp");
  }, createSpecialDirectories() {
    FS.mkdir("/proc");
    var e = FS.mkdir("/proc/self");
    FS.mkdir("/proc/self/fd"), FS.mount({ mount() {
      var t2 = FS.createNode(e, "fd", 16895, 73);
      return t2.stream_ops = { llseek: MEMFS.stream_ops.llseek }, t2.node_ops = { lookup(r3, _3) {
        var n3 = +_3, a3 = FS.getStreamChecked(n3), i2 = { parent: null, mount: { mountpoint: "fake" }, node_ops: { readlink: () => a3.path }, id: n3 + 1 };
        return i2.parent = i2, i2;
      }, readdir() {
        return Array.from(FS.streams.entries()).filter(([r3, _3]) => _3).map(([r3, _3]) => r3.toString());
      } }, t2;
    } }, {}, "/proc/self/fd");
  }, createStandardStreams(e, t2, r3) {
    e ? FS.createDevice("/dev", "stdin", e) : FS.symlink("/dev/tty", "/dev/stdin"), t2 ? FS.createDevice("/dev", "stdout", null, t2) : FS.symlink("/dev/tty", "/dev/stdout"), r3 ? FS.createDevice("/dev", "stderr", null, r3) : FS.symlink("/dev/tty1", "/dev/stderr"), FS.open("/dev/stdin", 0), FS.open("/dev/stdout", 1), FS.open("/dev/stderr", 1);
  }, staticInit() {
    FS.nameTable.length = 4096, FS.mount(MEMFS, {}, "/"), FS.createDefaultDirectories(), FS.createDefaultDevices(), FS.createSpecialDirectories();
  }, init(e, t2, r3) {
    FS.initialized = true, e ?? (e = Module.stdin), t2 ?? (t2 = Module.stdout), r3 ?? (r3 = Module.stderr), FS.createStandardStreams(e, t2, r3);
  }, quit() {
    FS.initialized = false, _fflush(0);
    for (var e of FS.streams) e && FS.close(e);
  }, analyzePath(e, t2 = false) {
    try {
      var r3 = FS.lookupPath(e, { follow: !t2 });
      e = r3.path;
    } catch {
    }
    var _3 = { isRoot: false, exists: false, error: 0, name: null, path: null, object: null, parentExists: false, parentPath: null, parentObject: null };
    try {
      r3 = FS.lookupPath(e, { parent: true }), _3.parentExists = true, _3.parentPath = r3.path, _3.parentObject = r3.node, _3.name = PATH.basename(e), r3 = FS.lookupPath(e, { follow: !t2 }), _3.exists = true, _3.path = r3.path, _3.object = r3.node, _3.name = r3.node.name, _3.isRoot = r3.path === "/";
    } catch (n3) {
      _3.error = n3.errno;
    }
    return _3;
  }, createPath(e, t2, r3, _3) {
    e = typeof e == "string" ? e : FS.getPath(e);
    for (var n3 = t2.split("/").reverse(); n3.length; ) {
      var a3 = n3.pop();
      if (a3) {
        var i2 = PATH.join2(e, a3);
        try {
          FS.mkdir(i2);
        } catch (l2) {
          if (l2.errno != 20) throw l2;
        }
        e = i2;
      }
    }
    return i2;
  }, createFile(e, t2, r3, _3, n3) {
    var a3 = PATH.join2(typeof e == "string" ? e : FS.getPath(e), t2), i2 = FS_getMode(_3, n3);
    return FS.create(a3, i2);
  }, createDataFile(e, t2, r3, _3, n3, a3) {
    var i2 = t2;
    e && (e = typeof e == "string" ? e : FS.getPath(e), i2 = t2 ? PATH.join2(e, t2) : e);
    var l2 = FS_getMode(_3, n3), o5 = FS.create(i2, l2);
    if (r3) {
      r3 = FS_fileDataToTypedArray(r3), FS.chmod(o5, l2 | 146);
      var s4 = FS.open(o5, 577);
      FS.write(s4, r3, 0, r3.length, 0, a3), FS.close(s4), FS.chmod(o5, l2);
    }
  }, createDevice(e, t2, r3, _3) {
    var l2;
    var n3 = PATH.join2(typeof e == "string" ? e : FS.getPath(e), t2), a3 = FS_getMode(!!r3, !!_3);
    (l2 = FS.createDevice).major ?? (l2.major = 64);
    var i2 = FS.makedev(FS.createDevice.major++, 0);
    return FS.registerDevice(i2, { open(o5) {
      o5.seekable = false;
    }, close(o5) {
      _3?.buffer?.length && _3(10);
    }, read(o5, s4, c4, p5, d5) {
      for (var u3 = 0, f5 = 0; f5 < p5; f5++) {
        var m7;
        try {
          m7 = r3();
        } catch {
          throw new FS.ErrnoError(29);
        }
        if (m7 === void 0 && !u3) throw new FS.ErrnoError(6);
        if (m7 == null) break;
        u3++, s4[c4 + f5] = m7;
      }
      return u3 && (o5.node.atime = Date.now()), u3;
    }, write(o5, s4, c4, p5, d5) {
      for (var u3 = 0; u3 < p5; u3++) try {
        _3(s4[c4 + u3]);
      } catch {
        throw new FS.ErrnoError(29);
      }
      return p5 && (o5.node.mtime = o5.node.ctime = Date.now()), u3;
    } }), FS.mkdev(n3, a3, i2);
  }, forceLoadFile(e) {
    if (e.isDevice || e.isFolder || e.link || e.contents) return true;
    if (globalThis.XMLHttpRequest) abort("Lazy loading should have been performed (contents set) in createLazyFile, but it was not. Lazy loading only works in web workers. Use --embed-file or --preload-file in emcc on the main thread.");
    else try {
      e.contents = readBinary(e.url);
    } catch {
      throw new FS.ErrnoError(29);
    }
  }, createLazyFile(e, t2, r3, _3, n3) {
    class a3 {
      constructor() {
        P(this, "lengthKnown", false);
        P(this, "chunks", []);
      }
      get(d5) {
        if (!(d5 > this.length - 1 || d5 < 0)) {
          var u3 = d5 % this.chunkSize, f5 = d5 / this.chunkSize | 0;
          return this.getter(f5)[u3];
        }
      }
      setDataGetter(d5) {
        this.getter = d5;
      }
      cacheLength() {
        var d5 = new XMLHttpRequest();
        d5.open("HEAD", r3, false), d5.send(null), d5.status >= 200 && d5.status < 300 || d5.status === 304 || abort(`Couldn't load ${r3}. Status: ${d5.status}`);
        var u3 = Number(d5.getResponseHeader("Content-length")), f5, m7 = (f5 = d5.getResponseHeader("Accept-Ranges")) && f5 === "bytes", y6 = (f5 = d5.getResponseHeader("Content-Encoding")) && f5 === "gzip", b4 = 1048576;
        m7 || (b4 = u3);
        var k4 = (M2, C5) => {
          M2 > C5 && abort(`invalid range (${M2}, ${C5}) or no bytes requested!`), C5 > u3 - 1 && abort(`only ${u3} bytes available! programmer error!`);
          var v5 = new XMLHttpRequest();
          return v5.open("GET", r3, false), u3 !== b4 && v5.setRequestHeader("Range", `bytes=${M2}-${C5}`), v5.responseType = "arraybuffer", v5.overrideMimeType && v5.overrideMimeType("text/plain; charset=x-user-defined"), v5.send(null), v5.status >= 200 && v5.status < 300 || v5.status === 304 || abort(`Couldn't load ${r3}. Status: ${v5.status}`), v5.response !== void 0 ? new Uint8Array(v5.response || []) : intArrayFromString(v5.responseText ?? "", true);
        }, P6 = this;
        P6.setDataGetter((M2) => {
          var C5 = M2 * b4, v5 = (M2 + 1) * b4 - 1;
          return v5 = Math.min(v5, u3 - 1), typeof P6.chunks[M2] > "u" && (P6.chunks[M2] = k4(C5, v5)), typeof P6.chunks[M2] > "u" && abort("doXHR failed!"), P6.chunks[M2];
        }), (y6 || !u3) && (b4 = u3 = 1, u3 = this.getter(0).length, b4 = u3, out("LazyFiles on gzip forces download of the whole file when length is accessed")), this._length = u3, this._chunkSize = b4, this.lengthKnown = true;
      }
      get length() {
        return this.lengthKnown || this.cacheLength(), this._length;
      }
      get chunkSize() {
        return this.lengthKnown || this.cacheLength(), this._chunkSize;
      }
    }
    if (globalThis.XMLHttpRequest) {
      ENVIRONMENT_IS_WORKER || abort("Cannot do synchronous binary XHRs outside webworkers in modern browsers. Use --embed-file or --preload-file in emcc");
      var i2 = new a3(), l2 = { isDevice: false, contents: i2 };
    } else l2 = { isDevice: false, url: r3 };
    var o5 = FS.createFile(e, t2, l2, _3, n3);
    l2.contents ? o5.contents = l2.contents : l2.url && (o5.contents = null, o5.url = l2.url), Object.defineProperties(o5, { usedBytes: { get: function() {
      return this.contents.length;
    } } });
    var s4 = {};
    for (let [p5, d5] of Object.entries(o5.stream_ops)) s4[p5] = (...u3) => (FS.forceLoadFile(o5), d5(...u3));
    function c4(p5, d5, u3, f5, m7) {
      var y6 = p5.node.contents;
      if (m7 >= y6.length) return 0;
      var b4 = Math.min(y6.length - m7, f5);
      if (y6.slice) for (var k4 = 0; k4 < b4; k4++) d5[u3 + k4] = y6[m7 + k4];
      else for (k4 = 0; k4 < b4; k4++) d5[u3 + k4] = y6.get(m7 + k4);
      return b4;
    }
    return s4.read = (p5, d5, u3, f5, m7) => (FS.forceLoadFile(o5), c4(p5, d5, u3, f5, m7)), s4.mmap = (p5, d5, u3) => {
      FS.forceLoadFile(o5);
      var f5 = mmapAlloc(d5);
      if (!f5) throw new FS.ErrnoError(48);
      return c4(p5, HEAP8, f5, d5, u3), { ptr: f5, allocated: true };
    }, o5.stream_ops = s4, o5;
  } }, findLibraryFS = (e, t2) => {
    if (runtimeInitialized) {
      if (PATH.isAbs(e)) try {
        return FS.lookupPath(e), e;
      } catch {
        return;
      }
      var r3 = (t2?.paths || []).map((_3) => replaceORIGIN(t2?.parentLibPath, _3));
      return withStackSave(() => {
        var _3 = stackAlloc(512), n3 = stringToUTF8OnStack(r3.join(":")), a3 = stringToUTF8OnStack(e), i2 = __emscripten_find_dylib(_3, n3, a3, 512);
        return i2 ? UTF8ToString(i2) : void 0;
      });
    }
  };
  function loadDynamicLibrary(e, t2 = { global: true, nodelete: true }, r3, _3) {
    var n3 = LDSO.loadedLibsByName[e];
    if (n3) return t2.global ? n3.global || (n3.global = true, mergeLibSymbols(n3.exports, e)) : r3 && Object.assign(r3, n3.exports), t2.nodelete && n3.refcount !== 1 / 0 && (n3.refcount = 1 / 0), n3.refcount++, _3 && (LDSO.loadedLibsByHandle[_3] = n3), t2.loadAsync ? Promise.resolve(true) : true;
    n3 = newDSO(e, _3, "loading"), n3.refcount = t2.nodelete ? 1 / 0 : 1, n3.global = t2.global;
    function a3() {
      if (_3) {
        var o5 = HEAPU32[_3 + 28 >> 2], s4 = HEAPU32[_3 + 32 >> 2];
        if (o5 && s4) {
          var c4 = HEAP8.slice(o5, o5 + s4);
          return t2.loadAsync ? Promise.resolve(c4) : c4;
        }
      }
      var p5 = findLibraryFS(e, t2.rpath);
      if (p5) return c4 = FS.readFile(p5, { encoding: "binary" }), t2.loadAsync ? Promise.resolve(c4) : c4;
      var d5 = locateFile(e);
      if (t2.loadAsync) return asyncLoad(d5);
      if (!readBinary) throw new Error(`${d5}: file not found, and synchronous loading of external files is not available`);
      return readBinary(d5);
    }
    function i2() {
      var o5 = preloadedWasm[e];
      return o5 ? t2.loadAsync ? Promise.resolve(o5) : o5 : t2.loadAsync ? a3().then((s4) => loadWebAssemblyModule(s4, t2, e, r3, _3)) : loadWebAssemblyModule(a3(), t2, e, r3, _3);
    }
    function l2(o5) {
      n3.global ? mergeLibSymbols(o5, e) : r3 && Object.assign(r3, o5), n3.exports = o5;
    }
    return t2.loadAsync ? i2().then((o5) => (l2(o5), true)) : (l2(i2()), true);
  }
  var reportUndefinedSymbols = () => {
    for (var [e, t2] of Object.entries(GOT)) if (t2.value == -1) {
      var r3 = resolveGlobalSymbol(e, true).sym;
      if (!r3 && !t2.required) {
        t2.value = 0;
        continue;
      }
      if (typeof r3 == "function") t2.value = addFunction(r3, r3.sig);
      else if (typeof r3 == "number") t2.value = r3;
      else if (typeof r3.value == "number") t2.value = r3;
      else throw new Error(`bad export type for '${e}': ${typeof r3} (${r3})`);
    }
  }, loadDylibs = async () => {
    if (!dynamicLibraries.length) {
      reportUndefinedSymbols();
      return;
    }
    for (var e of dynamicLibraries) await loadDynamicLibrary(e, { loadAsync: true, global: true, nodelete: true, allowUndefined: true });
    reportUndefinedSymbols();
  }, noExitRuntime = false;
  function setValue(e, t2, r3 = "i8") {
    switch (r3.endsWith("*") && (r3 = "*"), r3) {
      case "i1":
        HEAP8[e] = t2;
        break;
      case "i8":
        HEAP8[e] = t2;
        break;
      case "i16":
        HEAP16[e >> 1] = t2;
        break;
      case "i32":
        HEAP32[e >> 2] = t2;
        break;
      case "i64":
        HEAP64[e >> 3] = BigInt(t2);
        break;
      case "float":
        HEAPF32[e >> 2] = t2;
        break;
      case "double":
        HEAPF64[e >> 3] = t2;
        break;
      case "*":
        HEAPU32[e >> 2] = t2;
        break;
      default:
        abort(`invalid type for setValue: ${r3}`);
    }
  }
  var wasmMemory, ___assert_fail = (e, t2, r3, _3) => abort(`Assertion failed: ${UTF8ToString(e)}, at: ` + [t2 ? UTF8ToString(t2) : "unknown filename", r3, _3 ? UTF8ToString(_3) : "unknown function"]);
  ___assert_fail.sig = "vppip";
  var ___call_sighandler = (e, t2) => getWasmTableEntry(e)(t2);
  ___call_sighandler.sig = "vpi";
  var SOCKFS = { websocketArgs: {}, callbacks: {}, on(e, t2) {
    SOCKFS.callbacks[e] = t2;
  }, emit(e, t2) {
    SOCKFS.callbacks[e]?.(t2);
    var r3 = e === "error" ? t2[0] : t2, _3 = { message: 65, open: 4, connection: 65, close: 17, error: 8 }[e];
    _3 && FS.getStream(r3)?.node.notifyListeners(_3);
  }, mount(e) {
    return SOCKFS.websocketArgs = Module.websocket || {}, (Module.websocket ?? (Module.websocket = {})).on = SOCKFS.on, FS.createNode(null, "/", 16895, 0);
  }, createSocket(e, t2, r3) {
    if (e != 2) throw new FS.ErrnoError(5);
    if (t2 &= -526337, t2 != 1 && t2 != 2) throw new FS.ErrnoError(28);
    var _3 = t2 == 1;
    if (_3 && r3 && r3 != 6) throw new FS.ErrnoError(66);
    var n3 = { family: e, type: t2, protocol: r3, server: null, error: null, peers: {}, pending: [], recv_queue: [], sock_ops: SOCKFS.websocket_sock_ops }, a3 = SOCKFS.nextname(), i2 = FS.createNode(SOCKFS.root, a3, 49152, 0);
    i2.sock = n3;
    var l2 = FS.createStream({ path: a3, node: i2, flags: 2, seekable: false, stream_ops: SOCKFS.stream_ops });
    return n3.stream = l2, n3;
  }, getSocket(e) {
    var t2 = FS.getStream(e);
    return !t2 || !FS.isSocket(t2.node.mode) ? null : t2.node.sock;
  }, stream_ops: { getattr(e) {
    var t2 = e.node;
    return { dev: 1, ino: t2.id, mode: 49663, nlink: 1, uid: 0, gid: 0, rdev: 0, size: 0, atime: /* @__PURE__ */ new Date(0), mtime: /* @__PURE__ */ new Date(0), ctime: /* @__PURE__ */ new Date(0), blksize: 4096, blocks: 0 };
  }, poll(e) {
    var t2 = e.node.sock;
    return t2.sock_ops.poll(t2);
  }, ioctl(e, t2, r3) {
    var _3 = e.node.sock;
    return _3.sock_ops.ioctl(_3, t2, r3);
  }, read(e, t2, r3, _3, n3) {
    var a3 = e.node.sock, i2 = a3.sock_ops.recvmsg(a3, _3);
    return i2 ? (t2.set(i2.buffer, r3), i2.buffer.length) : 0;
  }, write(e, t2, r3, _3, n3) {
    var a3 = e.node.sock;
    return a3.sock_ops.sendmsg(a3, t2, r3, _3);
  }, close(e) {
    var t2 = e.node.sock;
    t2.sock_ops.close(t2);
  } }, nextname() {
    return SOCKFS.nextname.current || (SOCKFS.nextname.current = 0), `socket[${SOCKFS.nextname.current++}]`;
  }, websocket_sock_ops: { createPeer(e, t2, r3) {
    var _3;
    if (typeof t2 == "object" && (_3 = t2, t2 = null, r3 = null), _3) if (_3._socket) t2 = _3._socket.remoteAddress, r3 = _3._socket.remotePort;
    else {
      var n3 = /ws[s]?:\/\/([^:]+):(\d+)/.exec(_3.url);
      if (!n3) throw new Error("WebSocket URL must be in the format ws(s)://address:port");
      t2 = n3[1], r3 = parseInt(n3[2], 10);
    }
    else try {
      var a3 = "ws://".replace("#", "//"), i2 = "binary", l2 = void 0;
      if (SOCKFS.websocketArgs.url && (a3 = SOCKFS.websocketArgs.url), SOCKFS.websocketArgs.subprotocol ? i2 = SOCKFS.websocketArgs.subprotocol : SOCKFS.websocketArgs.subprotocol === null && (i2 = "null"), a3 === "ws://" || a3 === "wss://") {
        var o5 = t2.split("/");
        a3 = a3 + o5[0] + ":" + r3 + "/" + o5.slice(1).join("/");
      }
      i2 !== "null" && (i2 = i2.replace(/^ +| +$/g, "").split(/ *, */), l2 = i2);
      var s4;
      ENVIRONMENT_IS_NODE ? s4 = require("ws") : s4 = WebSocket, _3 = new s4(a3, l2), _3.binaryType = "arraybuffer";
    } catch {
      throw new FS.ErrnoError(23);
    }
    var c4 = { addr: t2, port: r3, socket: _3, msg_send_queue: [] };
    return SOCKFS.websocket_sock_ops.addPeer(e, c4), SOCKFS.websocket_sock_ops.handlePeerEvents(e, c4), e.type === 2 && typeof e.sport < "u" && c4.msg_send_queue.push(new Uint8Array([255, 255, 255, 255, 112, 111, 114, 116, (e.sport & 65280) >> 8, e.sport & 255])), c4;
  }, getPeer(e, t2, r3) {
    return e.peers[t2 + ":" + r3];
  }, addPeer(e, t2) {
    e.peers[t2.addr + ":" + t2.port] = t2;
  }, removePeer(e, t2) {
    delete e.peers[t2.addr + ":" + t2.port];
  }, handlePeerEvents(e, t2) {
    var r3 = true;
    function _3() {
      e.connecting = false, SOCKFS.emit("open", e.stream.fd);
      try {
        for (var a3 = t2.msg_send_queue.shift(); a3; ) t2.socket.send(a3), a3 = t2.msg_send_queue.shift();
      } catch {
        t2.socket.close();
      }
    }
    function n3(a3) {
      if (typeof a3 == "string") {
        var i2 = new TextEncoder();
        a3 = i2.encode(a3);
      } else {
        if (a3.byteLength == 0) return;
        a3 = new Uint8Array(a3);
      }
      var l2 = r3;
      if (r3 = false, l2 && a3.length === 10 && a3[0] === 255 && a3[1] === 255 && a3[2] === 255 && a3[3] === 255 && a3[4] === 112 && a3[5] === 111 && a3[6] === 114 && a3[7] === 116) {
        var o5 = a3[8] << 8 | a3[9];
        SOCKFS.websocket_sock_ops.removePeer(e, t2), t2.port = o5, SOCKFS.websocket_sock_ops.addPeer(e, t2);
        return;
      }
      e.recv_queue.push({ addr: t2.addr, port: t2.port, data: a3 }), SOCKFS.emit("message", e.stream.fd);
    }
    if (ENVIRONMENT_IS_NODE) {
      t2.socket.on("open", _3), t2.socket.on("message", (a3, i2) => {
        i2 && n3(new Uint8Array(a3).buffer);
      }), t2.socket.on("close", () => SOCKFS.emit("close", e.stream.fd)), t2.socket.on("error", () => {
        e.error = 14, SOCKFS.emit("error", [e.stream.fd, e.error, "ECONNREFUSED: Connection refused"]);
      });
      return;
    }
    t2.socket.onopen = _3, t2.socket.onclose = () => SOCKFS.emit("close", e.stream.fd), t2.socket.onmessage = (a3) => n3(a3.data), t2.socket.onerror = () => {
      e.error = 14, SOCKFS.emit("error", [e.stream.fd, e.error, "ECONNREFUSED: Connection refused"]);
    };
  }, poll(e) {
    if (e.type === 1 && (e.server || e.listening)) return e.error ? 8 : e.server ? e.pending.length ? 65 : 0 : 16;
    var t2 = 0;
    e.error && (t2 |= 8);
    var r3 = e.type === 1 ? SOCKFS.websocket_sock_ops.getPeer(e, e.daddr, e.dport) : null;
    return (e.recv_queue.length || !r3 || r3 && r3.socket.readyState === r3.socket.CLOSING || r3 && r3.socket.readyState === r3.socket.CLOSED) && (t2 |= 65), (!r3 || r3 && r3.socket.readyState === r3.socket.OPEN) && (t2 |= 4), (r3 && r3.socket.readyState === r3.socket.CLOSING || r3 && r3.socket.readyState === r3.socket.CLOSED) && (e.connecting ? t2 |= 4 : t2 |= 8208), t2;
  }, ioctl(e, t2, r3) {
    switch (t2) {
      case 21531:
        var _3 = 0;
        return e.recv_queue.length && (_3 = e.recv_queue[0].data.length), HEAP32[r3 >> 2] = _3, 0;
      case 21537:
        var n3 = HEAP32[r3 >> 2];
        return n3 ? e.stream.flags |= 2048 : e.stream.flags &= -2049, 0;
      default:
        return 28;
    }
  }, close(e) {
    if (e.listening = false, e.server) {
      try {
        e.server.close();
      } catch {
      }
      e.server = null;
    }
    for (var t2 of Object.values(e.peers)) {
      try {
        t2.socket.close();
      } catch {
      }
      SOCKFS.websocket_sock_ops.removePeer(e, t2);
    }
    return 0;
  }, bind(e, t2, r3) {
    if (typeof e.saddr < "u" || typeof e.sport < "u") throw new FS.ErrnoError(28);
    if (e.saddr = t2, e.sport = r3, e.type === 2) {
      e.server && (e.server.close(), e.server = null);
      try {
        e.sock_ops.listen(e, 0);
      } catch (_3) {
        if (_3.name !== "ErrnoError" || _3.errno !== 138) throw _3;
      }
    }
  }, connect(e, t2, r3) {
    if (e.server) throw new FS.ErrnoError(138);
    if (typeof e.daddr < "u" && typeof e.dport < "u") {
      var _3 = SOCKFS.websocket_sock_ops.getPeer(e, e.daddr, e.dport);
      if (_3) throw _3.socket.readyState === _3.socket.CONNECTING ? new FS.ErrnoError(7) : new FS.ErrnoError(30);
    }
    var n3 = SOCKFS.websocket_sock_ops.createPeer(e, t2, r3);
    e.daddr = n3.addr, e.dport = n3.port, e.connecting = true;
  }, listen(e, t2) {
    if (!ENVIRONMENT_IS_NODE) throw new FS.ErrnoError(138);
    if (e.server || e.listening) throw new FS.ErrnoError(28);
    var r3 = require("ws").Server, _3 = e.saddr;
    e.server = new r3({ host: _3, port: e.sport }), e.listening = true, SOCKFS.emit("listen", e.stream.fd), e.server.on("connection", (n3) => {
      if (e.type === 1) {
        var a3 = SOCKFS.createSocket(e.family, e.type, e.protocol), i2 = SOCKFS.websocket_sock_ops.createPeer(a3, n3);
        a3.daddr = i2.addr, a3.dport = i2.port, e.pending.push(a3), SOCKFS.emit("connection", a3.stream.fd), e.stream.node.notifyListeners(65);
      } else SOCKFS.websocket_sock_ops.createPeer(e, n3), SOCKFS.emit("connection", e.stream.fd);
    }), e.server.on("close", () => {
      SOCKFS.emit("close", e.stream.fd), e.server = null;
    }), e.server.on("error", (n3) => {
      if (e.error = n3.code && ERRNO_CODES[n3.code] || 29, SOCKFS.emit("error", [e.stream.fd, e.error, n3.message || n3.code || "Server error"]), e.server) {
        try {
          e.server.close();
        } catch {
        }
        e.server = null;
      }
    });
  }, accept(e) {
    if (e.error) {
      var t2 = e.error;
      throw e.error = null, new FS.ErrnoError(t2);
    }
    if (!e.server || !e.pending.length) throw new FS.ErrnoError(28);
    var r3 = e.pending.shift();
    return r3.stream.flags = e.stream.flags, r3;
  }, getname(e, t2) {
    var r3, _3;
    if (t2) {
      if (e.daddr === void 0 || e.dport === void 0) throw new FS.ErrnoError(53);
      r3 = e.daddr, _3 = e.dport;
    } else r3 = e.saddr || 0, _3 = e.sport || 0;
    return { addr: r3, port: _3 };
  }, sendmsg(e, t2, r3, _3, n3, a3) {
    if (e.type === 2) {
      if ((n3 === void 0 || a3 === void 0) && (n3 = e.daddr, a3 = e.dport), n3 === void 0 || a3 === void 0) throw new FS.ErrnoError(17);
    } else n3 = e.daddr, a3 = e.dport;
    var i2 = SOCKFS.websocket_sock_ops.getPeer(e, n3, a3);
    if (e.type === 1 && (!i2 || i2.socket.readyState === i2.socket.CLOSING || i2.socket.readyState === i2.socket.CLOSED)) throw new FS.ErrnoError(53);
    ArrayBuffer.isView(t2) && (r3 += t2.byteOffset, t2 = t2.buffer);
    var l2 = t2.slice(r3, r3 + _3);
    if (!i2 || i2.socket.readyState !== i2.socket.OPEN) return e.type === 2 && (!i2 || i2.socket.readyState === i2.socket.CLOSING || i2.socket.readyState === i2.socket.CLOSED) && (i2 = SOCKFS.websocket_sock_ops.createPeer(e, n3, a3)), i2.msg_send_queue.push(l2), _3;
    try {
      return i2.socket.send(l2), _3;
    } catch {
      throw new FS.ErrnoError(28);
    }
  }, recvmsg(e, t2, r3) {
    if (e.type === 1 && e.server) throw new FS.ErrnoError(53);
    var _3 = r3 & 2, n3 = e.recv_queue[0];
    if (!n3) {
      if (e.type === 1) {
        var a3 = SOCKFS.websocket_sock_ops.getPeer(e, e.daddr, e.dport);
        if (!a3) throw new FS.ErrnoError(53);
        if (a3.socket.readyState === a3.socket.CLOSING || a3.socket.readyState === a3.socket.CLOSED) return null;
        throw new FS.ErrnoError(6);
      }
      throw new FS.ErrnoError(6);
    }
    var i2 = n3.data.byteLength || n3.data.length, l2 = n3.data.byteOffset || 0, o5 = n3.data.buffer || n3.data, s4 = Math.min(t2, i2), c4 = { buffer: new Uint8Array(o5, l2, s4), addr: n3.addr, port: n3.port };
    if (_3) return c4;
    if (e.recv_queue.shift(), e.type === 1 && s4 < i2) {
      var p5 = i2 - s4;
      n3.data = new Uint8Array(o5, l2 + s4, p5), e.recv_queue.unshift(n3);
    }
    return c4;
  } } }, getSocketFromFD = (e) => {
    var t2 = SOCKFS.getSocket(e);
    if (!t2) throw new FS.ErrnoError(8);
    return t2;
  }, inetPton4 = (e) => {
    for (var t2 = e.split("."), r3 = 0; r3 < 4; r3++) {
      var _3 = Number(t2[r3]);
      if (isNaN(_3)) return null;
      t2[r3] = _3;
    }
    return (t2[0] | t2[1] << 8 | t2[2] << 16 | t2[3] << 24) >>> 0;
  }, inetPton6 = (e) => {
    var t2, r3, _3, n3, a3 = [];
    if (!/^((?=.*::)(?!.*::.+::)(::)?([\dA-F]{1,4}:(:|\b)|){5}|([\dA-F]{1,4}:){6})((([\dA-F]{1,4}((?!\3)::|:\b|$))|(?!\2\3)){2}|(((2[0-4]|1\d|[1-9])?\d|25[0-5])\.?\b){4})$/i.test(e)) return null;
    if (e === "::") return [0, 0, 0, 0, 0, 0, 0, 0];
    for (e.startsWith("::") ? e = e.replace("::", "Z:") : e = e.replace("::", ":Z:"), e.indexOf(".") > 0 ? (e = e.replace(new RegExp("[.]", "g"), ":"), t2 = e.split(":"), t2[t2.length - 4] = Number(t2[t2.length - 4]) + Number(t2[t2.length - 3]) * 256, t2[t2.length - 3] = Number(t2[t2.length - 2]) + Number(t2[t2.length - 1]) * 256, t2 = t2.slice(0, t2.length - 2)) : t2 = e.split(":"), _3 = 0, n3 = 0, r3 = 0; r3 < t2.length; r3++) if (typeof t2[r3] == "string") if (t2[r3] === "Z") {
      for (n3 = 0; n3 < 8 - t2.length + 1; n3++) a3[r3 + n3] = 0;
      _3 = n3 - 1;
    } else a3[r3 + _3] = _htons(parseInt(t2[r3], 16));
    else a3[r3 + _3] = t2[r3];
    return [a3[1] << 16 | a3[0], a3[3] << 16 | a3[2], a3[5] << 16 | a3[4], a3[7] << 16 | a3[6]];
  }, DNS = { address_map: { id: 1, addrs: {}, names: {} }, lookup_name(e) {
    var t2 = inetPton4(e);
    if (t2 !== null || (t2 = inetPton6(e), t2 !== null)) return e;
    var r3;
    if (DNS.address_map.addrs[e]) r3 = DNS.address_map.addrs[e];
    else {
      var _3 = DNS.address_map.id++;
      r3 = "172.29." + (_3 & 255) + "." + (_3 & 65280), DNS.address_map.names[r3] = e, DNS.address_map.addrs[e] = r3;
    }
    return r3;
  }, lookup_addr(e) {
    return DNS.address_map.names[e] ? DNS.address_map.names[e] : null;
  } }, writeSockaddr = (e, t2, r3, _3, n3) => {
    switch (t2) {
      case 2:
        r3 = inetPton4(DNS.lookup_name(r3)), zeroMemory(e, 16), n3 && (HEAP32[n3 >> 2] = 16), HEAP16[e >> 1] = t2, HEAP32[e + 4 >> 2] = r3, HEAP16[e + 2 >> 1] = _htons(_3);
        break;
      case 10:
        r3 = inetPton6(DNS.lookup_name(r3)), zeroMemory(e, 28), n3 && (HEAP32[n3 >> 2] = 28), HEAP32[e >> 2] = t2, HEAP32[e + 8 >> 2] = r3[0], HEAP32[e + 12 >> 2] = r3[1], HEAP32[e + 16 >> 2] = r3[2], HEAP32[e + 20 >> 2] = r3[3], HEAP16[e + 2 >> 1] = _htons(_3);
        break;
      default:
        return 5;
    }
    return 0;
  };
  function ___syscall_accept4(e, t2, r3) {
    try {
      var _3 = getSocketFromFD(e), n3 = _3.sock_ops.accept(_3);
      return t2 && writeSockaddr(t2, n3.family, n3.daddr, n3.dport, r3), n3.stream.fd;
    } catch (a3) {
      if (typeof FS > "u" || a3.name !== "ErrnoError") throw a3;
      return -a3.errno;
    }
  }
  ___syscall_accept4.sig = "iippiii";
  var inetNtop4 = (e) => (e & 255) + "." + (e >> 8 & 255) + "." + (e >> 16 & 255) + "." + (e >> 24 & 255), inetNtop6 = (e) => {
    var t2 = "", r3 = 0, _3 = 0, n3 = 0, a3 = 0, i2 = 0, l2 = 0, o5 = [e[0] & 65535, e[0] >> 16, e[1] & 65535, e[1] >> 16, e[2] & 65535, e[2] >> 16, e[3] & 65535, e[3] >> 16], s4 = true, c4 = "";
    for (l2 = 0; l2 < 5; l2++) if (o5[l2]) {
      s4 = false;
      break;
    }
    if (s4) {
      if (c4 = inetNtop4(o5[6] | o5[7] << 16), o5[5] === -1) return t2 = "::ffff:", t2 += c4, t2;
      if (!o5[5]) return t2 = "::", c4 === "0.0.0.0" && (c4 = ""), c4 === "0.0.0.1" && (c4 = "1"), t2 += c4, t2;
    }
    for (r3 = 0; r3 < 8; r3++) o5[r3] || (r3 - n3 > 1 && (i2 = 0), n3 = r3, i2++), i2 > _3 && (_3 = i2, a3 = r3 - _3 + 1);
    for (r3 = 0; r3 < 8; r3++) {
      if (_3 > 1 && !o5[r3] && r3 >= a3 && r3 < a3 + _3) {
        r3 === a3 && (t2 += ":", a3 || (t2 += ":"));
        continue;
      }
      t2 += Number(_ntohs(o5[r3] & 65535)).toString(16), t2 += r3 < 7 ? ":" : "";
    }
    return t2;
  }, readSockaddr = (e, t2) => {
    var r3 = HEAP16[e >> 1], _3 = _ntohs(HEAPU16[e + 2 >> 1]), n3;
    switch (r3) {
      case 2:
        if (t2 !== 16) return { errno: 28 };
        n3 = HEAP32[e + 4 >> 2], n3 = inetNtop4(n3);
        break;
      case 10:
        if (t2 !== 28) return { errno: 28 };
        n3 = [HEAP32[e + 8 >> 2], HEAP32[e + 12 >> 2], HEAP32[e + 16 >> 2], HEAP32[e + 20 >> 2]], n3 = inetNtop6(n3);
        break;
      default:
        return { errno: 5 };
    }
    return { family: r3, addr: n3, port: _3 };
  }, getSocketAddress = (e, t2) => {
    var r3 = readSockaddr(e, t2);
    if (r3.errno) throw new FS.ErrnoError(r3.errno);
    return r3.addr = DNS.lookup_addr(r3.addr) || r3.addr, r3;
  };
  function ___syscall_bind(e, t2, r3) {
    try {
      var _3 = getSocketFromFD(e), n3 = getSocketAddress(t2, r3);
      return _3.sock_ops.bind(_3, n3.addr, n3.port), 0;
    } catch (a3) {
      if (typeof FS > "u" || a3.name !== "ErrnoError") throw a3;
      return -a3.errno;
    }
  }
  ___syscall_bind.sig = "iipiiii";
  var SYSCALLS = { currentUmask: 18, calculateAt(e, t2, r3 = false) {
    if (PATH.isAbs(t2)) return t2;
    var _3;
    if (e === -100) _3 = FS.cwd();
    else {
      var n3 = SYSCALLS.getStreamFromFD(e);
      _3 = n3.path;
    }
    if (t2.length == 0) {
      if (!r3) throw new FS.ErrnoError(44);
      return _3;
    }
    return _3 + "/" + t2;
  }, writeStat(e, t2) {
    HEAPU32[e >> 2] = t2.dev, HEAPU32[e + 4 >> 2] = t2.mode, HEAPU32[e + 8 >> 2] = t2.nlink, HEAPU32[e + 12 >> 2] = t2.uid, HEAPU32[e + 16 >> 2] = t2.gid, HEAPU32[e + 20 >> 2] = t2.rdev, HEAP64[e + 24 >> 3] = BigInt(t2.size), HEAP32[e + 32 >> 2] = 4096, HEAP32[e + 36 >> 2] = t2.blocks;
    var r3 = t2.atime.getTime(), _3 = t2.mtime.getTime(), n3 = t2.ctime.getTime();
    return HEAP64[e + 40 >> 3] = BigInt(Math.floor(r3 / 1e3)), HEAPU32[e + 48 >> 2] = r3 % 1e3 * 1e3 * 1e3, HEAP64[e + 56 >> 3] = BigInt(Math.floor(_3 / 1e3)), HEAPU32[e + 64 >> 2] = _3 % 1e3 * 1e3 * 1e3, HEAP64[e + 72 >> 3] = BigInt(Math.floor(n3 / 1e3)), HEAPU32[e + 80 >> 2] = n3 % 1e3 * 1e3 * 1e3, HEAP64[e + 88 >> 3] = BigInt(t2.ino), 0;
  }, writeStatFs(e, t2) {
    HEAPU32[e + 4 >> 2] = t2.bsize, HEAPU32[e + 60 >> 2] = t2.bsize, HEAP64[e + 8 >> 3] = BigInt(t2.blocks), HEAP64[e + 16 >> 3] = BigInt(t2.bfree), HEAP64[e + 24 >> 3] = BigInt(t2.bavail), HEAP64[e + 32 >> 3] = BigInt(t2.files), HEAP64[e + 40 >> 3] = BigInt(t2.ffree), HEAPU32[e + 48 >> 2] = t2.fsid, HEAPU32[e + 64 >> 2] = t2.flags, HEAPU32[e + 56 >> 2] = t2.namelen;
  }, doMsync(e, t2, r3, _3, n3) {
    if (!FS.isFile(t2.node.mode)) throw new FS.ErrnoError(43);
    if (_3 & 2) return 0;
    var a3 = HEAPU8.subarray(e, e + r3);
    FS.msync(t2, a3, n3, r3, _3);
  }, getStreamFromFD(e) {
    var t2 = FS.getStreamChecked(e);
    return t2;
  }, varargs: void 0, getStr(e) {
    var t2 = UTF8ToString(e);
    return t2;
  } };
  function ___syscall_chdir(e) {
    try {
      return e = SYSCALLS.getStr(e), FS.chdir(e), 0;
    } catch (t2) {
      if (typeof FS > "u" || t2.name !== "ErrnoError") throw t2;
      return -t2.errno;
    }
  }
  ___syscall_chdir.sig = "ip";
  function ___syscall_chmod(e, t2) {
    try {
      return e = SYSCALLS.getStr(e), FS.chmod(e, t2), 0;
    } catch (r3) {
      if (typeof FS > "u" || r3.name !== "ErrnoError") throw r3;
      return -r3.errno;
    }
  }
  ___syscall_chmod.sig = "ipi";
  function ___syscall_connect(e, t2, r3) {
    try {
      var _3 = getSocketFromFD(e), n3 = getSocketAddress(t2, r3);
      return _3.sock_ops.connect(_3, n3.addr, n3.port), 0;
    } catch (a3) {
      if (typeof FS > "u" || a3.name !== "ErrnoError") throw a3;
      return -a3.errno;
    }
  }
  ___syscall_connect.sig = "iipiiii";
  function ___syscall_dup(e) {
    try {
      var t2 = SYSCALLS.getStreamFromFD(e);
      return FS.dupStream(t2).fd;
    } catch (r3) {
      if (typeof FS > "u" || r3.name !== "ErrnoError") throw r3;
      return -r3.errno;
    }
  }
  ___syscall_dup.sig = "ii";
  function ___syscall_dup3(e, t2, r3) {
    try {
      if (e === t2 || r3 & -524289) return -28;
      var _3 = SYSCALLS.getStreamFromFD(e);
      if (t2 < 0 || t2 >= FS.MAX_OPEN_FDS) return -8;
      var n3 = FS.getStream(t2);
      n3 && FS.close(n3);
      var a3 = FS.dupStream(_3, t2);
      return r3 & 524288 && (a3.flags |= 524288), a3.fd;
    } catch (i2) {
      if (typeof FS > "u" || i2.name !== "ErrnoError") throw i2;
      return -i2.errno;
    }
  }
  ___syscall_dup3.sig = "iiii";
  function ___syscall_faccessat(e, t2, r3) {
    try {
      if (t2 = SYSCALLS.getStr(t2), t2 = SYSCALLS.calculateAt(e, t2), r3 & -8) return -28;
      var _3 = FS.lookupPath(t2, { follow: true }), n3 = _3.node;
      if (!n3) return -44;
      var a3 = "";
      return r3 & 4 && (a3 += "r"), r3 & 2 && (a3 += "w"), r3 & 1 && (a3 += "x"), a3 && FS.nodePermissions(n3, a3) ? -2 : 0;
    } catch (i2) {
      if (typeof FS > "u" || i2.name !== "ErrnoError") throw i2;
      return -i2.errno;
    }
  }
  ___syscall_faccessat.sig = "iipii";
  var INT53_MAX = 9007199254740992, INT53_MIN = -9007199254740992, bigintToI53Checked = (e) => e < INT53_MIN || e > INT53_MAX ? NaN : Number(e);
  function ___syscall_fadvise64(e, t2, r3) {
    t2 = bigintToI53Checked(t2), r3 = bigintToI53Checked(r3);
    try {
      return SYSCALLS.getStreamFromFD(e).seekable ? 0 : -70;
    } catch (_3) {
      if (typeof FS > "u" || _3.name !== "ErrnoError") throw _3;
      return -_3.errno;
    }
  }
  ___syscall_fadvise64.sig = "iijji";
  function ___syscall_fallocate(e, t2, r3, _3) {
    r3 = bigintToI53Checked(r3), _3 = bigintToI53Checked(_3);
    try {
      if (isNaN(r3) || isNaN(_3)) return -22;
      if (t2 != 0) return -138;
      if (r3 < 0 || _3 < 0) return -28;
      if (!SYSCALLS.getStreamFromFD(e).seekable) return -70;
      var n3 = FS.fstat(e).size, a3 = r3 + _3;
      return a3 > n3 && FS.ftruncate(e, a3), 0;
    } catch (i2) {
      if (typeof FS > "u" || i2.name !== "ErrnoError") throw i2;
      return -i2.errno;
    }
  }
  ___syscall_fallocate.sig = "iiijj";
  function ___syscall_fchmod(e, t2) {
    try {
      return FS.fchmod(e, t2), 0;
    } catch (r3) {
      if (typeof FS > "u" || r3.name !== "ErrnoError") throw r3;
      return -r3.errno;
    }
  }
  ___syscall_fchmod.sig = "iii";
  function ___syscall_fchmodat2(e, t2, r3, _3) {
    try {
      var n3 = _3 & 256;
      return t2 = SYSCALLS.getStr(t2), t2 = SYSCALLS.calculateAt(e, t2), FS.chmod(t2, r3, n3), 0;
    } catch (a3) {
      if (typeof FS > "u" || a3.name !== "ErrnoError") throw a3;
      return -a3.errno;
    }
  }
  ___syscall_fchmodat2.sig = "iipii";
  function ___syscall_fchown32(e, t2, r3) {
    try {
      return FS.fchown(e, t2, r3), 0;
    } catch (_3) {
      if (typeof FS > "u" || _3.name !== "ErrnoError") throw _3;
      return -_3.errno;
    }
  }
  ___syscall_fchown32.sig = "iiii";
  function ___syscall_fchownat(e, t2, r3, _3, n3) {
    try {
      t2 = SYSCALLS.getStr(t2);
      var a3 = n3 & 256;
      return n3 &= -257, t2 = SYSCALLS.calculateAt(e, t2), (a3 ? FS.lchown : FS.chown)(t2, r3, _3), 0;
    } catch (i2) {
      if (typeof FS > "u" || i2.name !== "ErrnoError") throw i2;
      return -i2.errno;
    }
  }
  ___syscall_fchownat.sig = "iipiii";
  var syscallGetVarargI = () => {
    var e = HEAP32[+SYSCALLS.varargs >> 2];
    return SYSCALLS.varargs += 4, e;
  }, syscallGetVarargP = syscallGetVarargI;
  function ___syscall_fcntl64(e, t2, r3) {
    SYSCALLS.varargs = r3;
    try {
      var _3 = SYSCALLS.getStreamFromFD(e);
      switch (t2) {
        case 0:
          var n3 = syscallGetVarargI();
          if (n3 < 0) return -28;
          for (; FS.streams[n3]; ) n3++;
          var a3;
          return a3 = FS.dupStream(_3, n3), a3.fd;
        case 1:
        case 2:
          return 0;
        case 3:
          return _3.flags;
        case 4:
          return n3 = syscallGetVarargI(), _3.flags = _3.flags & -289793 | n3 & 289792, 0;
        case 12:
          return n3 = syscallGetVarargP(), HEAP16[n3 + 0 >> 1] = 2, 0;
        case 13:
        case 14:
          return 0;
      }
      return -28;
    } catch (i2) {
      if (typeof FS > "u" || i2.name !== "ErrnoError") throw i2;
      return -i2.errno;
    }
  }
  ___syscall_fcntl64.sig = "iiip";
  function ___syscall_fdatasync(e) {
    try {
      return SYSCALLS.getStreamFromFD(e), 0;
    } catch (t2) {
      if (typeof FS > "u" || t2.name !== "ErrnoError") throw t2;
      return -t2.errno;
    }
  }
  ___syscall_fdatasync.sig = "ii";
  function ___syscall_fstat64(e, t2) {
    try {
      return SYSCALLS.writeStat(t2, FS.fstat(e));
    } catch (r3) {
      if (typeof FS > "u" || r3.name !== "ErrnoError") throw r3;
      return -r3.errno;
    }
  }
  ___syscall_fstat64.sig = "iip";
  function ___syscall_ftruncate64(e, t2) {
    t2 = bigintToI53Checked(t2);
    try {
      return isNaN(t2) ? -22 : (FS.ftruncate(e, t2), 0);
    } catch (r3) {
      if (typeof FS > "u" || r3.name !== "ErrnoError") throw r3;
      return -r3.errno;
    }
  }
  ___syscall_ftruncate64.sig = "iij";
  function ___syscall_getcwd(e, t2) {
    try {
      if (!t2) return -28;
      var r3 = FS.cwd(), _3 = lengthBytesUTF8(r3) + 1;
      return t2 < _3 ? -68 : (stringToUTF8(r3, e, t2), _3);
    } catch (n3) {
      if (typeof FS > "u" || n3.name !== "ErrnoError") throw n3;
      return -n3.errno;
    }
  }
  ___syscall_getcwd.sig = "ipp";
  function ___syscall_getdents64(e, t2, r3) {
    try {
      var _3 = SYSCALLS.getStreamFromFD(e);
      _3.getdents || (_3.getdents = FS.readdir(_3.path));
      for (var n3 = 0, a3 = FS.llseek(_3, 0, 1), i2 = Math.floor(a3 / 280), l2 = Math.min(_3.getdents.length, i2 + Math.floor(r3 / 280)), o5 = i2; o5 < l2; o5++) {
        var s4, c4, p5 = _3.getdents[o5];
        if (p5 === ".") s4 = _3.node.id, c4 = 4;
        else if (p5 === "..") {
          var d5 = FS.lookupPath(_3.path, { parent: true });
          s4 = d5.node.id, c4 = 4;
        } else {
          var u3;
          try {
            u3 = FS.lookupNode(_3.node, p5);
          } catch (f5) {
            if (f5?.errno === 28) continue;
            throw f5;
          }
          s4 = u3.id, c4 = FS.isChrdev(u3.mode) ? 2 : FS.isDir(u3.mode) ? 4 : FS.isLink(u3.mode) ? 10 : 8;
        }
        HEAP64[t2 + n3 >> 3] = BigInt(s4), HEAP64[t2 + n3 + 8 >> 3] = BigInt((o5 + 1) * 280), HEAP16[t2 + n3 + 16 >> 1] = 280, HEAP8[t2 + n3 + 18] = c4, stringToUTF8(p5, t2 + n3 + 19, 256), n3 += 280;
      }
      return FS.llseek(_3, o5 * 280, 0), n3;
    } catch (f5) {
      if (typeof FS > "u" || f5.name !== "ErrnoError") throw f5;
      return -f5.errno;
    }
  }
  ___syscall_getdents64.sig = "iipp";
  var ___syscall_getegid32 = () => 0;
  ___syscall_getegid32.sig = "i";
  var ___syscall_geteuid32 = () => 0;
  ___syscall_geteuid32.sig = "i";
  var ___syscall_getgid32 = () => 0;
  ___syscall_getgid32.sig = "i";
  var ___syscall_getuid32 = () => 0;
  ___syscall_getuid32.sig = "i";
  function ___syscall_ioctl(e, t2, r3) {
    SYSCALLS.varargs = r3;
    try {
      var _3 = SYSCALLS.getStreamFromFD(e);
      switch (t2) {
        case 21509:
          return _3.tty ? 0 : -59;
        case 21505:
          if (!_3.tty) return -59;
          if (_3.tty.ops.ioctl_tcgets) {
            var n3 = _3.tty.ops.ioctl_tcgets(_3), a3 = syscallGetVarargP();
            HEAP32[a3 >> 2] = n3.c_iflag || 0, HEAP32[a3 + 4 >> 2] = n3.c_oflag || 0, HEAP32[a3 + 8 >> 2] = n3.c_cflag || 0, HEAP32[a3 + 12 >> 2] = n3.c_lflag || 0;
            for (var i2 = 0; i2 < 32; i2++) HEAP8[a3 + i2 + 17] = n3.c_cc[i2] || 0;
            return 0;
          }
          return 0;
        case 21510:
        case 21511:
        case 21512:
          return _3.tty ? 0 : -59;
        case 21506:
        case 21507:
        case 21508:
          if (!_3.tty) return -59;
          if (_3.tty.ops.ioctl_tcsets) {
            a3 = syscallGetVarargP();
            var l2 = HEAP32[a3 >> 2], o5 = HEAP32[a3 + 4 >> 2], s4 = HEAP32[a3 + 8 >> 2], c4 = HEAP32[a3 + 12 >> 2], p5 = [];
            for (i2 = 0; i2 < 32; i2++) p5.push(HEAP8[a3 + i2 + 17]);
            return _3.tty.ops.ioctl_tcsets(_3.tty, t2, { c_iflag: l2, c_oflag: o5, c_cflag: s4, c_lflag: c4, c_cc: p5 });
          }
          return 0;
        case 21519:
          return _3.tty ? (a3 = syscallGetVarargP(), HEAP32[a3 >> 2] = 0, 0) : -59;
        case 21520:
          return _3.tty ? -28 : -59;
        case 21537:
        case 21531:
          return a3 = syscallGetVarargP(), FS.ioctl(_3, t2, a3);
        case 21523:
          if (!_3.tty) return -59;
          if (_3.tty.ops.ioctl_tiocgwinsz) {
            var d5 = _3.tty.ops.ioctl_tiocgwinsz(_3.tty);
            a3 = syscallGetVarargP(), HEAP16[a3 >> 1] = d5[0], HEAP16[a3 + 2 >> 1] = d5[1];
          }
          return 0;
        case 21524:
          return _3.tty ? 0 : -59;
        case 21515:
          return _3.tty ? 0 : -59;
        default:
          return -28;
      }
    } catch (u3) {
      if (typeof FS > "u" || u3.name !== "ErrnoError") throw u3;
      return -u3.errno;
    }
  }
  ___syscall_ioctl.sig = "iiip";
  function ___syscall_linkat(e, t2, r3, _3, n3) {
    try {
      return t2 = SYSCALLS.getStr(t2), _3 = SYSCALLS.getStr(_3), t2 = SYSCALLS.calculateAt(e, t2), _3 = SYSCALLS.calculateAt(r3, _3), FS.link(t2, _3, n3), 0;
    } catch (a3) {
      if (typeof FS > "u" || a3.name !== "ErrnoError") throw a3;
      return -a3.errno;
    }
  }
  ___syscall_linkat.sig = "iipipi";
  function ___syscall_listen(e, t2) {
    try {
      var r3 = getSocketFromFD(e);
      return r3.sock_ops.listen(r3, t2), 0;
    } catch (_3) {
      if (typeof FS > "u" || _3.name !== "ErrnoError") throw _3;
      return -_3.errno;
    }
  }
  ___syscall_listen.sig = "iiiiiii";
  function ___syscall_lstat64(e, t2) {
    try {
      return e = SYSCALLS.getStr(e), SYSCALLS.writeStat(t2, FS.lstat(e));
    } catch (r3) {
      if (typeof FS > "u" || r3.name !== "ErrnoError") throw r3;
      return -r3.errno;
    }
  }
  ___syscall_lstat64.sig = "ipp";
  function ___syscall_mkdirat(e, t2, r3) {
    try {
      return t2 = SYSCALLS.getStr(t2), t2 = SYSCALLS.calculateAt(e, t2), r3 &= ~SYSCALLS.currentUmask, FS.mkdir(t2, r3), 0;
    } catch (_3) {
      if (typeof FS > "u" || _3.name !== "ErrnoError") throw _3;
      return -_3.errno;
    }
  }
  ___syscall_mkdirat.sig = "iipi";
  function ___syscall_newfstatat(e, t2, r3, _3) {
    try {
      t2 = SYSCALLS.getStr(t2);
      var n3 = _3 & 256, a3 = _3 & 4096;
      return _3 &= -6401, t2 = SYSCALLS.calculateAt(e, t2, a3), SYSCALLS.writeStat(r3, n3 ? FS.lstat(t2) : FS.stat(t2));
    } catch (i2) {
      if (typeof FS > "u" || i2.name !== "ErrnoError") throw i2;
      return -i2.errno;
    }
  }
  ___syscall_newfstatat.sig = "iippi";
  function ___syscall_openat(e, t2, r3, _3) {
    SYSCALLS.varargs = _3;
    try {
      t2 = SYSCALLS.getStr(t2), t2 = SYSCALLS.calculateAt(e, t2);
      var n3 = _3 ? syscallGetVarargI() : 0;
      return r3 & 64 && (n3 &= ~SYSCALLS.currentUmask), FS.open(t2, r3, n3).fd;
    } catch (a3) {
      if (typeof FS > "u" || a3.name !== "ErrnoError") throw a3;
      return -a3.errno;
    }
  }
  ___syscall_openat.sig = "iipip";
  var PIPEFS = { BUCKET_BUFFER_SIZE: 8192, mount(e) {
    return FS.createNode(null, "/", 16895, 0);
  }, createPipe() {
    var e = { buckets: [], writerCount: 1, writeClosed: false, readerCount: 1, readClosed: false, timestamp: /* @__PURE__ */ new Date() };
    e.buckets.push({ buffer: new Uint8Array(PIPEFS.BUCKET_BUFFER_SIZE), offset: 0, roffset: 0 });
    var t2 = PIPEFS.nextname(), r3 = PIPEFS.nextname(), _3 = FS.createNode(PIPEFS.root, t2, 4096, 0), n3 = FS.createNode(PIPEFS.root, r3, 4096, 0);
    _3.pipe = e, n3.pipe = e, e.readNode = _3, e.writeNode = n3;
    var a3 = FS.createStream({ path: t2, node: _3, flags: 0, seekable: false, stream_ops: PIPEFS.stream_ops });
    _3.stream = a3;
    var i2 = FS.createStream({ path: r3, node: n3, flags: 1, seekable: false, stream_ops: PIPEFS.stream_ops });
    return n3.stream = i2, { readable_fd: a3.fd, writable_fd: i2.fd };
  }, stream_ops: { getattr(e) {
    var t2 = e.node, r3 = t2.pipe.timestamp;
    return { dev: 14, ino: t2.id, mode: 4480, nlink: 1, uid: 0, gid: 0, rdev: 0, size: 0, atime: r3, mtime: r3, ctime: r3, blksize: 4096, blocks: 0 };
  }, poll(e) {
    var t2 = e.node.pipe;
    if ((e.flags & 2097155) === 1) {
      var r3 = 260;
      return t2.readClosed && (r3 |= 8), r3;
    }
    r3 = 0;
    for (var _3 of t2.buckets) if (_3.offset - _3.roffset > 0) {
      r3 = 65;
      break;
    }
    return t2.writeClosed && (r3 |= 17), r3;
  }, dup(e) {
    var t2 = e.node.pipe;
    (e.flags & 2097155) === 1 ? t2.writerCount++ : t2.readerCount++;
  }, ioctl(e, t2, r3) {
    if (t2 == 21531) {
      var _3 = e.node.pipe, n3 = 0;
      for (var a3 of _3.buckets) n3 += a3.offset - a3.roffset;
      return HEAP32[r3 >> 2] = n3, 0;
    }
    return 28;
  }, fsync(e) {
    return 28;
  }, read(e, t2, r3, _3, n3) {
    var a3 = e.node.pipe, i2 = 0;
    for (var l2 of a3.buckets) i2 += l2.offset - l2.roffset;
    var o5 = t2.subarray(r3, r3 + _3);
    if (_3 <= 0) return 0;
    if (i2 == 0) throw new FS.ErrnoError(6);
    var s4 = Math.min(i2, _3), c4 = s4, p5 = 0;
    for (var l2 of a3.buckets) {
      var d5 = l2.offset - l2.roffset;
      if (s4 <= d5) {
        var u3 = l2.buffer.subarray(l2.roffset, l2.offset);
        s4 < d5 ? (u3 = u3.subarray(0, s4), l2.roffset += s4) : p5++, o5.set(u3);
        break;
      } else u3 = l2.buffer.subarray(l2.roffset, l2.offset), o5.set(u3), o5 = o5.subarray(u3.byteLength), s4 -= u3.byteLength, p5++;
    }
    return p5 && p5 == a3.buckets.length && (p5--, a3.buckets[p5].offset = 0, a3.buckets[p5].roffset = 0), a3.buckets.splice(0, p5), c4;
  }, write(e, t2, r3, _3, n3) {
    var a3 = e.node.pipe, i2 = t2.subarray(r3, r3 + _3), l2 = i2.byteLength;
    if (l2 <= 0) return 0;
    var o5 = null;
    a3.buckets.length == 0 ? (o5 = { buffer: new Uint8Array(PIPEFS.BUCKET_BUFFER_SIZE), offset: 0, roffset: 0 }, a3.buckets.push(o5)) : o5 = a3.buckets[a3.buckets.length - 1];
    var s4 = PIPEFS.BUCKET_BUFFER_SIZE - o5.offset;
    if (s4 >= l2) return o5.buffer.set(i2, o5.offset), o5.offset += l2, a3.readNode.notifyListeners(65), l2;
    s4 > 0 && (o5.buffer.set(i2.subarray(0, s4), o5.offset), o5.offset += s4, i2 = i2.subarray(s4, i2.byteLength));
    for (var c4 = i2.byteLength / PIPEFS.BUCKET_BUFFER_SIZE | 0, p5 = i2.byteLength % PIPEFS.BUCKET_BUFFER_SIZE, d5 = 0; d5 < c4; d5++) {
      var u3 = { buffer: new Uint8Array(PIPEFS.BUCKET_BUFFER_SIZE), offset: PIPEFS.BUCKET_BUFFER_SIZE, roffset: 0 };
      a3.buckets.push(u3), u3.buffer.set(i2.subarray(0, PIPEFS.BUCKET_BUFFER_SIZE)), i2 = i2.subarray(PIPEFS.BUCKET_BUFFER_SIZE, i2.byteLength);
    }
    return p5 > 0 && (u3 = { buffer: new Uint8Array(PIPEFS.BUCKET_BUFFER_SIZE), offset: i2.byteLength, roffset: 0 }, a3.buckets.push(u3), u3.buffer.set(i2)), a3.readNode.notifyListeners(65), l2;
  }, close(e) {
    var t2 = e.node.pipe;
    (e.flags & 2097155) === 1 ? --t2.writerCount || (t2.writeClosed = true, t2.readNode.notifyListeners(81)) : --t2.readerCount || (t2.readClosed = true, t2.writeNode.notifyListeners(268)), !t2.readerCount && !t2.writerCount && (t2.buckets = null);
  } }, nextname() {
    return PIPEFS.nextname.current || (PIPEFS.nextname.current = 0), "pipe[" + PIPEFS.nextname.current++ + "]";
  } };
  function ___syscall_pipe2(e, t2) {
    try {
      if (e == 0) throw new FS.ErrnoError(21);
      if (t2 & -526337) throw new FS.ErrnoError(138);
      var r3 = PIPEFS.createPipe();
      return t2 & 2048 && (FS.getStream(r3.readable_fd).flags |= 2048, FS.getStream(r3.writable_fd).flags |= 2048), HEAP32[e >> 2] = r3.readable_fd, HEAP32[e + 4 >> 2] = r3.writable_fd, 0;
    } catch (_3) {
      if (typeof FS > "u" || _3.name !== "ErrnoError") throw _3;
      return -_3.errno;
    }
  }
  ___syscall_pipe2.sig = "ipi";
  var pollOne = (e, t2) => {
    var r3 = FS.getStream(e);
    if (!r3) return 32;
    var _3 = r3.stream_ops?.poll?.(r3) ?? 5;
    return _3 & (56 | t2);
  }, doPollSync = (e, t2) => {
    for (var r3 = 0, _3 = 0, n3 = e; _3 < t2; _3++, n3 += 8) {
      var a3 = pollOne(HEAP32[n3 >> 2], HEAP16[n3 + 4 >> 1]);
      a3 && r3++, HEAP16[n3 + 6 >> 1] = a3;
    }
    return r3;
  };
  function ___syscall_poll(e, t2) {
    try {
      var r3 = doPollSync(e, t2);
      return r3;
    } catch (_3) {
      if (typeof FS > "u" || _3.name !== "ErrnoError") throw _3;
      return -_3.errno;
    }
  }
  ___syscall_poll.sig = "ipii";
  function ___syscall_readlinkat(e, t2, r3, _3) {
    try {
      if (t2 = SYSCALLS.getStr(t2), t2 = SYSCALLS.calculateAt(e, t2), _3 <= 0) return -28;
      var n3 = FS.readlink(t2), a3 = Math.min(_3, lengthBytesUTF8(n3)), i2 = HEAP8[r3 + a3];
      return stringToUTF8(n3, r3, _3 + 1), HEAP8[r3 + a3] = i2, a3;
    } catch (l2) {
      if (typeof FS > "u" || l2.name !== "ErrnoError") throw l2;
      return -l2.errno;
    }
  }
  ___syscall_readlinkat.sig = "iippp";
  function ___syscall_recvfrom(e, t2, r3, _3, n3, a3) {
    try {
      var i2 = getSocketFromFD(e), l2 = i2.sock_ops.recvmsg(i2, r3, _3);
      return l2 ? (n3 && writeSockaddr(n3, i2.family, l2.addr, l2.port, a3), HEAPU8.set(l2.buffer, t2), l2.buffer.byteLength) : 0;
    } catch (o5) {
      if (typeof FS > "u" || o5.name !== "ErrnoError") throw o5;
      return -o5.errno;
    }
  }
  ___syscall_recvfrom.sig = "iippipp";
  function ___syscall_renameat(e, t2, r3, _3) {
    try {
      return t2 = SYSCALLS.getStr(t2), _3 = SYSCALLS.getStr(_3), t2 = SYSCALLS.calculateAt(e, t2), _3 = SYSCALLS.calculateAt(r3, _3), FS.rename(t2, _3), 0;
    } catch (n3) {
      if (typeof FS > "u" || n3.name !== "ErrnoError") throw n3;
      return -n3.errno;
    }
  }
  ___syscall_renameat.sig = "iipip";
  function ___syscall_rmdir(e) {
    try {
      return e = SYSCALLS.getStr(e), FS.rmdir(e), 0;
    } catch (t2) {
      if (typeof FS > "u" || t2.name !== "ErrnoError") throw t2;
      return -t2.errno;
    }
  }
  ___syscall_rmdir.sig = "ip";
  function ___syscall_sendto(e, t2, r3, _3, n3, a3) {
    try {
      var i2 = getSocketFromFD(e);
      if (!n3) return FS.write(i2.stream, HEAP8, t2, r3);
      var l2 = getSocketAddress(n3, a3);
      return i2.sock_ops.sendmsg(i2, HEAP8, t2, r3, l2.addr, l2.port);
    } catch (o5) {
      if (typeof FS > "u" || o5.name !== "ErrnoError") throw o5;
      return -o5.errno;
    }
  }
  ___syscall_sendto.sig = "iippipi";
  function ___syscall_socket(e, t2, r3) {
    try {
      var _3 = SOCKFS.createSocket(e, t2, r3);
      return _3.stream.fd;
    } catch (n3) {
      if (typeof FS > "u" || n3.name !== "ErrnoError") throw n3;
      return -n3.errno;
    }
  }
  ___syscall_socket.sig = "iiiiiii";
  function ___syscall_stat64(e, t2) {
    try {
      return e = SYSCALLS.getStr(e), SYSCALLS.writeStat(t2, FS.stat(e));
    } catch (r3) {
      if (typeof FS > "u" || r3.name !== "ErrnoError") throw r3;
      return -r3.errno;
    }
  }
  ___syscall_stat64.sig = "ipp";
  function ___syscall_statfs64(e, t2, r3) {
    try {
      return SYSCALLS.writeStatFs(r3, FS.statfs(SYSCALLS.getStr(e))), 0;
    } catch (_3) {
      if (typeof FS > "u" || _3.name !== "ErrnoError") throw _3;
      return -_3.errno;
    }
  }
  ___syscall_statfs64.sig = "ippp";
  function ___syscall_symlinkat(e, t2, r3) {
    try {
      return e = SYSCALLS.getStr(e), r3 = SYSCALLS.getStr(r3), r3 = SYSCALLS.calculateAt(t2, r3), FS.symlink(e, r3), 0;
    } catch (_3) {
      if (typeof FS > "u" || _3.name !== "ErrnoError") throw _3;
      return -_3.errno;
    }
  }
  ___syscall_symlinkat.sig = "ipip";
  function ___syscall_truncate64(e, t2) {
    t2 = bigintToI53Checked(t2);
    try {
      return isNaN(t2) ? -22 : (e = SYSCALLS.getStr(e), FS.truncate(e, t2), 0);
    } catch (r3) {
      if (typeof FS > "u" || r3.name !== "ErrnoError") throw r3;
      return -r3.errno;
    }
  }
  ___syscall_truncate64.sig = "ipj";
  function ___syscall_umask(e) {
    try {
      var t2 = SYSCALLS.currentUmask;
      return SYSCALLS.currentUmask = e, t2;
    } catch (r3) {
      if (typeof FS > "u" || r3.name !== "ErrnoError") throw r3;
      return -r3.errno;
    }
  }
  ___syscall_umask.sig = "ii";
  function ___syscall_unlinkat(e, t2, r3) {
    try {
      if (t2 = SYSCALLS.getStr(t2), t2 = SYSCALLS.calculateAt(e, t2), !r3) FS.unlink(t2);
      else if (r3 === 512) FS.rmdir(t2);
      else return -28;
      return 0;
    } catch (_3) {
      if (typeof FS > "u" || _3.name !== "ErrnoError") throw _3;
      return -_3.errno;
    }
  }
  ___syscall_unlinkat.sig = "iipi";
  var readI53FromI64 = (e) => HEAPU32[e >> 2] + HEAP32[e + 4 >> 2] * 4294967296;
  function ___syscall_utimensat(e, t2, r3, _3) {
    try {
      var n3 = _3 & 256;
      t2 = SYSCALLS.getStr(t2), t2 = SYSCALLS.calculateAt(e, t2, true);
      var a3, i2, l2 = Date.now();
      if (!r3) a3 = l2, i2 = l2;
      else {
        let s4 = function(c4) {
          var p5 = HEAP32[c4 + 8 >> 2];
          if (p5 == 1073741823) return l2;
          if (p5 == 1073741822) return null;
          var d5 = readI53FromI64(c4);
          return d5 * 1e3 + Math.floor(p5 / 1e6);
        };
        var o5 = s4;
        a3 = s4(r3), i2 = s4(r3 + 16);
      }
      return (i2 ?? a3) !== null && FS.utime(t2, a3, i2, n3), 0;
    } catch (s4) {
      if (typeof FS > "u" || s4.name !== "ErrnoError") throw s4;
      return -s4.errno;
    }
  }
  ___syscall_utimensat.sig = "iippi";
  var __abort_js = () => abort("");
  __abort_js.sig = "v";
  var dlSetError = (e) => {
    var t2 = stackSave(), r3 = stringToUTF8OnStack(e);
    ___dl_seterr(r3, 0), stackRestore(t2);
  }, dlopenInternal = (e, t2) => {
    var r3 = UTF8ToString(e + 36), _3 = HEAP32[e + 4 >> 2];
    r3 = PATH.normalize(r3);
    var n3 = !!(_3 & 256), a3 = n3 ? null : {}, i2 = { global: n3, nodelete: !!(_3 & 4096), loadAsync: t2.loadAsync };
    if (t2.loadAsync) return loadDynamicLibrary(r3, i2, a3, e);
    try {
      return loadDynamicLibrary(r3, i2, a3, e);
    } catch (l2) {
      return dlSetError(`could not load dynamic lib: ${r3}
${l2}`), 0;
    }
  }, __dlopen_js = (e) => dlopenInternal(e, { loadAsync: false });
  __dlopen_js.sig = "pp";
  var __dlsym_js = (e, t2, r3) => {
    t2 = UTF8ToString(t2);
    var _3, n3, a3 = LDSO.loadedLibsByHandle[e];
    if (n3 = Object.keys(a3.exports).indexOf(t2), n3 == -1 || a3.exports[t2].stub) return dlSetError(`Tried to lookup unknown symbol "${t2}" in dynamic lib: ${a3.name}`), 0;
    if (_3 = a3.exports[t2], typeof _3 == "function") {
      var i2 = getFunctionAddress(_3);
      i2 ? _3 = i2 : (_3 = addFunction(_3, _3.sig), HEAPU32[r3 >> 2] = n3);
    }
    return _3;
  };
  __dlsym_js.sig = "pppp";
  var runtimeKeepaliveCounter = 0, __emscripten_runtime_keepalive_clear = () => {
    noExitRuntime = false, runtimeKeepaliveCounter = 0;
  };
  __emscripten_runtime_keepalive_clear.sig = "v";
  var __emscripten_throw_longjmp = () => {
    throw new EmscriptenSjLj();
  };
  __emscripten_throw_longjmp.sig = "v";
  function __gmtime_js(e, t2) {
    e = bigintToI53Checked(e);
    var r3 = new Date(e * 1e3);
    if (isNaN(r3.getTime())) return 1;
    HEAP32[t2 >> 2] = r3.getUTCSeconds(), HEAP32[t2 + 4 >> 2] = r3.getUTCMinutes(), HEAP32[t2 + 8 >> 2] = r3.getUTCHours(), HEAP32[t2 + 12 >> 2] = r3.getUTCDate(), HEAP32[t2 + 16 >> 2] = r3.getUTCMonth(), HEAP32[t2 + 20 >> 2] = r3.getUTCFullYear() - 1900, HEAP32[t2 + 24 >> 2] = r3.getUTCDay();
    var _3 = Date.UTC(r3.getUTCFullYear(), 0, 1, 0, 0, 0, 0), n3 = (r3.getTime() - _3) / 864e5 | 0;
    return HEAP32[t2 + 28 >> 2] = n3, 0;
  }
  __gmtime_js.sig = "ijp";
  var isLeapYear = (e) => e % 4 === 0 && (e % 100 !== 0 || e % 400 === 0), MONTH_DAYS_LEAP_CUMULATIVE = [0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335], MONTH_DAYS_REGULAR_CUMULATIVE = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334], ydayFromDate = (e) => {
    var t2 = isLeapYear(e.getFullYear()), r3 = t2 ? MONTH_DAYS_LEAP_CUMULATIVE : MONTH_DAYS_REGULAR_CUMULATIVE, _3 = r3[e.getMonth()] + e.getDate() - 1;
    return _3;
  };
  function __localtime_js(e, t2) {
    e = bigintToI53Checked(e);
    var r3 = new Date(e * 1e3);
    if (isNaN(r3.getTime())) return 1;
    HEAP32[t2 >> 2] = r3.getSeconds(), HEAP32[t2 + 4 >> 2] = r3.getMinutes(), HEAP32[t2 + 8 >> 2] = r3.getHours(), HEAP32[t2 + 12 >> 2] = r3.getDate(), HEAP32[t2 + 16 >> 2] = r3.getMonth(), HEAP32[t2 + 20 >> 2] = r3.getFullYear() - 1900, HEAP32[t2 + 24 >> 2] = r3.getDay();
    var _3 = ydayFromDate(r3) | 0;
    HEAP32[t2 + 28 >> 2] = _3, HEAP32[t2 + 36 >> 2] = -r3.getTimezoneOffset() * 60;
    var n3 = new Date(r3.getFullYear(), 0, 1), a3 = new Date(r3.getFullYear(), 6, 1).getTimezoneOffset(), i2 = n3.getTimezoneOffset(), l2 = (a3 != i2 && r3.getTimezoneOffset() == Math.min(i2, a3)) | 0;
    return HEAP32[t2 + 32 >> 2] = l2, 0;
  }
  __localtime_js.sig = "ijp";
  function __mmap_js(e, t2, r3, _3, n3, a3, i2) {
    n3 = bigintToI53Checked(n3);
    try {
      var l2 = SYSCALLS.getStreamFromFD(_3), o5 = FS.mmap(l2, e, n3, t2, r3), s4 = o5.ptr;
      return HEAP32[a3 >> 2] = o5.allocated, HEAPU32[i2 >> 2] = s4, 0;
    } catch (c4) {
      if (typeof FS > "u" || c4.name !== "ErrnoError") throw c4;
      return -c4.errno;
    }
  }
  __mmap_js.sig = "ipiiijpp";
  function __munmap_js(e, t2, r3, _3, n3, a3) {
    a3 = bigintToI53Checked(a3);
    try {
      var i2 = SYSCALLS.getStreamFromFD(n3);
      r3 & 2 && SYSCALLS.doMsync(e, i2, t2, _3, a3);
    } catch (l2) {
      if (typeof FS > "u" || l2.name !== "ErrnoError") throw l2;
      return -l2.errno;
    }
  }
  __munmap_js.sig = "ippiiij";
  var timers = {}, clearTimers = () => {
    for (var e of Object.values(timers)) clearTimeout(e.id);
  }, handleException = (e) => {
    if (e instanceof ExitStatus || e == "unwind") return EXITSTATUS;
    quit_(1, e);
  }, keepRuntimeAlive = () => noExitRuntime || runtimeKeepaliveCounter > 0, _proc_exit = (e) => {
    EXITSTATUS = e, keepRuntimeAlive() || (Module.onExit?.(e), ABORT = true), quit_(e, new ExitStatus(e));
  };
  _proc_exit.sig = "vi";
  var exitJS = (e) => {
    EXITSTATUS = e, keepRuntimeAlive() || exitRuntime(), _proc_exit(e);
  }, _exit = exitJS;
  _exit.sig = "vi";
  var maybeExit = () => {
    if (!runtimeExited && !keepRuntimeAlive()) try {
      _exit(EXITSTATUS);
    } catch (e) {
      handleException(e);
    }
  }, callUserCallback = (e, ...t2) => {
    if (!(runtimeExited || ABORT)) try {
      return e(...t2);
    } catch (r3) {
      handleException(r3);
    } finally {
      maybeExit();
    }
  }, _emscripten_get_now = () => performance.now();
  _emscripten_get_now.sig = "d";
  var __setitimer_js = (e, t2) => {
    if (timers[e] && (clearTimeout(timers[e].id), delete timers[e]), !t2) return 0;
    var r3 = setTimeout(() => {
      delete timers[e], callUserCallback(__emscripten_timeout, e, _emscripten_get_now());
    }, t2);
    return timers[e] = { id: r3, timeout_ms: t2 }, 0;
  };
  __setitimer_js.sig = "iid";
  var __tzset_js = (e, t2, r3, _3) => {
    var n3 = (/* @__PURE__ */ new Date()).getFullYear(), a3 = new Date(n3, 0, 1), i2 = new Date(n3, 6, 1), l2 = a3.getTimezoneOffset(), o5 = i2.getTimezoneOffset(), s4 = Math.max(l2, o5);
    HEAPU32[e >> 2] = s4 * 60, HEAP32[t2 >> 2] = +(l2 != o5);
    var c4 = (u3) => {
      var f5 = u3 >= 0 ? "-" : "+", m7 = Math.abs(u3), y6 = String(Math.floor(m7 / 60)).padStart(2, "0"), b4 = String(m7 % 60).padStart(2, "0");
      return `UTC${f5}${y6}${b4}`;
    }, p5 = c4(l2), d5 = c4(o5);
    o5 < l2 ? (stringToUTF8(p5, r3, 17), stringToUTF8(d5, _3, 17)) : (stringToUTF8(p5, _3, 17), stringToUTF8(d5, r3, 17));
  };
  __tzset_js.sig = "vpppp";
  var _emscripten_date_now = () => Date.now();
  _emscripten_date_now.sig = "d";
  var nowIsMonotonic = 1, checkWasiClock = (e) => e >= 0 && e <= 3;
  function _clock_time_get(e, t2, r3) {
    if (t2 = bigintToI53Checked(t2), !checkWasiClock(e)) return 28;
    var _3;
    if (e === 0) _3 = _emscripten_date_now();
    else if (nowIsMonotonic) _3 = _emscripten_get_now();
    else return 52;
    var n3 = Math.round(_3 * 1e6);
    return HEAP64[r3 >> 3] = BigInt(n3), 0;
  }
  _clock_time_get.sig = "iijp";
  var getHeapMax = () => 2147483648, _emscripten_get_heap_max = () => getHeapMax();
  _emscripten_get_heap_max.sig = "p";
  var growMemory = (e) => {
    var t2 = wasmMemory.buffer.byteLength, r3 = (e - t2 + 65535) / 65536 | 0;
    try {
      return wasmMemory.grow(r3), updateMemoryViews(), 1;
    } catch {
    }
  }, _emscripten_resize_heap = (e) => {
    var t2 = HEAPU8.length;
    e >>>= 0;
    var r3 = getHeapMax();
    if (e > r3) return false;
    for (var _3 = 1; _3 <= 4; _3 *= 2) {
      var n3 = t2 * (1 + 0.2 / _3);
      n3 = Math.min(n3, e + 100663296);
      var a3 = Math.min(r3, alignMemory(Math.max(e, n3), 65536)), i2 = growMemory(a3);
      if (i2) return true;
    }
    return false;
  };
  _emscripten_resize_heap.sig = "ip";
  var ENV = {}, getExecutableName = () => thisProgram, getEnvStrings = () => {
    if (!getEnvStrings.strings) {
      var e = (globalThis.navigator?.language ?? "C").replace("-", "_") + ".UTF-8", t2 = { USER: "web_user", LOGNAME: "web_user", PATH: "/", PWD: "/", HOME: "/home/web_user", LANG: e, _: getExecutableName() };
      for (var r3 in ENV) ENV[r3] === void 0 ? delete t2[r3] : t2[r3] = ENV[r3];
      var _3 = [];
      for (var r3 in t2) _3.push(`${r3}=${t2[r3]}`);
      getEnvStrings.strings = _3;
    }
    return getEnvStrings.strings;
  }, _environ_get = (e, t2) => {
    var r3 = 0, _3 = 0;
    for (var n3 of getEnvStrings()) {
      var a3 = t2 + r3;
      HEAPU32[e + _3 >> 2] = a3, r3 += stringToUTF8(n3, a3, 1 / 0) + 1, _3 += 4;
    }
    return 0;
  };
  _environ_get.sig = "ipp";
  var _environ_sizes_get = (e, t2) => {
    var r3 = getEnvStrings();
    HEAPU32[e >> 2] = r3.length;
    var _3 = 0;
    for (var n3 of r3) _3 += lengthBytesUTF8(n3) + 1;
    return HEAPU32[t2 >> 2] = _3, 0;
  };
  _environ_sizes_get.sig = "ipp";
  function _fd_close(e) {
    try {
      var t2 = SYSCALLS.getStreamFromFD(e);
      return FS.close(t2), 0;
    } catch (r3) {
      if (typeof FS > "u" || r3.name !== "ErrnoError") throw r3;
      return r3.errno;
    }
  }
  _fd_close.sig = "ii";
  function _fd_fdstat_get(e, t2) {
    try {
      var r3 = SYSCALLS.getStreamFromFD(e), _3 = r3.tty ? 2 : FS.isDir(r3.mode) ? 3 : FS.isLink(r3.mode) ? 7 : 4;
      return HEAP8[t2] = _3, HEAP16[t2 + 2 >> 1] = 0, HEAP64[t2 + 8 >> 3] = BigInt(0), HEAP64[t2 + 16 >> 3] = BigInt(0), 0;
    } catch (n3) {
      if (typeof FS > "u" || n3.name !== "ErrnoError") throw n3;
      return n3.errno;
    }
  }
  _fd_fdstat_get.sig = "iip";
  var doReadv = (e, t2, r3, _3) => {
    for (var n3 = 0, a3 = 0; a3 < r3; a3++) {
      var i2 = HEAPU32[t2 >> 2], l2 = HEAPU32[t2 + 4 >> 2];
      t2 += 8;
      try {
        var o5 = FS.read(e, HEAP8, i2, l2, _3);
      } catch (s4) {
        if (n3 > 0 && s4 instanceof FS.ErrnoError && (s4.errno == 6 || s4.errno == 6)) break;
        throw s4;
      }
      if (o5 < 0) return -1;
      if (n3 += o5, o5 < l2) break;
      typeof _3 < "u" && (_3 += o5);
    }
    return n3;
  };
  function _fd_pread(e, t2, r3, _3, n3) {
    _3 = bigintToI53Checked(_3);
    try {
      if (isNaN(_3)) return 22;
      var a3 = SYSCALLS.getStreamFromFD(e), i2 = doReadv(a3, t2, r3, _3);
      return HEAPU32[n3 >> 2] = i2, 0;
    } catch (l2) {
      if (typeof FS > "u" || l2.name !== "ErrnoError") throw l2;
      return l2.errno;
    }
  }
  _fd_pread.sig = "iippjp";
  var doWritev = (e, t2, r3, _3) => {
    if (r3 == 1) return FS.write(e, HEAP8, HEAPU32[t2 >> 2], HEAPU32[t2 + 4 >> 2], _3);
    for (var n3 = 0, a3 = 0, i2 = t2; a3 < r3; a3++, i2 += 8) n3 += HEAPU32[i2 + 4 >> 2];
    var l2 = new Uint8Array(n3), o5 = 0;
    for (a3 = 0; a3 < r3; a3++, t2 += 8) {
      var s4 = HEAPU32[t2 >> 2], c4 = HEAPU32[t2 + 4 >> 2];
      l2.set(HEAPU8.subarray(s4, s4 + c4), o5), o5 += c4;
    }
    return FS.write(e, l2, 0, n3, _3);
  };
  function _fd_pwrite(e, t2, r3, _3, n3) {
    _3 = bigintToI53Checked(_3);
    try {
      if (isNaN(_3)) return 22;
      var a3 = SYSCALLS.getStreamFromFD(e), i2 = doWritev(a3, t2, r3, _3);
      return HEAPU32[n3 >> 2] = i2, 0;
    } catch (l2) {
      if (typeof FS > "u" || l2.name !== "ErrnoError") throw l2;
      return l2.errno;
    }
  }
  _fd_pwrite.sig = "iippjp";
  function _fd_read(e, t2, r3, _3) {
    try {
      var n3 = SYSCALLS.getStreamFromFD(e), a3 = doReadv(n3, t2, r3);
      return HEAPU32[_3 >> 2] = a3, 0;
    } catch (i2) {
      if (typeof FS > "u" || i2.name !== "ErrnoError") throw i2;
      return i2.errno;
    }
  }
  _fd_read.sig = "iippp";
  function _fd_seek(e, t2, r3, _3) {
    t2 = bigintToI53Checked(t2);
    try {
      if (isNaN(t2)) return 22;
      var n3 = SYSCALLS.getStreamFromFD(e);
      return FS.llseek(n3, t2, r3), HEAP64[_3 >> 3] = BigInt(n3.position), n3.getdents && !t2 && r3 === 0 && (n3.getdents = null), 0;
    } catch (a3) {
      if (typeof FS > "u" || a3.name !== "ErrnoError") throw a3;
      return a3.errno;
    }
  }
  _fd_seek.sig = "iijip";
  function _fd_sync(e) {
    try {
      var t2 = SYSCALLS.getStreamFromFD(e), r3 = t2.stream_ops?.fsync?.(t2);
      return r3;
    } catch (_3) {
      if (typeof FS > "u" || _3.name !== "ErrnoError") throw _3;
      return _3.errno;
    }
  }
  _fd_sync.sig = "ii";
  function _fd_write(e, t2, r3, _3) {
    try {
      var n3 = SYSCALLS.getStreamFromFD(e), a3 = doWritev(n3, t2, r3);
      return HEAPU32[_3 >> 2] = a3, 0;
    } catch (i2) {
      if (typeof FS > "u" || i2.name !== "ErrnoError") throw i2;
      return i2.errno;
    }
  }
  _fd_write.sig = "iippp";
  var _getaddrinfo = (e, t2, r3, _3) => {
    var n3 = 0, a3 = 0, i2 = 0, l2 = 0, o5 = 0, s4 = 0, c4;
    function p5(d5, u3, f5, m7, y6, b4) {
      var k4, P6, M2;
      return P6 = d5 === 10 ? 28 : 16, y6 = d5 === 10 ? inetNtop6(y6) : inetNtop4(y6), k4 = _malloc(P6), writeSockaddr(k4, d5, y6, b4), M2 = _malloc(32), HEAP32[M2 + 4 >> 2] = d5, HEAP32[M2 + 8 >> 2] = u3, HEAP32[M2 + 12 >> 2] = f5, HEAPU32[M2 + 24 >> 2] = m7, HEAPU32[M2 + 20 >> 2] = k4, d5 === 10 ? HEAP32[M2 + 16 >> 2] = 28 : HEAP32[M2 + 16 >> 2] = 16, HEAP32[M2 + 28 >> 2] = 0, M2;
    }
    if (r3 && (i2 = HEAP32[r3 >> 2], l2 = HEAP32[r3 + 4 >> 2], o5 = HEAP32[r3 + 8 >> 2], s4 = HEAP32[r3 + 12 >> 2]), o5 && !s4 && (s4 = o5 === 2 ? 17 : 6), !o5 && s4 && (o5 = s4 === 17 ? 2 : 1), s4 || (s4 = 6), o5 || (o5 = 1), !e && !t2) return -2;
    if (i2 & -1088 || r3 && HEAP32[r3 >> 2] & 2 && !e) return -1;
    if (i2 & 32) return -2;
    if (o5 && o5 !== 1 && o5 !== 2) return -7;
    if (l2 !== 0 && l2 !== 2 && l2 !== 10) return -6;
    if (t2 && (t2 = UTF8ToString(t2), a3 = parseInt(t2, 10), isNaN(a3))) return i2 & 1024 ? -2 : -8;
    if (!e) return l2 === 0 && (l2 = 2), i2 & 1 || (l2 === 2 ? n3 = _htonl(2130706433) : n3 = [0, 0, 0, _htonl(1)]), c4 = p5(l2, o5, s4, null, n3, a3), HEAPU32[_3 >> 2] = c4, 0;
    if (e = UTF8ToString(e), n3 = inetPton4(e), n3 !== null) if (l2 === 0 || l2 === 2) l2 = 2;
    else if (l2 === 10 && i2 & 8) n3 = [0, 0, _htonl(65535), n3], l2 = 10;
    else return -2;
    else if (n3 = inetPton6(e), n3 !== null) if (l2 === 0 || l2 === 10) l2 = 10;
    else return -2;
    return n3 != null ? (c4 = p5(l2, o5, s4, e, n3, a3), HEAPU32[_3 >> 2] = c4, 0) : i2 & 4 ? -2 : (e = DNS.lookup_name(e), n3 = inetPton4(e), l2 === 0 ? l2 = 2 : l2 === 10 && (n3 = [0, 0, _htonl(65535), n3]), c4 = p5(l2, o5, s4, null, n3, a3), HEAPU32[_3 >> 2] = c4, 0);
  };
  _getaddrinfo.sig = "ipppp";
  var _getnameinfo = (e, t2, r3, _3, n3, a3, i2) => {
    var l2 = readSockaddr(e, t2);
    if (l2.errno) return -6;
    var o5 = l2.port, s4 = l2.addr;
    function c4(p5) {
      var d5 = false;
      if (r3 && _3) {
        if (p5) s4 = p5;
        else if (i2 & 8) return -2;
        var u3 = stringToUTF8(s4, r3, _3);
        u3 + 1 >= _3 && (d5 = true);
      }
      return n3 && a3 && (o5 = "" + o5, u3 = stringToUTF8(o5, n3, a3), u3 + 1 >= a3 && (d5 = true)), d5 ? -12 : 0;
    }
    return r3 && _3 && !(i2 & 1) ? c4(DNS.lookup_addr(s4)) : c4(null);
  };
  _getnameinfo.sig = "ipipipii";
  var _random_get = (e, t2) => randomFill(HEAPU8.subarray(e, e + t2));
  _random_get.sig = "ipp";
  var stringToNewUTF8 = (e) => {
    var t2 = lengthBytesUTF8(e) + 1, r3 = _malloc(t2);
    return r3 && stringToUTF8(e, r3, t2), r3;
  }, removeFunction = (e) => {
    functionsInTableMap.delete(getWasmTableEntry(e)), setWasmTableEntry(e, null), freeTableIndexes.push(e);
  }, FS_createPath = (...e) => FS.createPath(...e), FS_unlink = (...e) => FS.unlink(...e), FS_createLazyFile = (...e) => FS.createLazyFile(...e), FS_createDevice = (...e) => FS.createDevice(...e), setTempRet0 = (e) => __emscripten_tempret_set(e), _setTempRet0 = setTempRet0, getTempRet0 = () => __emscripten_tempret_get(), _getTempRet0 = getTempRet0, _emscripten_force_exit = (e) => {
    __emscripten_runtime_keepalive_clear(), _exit(e);
  };
  _emscripten_force_exit.sig = "vi";
  var _sched_yield = () => 0;
  _sched_yield.sig = "i";
  var findMatchingCatch = () => (setTempRet0(0), 0), ___cxa_find_matching_catch_2 = () => findMatchingCatch([]);
  ___cxa_find_matching_catch_2.sig = "p";
  var ___cxa_find_matching_catch_3 = (e) => findMatchingCatch([e]);
  ___cxa_find_matching_catch_3.sig = "pp";
  class ExceptionInfo {
    constructor(t2) {
      this.excPtr = t2, this.ptr = t2 - 24;
    }
    set_type(t2) {
      HEAPU32[this.ptr + 4 >> 2] = t2;
    }
    get_type() {
      return HEAPU32[this.ptr + 4 >> 2];
    }
    set_destructor(t2) {
      HEAPU32[this.ptr + 8 >> 2] = t2;
    }
    get_destructor() {
      return HEAPU32[this.ptr + 8 >> 2];
    }
    set_caught(t2) {
      t2 = t2 ? 1 : 0, HEAP8[this.ptr + 12] = t2;
    }
    get_caught() {
      return HEAP8[this.ptr + 12] != 0;
    }
    set_rethrown(t2) {
      t2 = t2 ? 1 : 0, HEAP8[this.ptr + 13] = t2;
    }
    get_rethrown() {
      return HEAP8[this.ptr + 13] != 0;
    }
    init(t2, r3) {
      this.set_adjusted_ptr(0), this.set_type(t2), this.set_destructor(r3);
    }
    set_adjusted_ptr(t2) {
      HEAPU32[this.ptr + 16 >> 2] = t2;
    }
    get_adjusted_ptr() {
      return HEAPU32[this.ptr + 16 >> 2];
    }
  }
  var uncaughtExceptionCount = 0, __Unwind_RaiseException = () => {
    abort();
  }, ___cxa_throw = (e, t2, r3) => {
    var _3 = new ExceptionInfo(e);
    _3.init(t2, r3), uncaughtExceptionCount++, __Unwind_RaiseException(e);
  };
  ___cxa_throw.sig = "vppp";
  var exceptionCaught = [], ___cxa_rethrow = () => {
    exceptionCaught.length || abort("no exception to throw");
    var e = exceptionCaught.at(-1), t2 = e.excPtr;
    e.set_rethrown(true), e.set_caught(false), uncaughtExceptionCount++, __Unwind_RaiseException(t2);
  };
  ___cxa_rethrow.sig = "v";
  var ___cxa_begin_catch = (e) => {
    var t2 = new ExceptionInfo(e);
    return t2.get_caught() || (t2.set_caught(true), uncaughtExceptionCount--), t2.set_rethrown(false), exceptionCaught.push(t2), ___cxa_get_exception_ptr(e);
  };
  ___cxa_begin_catch.sig = "pp";
  var ___cxa_end_catch = () => {
    _setThrew(0, 0);
    var e = exceptionCaught.pop();
    ___cxa_decrement_exception_refcount(e.excPtr);
  };
  ___cxa_end_catch.sig = "v";
  var ___cxa_uncaught_exceptions = () => uncaughtExceptionCount;
  ___cxa_uncaught_exceptions.sig = "i";
  var ___cxa_current_primary_exception = () => {
    if (!exceptionCaught.length) return 0;
    var e = exceptionCaught[exceptionCaught.length - 1];
    return ___cxa_increment_exception_refcount(e.excPtr), e.excPtr;
  };
  ___cxa_current_primary_exception.sig = "p";
  var ___cxa_rethrow_primary_exception = (e) => {
    if (e) {
      var t2 = new ExceptionInfo(e);
      t2.set_rethrown(true), t2.set_caught(false), uncaughtExceptionCount++, __Unwind_RaiseException(e);
    }
  };
  ___cxa_rethrow_primary_exception.sig = "vp";
  var __Unwind_Resume = () => {
    abort();
  }, ___resumeException = (e) => {
    __Unwind_Resume(e);
  };
  ___resumeException.sig = "vp", registerWasmPlugin(), FS.createPreloadedFile = FS_createPreloadedFile, FS.preloadFile = FS_preloadFile, FS.staticInit(), ENVIRONMENT_IS_NODE && NODEFS.staticInit(), initMemory(), Module.noExitRuntime && (noExitRuntime = Module.noExitRuntime), Module.print && (out = Module.print), Module.printErr && (err = Module.printErr), Module.dynamicLibraries && (dynamicLibraries = Module.dynamicLibraries), Module.arguments && (programArgs = Module.arguments), Module.thisProgram && (thisProgram = Module.thisProgram);
  var preInit = Module.preInit;
  if (preInit) for (typeof preInit == "function" && (Module.preInit = preInit = [preInit]); preInit.length > 0; ) preInit.shift()();
  Module.callMain = callMain, Module.stackSave = stackSave, Module.stackRestore = stackRestore, Module.ENV = ENV, Module.addRunDependency = addRunDependency, Module.removeRunDependency = removeRunDependency, Module.addFunction = addFunction, Module.removeFunction = removeFunction, Module.setValue = setValue, Module.getValue = getValue, Module.UTF8ToString = UTF8ToString, Module.stringToNewUTF8 = stringToNewUTF8, Module.stringToUTF8OnStack = stringToUTF8OnStack, Module.FS_preloadFile = FS_preloadFile, Module.FS_unlink = FS_unlink, Module.FS_createPath = FS_createPath, Module.FS_createDevice = FS_createDevice, Module.FS = FS, Module.FS_createDataFile = FS_createDataFile, Module.FS_createLazyFile = FS_createLazyFile, Module.MEMFS = MEMFS, Module.PROXYFS = PROXYFS, Module.NODEFS = NODEFS, Module.IDBFS = IDBFS, Module._exit = _exit, Module._setTempRet0 = _setTempRet0, Module._getTempRet0 = _getTempRet0, Module._emscripten_force_exit = _emscripten_force_exit, Module._sched_yield = _sched_yield, Module.___cxa_find_matching_catch_2 = ___cxa_find_matching_catch_2, Module.___cxa_find_matching_catch_3 = ___cxa_find_matching_catch_3, Module.___cxa_throw = ___cxa_throw, Module.___cxa_rethrow = ___cxa_rethrow, Module.___cxa_begin_catch = ___cxa_begin_catch, Module.___cxa_end_catch = ___cxa_end_catch, Module.___cxa_uncaught_exceptions = ___cxa_uncaught_exceptions, Module.___cxa_current_primary_exception = ___cxa_current_primary_exception, Module.___cxa_rethrow_primary_exception = ___cxa_rethrow_primary_exception, Module.___resumeException = ___resumeException;
  var ASM_CONSTS = {}, _palloc0, _RelationGetNumberOfBlocksInFork, _ExtendBufferedRel, _MarkBufferDirty, _XLogBeginInsert, _XLogRegisterData, _XLogRegisterBuffer, _XLogInsert, _UnlockReleaseBuffer, _palloc, _brin_build_desc, _EnterParallelMode, _CreateParallelContext, _GetTransactionSnapshot, _RegisterSnapshot, _table_parallelscan_estimate, _add_size, _tuplesort_estimate_shared, _mul_size, _strlen, _InitializeParallelDSM, _UnregisterSnapshot, _DestroyParallelContext, _ExitParallelMode, _shm_toc_allocate, _ConditionVariableInit, _table_parallelscan_initialize, _tuplesort_initialize_shared, _shm_toc_insert, _LaunchParallelWorkers, _WaitForParallelWorkersToAttach, _s_lock, _ConditionVariableSleep, _ConditionVariableCancelSleep, _tuplesort_performsort, _AllocSetContextCreateInternal, _tuplesort_end, _MemoryContextReset, _brin_deform_tuple, _pfree, _MemoryContextDelete, _errstart_cold, _errmsg_internal, _errfinish, _log_newpage_buffer, _ProcessInterrupts, _errstart, _errcode, _errmsg, _LockBuffer, _ReleaseBuffer, _IndexGetRelation, _table_open, _ReadBufferExtended, _table_close, _build_reloptions, _RelationGetIndexScan, _pgstat_assoc_relation, _palloc0_mul, _index_getprocinfo, _fmgr_info_copy, _FunctionCall4Coll, _palloc_mul, _FunctionCall1Coll, _brin_free_desc, _WaitForParallelWorkersToFinish, _PageGetFreeSpace, _BufferGetBlockNumber, _BuildIndexInfo, _Int64GetDatum, _DirectFunctionCall2Coll, _RecoveryInProgress, _GetUserIdAndSecContext, _SetUserIdAndSecContext, _NewGUCNestLevel, _RestrictSearchPath, _index_open, _object_ownercheck, _aclcheck_error, _AtEOXact_GUC, _relation_close, _errhint, _GetUserId, _ReadBuffer, _shm_toc_lookup, _pgstat_report_activity, _tuplesort_attach_shared, _index_close, _table_beginscan_parallel, _ConditionVariableSignal, _datumCopy, _lookup_type_cache, _get_fn_opclass_options, _log, _pg_detoast_datum, _index_getprocid, _errdetail_internal, _pg_popcount_optimized, _init_local_reloptions, _initStringInfo, _appendStringInfoChar, _appendStringInfo, _FunctionCall2Coll, _SearchSysCache4, _SysCacheGetAttrNotNull, _ReleaseSysCache, _get_opcode, _fmgr_info_cxt, _Float8GetDatum, _numeric_float8, _numeric_sub, _DirectFunctionCall1Coll, _pg_detoast_datum_packed, _pg_qsort, _get_typbyval, _get_typlen, _qsort_arg, _add_local_int_reloption, _getTypeOutputInfo, _fmgr_info, _OutputFunctionCall, _cstring_to_text_with_len, _accumArrayResult, _makeArrayResult, _OidOutputFunctionCall, _cstring_to_text, _PageGetExactFreeSpace, _PageIndexTupleOverwrite, _PageInit, _PageAddItemExtended, _LockRelationForExtension, _UnlockRelationForExtension, _smgropen, _smgrpin, _ItemPointerEquals, _detoast_external_attr, _CreateTemplateTupleDesc, _TupleDescInitEntry, _repalloc, _memcmp, _SearchSysCache1, _get_opfamily_name, _SearchSysCacheList, _check_amproc_signature, _check_amoptsproc_signature, _format_procedure, _format_operator, _check_amop_signature, _identify_opfamily_groups, _format_type_be, _ReleaseCatCacheList, _format_type_with_typemod, _errdetail, _strcmp, _DatumGetEOHP, _EOH_get_flat_size, _EOH_flatten_into, _toast_raw_datum_size, _getmissingattr, _hash_create, _hash_search, _nocachegetattr, _heap_getsysattr, _heap_form_tuple, _heap_modify_tuple, _heap_deform_tuple, _heap_modify_tuple_by_cols, _heap_freetuple, _hash_bytes, _index_form_tuple, _MemoryContextAllocZero, _nocache_index_getattr, _index_deform_tuple, _CopyIndexTuple, _CreateTupleDescTruncatedCopy, _enlargeStringInfo, _slot_getsomeattrs_int, _pg_lltoa, _pg_ltoa, _pq_sendbytes, _pg_printf, _relation_open, _LockRelationOid, _RelationIdGetRelation, _try_relation_open, _SearchSysCacheExists, _UnlockRelationOid, _relation_openrv, _AcceptInvalidationMessages, _RangeVarGetRelidExtended, _RelationClose, _add_reloption_kind, _register_reloptions_validator, _lappend, _pstrdup, _add_int_reloption, _add_real_reloption, _add_enum_reloption, _add_string_reloption, _strdup, _MemoryContextStrdup, _transformRelOptions, _deconstruct_array_builtin, _strncmp, _defGetString, _strchr, _defGetBoolean, _pg_sprintf, _untransformRelOptions, _text_to_cstring, _makeString, _makeDefElem, _heap_reloptions, _index_reloptions, _strcpy, _MemoryContextAlloc, _parse_bool, _parse_int, _parse_real, _pg_strcasecmp, _ScanKeyInit, _dsm_segment_handle, _dsm_create, _dsm_segment_address, _dsa_pin_mapping, _dsm_attach, _dsm_detach, _ShmemInitStruct, _LWLockAcquire, _LWLockRelease, _LWLockConditionalAcquire, _dsa_create_ext, _dsa_allocate_extended, _dsa_get_address, _LWLockInitialize, _dsa_attach, _dsa_free, _dsa_get_total_size, _MemoryContextMemAllocated, _check_stack_depth, _GetCurrentCommandId, _toast_open_indexes, _GetNewOidWithIndex, _heap_insert, _RelationGetIndexList, _list_free, _systable_beginscan, _systable_getnext, _systable_endscan, _toast_close_indexes, _systable_beginscan_ordered, _systable_getnext_ordered, _systable_endscan_ordered, _get_toast_snapshot, _convert_tuples_by_position, _execute_attr_map_tuple, _ExecStoreVirtualTuple, _bms_is_member, _bms_add_member, _free_conversion_map, _CreateTupleDescCopy, _FreeTupleDesc, _ResourceOwnerEnlarge, _ResourceOwnerRemember, _DecrTupleDescRefCount, _ResourceOwnerForget, _datumIsEqual, _equalRowTypes, _hashRowType, _namestrcpy, _TupleDescInitEntryCollation, _BuildDescFromLists, _stringToNode, _psprintf, _pg_detoast_datum_copy, _get_typlenbyvalalign, _deconstruct_array, _ginCompareAttEntries, _repalloc_huge, _GinDataLeafPageGetItems, _tbm_add_tuples, _ginPostingListDecode, _ItemPointerCompare, _gintuple_get_attrnum, _gintuple_get_key, _LockPage, _UnlockPage, _vacuum_delay_point, _RecordFreeIndexPage, _IndexFreeSpaceMapVacuum, _repalloc_mul, _initGinState, _pg_prng_double, _pgstat_progress_update_param, _log_newpage_range, _GetFreeIndexPage, _ConditionalLockBuffer, _LockBufferForCleanup, _ReadNextFullTransactionId, _PageIndexMultiDelete, _list_make1_impl, _list_delete_first, _lcons, _pow, _smgrnblocks, _list_free_deep, _BufFileCreateTemp, _BufFileWrite, _BufFileReadExact, _BufFileClose, _pairingheap_remove_first, _pairingheap_add, _float_overflow_error, _float8_cmp_internal, _float_underflow_error, _DirectFunctionCall5Coll, _pairingheap_allocate, _get_func_rettype, _OidFunctionCall1Coll, _GenerationContextCreate, _block_range_read_stream_cb, _read_stream_begin_relation, _read_stream_next_buffer, _read_stream_end, _estimate_rel_size, __hash_spareindex, __hash_getbuf, __hash_relbuf, __hash_get_indextuple_hashkey, _hashcharextended, _hashint8, _hashint8extended, _hash_bytes_extended, _hashfloat8, _hashfloat8extended, _pg_newlocale_from_collation, __hash_ovflblkno_to_bitno, __hash_get_totalbuckets, _hash_destroy, _list_append_unique_oid, _list_member_oid, _CommandCounterIncrement, _get_opclass_input_type, _list_concat_copy, _HeapTupleSatisfiesVisibility, _GetAccessStrategy, _FreeAccessStrategy, _heap_getnext, _ExecStoreBufferHeapTuple, _heap_fetch, _HeapTupleSatisfiesVacuum, _GetMultiXactIdMembers, _TransactionIdPrecedes, _GetBulkInsertState, _FreeBulkInsertState, _visibilitymap_clear_locked, _pgstat_count_heap_insert, _heap_multi_insert, _ExecFetchSlotHeapTuple, _heap_delete, _IsInParallelMode, _visibilitymap_pin, _HeapTupleSatisfiesUpdate, _TransactionIdIsCurrentTransactionId, _TransactionIdDidCommit, _UnlockTuple, _TransactionIdIsInProgress, _bms_free, _bms_add_members, _bms_next_member, _bms_overlap, _HeapTupleGetUpdateXid, _heap_lock_tuple, _MultiXactIdPrecedes, _heap_tuple_needs_eventual_freeze, _PrefetchBuffer, _RelationTruncate, _FlushRelationBuffers, _smgrexists, _table_slot_create, _ExecDropSingleTupleTableSlot, _CreateExecutorState, _MakePerTupleExprContext, _ExecPrepareQual, _GetOldestNonRemovableTransactionId, _FormIndexDatum, _FreeExecutorState, _MakeSingleTupleTableSlot, _tuplesort_getdatum, _ExecStoreHeapTuple, _XidInMVCCSnapshot, _bsearch, _XLogRecGetBlockTagExtended, _hash_seq_init, _hash_seq_search, _errcode_for_file_access, _pg_snprintf, _OpenTransientFile, _ftruncate, ___errno_location, _pwrite, _CloseTransientFile, _sscanf, _unlink, _fsync_fname, _GetCurrentTimestamp, _get_database_name, _get_namespace_name, _pg_prng_uint32, _GetRecordedFreeSpace, _visibilitymap_get_status, _vac_estimate_reltuples, _WaitLatch, _ResetLatch, _clock_gettime, _WalUsageAccumDiff, _BufferUsageAccumDiff, _appendStringInfoString, _set_errcontext_domain, _errcontext_msg, _visibilitymap_prepare_truncate, _GetIndexAmRoutine, _check_enable_rls, _pg_class_aclcheck, _pg_attribute_aclcheck, _try_index_open, _btboolcmp, _btint2cmp, _btint4cmp, _btint8cmp, _btoidcmp, _btcharcmp, __bt_form_posting, __bt_mkscankey, __bt_checkpage, __bt_compare, __bt_relbuf, __bt_search, __bt_binsrch_insert, __bt_freestack, __bt_metaversion, _get_opfamily_member, _OidFunctionCall2Coll, __bt_allequalimage, ___wasm_setjmp_test, _before_shmem_exit, ___wasm_setjmp, _cancel_before_shmem_exit, _pg_re_throw, _emscripten_longjmp, _ConditionVariableBroadcast, _datum_image_eq, _time, __bt_check_natts, _strlcpy, _strncpy, _timestamptz_to_str, _XLogRecGetBlockRefInfo, _varstr_cmp, _get_atttype, _getBaseType, _exprType, _GetActiveSnapshot, _errdetail_relkind_not_supported, _table_openrv, _table_slot_callbacks, _clamp_row_est, _pre_format_elog_string, _format_elog_string, _IsTransactionState, _estimate_expression_value, _SetConfigOption, _XLogFlush, _get_call_result_type, _HeapTupleHeaderGetDatum, _GenericXLogStart, _GenericXLogRegisterBuffer, _GenericXLogFinish, _GenericXLogAbort, _errmsg_plural, _ReadNextMultiXactId, _ReadMultiXactIdRange, _MultiXactIdPrecedesOrEquals, _init_MultiFuncCall, _TupleDescGetAttInMetadata, _per_MultiFuncCall, _BuildTupleFromCStrings, _end_MultiFuncCall, _GetCurrentSubTransactionId, _GetSessionUserId, _WaitForBackgroundWorkerShutdown, _RegisterDynamicBackgroundWorker, _appendBinaryStringInfo, _pq_getmsgbyte, _ThrowErrorData, _pq_getmsgint, _pq_getmsgint64, _die, _pqsignal_be, _BackgroundWorkerUnblockSignals, _load_external_function, _BackgroundWorkerInitializeConnectionByOid, _GetDatabaseEncoding, _StartTransactionCommand, _CommitTransactionCommand, _PushActiveSnapshot, _PopActiveSnapshot, _RmgrNotFound, _InitMaterializedSRF, _tuplestore_putvalues, _pread, _lseek, _strspn, _strtoll, _AllocateFile, _fgets, _ferror, _FreeFile, _getpid, _read, _write, _durable_rename, _BlessTupleDesc, _fstat, _superuser_arg, _wal_segment_close, _wal_segment_open, _XLogReaderAllocate, _XLogReadRecord, _XLogReaderFree, _strtoull, _access, _IsAbortedTransactionBlockState, _GetTopFullTransactionId, _GetCurrentFullTransactionId, _GetCurrentTransactionNestLevel, _ResourceOwnerCreate, _AbortCurrentTransaction, _PreventInTransactionBlock, _IsTransactionBlock, _RegisterXactCallback, _UnregisterXactCallback, _RegisterSubXactCallback, _BeginInternalSubTransaction, _ReleaseCurrentSubTransaction, _ResourceOwnerDelete, _RollbackAndReleaseCurrentSubTransaction, _pg_usleep, _close, _ReleaseExternalFD, _GetDefaultCharSignedness, _SplitIdentifierString, _guc_malloc, _find_option, _gettimeofday, _pg_strong_random, _stat, _GetFlushRecPtr, _GetXLogReplayRecPtr, _TimestampDifferenceMilliseconds, _strtoul, _readlink, _pg_fprintf, _fflush, _pgl_system, _wait_result_to_str, _replace_percent_placeholders, _makeStringInfo, _pg_toupper, _numeric_in, _DirectFunctionCall3Coll, _palloc_extended, _pg_vsnprintf, _XLogFindNextRecord, _RestoreBlockImage, _timestamptz_in, _fscanf, _symlink, _ConditionVariableTimedSleep, _ParseDateTime, _DecodeDateTime, _tm2timestamp, _XLogRecStoreStats, _hash_get_num_entries, _read_local_xlog_page_no_wait, _escape_json_with_len, _BufFileSeek, _lstat, _destroyStringInfo, _list_sort, _pgl_geteuid, _getegid, _pg_checksum_page, _CreateDestReceiver, _bbsink_forward_end_archive, _bbsink_forward_begin_manifest, _bbsink_forward_end_manifest, _bbsink_forward_end_backup, _bbsink_forward_cleanup, _MemoryContextAllocExtended, _appendStringInfoVA, _list_concat, _strrchr, _bbsink_forward_begin_backup, _bbsink_forward_archive_contents, _bbsink_forward_begin_archive, _bbsink_forward_manifest_contents, _has_privs_of_role, _BaseBackupAddTarget, _list_copy, _tuplestore_puttuple, _isatty, _makeRangeVar, _DefineIndex, _getc, _fread, _clearerr, _OidInputFunctionCall, _copyObjectImpl, _get_rolespec_oid, _lappend_oid, _get_object_address, _makeTypeNameFromNameList, _SearchSysCacheLocked1, _SearchSysCache2, _SysCacheGetAttr, _CatalogTupleUpdate, _get_attnum, _get_rel_name, _CatalogTupleDelete, _get_namespace_oid, _SearchSysCache3, _performDeletion, _CatalogTupleInsert, _recordDependencyOn, _RunObjectPostAlterHook, _aclcheck_error_col, _get_element_type, _object_aclcheck, _isTempNamespace, _pg_attribute_aclcheck_all, _IsToastNamespace, _IsCatalogNamespace, _superuser, _SearchSysCacheAttName, _LockDatabaseObject, _new_object_addresses, _UnlockDatabaseObject, _free_object_addresses, _performMultipleDeletions, _recordDependencyOnExpr, _get_typ_typrelid, _query_tree_walker_impl, _expression_tree_walker_impl, _add_exact_object_address, _get_rel_relkind, _SystemAttributeDefinition, _get_typtype, _list_delete_last, _type_is_collatable, _CatalogOpenIndexes, _CatalogCloseIndexes, _get_relname_relid, _GetSysCacheOid, _SearchSysCacheCopy, _CheckTableNotInUse, _RelationForgetRelation, _construct_array, _make_parsestate, _addRangeTableEntryForRelation, _addNSItemToQuery, _transformExpr, _coerce_to_boolean, _assign_expr_collations, _pull_var_clause, _get_attname, _equal, _coerce_to_target_type, _nodeToString, _list_delete_nth_cell, _lappend_int, _CatalogTupleInsertWithInfo, _heap_truncate_find_FKs, _list_oid_cmp, _buildint2vector, _buildoidvector, _parser_errposition, _check_functions_in_node, _exprLocation, _exprTypmod, _get_base_element_type, _make_ands_explicit, _SystemFuncName, _CreateTrigger, _plan_create_index_workers, _GetLatestSnapshot, _make_ands_implicit, _get_rel_relispartition, _get_partition_ancestors, _tuplesort_begin_datum, _tuplesort_putdatum, _list_delete_oid, _get_rel_namespace, _ExecOpenIndices, _ExecCloseIndices, _CatalogTupleUpdateWithInfo, _ConditionalLockRelationOid, _RelnameGetRelid, _get_relkind_objtype, _isAnyTempNamespace, _RelationIsVisible, _TypenameGetTypid, _FuncnameGetCandidates, _DeconstructQualifiedName, _get_func_arg_info, _NameListToString, _OpernameGetOprid, _OpclassnameGetOpcid, _OpclassIsVisible, _get_ts_config_oid, _makeRangeVarFromNameList, _quote_identifier, _atoi, _GetSearchPathMatcher, _SearchPathMatchesCurrentEnvironment, _get_collation_oid, _GetDatabaseEncodingName, _CacheRegisterSyscacheCallback, _fetch_search_path, _get_extension_oid, _get_tablespace_oid, _get_role_oid, _get_language_oid, _get_am_oid, _get_index_am_oid, _GetForeignServerByName, _typeStringToTypeName, _makeFloat, _list_make2_impl, _check_object_ownership, _GetUserNameFromId, _format_type_extended, _quote_qualified_identifier, _get_tablespace_name, _GetForeignServerExtended, _GetForeignServer, _get_extension_name, _construct_empty_array, _format_type_be_qualified, _get_namespace_name_or_temp, _list_make3_impl, _get_am_name, _construct_md_array, _pull_varattnos, _makeBoolExpr, _eval_const_expressions, _get_func_name, _construct_array_builtin, _makeObjectName, _get_primary_key_attnos, _check_functional_grouping, _bms_is_subset, _ProcessGUCArray, _LockHeldByMe, _CheckRelationOidLockedByMe, _getExtensionOfObject, _deleteDependencyRecordsFor, _find_inheritance_children, _ActiveSnapshotSet, _find_all_inheritors, _has_superclass, _strstr, _memchr, _get_opname, _build_function_result_tupdesc_t, _CheckFunctionValidatorAccess, _AcquireRewriteLocks, _pg_parse_query, _get_func_result_type, _function_parse_error_transpose, _geterrposition, _getinternalerrposition, _pg_mblen_cstr, _pg_mbstrlen_with_len, _errposition, _internalerrposition, _internalerrquery, _bms_num_members, _list_concat_unique_oid, _ATExecChangeOwner, _quote_literal_cstr, _get_array_type, _pnstrdup, _pg_mbcliplen, _smgrtruncate, _smgrreadv, _NewRelationCreateToastTable, _parse_analyze_fixedparams, _transformStmt, _free_parsestate, _makeFromExpr, _assign_query_collations, _makeTargetEntry, _exprCollation, _transformSortClause, _transformDistinctClause, _ParseFuncOrColumn, _select_common_type, _coerce_to_common_type, _select_common_collation, _contain_vars_of_level, _expandNSItemAttrs, _makeAlias, _addRangeTableEntryForSubquery, _assign_list_collations, _expandNSItemVars, _markTargetListOrigins, _addRangeTableEntryForJoin, _list_truncate, _makeVar, _analyze_requires_snapshot, _makeNullConst, _get_sort_group_operators, _refnameNamespaceItem, _getRTEPermissionInfo, _setup_parser_errposition_callback, _cancel_parser_errposition_callback, _locate_var_of_level, _makeBoolean, _makeInteger, _makeSimpleA_Expr, _makeTypeName, _SystemTypeName, _makeFuncCall, _makeA_Expr, _list_make4_impl, _addTargetToSortList, _locate_agg_of_level, _list_intersection_int, _get_sortgroupclause_tle, _flatten_join_alias_vars, _list_member_int, _list_union_int, _makeFuncExpr, _get_rte_attribute_name, _expression_tree_mutator_impl, _checkNameSpaceConflicts, _addRangeTableEntryForENR, _addRangeTableEntry, _FigureColname, _addRangeTableEntryForFunction, _coerce_to_specific_type, _typenameTypeIdAndMod, _get_typcollation, _markNullableIfNeeded, _markVarForSelectPriv, _coerce_type, _LookupFuncName, _parserOpenTable, _strip_implicit_coercions, _colNameToVar, _op_hashjoinable, _get_commutator, _get_ordering_op_properties, _can_coerce_type, _get_sortgroupref_tle, _assignSortGroupRef, _targetIsInSortList, _contain_aggs_of_level, _find_coercion_pathway, _typeidType, _typeTypeCollation, _typeLen, _typeByVal, _get_type_category_preferred, _makeConst, _lookup_rowtype_tupdesc, _type_is_enum, _verify_common_type, _type_is_range, _bms_del_member, _list_member, _raw_expression_tree_walker_impl, _type_is_rowtype, _scanNSItemForColumn, _make_op, _make_scalar_array_op, _count_nonjunk_tlist_entries, _makeWholeRowVar, _expandRTE, _contain_var_clause, _jsonb_in, _get_func_prokind, _escape_json, _geterrcode, _bit_in, _repalloc0, _bms_union, _varstr_levenshtein_less_equal, _get_atttypetypmodcoll, _raw_parser, _errsave_start, _errsave_finish, _makeColumnDef, _GetDefaultOpClass, _transformIndexStmt, _ChooseRelationName, _deparse_context_for, _deparse_expression, _expression_planner, _scanner_init, _scanner_finish, _core_yylex, _isxdigit, _scanner_isspace, _truncate_identifier, _ScanKeywordLookup, _pg_verifymbstr, _downcase_truncate_identifier, _pg_database_encoding_max_length, _getTypeInputInfo, _RenameSchema, _check_can_set_role, _namein, _BlockSampler_Init, _reservoir_init_selection_state, _reservoir_get_next_S, _sampler_random_fract, _std_typanalyze, _BlockSampler_HasMore, _BlockSampler_Next, _Async_Notify, _RangeVarCallbackMaintainsTable, _make_new_heap, _finish_heap_swap, _RenameRelationInternal, _OpenPipeStream, _pg_is_ascii, _ClosePipeStream, _PreventCommandIfReadOnly, _BeginCopyFrom, _EndCopyFrom, _ProcessCopyOptions, _pg_strtoint64, _CopyFromErrorCallback, _bms_make_singleton, _ExecInitRangeTable, _ExecInitResultRelation, _ExecInitQual, _contain_volatile_functions, _NextCopyFrom, _ExecCloseResultRelations, _ExecCloseRangeTableRelations, _ExecConstraints, _ExecInsertIndexTuples, _build_column_default, _ExecInitExpr, _fileno, _NextCopyFromRawFields, _resetStringInfo, _pq_copymsgbytes, _pg_encoding_max_length, _tolower, _pg_plan_query, _PushCopiedSnapshot, _UpdateActiveSnapshotCommandId, _CreateQueryDesc, _ExecutorStart, _ExecutorFinish, _ExecutorEnd, _FreeQueryDesc, _ExecutorRun, _pg_server_to_any, _fwrite, _CreateTableAsRelExists, _QueryRewrite, _DefineRelation, _rmdir, _atof, _int8in, _oidin, _RemoveObjects, _GetCommandTagEnum, _CreateCommandTag, _GetCommandTagName, _NewExplainState, _ExplainBeginOutput, _ExplainEndOutput, _ExplainOpenGroup, _ExplainPrintPlan, _ExplainIndentText, _ExplainPropertyInteger, _ExplainCloseGroup, _ExplainPropertyFloat, _ExplainPrintTriggers, _ExplainPropertyUInteger, _ExplainPropertyText, _GetConfigOptionByName, _ExplainPrintJITSummary, _ExplainPropertyBool, _InstrEndLoop, _appendStringInfoSpaces, _ExplainQueryText, _ExplainQueryParameters, _get_func_namespace, _escape_xml, _GetExplainExtensionId, _GetExplainExtensionState, _SetExplainExtensionState, _RegisterExtensionExplainOption, _get_extension_schema, _get_function_sibling_type, _GetSysCacheHashValue, _CreateSchemaCommand, _get_rel_type_id, _set_config_option, _pg_any_to_server, _DirectFunctionCall4Coll, _replace_text, _strpbrk, _ProcessUtility, _CleanQuerytext, _GetForeignDataWrapper, _CreateExprContext, _EnsurePortalSnapshotExists, _CheckIndexCompatible, _op_input_types, _ResolveOpClass, _get_opclass_family, _get_opfamily_member_for_cmptype, _pgstat_count_truncate, _SPI_connect, _SPI_exec, _SPI_execute, _SPI_getvalue, _generate_operator_clause, _SPI_finish, _CreateTransientRelDestReceiver, _MemoryContextSetIdentifier, _checkExprHasSubLink, _MemoryContextSetParent, _copyParamList, _SetTuplestoreDestReceiverParams, _tuplestore_rescan, _MemoryContextDeleteChildren, _GetCachedPlan, _makeParamList, _ReleaseCachedPlan, _bms_equal, _func_volatile, _register_label_provider, _DefineSequence, _AlterSequence, _RangeVarCallbackOwnsRelation, _nextval, _textToQualifiedNameList, _nextval_internal, _setval_oid, _tuplestore_gettupleslot, _list_delete, _tuplestore_end, _list_append_unique, _get_rel_relam, _contain_mutable_functions, _RemoveRelations, _ExecuteTruncateGuts, _InitResultRelInfo, _AlterTableLookupRelation, _AlterTable, _AlterTableInternal, _AlterTableGetLockLevel, _pg_get_indexdef_string, _ExecStoreAllNullTuple, _chmod, _ChangeVarNodes, _tuplestore_begin_heap, _tuplestore_puttupleslot, _ExecForceStoreHeapTuple, _ExecUpdateLockMode, _bms_copy, _strtoint, _strtod, _plain_crypt_verify, _ProcessConfigFile, _pgl_exit, _dsa_get_handle, _pg_strncasecmp, _guc_free, _ExecReScan, _ExecAsyncResponse, _ExecAsyncRequestDone, _ExecAsyncRequestPending, _ExprEvalPushStep, _lookup_rowtype_tupdesc_copy, _ExecInitExprWithParams, _ExecInitExprList, _ExecGetResultType, _ExecInitExtraTupleSlot, _MakeExpandedObjectReadOnlyInternal, _tuplesort_puttupleslot, _ArrayGetNItems, _expanded_record_fetch_tupdesc, _expanded_record_fetch_field, _json_validate, _JsonbValueToJsonb, _numeric_out, _boolout, _bool_int4, _lookup_rowtype_tupdesc_domain, _MemoryContextGetParent, _DeleteExpandedObject, _CreateStandaloneExprContext, _ExecFindJunkAttributeInTlist, _standard_ExecutorStart, _ExecInitNode, _standard_ExecutorRun, _standard_ExecutorFinish, _standard_ExecutorEnd, _ExecEndNode, _InstrAlloc, _MakeTupleTableSlot, _ExecWithCheckOptions, _get_typlenbyval, _ExecInitScanTupleSlot, _InputFunctionCall, _list_delete_ptr, _FreeExprContext, _ExecAssignExprContext, _ExecAssignProjectionInfo, _ExecOpenScanRelation, _bms_intersect, _GetAttributeByName, _GetAttributeByNum, _ExecGetReturningSlot, _ExecGetResultRelCheckAsUser, _MemoryContextRegisterResetCallback, _cached_function_compile, _CommandIsReadOnly, _InstrUpdateTupleCount, _tuplesort_begin_heap, _AggCheckCallContext, _tuplesort_gettupleslot, _bms_del_members, _AddWaitEventToSet, _GetNumRegisteredWaitEvents, _tuplestore_clear, _get_attstatsslot, _free_attstatsslot, _SharedFileSetInit, _SharedFileSetAttach, _tuplesort_reset, _pairingheap_first, _bms_nonempty_difference, _datum_image_hash, _tuplesort_rescan, _WinGetPartitionLocalMemory, _WinGetCurrentPosition, _WinGetPartitionRowCount, _WinGetFuncArgInPartition, _WinGetFuncArgCurrent, _SPI_connect_ext, _SPI_commit, _CopyErrorData, _FlushErrorState, _ReThrowError, _SPI_commit_and_chain, _SPI_rollback, _SPI_rollback_and_chain, _SPI_freetuptable, _SPI_execute_extended, _SPI_execute_plan, _SPI_execp, _SPI_execute_plan_extended, _SPI_execute_plan_with_paramlist, _SPI_execute_with_args, _SPI_prepare, _SPI_prepare_extended, _SPI_keepplan, _SPI_saveplan, _SPI_freeplan, _SPI_copytuple, _SPI_returntuple, _SPI_modifytuple, _SPI_fnumber, _SPI_fname, _SPI_getbinval, _SPI_gettype, _SPI_gettypeid, _SPI_getrelname, _SPI_palloc, _SPI_repalloc, _SPI_pfree, _SPI_datumTransfer, _datumTransfer, _SPI_cursor_open_with_args, _SPI_cursor_open_with_paramlist, _SPI_cursor_parse_open, _SPI_cursor_find, _SPI_cursor_fetch, _SPI_scroll_cursor_fetch, _SPI_scroll_cursor_move, _SPI_cursor_close, _SPI_plan_is_valid, _SPI_result_code_string, _SPI_plan_get_plan_sources, _SPI_plan_get_cached_plan, _SPI_register_relation, _create_queryEnv, _register_ENR, _SPI_register_trigger_data, _tuplestore_tuple_count, _GetUserMapping, _GetForeignTable, _GetForeignColumnOptions, _initClosestMatch, _updateClosestMatch, _getClosestMatch, _GetExistingLocalJoinPath, _pathkeys_contained_in, _bloom_create, _bloom_free, _bloom_add_element, _bloom_lacks_element, _bloom_prop_bits_set, _dshash_create, _dshash_attach, _dshash_detach, _dshash_destroy, _dshash_get_hash_table_handle, _dshash_find, _dshash_find_or_insert, _dshash_delete_key, _dshash_release_lock, _tag_hash, _dshash_seq_init, _dshash_seq_next, _dshash_seq_term, _dshash_delete_current, _ldexp, _pg_b64_enc_len, _pg_b64_encode, _strtol, _gai_strerror, _bind, _pgl_connect, _pgl_send, _pgl_recv, _sendto, _select, _recvfrom, _be_lo_unlink, _text_to_cstring_buffer, _feof, _pg_mb2wchar_with_len, _pg_regcomp, _pg_regerror, _strcat, _freeaddrinfo, _pgl_getsockname, _pgl_setsockopt, _pgl_fcntl, _listen, _accept, _utime, _pq_buffer_remaining_data, _pgl_getsockopt, _pq_sendtext, _pq_sendfloat4, _pq_sendfloat8, _pq_begintypsend, _pq_endtypsend, _pq_getmsgfloat4, _pq_getmsgfloat8, _pq_getmsgtext, _pg_strtoint32, _main, _pgl_getuid, _getenv, _bms_membership, _RegisterExtensibleNodeMethods, _list_make5_impl, _GetMemoryChunkContext, _list_insert_nth, _list_member_ptr, _list_delete_int, _list_intersection, _list_append_unique_ptr, _list_append_unique_int, _list_concat_unique_int, _make_opclause, _exprIsLengthCoercion, _fix_opfuncids, _outToken, _outNode, _appendStringInfoStringQuoted, _EnableQueryId, _nodeRead, _pg_strtok, _debackslash, _exp2, _find_base_rel, _add_path, _create_sort_path, _set_baserel_size_estimates, _get_func_support, _clauselist_selectivity, _get_tablespace_page_costs, _cost_qual_eval, _pull_varnos, _estimate_num_groups, _cost_sort, _get_sortgrouplist_exprs, _get_attavgwidth, _make_restrictinfo, _setup_eclass_member_iterator, _eclass_member_iterator_next, _remove_nulling_relids, _get_mergejoin_opfamilies, _generate_implied_equalities_for_column, _eclass_useful_for_merging, _join_clause_is_movable_to, _get_plan_rowmark, _is_pseudo_constant_for_index, _update_mergeclause_eclasses, _pull_vars_of_level, _find_join_rel, _make_canonical_pathkey, _get_sortgroupref_clause_noerr, _extract_actual_clauses, _tlist_member, _change_plan_targetlist, _make_foreignscan, _IncrementVarSublevelsUp, _op_mergejoinable, _find_nonnullable_rels, _setup_simple_rel_arrays, _standard_planner, _get_relids_in_jointree, _SS_process_sublinks, _add_new_columns_to_pathtarget, _get_agg_clause_costs, _grouping_is_sortable, _copy_pathtarget, _create_projection_path, _contain_nonstrict_functions, _get_translated_update_targetlist, _add_row_identity_var, _get_rel_all_updated_cols, _get_baserel_parampathinfo, _create_foreignscan_path, _create_foreign_join_path, _create_foreign_upper_path, _adjust_limit_rows_costs, _add_to_flat_tlist, _get_fn_expr_variadic, _get_fn_expr_argtype, _on_shmem_exit, _pgl_shmdt, _pgl_shmctl, _pgl_shmat, _mmap, _pgl_shmget, _pgl_munmap, _SignalHandlerForConfigReload, _SignalHandlerForShutdownRequest, _procsignal_sigusr1_handler, _ConditionalLockDatabaseObject, _RegisterBackgroundWorker, _WaitForBackgroundWorkerStartup, _open, _rename, _GetConfigOption, _puts, _fopen, _fclose, _fputc, _ftello, _malloc, _free, _realloc, _iswprint_l, _iswalpha_l, _iswdigit_l, _isdigit_l, _iswpunct_l, _iswspace_l, _iswlower_l, _iswupper_l, _pg_ascii_tolower, _towlower_l, _tolower_l, _towupper_l, _toupper_l, _pg_reg_getinitialstate, _pg_reg_getfinalstate, _pg_reg_getnumoutarcs, _pg_reg_getoutarcs, _pg_reg_getnumcolors, _pg_reg_colorisbegin, _pg_reg_colorisend, _pg_reg_getnumcharacters, _pg_reg_getcharacters, _dsa_pin, _OutputPluginPrepareWrite, _OutputPluginWrite, _array_contains_nulls, _CacheRegisterRelcacheCallback, _hash_seq_term, _FreeErrorData, _RelidByRelfilenumber, _SnapBuildRestoreSnapshot, _WaitLatchOrSocket, _BufFileCreateFileSet, _BufFileOpenFileSet, _BufFileTell, _ConditionVariablePrepareToSleep, _get_row_security_policies, _extract_variadic_args, _errhidestmt, _errhidecontext, _hash_estimate_size, _ShmemInitHash, _LockBufHdr, _LWLockHeldByMeInMode, _EvictUnpinnedBuffer, _EvictAllUnpinnedBuffers, _EvictRelUnpinnedBuffers, _have_free_buffer, _calloc, _BufFileExportFileSet, _BufFileRead, _copy_file, _fdatasync, _truncate, _dup, _AcquireExternalFD, _mkdir, _pgl_popen, _pgl_pclose, _closedir, _opendir, _readdir, _GetNamedDSMSegment, _pgl_atexit, _RequestAddinShmemSpace, _GetRunningTransactionData, _BackendXidGetPid, _pg_numa_init, _sysconf, _pg_numa_query_pages, _pg_get_shmem_pagesize, _LockAcquire, _LockRelease, _pgl_poll, _GetLockmodeName, _LWLockRegisterTranche, _GetNamedLWLockTranche, _LWLockNewTrancheId, _RequestNamedLWLockTranche, _LWLockHeldByMe, _ProcessStartupPacket, _htons, _htonl, _pgl_startPGlite, _pgl_pq_flush, _pgl_getMyProcPort, _pgl_sendConnData, _PostgresMainLongJmp, _PostgresMainLoopOnce, _PostgresSendReadyForQueryIfNecessary, _GetCommandLogLevel, _standard_ProcessUtility, _lookup_ts_dictionary_cache, _get_tsearch_config_filename, _str_tolower, _readstoplist, _searchstoplist, _tsearch_readline_begin, _tsearch_readline, _tsearch_readline_end, _stringToQualifiedNameList, _getTSCurrentConfig, _to_tsvector_byid, _t_isalnum_with_len, _isalnum, _t_isalnum_cstr, _pg_mblen_unbounded, _get_restriction_variable, _pg_mblen_range, _MemoryContextAllocHuge, _fseek, _WaitEventExtensionNew, _regprocedurein, _is_member_of_role, _expand_array, _exp, _arraycontsel, _arraycontjoinsel, _initArrayResult, _array_create_iterator, _array_iterate, _array_free_iterator, _ArrayGetIntegerTypmods, _boolin, ___multi3, _cash_cmp, _int64_to_numeric, _numeric_div, _numeric_round, _numeric_int8, _numeric_mul, _j2date, _EncodeDateOnly, _EncodeSpecialDate, _date_eq, _date_lt, _date_le, _date_gt, _date_ge, _date_cmp, _date_mi, _timestamp2tm, _time2tm, _EncodeTimeOnly, _time_eq, _time_lt, _time_le, _time_gt, _time_ge, _time_cmp, _time_mi_time, _timetz2tm, _timetz_cmp, _pg_tolower, _EncodeDateTime, _TransferExpandedObject, _forkname_to_number, _numeric_lt, _numeric_abs, _numeric_add, _numeric_ge, _err_generic_string, _domain_check, _enum_lt, _enum_le, _enum_ge, _enum_gt, _enum_cmp, _make_expanded_record_from_typeid, _make_expanded_record_from_tupdesc, _make_expanded_record_from_exprecord, _expanded_record_set_tuple, _expanded_record_get_tuple, _deconstruct_expanded_record, _expanded_record_lookup_field, _expanded_record_set_field_internal, _expanded_record_set_fields, _float4in_internal, _strtof, _float_to_shortest_decimal_buf, _float8in, _float8in_internal, _float8out, _float8out_internal, _float8pl, _float4_cmp_internal, _btfloat4cmp, _btfloat8cmp, _dtoi4, _dtoi2, _cbrt, _dexp, _log10, _dacos, _acos, _dasin, _asin, _datan, _atan, _datan2, _atan2, _dcos, _cos, _dcot, _tan, _dsin, _sin, _dtan, _fmod, _degrees, _dpi, _radians, _sinh, _cosh, _tanh, _asinh, _acosh, _atanh, _float8_accum, _float8_stddev_pop, _float8_stddev_samp, _asc_tolower, _pg_strfold, _numeric_power, _dtoi8, _int8out, _fseeko, _int4in, _int4_bool, _int8pl, _int84, _int82, _json_in, _EncodeSpecialTimestamp, _pushJsonbValue, _numeric_int2, _numeric_int4, _numeric_float4, _numeric_normalize, _numeric_cmp, _numeric_eq, _hash_numeric, _hash_numeric_extended, _int2_numeric, _int4_numeric, _int8_numeric, _float4_numeric, _float8_numeric, _numeric_uminus, _numeric_is_nan, _numeric_ceil, _numeric_floor, _timestamp_cmp, _macaddr_cmp, _macaddr_lt, _macaddr_le, _macaddr_eq, _macaddr_ge, _macaddr_gt, _macaddr8_cmp, _macaddr8_lt, _macaddr8_le, _macaddr8_eq, _macaddr8_ge, _macaddr8_gt, _current_query, _generate_collation_name, _get_fn_expr_arg_stable, _unpack_sql_state, _get_fn_expr_rettype, _btnamecmp, _inet_in, _network_cmp, _convert_network_to_scalar, _numeric_sign, _numeric_gt, _numeric_le, _numeric_mod, _numeric_sqrt, ___divti3, _numeric_exp, _numeric_ln, _numeric_log, _numeric_float8_no_overflow, _oidout, _btrim1, _ltrim1, _rtrim1, _tuplesort_skiptuples, _interval_mi, _setlocale, _newlocale, _strftime_l, _freelocale, _pg_utf_mblen_private, _uselocale, _strcoll_l, _strxfrm_l, _drandom, _quote_ident, _textregexeq, _text_substr, _pg_wchar2mb_with_len, _regexp_split_to_array, _regclassin, _regtypeout, _regconfigout, _pg_get_indexdef_columns_extended, _pg_get_querydef, _strcspn, _generic_restriction_selectivity, _genericcostestimate, _tidin, _tidout, _timestamp_in, _timestamp_eq, _timestamp_lt, _timestamp_gt, _timestamp_le, _timestamp_ge, _interval_eq, _interval_lt, _interval_gt, _interval_le, _interval_ge, _interval_cmp, _timestamp_mi, _interval_um, _tsquery_requires_match, _TS_execute_ternary, _has_fn_opclass_options, _uuid_in, _uuid_out, _uuid_cmp, _gen_random_uuid, _varbit_in, _biteq, _bitlt, _bitle, _bitgt, _bitge, _bitcmp, _bitlength, _bpchareq, _bpcharlt, _bpcharle, _bpchargt, _bpcharge, _bpcharcmp, _pg_detoast_datum_slice, _text_substr_no_len, _texteq, _text_lt, _text_le, _text_gt, _text_ge, _bttextcmp, _byteaeq, _bytealt, _byteale, _byteagt, _byteage, _byteacmp, _to_hex32, _text_left, _text_right, _text_reverse, _varstr_levenshtein, _wcslen, _pg_xml_init, _xml_ereport, _pg_xml_done, _pg_do_encoding_conversion, _CreateCacheMemoryContext, _cfunc_resolve_polymorphic_argtypes, _get_typsubscript, _CachedPlanAllowsSimpleValidityCheck, _CachedPlanIsSimplyValid, _GetCachedExpression, _FreeCachedExpression, _ReleaseAllPlanCacheRefsInOwner, _SearchSysCache, _lookup_rowtype_tupdesc_noerror, _abort, _in_error_recursion_trouble, _pg_vfprintf, _pgl_longjmp, _openlog, _syslog, _GetErrorContextStack, _closelog, _dlsym, _dlopen, _dlerror, _dlclose, _find_rendezvous_variable, _CallerFInfoFunctionCall1, _CallerFInfoFunctionCall2, _FunctionCall0Coll, _RelationNameGetTupleDesc, _memcpy, _hash_freeze, _chdir, _pg_bindtextdomain, _pg_mblen, _check_encoding_conversion_args, _DefineCustomBoolVariable, _DefineCustomIntVariable, _DefineCustomRealVariable, _DefineCustomStringVariable, _DefineCustomEnumVariable, _MarkGUCPrefixReserved, _sampler_random_init_state, _dsa_trim, _pchomp, _PinPortal, _UnpinPortal, ___lshrti3, _realpath, _float_to_shortest_decimal_bufn, _IsValidJsonNumber, _pg_prng_uint64, _makeStringInfoExt, _initStringInfoExt, _pgl_getpwuid, _getcwd, _pthread_mutex_lock, _localeconv, _pthread_mutex_unlock, _nanosleep, _sigaction, _strchrnul, _snprintf, _strerror_r, _clear_setitimer, _pgl_setPGliteActive, _pgl_siglongjmp, _pgl_set_system_fn, _pgl_set_popen_fn, _pgl_set_pclose_fn, _pgl_run_atexit_funcs, _pgl_freopen, _fiprintf, _pgl_set_rw_cbs, _vfprintf, _pthread_key_create, _pthread_getspecific, _pthread_key_delete, _pthread_setspecific, _toupper, _iconv_open, _iconv_close, _iconv, _pthread_mutex_init, _pthread_mutex_destroy, _pthread_cond_init, _pthread_cond_destroy, _pthread_self, _pthread_cond_wait, _pthread_cond_signal, _pthread_once, ___cxa_atexit, _fputs, _vsnprintf, ___small_fprintf, _zcalloc, _zcfree, ___dynamic_cast, ___cxa_pure_virtual, _modf, _localtime_r, _strncat, _munmap, ___ctype_get_mb_cur_max, ___ctype_tolower_loc, ___ctype_toupper_loc, _fdopen, _sqrt, _acosl, _aligned_alloc, _atan2l, ___funcs_on_exit, _atexit, ___cxa_finalize, _btowc, _clock, _scalbn, _cosl, _dladdr, ___dl_seterr, _duplocale, __emscripten_find_dylib, _memmove, _memset, _fchmod, _fchmodat, _fchown, _fcntl, _fdopendir, _fmax, _fmin, _fputwc, _frexp, _ftell, _getentropy, _geteuid, _getgid, _mbtowc, _getuid, _getwc, _gmtime, _hypot, _mbrtowc, _ioctl, _isalpha, _isgraph, _isspace, _iswblank_l, _iswcntrl_l, _iswxdigit_l, _isxdigit_l, _pthread_cond_broadcast, _pthread_atfork, _pthread_mutex_trylock, _pthread_create, _pthread_join, _pthread_cond_timedwait, _pthread_detach, _link, _llround, _localtime, _log2, _logb, _lround, _mbrlen, _mbsnrtowcs, _mbsrtowcs, _memmem, _memrchr, _emscripten_builtin_memalign, _socket, _nextafter, _nextafterf, _ntohs, _openat, _pathconf, _perror, _iprintf, ___small_printf, _pthread_mutexattr_getprotocol, _pthread_mutexattr_getpshared, _pthread_mutexattr_getrobust, _pthread_mutexattr_gettype, _pthread_mutexattr_destroy, _pthread_mutexattr_init, _pthread_mutexattr_setprotocol, _pthread_mutexattr_setpshared, _pthread_mutexattr_settype, _putchar, _qsort, _srand, _rand, _remainder, _remove, _remquo, _round, _roundf, __emscripten_timeout, _sinl, _siprintf, _sqrtl, _vsscanf, _statvfs, _strcasecmp, _strerror, _strftime, _strncasecmp, ___floatsitf, ___multf3, ___addtf3, ___extenddftf2, ___getf2, ___subtf3, ___divtf3, ___eqtf2, ___letf2, ___trunctfdf2, _strtold, _strtof_l, _strtod_l, _strtold_l, _strtok, _strtoull_l, _strtoll_l, _swprintf, _connect, _trunc, _ungetc, _ungetwc, _unlinkat, _usleep, _utimensat, _vasprintf, _wcrtomb, _wcscoll_l, _wcsnrtombs, _wcstof, _wcstod, _wcstold, _wcstoull, _wcstoll, _wcstoul, _wcstol, _wcsxfrm_l, _wctob, _wmemchr, _wmemcmp, _emscripten_get_sbrk_ptr, ___ashlti3, ___lttf2, _setThrew, __emscripten_tempret_set, __emscripten_tempret_get, ___fixtfsi, __emscripten_stack_restore, __emscripten_stack_alloc, _emscripten_stack_get_current, ___cxa_decrement_exception_refcount, ___cxa_increment_exception_refcount, ___cxa_bad_cast, ___cxa_bad_typeid, ___cxa_allocate_exception, ___cxa_free_exception, ___cxa_init_primary_exception, ___cxa_get_exception_ptr, ___stack_pointer, ___table_base, _LocalBufferBlockPointers, _BufferBlocks, _wal_level, _CurrentMemoryContext, ___memory_base, _SnapshotAnyData, _debug_query_string, _maintenance_work_mem, __indirect_function_table, _CritSectionCount, _InterruptPending, _ParallelWorkerNumber, _pg_number_of_ones, _TopMemoryContext, _IsUnderPostmaster, _MainLWLockArray, _CurrentResourceOwner, _MyBackendType, _work_mem, _pg_global_prng_state, _NBuffers, _XactIsoLevel, _bsysscan, _CheckXidAlive, _MyProc, _MyDatabaseId, _MyDatabaseTableSpace, _TTSOpsBufferHeapTuple, _RecentXmin, _TTSOpsHeapTuple, _pgWalUsage, _pgBufferUsage, _error_context_stack, _MyLatch, _SnapshotSelfData, ___THREW__, ___threwValue, _PG_exception_stack, _TTSOpsVirtual, _GUC_check_errdetail_string, _TransamVariables, _TopTransactionContext, _InterruptHoldoffCount, _MyProcPid, _RmgrTable, _process_shared_preload_libraries_in_progress, _wal_segment_size, _TopTransactionResourceOwner, _arch_module_check_errdetail_string, _stdout, _stdin, _creating_extension, _object_access_hook, _InvalidObjectAddress, _check_function_bodies, _post_parse_analyze_hook, _ScanKeywordTokens, _ScanKeywords, _standard_conforming_strings, _None_Receiver, _explain_per_plan_hook, _explain_get_index_name_hook, _explain_per_node_hook, _CacheMemoryContext, _SPI_processed, _SPI_tuptable, _TTSOpsMinimalTuple, _check_password_hook, _ConfigReloadPending, _max_parallel_maintenance_workers, _DateStyle, _ExecutorStart_hook, _ExecutorRun_hook, _ExecutorFinish_hook, _ExecutorEnd_hook, _ExecutorCheckPerms_hook, _SPI_result, _stderr, _MyProcPort, _ClientAuthentication_hook, _set_rel_pathlist_hook, _cpu_tuple_cost, _cpu_operator_cost, _seq_page_cost, _planner_hook, _get_relation_info_hook, _QueryCancelPending, _ShutdownRequestPending, _MyStartTime, _cluster_name, _ProcDiePending, _application_name, _row_security_policy_hook_restrictive, _row_security_policy_hook_permissive, _BufferDescriptors, _shmem_startup_hook, _ProcessUtility_hook, _IntervalStyle, _extra_float_digits, _ScanKeywordCategories, _pg_crc32_table, _shmem_request_hook, _z_errmsg, __length_code, __dist_code, ___heap_base, wasmTable;
  function assignWasmExports(e) {
    _palloc0 = Module._palloc0 = e.palloc0, _RelationGetNumberOfBlocksInFork = Module._RelationGetNumberOfBlocksInFork = e.RelationGetNumberOfBlocksInFork, _ExtendBufferedRel = Module._ExtendBufferedRel = e.ExtendBufferedRel, _MarkBufferDirty = Module._MarkBufferDirty = e.MarkBufferDirty, _XLogBeginInsert = Module._XLogBeginInsert = e.XLogBeginInsert, _XLogRegisterData = Module._XLogRegisterData = e.XLogRegisterData, _XLogRegisterBuffer = Module._XLogRegisterBuffer = e.XLogRegisterBuffer, _XLogInsert = Module._XLogInsert = e.XLogInsert, _UnlockReleaseBuffer = Module._UnlockReleaseBuffer = e.UnlockReleaseBuffer, _palloc = Module._palloc = e.palloc, _brin_build_desc = Module._brin_build_desc = e.brin_build_desc, _EnterParallelMode = Module._EnterParallelMode = e.EnterParallelMode, _CreateParallelContext = Module._CreateParallelContext = e.CreateParallelContext, _GetTransactionSnapshot = Module._GetTransactionSnapshot = e.GetTransactionSnapshot, _RegisterSnapshot = Module._RegisterSnapshot = e.RegisterSnapshot, _table_parallelscan_estimate = Module._table_parallelscan_estimate = e.table_parallelscan_estimate, _add_size = Module._add_size = e.add_size, _tuplesort_estimate_shared = Module._tuplesort_estimate_shared = e.tuplesort_estimate_shared, _mul_size = Module._mul_size = e.mul_size, _strlen = Module._strlen = e.strlen, _InitializeParallelDSM = Module._InitializeParallelDSM = e.InitializeParallelDSM, _UnregisterSnapshot = Module._UnregisterSnapshot = e.UnregisterSnapshot, _DestroyParallelContext = Module._DestroyParallelContext = e.DestroyParallelContext, _ExitParallelMode = Module._ExitParallelMode = e.ExitParallelMode, _shm_toc_allocate = Module._shm_toc_allocate = e.shm_toc_allocate, _ConditionVariableInit = Module._ConditionVariableInit = e.ConditionVariableInit, _table_parallelscan_initialize = Module._table_parallelscan_initialize = e.table_parallelscan_initialize, _tuplesort_initialize_shared = Module._tuplesort_initialize_shared = e.tuplesort_initialize_shared, _shm_toc_insert = Module._shm_toc_insert = e.shm_toc_insert, _LaunchParallelWorkers = Module._LaunchParallelWorkers = e.LaunchParallelWorkers, _WaitForParallelWorkersToAttach = Module._WaitForParallelWorkersToAttach = e.WaitForParallelWorkersToAttach, _s_lock = Module._s_lock = e.s_lock, _ConditionVariableSleep = Module._ConditionVariableSleep = e.ConditionVariableSleep, _ConditionVariableCancelSleep = Module._ConditionVariableCancelSleep = e.ConditionVariableCancelSleep, _tuplesort_performsort = Module._tuplesort_performsort = e.tuplesort_performsort, _AllocSetContextCreateInternal = Module._AllocSetContextCreateInternal = e.AllocSetContextCreateInternal, _tuplesort_end = Module._tuplesort_end = e.tuplesort_end, _MemoryContextReset = Module._MemoryContextReset = e.MemoryContextReset, _brin_deform_tuple = Module._brin_deform_tuple = e.brin_deform_tuple, _pfree = Module._pfree = e.pfree, _MemoryContextDelete = Module._MemoryContextDelete = e.MemoryContextDelete, _errstart_cold = Module._errstart_cold = e.errstart_cold, _errmsg_internal = Module._errmsg_internal = e.errmsg_internal, _errfinish = Module._errfinish = e.errfinish, _log_newpage_buffer = Module._log_newpage_buffer = e.log_newpage_buffer, _ProcessInterrupts = Module._ProcessInterrupts = e.ProcessInterrupts, _errstart = Module._errstart = e.errstart, _errcode = Module._errcode = e.errcode, _errmsg = Module._errmsg = e.errmsg, _LockBuffer = Module._LockBuffer = e.LockBuffer, _ReleaseBuffer = Module._ReleaseBuffer = e.ReleaseBuffer, _IndexGetRelation = Module._IndexGetRelation = e.IndexGetRelation, _table_open = Module._table_open = e.table_open, _ReadBufferExtended = Module._ReadBufferExtended = e.ReadBufferExtended, _table_close = Module._table_close = e.table_close, _build_reloptions = Module._build_reloptions = e.build_reloptions, _RelationGetIndexScan = Module._RelationGetIndexScan = e.RelationGetIndexScan, _pgstat_assoc_relation = Module._pgstat_assoc_relation = e.pgstat_assoc_relation, _palloc0_mul = Module._palloc0_mul = e.palloc0_mul, _index_getprocinfo = Module._index_getprocinfo = e.index_getprocinfo, _fmgr_info_copy = Module._fmgr_info_copy = e.fmgr_info_copy, _FunctionCall4Coll = Module._FunctionCall4Coll = e.FunctionCall4Coll, _palloc_mul = Module._palloc_mul = e.palloc_mul, _FunctionCall1Coll = Module._FunctionCall1Coll = e.FunctionCall1Coll, _brin_free_desc = Module._brin_free_desc = e.brin_free_desc, _WaitForParallelWorkersToFinish = Module._WaitForParallelWorkersToFinish = e.WaitForParallelWorkersToFinish, _PageGetFreeSpace = Module._PageGetFreeSpace = e.PageGetFreeSpace, _BufferGetBlockNumber = Module._BufferGetBlockNumber = e.BufferGetBlockNumber, _BuildIndexInfo = Module._BuildIndexInfo = e.BuildIndexInfo, _Int64GetDatum = Module._Int64GetDatum = e.Int64GetDatum, _DirectFunctionCall2Coll = Module._DirectFunctionCall2Coll = e.DirectFunctionCall2Coll, _RecoveryInProgress = Module._RecoveryInProgress = e.RecoveryInProgress, _GetUserIdAndSecContext = Module._GetUserIdAndSecContext = e.GetUserIdAndSecContext, _SetUserIdAndSecContext = Module._SetUserIdAndSecContext = e.SetUserIdAndSecContext, _NewGUCNestLevel = Module._NewGUCNestLevel = e.NewGUCNestLevel, _RestrictSearchPath = Module._RestrictSearchPath = e.RestrictSearchPath, _index_open = Module._index_open = e.index_open, _object_ownercheck = Module._object_ownercheck = e.object_ownercheck, _aclcheck_error = Module._aclcheck_error = e.aclcheck_error, _AtEOXact_GUC = Module._AtEOXact_GUC = e.AtEOXact_GUC, _relation_close = Module._relation_close = e.relation_close, _errhint = Module._errhint = e.errhint, _GetUserId = Module._GetUserId = e.GetUserId, _ReadBuffer = Module._ReadBuffer = e.ReadBuffer, _shm_toc_lookup = Module._shm_toc_lookup = e.shm_toc_lookup, _pgstat_report_activity = Module._pgstat_report_activity = e.pgstat_report_activity, _tuplesort_attach_shared = Module._tuplesort_attach_shared = e.tuplesort_attach_shared, _index_close = Module._index_close = e.index_close, _table_beginscan_parallel = Module._table_beginscan_parallel = e.table_beginscan_parallel, _ConditionVariableSignal = Module._ConditionVariableSignal = e.ConditionVariableSignal, _datumCopy = Module._datumCopy = e.datumCopy, _lookup_type_cache = Module._lookup_type_cache = e.lookup_type_cache, _get_fn_opclass_options = Module._get_fn_opclass_options = e.get_fn_opclass_options, _log = Module._log = e.log, _pg_detoast_datum = Module._pg_detoast_datum = e.pg_detoast_datum, _index_getprocid = Module._index_getprocid = e.index_getprocid, _errdetail_internal = Module._errdetail_internal = e.errdetail_internal, _pg_popcount_optimized = Module._pg_popcount_optimized = e.pg_popcount_optimized, _init_local_reloptions = Module._init_local_reloptions = e.init_local_reloptions, _initStringInfo = Module._initStringInfo = e.initStringInfo, _appendStringInfoChar = Module._appendStringInfoChar = e.appendStringInfoChar, _appendStringInfo = Module._appendStringInfo = e.appendStringInfo, _FunctionCall2Coll = Module._FunctionCall2Coll = e.FunctionCall2Coll, _SearchSysCache4 = Module._SearchSysCache4 = e.SearchSysCache4, _SysCacheGetAttrNotNull = Module._SysCacheGetAttrNotNull = e.SysCacheGetAttrNotNull, _ReleaseSysCache = Module._ReleaseSysCache = e.ReleaseSysCache, _get_opcode = Module._get_opcode = e.get_opcode, _fmgr_info_cxt = Module._fmgr_info_cxt = e.fmgr_info_cxt, _Float8GetDatum = Module._Float8GetDatum = e.Float8GetDatum, _numeric_float8 = Module._numeric_float8 = e.numeric_float8, _numeric_sub = Module._numeric_sub = e.numeric_sub, _DirectFunctionCall1Coll = Module._DirectFunctionCall1Coll = e.DirectFunctionCall1Coll, _pg_detoast_datum_packed = Module._pg_detoast_datum_packed = e.pg_detoast_datum_packed, _pg_qsort = Module._pg_qsort = e.pg_qsort, _get_typbyval = Module._get_typbyval = e.get_typbyval, _get_typlen = Module._get_typlen = e.get_typlen, _qsort_arg = Module._qsort_arg = e.qsort_arg, _add_local_int_reloption = Module._add_local_int_reloption = e.add_local_int_reloption, _getTypeOutputInfo = Module._getTypeOutputInfo = e.getTypeOutputInfo, _fmgr_info = Module._fmgr_info = e.fmgr_info, _OutputFunctionCall = Module._OutputFunctionCall = e.OutputFunctionCall, _cstring_to_text_with_len = Module._cstring_to_text_with_len = e.cstring_to_text_with_len, _accumArrayResult = Module._accumArrayResult = e.accumArrayResult, _makeArrayResult = Module._makeArrayResult = e.makeArrayResult, _OidOutputFunctionCall = Module._OidOutputFunctionCall = e.OidOutputFunctionCall, _cstring_to_text = Module._cstring_to_text = e.cstring_to_text, _PageGetExactFreeSpace = Module._PageGetExactFreeSpace = e.PageGetExactFreeSpace, _PageIndexTupleOverwrite = Module._PageIndexTupleOverwrite = e.PageIndexTupleOverwrite, _PageInit = Module._PageInit = e.PageInit, _PageAddItemExtended = Module._PageAddItemExtended = e.PageAddItemExtended, _LockRelationForExtension = Module._LockRelationForExtension = e.LockRelationForExtension, _UnlockRelationForExtension = Module._UnlockRelationForExtension = e.UnlockRelationForExtension, _smgropen = Module._smgropen = e.smgropen, _smgrpin = Module._smgrpin = e.smgrpin, _ItemPointerEquals = Module._ItemPointerEquals = e.ItemPointerEquals, _detoast_external_attr = Module._detoast_external_attr = e.detoast_external_attr, _CreateTemplateTupleDesc = Module._CreateTemplateTupleDesc = e.CreateTemplateTupleDesc, _TupleDescInitEntry = Module._TupleDescInitEntry = e.TupleDescInitEntry, _repalloc = Module._repalloc = e.repalloc, _memcmp = Module._memcmp = e.memcmp, _SearchSysCache1 = Module._SearchSysCache1 = e.SearchSysCache1, _get_opfamily_name = Module._get_opfamily_name = e.get_opfamily_name, _SearchSysCacheList = Module._SearchSysCacheList = e.SearchSysCacheList, _check_amproc_signature = Module._check_amproc_signature = e.check_amproc_signature, _check_amoptsproc_signature = Module._check_amoptsproc_signature = e.check_amoptsproc_signature, _format_procedure = Module._format_procedure = e.format_procedure, _format_operator = Module._format_operator = e.format_operator, _check_amop_signature = Module._check_amop_signature = e.check_amop_signature, _identify_opfamily_groups = Module._identify_opfamily_groups = e.identify_opfamily_groups, _format_type_be = Module._format_type_be = e.format_type_be, _ReleaseCatCacheList = Module._ReleaseCatCacheList = e.ReleaseCatCacheList, _format_type_with_typemod = Module._format_type_with_typemod = e.format_type_with_typemod, _errdetail = Module._errdetail = e.errdetail, _strcmp = Module._strcmp = e.strcmp, _DatumGetEOHP = Module._DatumGetEOHP = e.DatumGetEOHP, _EOH_get_flat_size = Module._EOH_get_flat_size = e.EOH_get_flat_size, _EOH_flatten_into = Module._EOH_flatten_into = e.EOH_flatten_into, _toast_raw_datum_size = Module._toast_raw_datum_size = e.toast_raw_datum_size, _getmissingattr = Module._getmissingattr = e.getmissingattr, _hash_create = Module._hash_create = e.hash_create, _hash_search = Module._hash_search = e.hash_search, _nocachegetattr = Module._nocachegetattr = e.nocachegetattr, _heap_getsysattr = Module._heap_getsysattr = e.heap_getsysattr, _heap_form_tuple = Module._heap_form_tuple = e.heap_form_tuple, _heap_modify_tuple = Module._heap_modify_tuple = e.heap_modify_tuple, _heap_deform_tuple = Module._heap_deform_tuple = e.heap_deform_tuple, _heap_modify_tuple_by_cols = Module._heap_modify_tuple_by_cols = e.heap_modify_tuple_by_cols, _heap_freetuple = Module._heap_freetuple = e.heap_freetuple, _hash_bytes = Module._hash_bytes = e.hash_bytes, _index_form_tuple = Module._index_form_tuple = e.index_form_tuple, _MemoryContextAllocZero = Module._MemoryContextAllocZero = e.MemoryContextAllocZero, _nocache_index_getattr = Module._nocache_index_getattr = e.nocache_index_getattr, _index_deform_tuple = Module._index_deform_tuple = e.index_deform_tuple, _CopyIndexTuple = Module._CopyIndexTuple = e.CopyIndexTuple, _CreateTupleDescTruncatedCopy = Module._CreateTupleDescTruncatedCopy = e.CreateTupleDescTruncatedCopy, _enlargeStringInfo = Module._enlargeStringInfo = e.enlargeStringInfo, _slot_getsomeattrs_int = Module._slot_getsomeattrs_int = e.slot_getsomeattrs_int, _pg_lltoa = Module._pg_lltoa = e.pg_lltoa, _pg_ltoa = Module._pg_ltoa = e.pg_ltoa, _pq_sendbytes = Module._pq_sendbytes = e.pq_sendbytes, _pg_printf = Module._pg_printf = e.pg_printf, _relation_open = Module._relation_open = e.relation_open, _LockRelationOid = Module._LockRelationOid = e.LockRelationOid, _RelationIdGetRelation = Module._RelationIdGetRelation = e.RelationIdGetRelation, _try_relation_open = Module._try_relation_open = e.try_relation_open, _SearchSysCacheExists = Module._SearchSysCacheExists = e.SearchSysCacheExists, _UnlockRelationOid = Module._UnlockRelationOid = e.UnlockRelationOid, _relation_openrv = Module._relation_openrv = e.relation_openrv, _AcceptInvalidationMessages = Module._AcceptInvalidationMessages = e.AcceptInvalidationMessages, _RangeVarGetRelidExtended = Module._RangeVarGetRelidExtended = e.RangeVarGetRelidExtended, _RelationClose = Module._RelationClose = e.RelationClose, _add_reloption_kind = Module._add_reloption_kind = e.add_reloption_kind, _register_reloptions_validator = Module._register_reloptions_validator = e.register_reloptions_validator, _lappend = Module._lappend = e.lappend, _pstrdup = Module._pstrdup = e.pstrdup, _add_int_reloption = Module._add_int_reloption = e.add_int_reloption, _add_real_reloption = Module._add_real_reloption = e.add_real_reloption, _add_enum_reloption = Module._add_enum_reloption = e.add_enum_reloption, _add_string_reloption = Module._add_string_reloption = e.add_string_reloption, _strdup = Module._strdup = e.strdup, _MemoryContextStrdup = Module._MemoryContextStrdup = e.MemoryContextStrdup, _transformRelOptions = Module._transformRelOptions = e.transformRelOptions, _deconstruct_array_builtin = Module._deconstruct_array_builtin = e.deconstruct_array_builtin, _strncmp = Module._strncmp = e.strncmp, _defGetString = Module._defGetString = e.defGetString, _strchr = Module._strchr = e.strchr, _defGetBoolean = Module._defGetBoolean = e.defGetBoolean, _pg_sprintf = Module._pg_sprintf = e.pg_sprintf, _untransformRelOptions = Module._untransformRelOptions = e.untransformRelOptions, _text_to_cstring = Module._text_to_cstring = e.text_to_cstring, _makeString = Module._makeString = e.makeString, _makeDefElem = Module._makeDefElem = e.makeDefElem, _heap_reloptions = Module._heap_reloptions = e.heap_reloptions, _index_reloptions = Module._index_reloptions = e.index_reloptions, _strcpy = Module._strcpy = e.strcpy, _MemoryContextAlloc = Module._MemoryContextAlloc = e.MemoryContextAlloc, _parse_bool = Module._parse_bool = e.parse_bool, _parse_int = Module._parse_int = e.parse_int, _parse_real = Module._parse_real = e.parse_real, _pg_strcasecmp = Module._pg_strcasecmp = e.pg_strcasecmp, _ScanKeyInit = Module._ScanKeyInit = e.ScanKeyInit, _dsm_segment_handle = Module._dsm_segment_handle = e.dsm_segment_handle, _dsm_create = Module._dsm_create = e.dsm_create, _dsm_segment_address = Module._dsm_segment_address = e.dsm_segment_address, _dsa_pin_mapping = Module._dsa_pin_mapping = e.dsa_pin_mapping, _dsm_attach = Module._dsm_attach = e.dsm_attach, _dsm_detach = Module._dsm_detach = e.dsm_detach, _ShmemInitStruct = Module._ShmemInitStruct = e.ShmemInitStruct, _LWLockAcquire = Module._LWLockAcquire = e.LWLockAcquire, _LWLockRelease = Module._LWLockRelease = e.LWLockRelease, _LWLockConditionalAcquire = Module._LWLockConditionalAcquire = e.LWLockConditionalAcquire, _dsa_create_ext = Module._dsa_create_ext = e.dsa_create_ext, _dsa_allocate_extended = Module._dsa_allocate_extended = e.dsa_allocate_extended, _dsa_get_address = Module._dsa_get_address = e.dsa_get_address, _LWLockInitialize = Module._LWLockInitialize = e.LWLockInitialize, _dsa_attach = Module._dsa_attach = e.dsa_attach, _dsa_free = Module._dsa_free = e.dsa_free, _dsa_get_total_size = Module._dsa_get_total_size = e.dsa_get_total_size, _MemoryContextMemAllocated = Module._MemoryContextMemAllocated = e.MemoryContextMemAllocated, _check_stack_depth = Module._check_stack_depth = e.check_stack_depth, _GetCurrentCommandId = Module._GetCurrentCommandId = e.GetCurrentCommandId, _toast_open_indexes = Module._toast_open_indexes = e.toast_open_indexes, _GetNewOidWithIndex = Module._GetNewOidWithIndex = e.GetNewOidWithIndex, _heap_insert = Module._heap_insert = e.heap_insert, _RelationGetIndexList = Module._RelationGetIndexList = e.RelationGetIndexList, _list_free = Module._list_free = e.list_free, _systable_beginscan = Module._systable_beginscan = e.systable_beginscan, _systable_getnext = Module._systable_getnext = e.systable_getnext, _systable_endscan = Module._systable_endscan = e.systable_endscan, _toast_close_indexes = Module._toast_close_indexes = e.toast_close_indexes, _systable_beginscan_ordered = Module._systable_beginscan_ordered = e.systable_beginscan_ordered, _systable_getnext_ordered = Module._systable_getnext_ordered = e.systable_getnext_ordered, _systable_endscan_ordered = Module._systable_endscan_ordered = e.systable_endscan_ordered, _get_toast_snapshot = Module._get_toast_snapshot = e.get_toast_snapshot, _convert_tuples_by_position = Module._convert_tuples_by_position = e.convert_tuples_by_position, _execute_attr_map_tuple = Module._execute_attr_map_tuple = e.execute_attr_map_tuple, _ExecStoreVirtualTuple = Module._ExecStoreVirtualTuple = e.ExecStoreVirtualTuple, _bms_is_member = Module._bms_is_member = e.bms_is_member, _bms_add_member = Module._bms_add_member = e.bms_add_member, _free_conversion_map = Module._free_conversion_map = e.free_conversion_map, _CreateTupleDescCopy = Module._CreateTupleDescCopy = e.CreateTupleDescCopy, _FreeTupleDesc = Module._FreeTupleDesc = e.FreeTupleDesc, _ResourceOwnerEnlarge = Module._ResourceOwnerEnlarge = e.ResourceOwnerEnlarge, _ResourceOwnerRemember = Module._ResourceOwnerRemember = e.ResourceOwnerRemember, _DecrTupleDescRefCount = Module._DecrTupleDescRefCount = e.DecrTupleDescRefCount, _ResourceOwnerForget = Module._ResourceOwnerForget = e.ResourceOwnerForget, _datumIsEqual = Module._datumIsEqual = e.datumIsEqual, _equalRowTypes = Module._equalRowTypes = e.equalRowTypes, _hashRowType = Module._hashRowType = e.hashRowType, _namestrcpy = Module._namestrcpy = e.namestrcpy, _TupleDescInitEntryCollation = Module._TupleDescInitEntryCollation = e.TupleDescInitEntryCollation, _BuildDescFromLists = Module._BuildDescFromLists = e.BuildDescFromLists, _stringToNode = Module._stringToNode = e.stringToNode, _psprintf = Module._psprintf = e.psprintf, _pg_detoast_datum_copy = Module._pg_detoast_datum_copy = e.pg_detoast_datum_copy, _get_typlenbyvalalign = Module._get_typlenbyvalalign = e.get_typlenbyvalalign, _deconstruct_array = Module._deconstruct_array = e.deconstruct_array, _ginCompareAttEntries = Module._ginCompareAttEntries = e.ginCompareAttEntries, _repalloc_huge = Module._repalloc_huge = e.repalloc_huge, _GinDataLeafPageGetItems = Module._GinDataLeafPageGetItems = e.GinDataLeafPageGetItems, _tbm_add_tuples = Module._tbm_add_tuples = e.tbm_add_tuples, _ginPostingListDecode = Module._ginPostingListDecode = e.ginPostingListDecode, _ItemPointerCompare = Module._ItemPointerCompare = e.ItemPointerCompare, _gintuple_get_attrnum = Module._gintuple_get_attrnum = e.gintuple_get_attrnum, _gintuple_get_key = Module._gintuple_get_key = e.gintuple_get_key, _LockPage = Module._LockPage = e.LockPage, _UnlockPage = Module._UnlockPage = e.UnlockPage, _vacuum_delay_point = Module._vacuum_delay_point = e.vacuum_delay_point, _RecordFreeIndexPage = Module._RecordFreeIndexPage = e.RecordFreeIndexPage, _IndexFreeSpaceMapVacuum = Module._IndexFreeSpaceMapVacuum = e.IndexFreeSpaceMapVacuum, _repalloc_mul = Module._repalloc_mul = e.repalloc_mul, _initGinState = Module._initGinState = e.initGinState, _pg_prng_double = Module._pg_prng_double = e.pg_prng_double, _pgstat_progress_update_param = Module._pgstat_progress_update_param = e.pgstat_progress_update_param, _log_newpage_range = Module._log_newpage_range = e.log_newpage_range, _GetFreeIndexPage = Module._GetFreeIndexPage = e.GetFreeIndexPage, _ConditionalLockBuffer = Module._ConditionalLockBuffer = e.ConditionalLockBuffer, _LockBufferForCleanup = Module._LockBufferForCleanup = e.LockBufferForCleanup, _ReadNextFullTransactionId = Module._ReadNextFullTransactionId = e.ReadNextFullTransactionId, _PageIndexMultiDelete = Module._PageIndexMultiDelete = e.PageIndexMultiDelete, _list_make1_impl = Module._list_make1_impl = e.list_make1_impl, _list_delete_first = Module._list_delete_first = e.list_delete_first, _lcons = Module._lcons = e.lcons, _pow = Module._pow = e.pow, _smgrnblocks = Module._smgrnblocks = e.smgrnblocks, _list_free_deep = Module._list_free_deep = e.list_free_deep, _BufFileCreateTemp = Module._BufFileCreateTemp = e.BufFileCreateTemp, _BufFileWrite = Module._BufFileWrite = e.BufFileWrite, _BufFileReadExact = Module._BufFileReadExact = e.BufFileReadExact, _BufFileClose = Module._BufFileClose = e.BufFileClose, _pairingheap_remove_first = Module._pairingheap_remove_first = e.pairingheap_remove_first, _pairingheap_add = Module._pairingheap_add = e.pairingheap_add, _float_overflow_error = Module._float_overflow_error = e.float_overflow_error, _float8_cmp_internal = Module._float8_cmp_internal = e.float8_cmp_internal, _float_underflow_error = Module._float_underflow_error = e.float_underflow_error, _DirectFunctionCall5Coll = Module._DirectFunctionCall5Coll = e.DirectFunctionCall5Coll, _pairingheap_allocate = Module._pairingheap_allocate = e.pairingheap_allocate, _get_func_rettype = Module._get_func_rettype = e.get_func_rettype, _OidFunctionCall1Coll = Module._OidFunctionCall1Coll = e.OidFunctionCall1Coll, _GenerationContextCreate = Module._GenerationContextCreate = e.GenerationContextCreate, _block_range_read_stream_cb = Module._block_range_read_stream_cb = e.block_range_read_stream_cb, _read_stream_begin_relation = Module._read_stream_begin_relation = e.read_stream_begin_relation, _read_stream_next_buffer = Module._read_stream_next_buffer = e.read_stream_next_buffer, _read_stream_end = Module._read_stream_end = e.read_stream_end, _estimate_rel_size = Module._estimate_rel_size = e.estimate_rel_size, __hash_spareindex = Module.__hash_spareindex = e._hash_spareindex, __hash_getbuf = Module.__hash_getbuf = e._hash_getbuf, __hash_relbuf = Module.__hash_relbuf = e._hash_relbuf, __hash_get_indextuple_hashkey = Module.__hash_get_indextuple_hashkey = e._hash_get_indextuple_hashkey, _hashcharextended = Module._hashcharextended = e.hashcharextended, _hashint8 = Module._hashint8 = e.hashint8, _hashint8extended = Module._hashint8extended = e.hashint8extended, _hash_bytes_extended = Module._hash_bytes_extended = e.hash_bytes_extended, _hashfloat8 = Module._hashfloat8 = e.hashfloat8, _hashfloat8extended = Module._hashfloat8extended = e.hashfloat8extended, _pg_newlocale_from_collation = Module._pg_newlocale_from_collation = e.pg_newlocale_from_collation, __hash_ovflblkno_to_bitno = Module.__hash_ovflblkno_to_bitno = e._hash_ovflblkno_to_bitno, __hash_get_totalbuckets = Module.__hash_get_totalbuckets = e._hash_get_totalbuckets, _hash_destroy = Module._hash_destroy = e.hash_destroy, _list_append_unique_oid = Module._list_append_unique_oid = e.list_append_unique_oid, _list_member_oid = Module._list_member_oid = e.list_member_oid, _CommandCounterIncrement = Module._CommandCounterIncrement = e.CommandCounterIncrement, _get_opclass_input_type = Module._get_opclass_input_type = e.get_opclass_input_type, _list_concat_copy = Module._list_concat_copy = e.list_concat_copy, _HeapTupleSatisfiesVisibility = Module._HeapTupleSatisfiesVisibility = e.HeapTupleSatisfiesVisibility, _GetAccessStrategy = Module._GetAccessStrategy = e.GetAccessStrategy, _FreeAccessStrategy = Module._FreeAccessStrategy = e.FreeAccessStrategy, _heap_getnext = Module._heap_getnext = e.heap_getnext, _ExecStoreBufferHeapTuple = Module._ExecStoreBufferHeapTuple = e.ExecStoreBufferHeapTuple, _heap_fetch = Module._heap_fetch = e.heap_fetch, _HeapTupleSatisfiesVacuum = Module._HeapTupleSatisfiesVacuum = e.HeapTupleSatisfiesVacuum, _GetMultiXactIdMembers = Module._GetMultiXactIdMembers = e.GetMultiXactIdMembers, _TransactionIdPrecedes = Module._TransactionIdPrecedes = e.TransactionIdPrecedes, _GetBulkInsertState = Module._GetBulkInsertState = e.GetBulkInsertState, _FreeBulkInsertState = Module._FreeBulkInsertState = e.FreeBulkInsertState, _visibilitymap_clear_locked = Module._visibilitymap_clear_locked = e.visibilitymap_clear_locked, _pgstat_count_heap_insert = Module._pgstat_count_heap_insert = e.pgstat_count_heap_insert, _heap_multi_insert = Module._heap_multi_insert = e.heap_multi_insert, _ExecFetchSlotHeapTuple = Module._ExecFetchSlotHeapTuple = e.ExecFetchSlotHeapTuple, _heap_delete = Module._heap_delete = e.heap_delete, _IsInParallelMode = Module._IsInParallelMode = e.IsInParallelMode, _visibilitymap_pin = Module._visibilitymap_pin = e.visibilitymap_pin, _HeapTupleSatisfiesUpdate = Module._HeapTupleSatisfiesUpdate = e.HeapTupleSatisfiesUpdate, _TransactionIdIsCurrentTransactionId = Module._TransactionIdIsCurrentTransactionId = e.TransactionIdIsCurrentTransactionId, _TransactionIdDidCommit = Module._TransactionIdDidCommit = e.TransactionIdDidCommit, _UnlockTuple = Module._UnlockTuple = e.UnlockTuple, _TransactionIdIsInProgress = Module._TransactionIdIsInProgress = e.TransactionIdIsInProgress, _bms_free = Module._bms_free = e.bms_free, _bms_add_members = Module._bms_add_members = e.bms_add_members, _bms_next_member = Module._bms_next_member = e.bms_next_member, _bms_overlap = Module._bms_overlap = e.bms_overlap, _HeapTupleGetUpdateXid = Module._HeapTupleGetUpdateXid = e.HeapTupleGetUpdateXid, _heap_lock_tuple = Module._heap_lock_tuple = e.heap_lock_tuple, _MultiXactIdPrecedes = Module._MultiXactIdPrecedes = e.MultiXactIdPrecedes, _heap_tuple_needs_eventual_freeze = Module._heap_tuple_needs_eventual_freeze = e.heap_tuple_needs_eventual_freeze, _PrefetchBuffer = Module._PrefetchBuffer = e.PrefetchBuffer, _RelationTruncate = Module._RelationTruncate = e.RelationTruncate, _FlushRelationBuffers = Module._FlushRelationBuffers = e.FlushRelationBuffers, _smgrexists = Module._smgrexists = e.smgrexists, _table_slot_create = Module._table_slot_create = e.table_slot_create, _ExecDropSingleTupleTableSlot = Module._ExecDropSingleTupleTableSlot = e.ExecDropSingleTupleTableSlot, _CreateExecutorState = Module._CreateExecutorState = e.CreateExecutorState, _MakePerTupleExprContext = Module._MakePerTupleExprContext = e.MakePerTupleExprContext, _ExecPrepareQual = Module._ExecPrepareQual = e.ExecPrepareQual, _GetOldestNonRemovableTransactionId = Module._GetOldestNonRemovableTransactionId = e.GetOldestNonRemovableTransactionId, _FormIndexDatum = Module._FormIndexDatum = e.FormIndexDatum, _FreeExecutorState = Module._FreeExecutorState = e.FreeExecutorState, _MakeSingleTupleTableSlot = Module._MakeSingleTupleTableSlot = e.MakeSingleTupleTableSlot, _tuplesort_getdatum = Module._tuplesort_getdatum = e.tuplesort_getdatum, _ExecStoreHeapTuple = Module._ExecStoreHeapTuple = e.ExecStoreHeapTuple, _XidInMVCCSnapshot = Module._XidInMVCCSnapshot = e.XidInMVCCSnapshot, _bsearch = Module._bsearch = e.bsearch, _XLogRecGetBlockTagExtended = Module._XLogRecGetBlockTagExtended = e.XLogRecGetBlockTagExtended, _hash_seq_init = Module._hash_seq_init = e.hash_seq_init, _hash_seq_search = Module._hash_seq_search = e.hash_seq_search, _errcode_for_file_access = Module._errcode_for_file_access = e.errcode_for_file_access, _pg_snprintf = Module._pg_snprintf = e.pg_snprintf, _OpenTransientFile = Module._OpenTransientFile = e.OpenTransientFile, _ftruncate = Module._ftruncate = e.ftruncate, ___errno_location = Module.___errno_location = e.__errno_location, _pwrite = Module._pwrite = e.pwrite, _CloseTransientFile = Module._CloseTransientFile = e.CloseTransientFile, _sscanf = Module._sscanf = e.sscanf, _unlink = Module._unlink = e.unlink, _fsync_fname = Module._fsync_fname = e.fsync_fname, _GetCurrentTimestamp = Module._GetCurrentTimestamp = e.GetCurrentTimestamp, _get_database_name = Module._get_database_name = e.get_database_name, _get_namespace_name = Module._get_namespace_name = e.get_namespace_name, _pg_prng_uint32 = Module._pg_prng_uint32 = e.pg_prng_uint32, _GetRecordedFreeSpace = Module._GetRecordedFreeSpace = e.GetRecordedFreeSpace, _visibilitymap_get_status = Module._visibilitymap_get_status = e.visibilitymap_get_status, _vac_estimate_reltuples = Module._vac_estimate_reltuples = e.vac_estimate_reltuples, _WaitLatch = Module._WaitLatch = e.WaitLatch, _ResetLatch = Module._ResetLatch = e.ResetLatch, _clock_gettime = Module._clock_gettime = e.clock_gettime, _WalUsageAccumDiff = Module._WalUsageAccumDiff = e.WalUsageAccumDiff, _BufferUsageAccumDiff = Module._BufferUsageAccumDiff = e.BufferUsageAccumDiff, _appendStringInfoString = Module._appendStringInfoString = e.appendStringInfoString, _set_errcontext_domain = Module._set_errcontext_domain = e.set_errcontext_domain, _errcontext_msg = Module._errcontext_msg = e.errcontext_msg, _visibilitymap_prepare_truncate = Module._visibilitymap_prepare_truncate = e.visibilitymap_prepare_truncate, _GetIndexAmRoutine = Module._GetIndexAmRoutine = e.GetIndexAmRoutine, _check_enable_rls = Module._check_enable_rls = e.check_enable_rls, _pg_class_aclcheck = Module._pg_class_aclcheck = e.pg_class_aclcheck, _pg_attribute_aclcheck = Module._pg_attribute_aclcheck = e.pg_attribute_aclcheck, _try_index_open = Module._try_index_open = e.try_index_open, _btboolcmp = Module._btboolcmp = e.btboolcmp, _btint2cmp = Module._btint2cmp = e.btint2cmp, _btint4cmp = Module._btint4cmp = e.btint4cmp, _btint8cmp = Module._btint8cmp = e.btint8cmp, _btoidcmp = Module._btoidcmp = e.btoidcmp, _btcharcmp = Module._btcharcmp = e.btcharcmp, __bt_form_posting = Module.__bt_form_posting = e._bt_form_posting, __bt_mkscankey = Module.__bt_mkscankey = e._bt_mkscankey, __bt_checkpage = Module.__bt_checkpage = e._bt_checkpage, __bt_compare = Module.__bt_compare = e._bt_compare, __bt_relbuf = Module.__bt_relbuf = e._bt_relbuf, __bt_search = Module.__bt_search = e._bt_search, __bt_binsrch_insert = Module.__bt_binsrch_insert = e._bt_binsrch_insert, __bt_freestack = Module.__bt_freestack = e._bt_freestack, __bt_metaversion = Module.__bt_metaversion = e._bt_metaversion, _get_opfamily_member = Module._get_opfamily_member = e.get_opfamily_member, _OidFunctionCall2Coll = Module._OidFunctionCall2Coll = e.OidFunctionCall2Coll, __bt_allequalimage = Module.__bt_allequalimage = e._bt_allequalimage, ___wasm_setjmp_test = Module.___wasm_setjmp_test = e.__wasm_setjmp_test, _before_shmem_exit = Module._before_shmem_exit = e.before_shmem_exit, ___wasm_setjmp = Module.___wasm_setjmp = e.__wasm_setjmp, _cancel_before_shmem_exit = Module._cancel_before_shmem_exit = e.cancel_before_shmem_exit, _pg_re_throw = Module._pg_re_throw = e.pg_re_throw, _emscripten_longjmp = Module._emscripten_longjmp = e.emscripten_longjmp, _ConditionVariableBroadcast = Module._ConditionVariableBroadcast = e.ConditionVariableBroadcast, _datum_image_eq = Module._datum_image_eq = e.datum_image_eq, _time = Module._time = e.time, __bt_check_natts = Module.__bt_check_natts = e._bt_check_natts, _strlcpy = Module._strlcpy = e.strlcpy, _strncpy = Module._strncpy = e.strncpy, _timestamptz_to_str = Module._timestamptz_to_str = e.timestamptz_to_str, _XLogRecGetBlockRefInfo = Module._XLogRecGetBlockRefInfo = e.XLogRecGetBlockRefInfo, _varstr_cmp = Module._varstr_cmp = e.varstr_cmp, _get_atttype = Module._get_atttype = e.get_atttype, _getBaseType = Module._getBaseType = e.getBaseType, _exprType = Module._exprType = e.exprType, _GetActiveSnapshot = Module._GetActiveSnapshot = e.GetActiveSnapshot, _errdetail_relkind_not_supported = Module._errdetail_relkind_not_supported = e.errdetail_relkind_not_supported, _table_openrv = Module._table_openrv = e.table_openrv, _table_slot_callbacks = Module._table_slot_callbacks = e.table_slot_callbacks, _clamp_row_est = Module._clamp_row_est = e.clamp_row_est, _pre_format_elog_string = Module._pre_format_elog_string = e.pre_format_elog_string, _format_elog_string = Module._format_elog_string = e.format_elog_string, _IsTransactionState = Module._IsTransactionState = e.IsTransactionState, _estimate_expression_value = Module._estimate_expression_value = e.estimate_expression_value, _SetConfigOption = Module._SetConfigOption = e.SetConfigOption, _XLogFlush = Module._XLogFlush = e.XLogFlush, _get_call_result_type = Module._get_call_result_type = e.get_call_result_type, _HeapTupleHeaderGetDatum = Module._HeapTupleHeaderGetDatum = e.HeapTupleHeaderGetDatum, _GenericXLogStart = Module._GenericXLogStart = e.GenericXLogStart, _GenericXLogRegisterBuffer = Module._GenericXLogRegisterBuffer = e.GenericXLogRegisterBuffer, _GenericXLogFinish = Module._GenericXLogFinish = e.GenericXLogFinish, _GenericXLogAbort = Module._GenericXLogAbort = e.GenericXLogAbort, _errmsg_plural = Module._errmsg_plural = e.errmsg_plural, _ReadNextMultiXactId = Module._ReadNextMultiXactId = e.ReadNextMultiXactId, _ReadMultiXactIdRange = Module._ReadMultiXactIdRange = e.ReadMultiXactIdRange, _MultiXactIdPrecedesOrEquals = Module._MultiXactIdPrecedesOrEquals = e.MultiXactIdPrecedesOrEquals, _init_MultiFuncCall = Module._init_MultiFuncCall = e.init_MultiFuncCall, _TupleDescGetAttInMetadata = Module._TupleDescGetAttInMetadata = e.TupleDescGetAttInMetadata, _per_MultiFuncCall = Module._per_MultiFuncCall = e.per_MultiFuncCall, _BuildTupleFromCStrings = Module._BuildTupleFromCStrings = e.BuildTupleFromCStrings, _end_MultiFuncCall = Module._end_MultiFuncCall = e.end_MultiFuncCall, _GetCurrentSubTransactionId = Module._GetCurrentSubTransactionId = e.GetCurrentSubTransactionId, _GetSessionUserId = Module._GetSessionUserId = e.GetSessionUserId, _WaitForBackgroundWorkerShutdown = Module._WaitForBackgroundWorkerShutdown = e.WaitForBackgroundWorkerShutdown, _RegisterDynamicBackgroundWorker = Module._RegisterDynamicBackgroundWorker = e.RegisterDynamicBackgroundWorker, _appendBinaryStringInfo = Module._appendBinaryStringInfo = e.appendBinaryStringInfo, _pq_getmsgbyte = Module._pq_getmsgbyte = e.pq_getmsgbyte, _ThrowErrorData = Module._ThrowErrorData = e.ThrowErrorData, _pq_getmsgint = Module._pq_getmsgint = e.pq_getmsgint, _pq_getmsgint64 = Module._pq_getmsgint64 = e.pq_getmsgint64, _die = Module._die = e.die, _pqsignal_be = Module._pqsignal_be = e.pqsignal_be, _BackgroundWorkerUnblockSignals = Module._BackgroundWorkerUnblockSignals = e.BackgroundWorkerUnblockSignals, _load_external_function = Module._load_external_function = e.load_external_function, _BackgroundWorkerInitializeConnectionByOid = Module._BackgroundWorkerInitializeConnectionByOid = e.BackgroundWorkerInitializeConnectionByOid, _GetDatabaseEncoding = Module._GetDatabaseEncoding = e.GetDatabaseEncoding, _StartTransactionCommand = Module._StartTransactionCommand = e.StartTransactionCommand, _CommitTransactionCommand = Module._CommitTransactionCommand = e.CommitTransactionCommand, _PushActiveSnapshot = Module._PushActiveSnapshot = e.PushActiveSnapshot, _PopActiveSnapshot = Module._PopActiveSnapshot = e.PopActiveSnapshot, _RmgrNotFound = Module._RmgrNotFound = e.RmgrNotFound, _InitMaterializedSRF = Module._InitMaterializedSRF = e.InitMaterializedSRF, _tuplestore_putvalues = Module._tuplestore_putvalues = e.tuplestore_putvalues, _pread = Module._pread = e.pread, _lseek = Module._lseek = e.lseek, _strspn = Module._strspn = e.strspn, _strtoll = Module._strtoll = e.strtoll, _AllocateFile = Module._AllocateFile = e.AllocateFile, _fgets = Module._fgets = e.fgets, _ferror = Module._ferror = e.ferror, _FreeFile = Module._FreeFile = e.FreeFile, _getpid = Module._getpid = e.getpid, _read = Module._read = e.read, _write = Module._write = e.write, _durable_rename = Module._durable_rename = e.durable_rename, _BlessTupleDesc = Module._BlessTupleDesc = e.BlessTupleDesc, _fstat = Module._fstat = e.fstat, _superuser_arg = Module._superuser_arg = e.superuser_arg, _wal_segment_close = Module._wal_segment_close = e.wal_segment_close, _wal_segment_open = Module._wal_segment_open = e.wal_segment_open, _XLogReaderAllocate = Module._XLogReaderAllocate = e.XLogReaderAllocate, _XLogReadRecord = Module._XLogReadRecord = e.XLogReadRecord, _XLogReaderFree = Module._XLogReaderFree = e.XLogReaderFree, _strtoull = Module._strtoull = e.strtoull, _access = Module._access = e.access, _IsAbortedTransactionBlockState = Module._IsAbortedTransactionBlockState = e.IsAbortedTransactionBlockState, _GetTopFullTransactionId = Module._GetTopFullTransactionId = e.GetTopFullTransactionId, _GetCurrentFullTransactionId = Module._GetCurrentFullTransactionId = e.GetCurrentFullTransactionId, _GetCurrentTransactionNestLevel = Module._GetCurrentTransactionNestLevel = e.GetCurrentTransactionNestLevel, _ResourceOwnerCreate = Module._ResourceOwnerCreate = e.ResourceOwnerCreate, _AbortCurrentTransaction = Module._AbortCurrentTransaction = e.AbortCurrentTransaction, _PreventInTransactionBlock = Module._PreventInTransactionBlock = e.PreventInTransactionBlock, _IsTransactionBlock = Module._IsTransactionBlock = e.IsTransactionBlock, _RegisterXactCallback = Module._RegisterXactCallback = e.RegisterXactCallback, _UnregisterXactCallback = Module._UnregisterXactCallback = e.UnregisterXactCallback, _RegisterSubXactCallback = Module._RegisterSubXactCallback = e.RegisterSubXactCallback, _BeginInternalSubTransaction = Module._BeginInternalSubTransaction = e.BeginInternalSubTransaction, _ReleaseCurrentSubTransaction = Module._ReleaseCurrentSubTransaction = e.ReleaseCurrentSubTransaction, _ResourceOwnerDelete = Module._ResourceOwnerDelete = e.ResourceOwnerDelete, _RollbackAndReleaseCurrentSubTransaction = Module._RollbackAndReleaseCurrentSubTransaction = e.RollbackAndReleaseCurrentSubTransaction, _pg_usleep = Module._pg_usleep = e.pg_usleep, _close = Module._close = e.close, _ReleaseExternalFD = Module._ReleaseExternalFD = e.ReleaseExternalFD, _GetDefaultCharSignedness = Module._GetDefaultCharSignedness = e.GetDefaultCharSignedness, _SplitIdentifierString = Module._SplitIdentifierString = e.SplitIdentifierString, _guc_malloc = Module._guc_malloc = e.guc_malloc, _find_option = Module._find_option = e.find_option, _gettimeofday = Module._gettimeofday = e.gettimeofday, _pg_strong_random = Module._pg_strong_random = e.pg_strong_random, _stat = Module._stat = e.stat, _GetFlushRecPtr = Module._GetFlushRecPtr = e.GetFlushRecPtr, _GetXLogReplayRecPtr = Module._GetXLogReplayRecPtr = e.GetXLogReplayRecPtr, _TimestampDifferenceMilliseconds = Module._TimestampDifferenceMilliseconds = e.TimestampDifferenceMilliseconds, _strtoul = Module._strtoul = e.strtoul, _readlink = Module._readlink = e.readlink, _pg_fprintf = Module._pg_fprintf = e.pg_fprintf, _fflush = Module._fflush = e.fflush, _pgl_system = Module._pgl_system = e.pgl_system, _wait_result_to_str = Module._wait_result_to_str = e.wait_result_to_str, _replace_percent_placeholders = Module._replace_percent_placeholders = e.replace_percent_placeholders, _makeStringInfo = Module._makeStringInfo = e.makeStringInfo, _pg_toupper = Module._pg_toupper = e.pg_toupper, _numeric_in = Module._numeric_in = e.numeric_in, _DirectFunctionCall3Coll = Module._DirectFunctionCall3Coll = e.DirectFunctionCall3Coll, _palloc_extended = Module._palloc_extended = e.palloc_extended, _pg_vsnprintf = Module._pg_vsnprintf = e.pg_vsnprintf, _XLogFindNextRecord = Module._XLogFindNextRecord = e.XLogFindNextRecord, _RestoreBlockImage = Module._RestoreBlockImage = e.RestoreBlockImage, _timestamptz_in = Module._timestamptz_in = e.timestamptz_in, _fscanf = Module._fscanf = e.fscanf, _symlink = Module._symlink = e.symlink, _ConditionVariableTimedSleep = Module._ConditionVariableTimedSleep = e.ConditionVariableTimedSleep, _ParseDateTime = Module._ParseDateTime = e.ParseDateTime, _DecodeDateTime = Module._DecodeDateTime = e.DecodeDateTime, _tm2timestamp = Module._tm2timestamp = e.tm2timestamp, _XLogRecStoreStats = Module._XLogRecStoreStats = e.XLogRecStoreStats, _hash_get_num_entries = Module._hash_get_num_entries = e.hash_get_num_entries, _read_local_xlog_page_no_wait = Module._read_local_xlog_page_no_wait = e.read_local_xlog_page_no_wait, _escape_json_with_len = Module._escape_json_with_len = e.escape_json_with_len, _BufFileSeek = Module._BufFileSeek = e.BufFileSeek, _lstat = Module._lstat = e.lstat, _destroyStringInfo = Module._destroyStringInfo = e.destroyStringInfo, _list_sort = Module._list_sort = e.list_sort, _pgl_geteuid = Module._pgl_geteuid = e.pgl_geteuid, _getegid = Module._getegid = e.getegid, _pg_checksum_page = Module._pg_checksum_page = e.pg_checksum_page, _CreateDestReceiver = Module._CreateDestReceiver = e.CreateDestReceiver, _bbsink_forward_end_archive = Module._bbsink_forward_end_archive = e.bbsink_forward_end_archive, _bbsink_forward_begin_manifest = Module._bbsink_forward_begin_manifest = e.bbsink_forward_begin_manifest, _bbsink_forward_end_manifest = Module._bbsink_forward_end_manifest = e.bbsink_forward_end_manifest, _bbsink_forward_end_backup = Module._bbsink_forward_end_backup = e.bbsink_forward_end_backup, _bbsink_forward_cleanup = Module._bbsink_forward_cleanup = e.bbsink_forward_cleanup, _MemoryContextAllocExtended = Module._MemoryContextAllocExtended = e.MemoryContextAllocExtended, _appendStringInfoVA = Module._appendStringInfoVA = e.appendStringInfoVA, _list_concat = Module._list_concat = e.list_concat, _strrchr = Module._strrchr = e.strrchr, _bbsink_forward_begin_backup = Module._bbsink_forward_begin_backup = e.bbsink_forward_begin_backup, _bbsink_forward_archive_contents = Module._bbsink_forward_archive_contents = e.bbsink_forward_archive_contents, _bbsink_forward_begin_archive = Module._bbsink_forward_begin_archive = e.bbsink_forward_begin_archive, _bbsink_forward_manifest_contents = Module._bbsink_forward_manifest_contents = e.bbsink_forward_manifest_contents, _has_privs_of_role = Module._has_privs_of_role = e.has_privs_of_role, _BaseBackupAddTarget = Module._BaseBackupAddTarget = e.BaseBackupAddTarget, _list_copy = Module._list_copy = e.list_copy, _tuplestore_puttuple = Module._tuplestore_puttuple = e.tuplestore_puttuple, _isatty = Module._isatty = e.isatty, _makeRangeVar = Module._makeRangeVar = e.makeRangeVar, _DefineIndex = Module._DefineIndex = e.DefineIndex, _getc = Module._getc = e.getc, _fread = Module._fread = e.fread, _clearerr = Module._clearerr = e.clearerr, _OidInputFunctionCall = Module._OidInputFunctionCall = e.OidInputFunctionCall, _copyObjectImpl = Module._copyObjectImpl = e.copyObjectImpl, _get_rolespec_oid = Module._get_rolespec_oid = e.get_rolespec_oid, _lappend_oid = Module._lappend_oid = e.lappend_oid, _get_object_address = Module._get_object_address = e.get_object_address, _makeTypeNameFromNameList = Module._makeTypeNameFromNameList = e.makeTypeNameFromNameList, _SearchSysCacheLocked1 = Module._SearchSysCacheLocked1 = e.SearchSysCacheLocked1, _SearchSysCache2 = Module._SearchSysCache2 = e.SearchSysCache2, _SysCacheGetAttr = Module._SysCacheGetAttr = e.SysCacheGetAttr, _CatalogTupleUpdate = Module._CatalogTupleUpdate = e.CatalogTupleUpdate, _get_attnum = Module._get_attnum = e.get_attnum, _get_rel_name = Module._get_rel_name = e.get_rel_name, _CatalogTupleDelete = Module._CatalogTupleDelete = e.CatalogTupleDelete, _get_namespace_oid = Module._get_namespace_oid = e.get_namespace_oid, _SearchSysCache3 = Module._SearchSysCache3 = e.SearchSysCache3, _performDeletion = Module._performDeletion = e.performDeletion, _CatalogTupleInsert = Module._CatalogTupleInsert = e.CatalogTupleInsert, _recordDependencyOn = Module._recordDependencyOn = e.recordDependencyOn, _RunObjectPostAlterHook = Module._RunObjectPostAlterHook = e.RunObjectPostAlterHook, _aclcheck_error_col = Module._aclcheck_error_col = e.aclcheck_error_col, _get_element_type = Module._get_element_type = e.get_element_type, _object_aclcheck = Module._object_aclcheck = e.object_aclcheck, _isTempNamespace = Module._isTempNamespace = e.isTempNamespace, _pg_attribute_aclcheck_all = Module._pg_attribute_aclcheck_all = e.pg_attribute_aclcheck_all, _IsToastNamespace = Module._IsToastNamespace = e.IsToastNamespace, _IsCatalogNamespace = Module._IsCatalogNamespace = e.IsCatalogNamespace, _superuser = Module._superuser = e.superuser, _SearchSysCacheAttName = Module._SearchSysCacheAttName = e.SearchSysCacheAttName, _LockDatabaseObject = Module._LockDatabaseObject = e.LockDatabaseObject, _new_object_addresses = Module._new_object_addresses = e.new_object_addresses, _UnlockDatabaseObject = Module._UnlockDatabaseObject = e.UnlockDatabaseObject, _free_object_addresses = Module._free_object_addresses = e.free_object_addresses, _performMultipleDeletions = Module._performMultipleDeletions = e.performMultipleDeletions, _recordDependencyOnExpr = Module._recordDependencyOnExpr = e.recordDependencyOnExpr, _get_typ_typrelid = Module._get_typ_typrelid = e.get_typ_typrelid, _query_tree_walker_impl = Module._query_tree_walker_impl = e.query_tree_walker_impl, _expression_tree_walker_impl = Module._expression_tree_walker_impl = e.expression_tree_walker_impl, _add_exact_object_address = Module._add_exact_object_address = e.add_exact_object_address, _get_rel_relkind = Module._get_rel_relkind = e.get_rel_relkind, _SystemAttributeDefinition = Module._SystemAttributeDefinition = e.SystemAttributeDefinition, _get_typtype = Module._get_typtype = e.get_typtype, _list_delete_last = Module._list_delete_last = e.list_delete_last, _type_is_collatable = Module._type_is_collatable = e.type_is_collatable, _CatalogOpenIndexes = Module._CatalogOpenIndexes = e.CatalogOpenIndexes, _CatalogCloseIndexes = Module._CatalogCloseIndexes = e.CatalogCloseIndexes, _get_relname_relid = Module._get_relname_relid = e.get_relname_relid, _GetSysCacheOid = Module._GetSysCacheOid = e.GetSysCacheOid, _SearchSysCacheCopy = Module._SearchSysCacheCopy = e.SearchSysCacheCopy, _CheckTableNotInUse = Module._CheckTableNotInUse = e.CheckTableNotInUse, _RelationForgetRelation = Module._RelationForgetRelation = e.RelationForgetRelation, _construct_array = Module._construct_array = e.construct_array, _make_parsestate = Module._make_parsestate = e.make_parsestate, _addRangeTableEntryForRelation = Module._addRangeTableEntryForRelation = e.addRangeTableEntryForRelation, _addNSItemToQuery = Module._addNSItemToQuery = e.addNSItemToQuery, _transformExpr = Module._transformExpr = e.transformExpr, _coerce_to_boolean = Module._coerce_to_boolean = e.coerce_to_boolean, _assign_expr_collations = Module._assign_expr_collations = e.assign_expr_collations, _pull_var_clause = Module._pull_var_clause = e.pull_var_clause, _get_attname = Module._get_attname = e.get_attname, _equal = Module._equal = e.equal, _coerce_to_target_type = Module._coerce_to_target_type = e.coerce_to_target_type, _nodeToString = Module._nodeToString = e.nodeToString, _list_delete_nth_cell = Module._list_delete_nth_cell = e.list_delete_nth_cell, _lappend_int = Module._lappend_int = e.lappend_int, _CatalogTupleInsertWithInfo = Module._CatalogTupleInsertWithInfo = e.CatalogTupleInsertWithInfo, _heap_truncate_find_FKs = Module._heap_truncate_find_FKs = e.heap_truncate_find_FKs, _list_oid_cmp = Module._list_oid_cmp = e.list_oid_cmp, _buildint2vector = Module._buildint2vector = e.buildint2vector, _buildoidvector = Module._buildoidvector = e.buildoidvector, _parser_errposition = Module._parser_errposition = e.parser_errposition, _check_functions_in_node = Module._check_functions_in_node = e.check_functions_in_node, _exprLocation = Module._exprLocation = e.exprLocation, _exprTypmod = Module._exprTypmod = e.exprTypmod, _get_base_element_type = Module._get_base_element_type = e.get_base_element_type, _make_ands_explicit = Module._make_ands_explicit = e.make_ands_explicit, _SystemFuncName = Module._SystemFuncName = e.SystemFuncName, _CreateTrigger = Module._CreateTrigger = e.CreateTrigger, _plan_create_index_workers = Module._plan_create_index_workers = e.plan_create_index_workers, _GetLatestSnapshot = Module._GetLatestSnapshot = e.GetLatestSnapshot, _make_ands_implicit = Module._make_ands_implicit = e.make_ands_implicit, _get_rel_relispartition = Module._get_rel_relispartition = e.get_rel_relispartition, _get_partition_ancestors = Module._get_partition_ancestors = e.get_partition_ancestors, _tuplesort_begin_datum = Module._tuplesort_begin_datum = e.tuplesort_begin_datum, _tuplesort_putdatum = Module._tuplesort_putdatum = e.tuplesort_putdatum, _list_delete_oid = Module._list_delete_oid = e.list_delete_oid, _get_rel_namespace = Module._get_rel_namespace = e.get_rel_namespace, _ExecOpenIndices = Module._ExecOpenIndices = e.ExecOpenIndices, _ExecCloseIndices = Module._ExecCloseIndices = e.ExecCloseIndices, _CatalogTupleUpdateWithInfo = Module._CatalogTupleUpdateWithInfo = e.CatalogTupleUpdateWithInfo, _ConditionalLockRelationOid = Module._ConditionalLockRelationOid = e.ConditionalLockRelationOid, _RelnameGetRelid = Module._RelnameGetRelid = e.RelnameGetRelid, _get_relkind_objtype = Module._get_relkind_objtype = e.get_relkind_objtype, _isAnyTempNamespace = Module._isAnyTempNamespace = e.isAnyTempNamespace, _RelationIsVisible = Module._RelationIsVisible = e.RelationIsVisible, _TypenameGetTypid = Module._TypenameGetTypid = e.TypenameGetTypid, _FuncnameGetCandidates = Module._FuncnameGetCandidates = e.FuncnameGetCandidates, _DeconstructQualifiedName = Module._DeconstructQualifiedName = e.DeconstructQualifiedName, _get_func_arg_info = Module._get_func_arg_info = e.get_func_arg_info, _NameListToString = Module._NameListToString = e.NameListToString, _OpernameGetOprid = Module._OpernameGetOprid = e.OpernameGetOprid, _OpclassnameGetOpcid = Module._OpclassnameGetOpcid = e.OpclassnameGetOpcid, _OpclassIsVisible = Module._OpclassIsVisible = e.OpclassIsVisible, _get_ts_config_oid = Module._get_ts_config_oid = e.get_ts_config_oid, _makeRangeVarFromNameList = Module._makeRangeVarFromNameList = e.makeRangeVarFromNameList, _quote_identifier = Module._quote_identifier = e.quote_identifier, _atoi = Module._atoi = e.atoi, _GetSearchPathMatcher = Module._GetSearchPathMatcher = e.GetSearchPathMatcher, _SearchPathMatchesCurrentEnvironment = Module._SearchPathMatchesCurrentEnvironment = e.SearchPathMatchesCurrentEnvironment, _get_collation_oid = Module._get_collation_oid = e.get_collation_oid, _GetDatabaseEncodingName = Module._GetDatabaseEncodingName = e.GetDatabaseEncodingName, _CacheRegisterSyscacheCallback = Module._CacheRegisterSyscacheCallback = e.CacheRegisterSyscacheCallback, _fetch_search_path = Module._fetch_search_path = e.fetch_search_path, _get_extension_oid = Module._get_extension_oid = e.get_extension_oid, _get_tablespace_oid = Module._get_tablespace_oid = e.get_tablespace_oid, _get_role_oid = Module._get_role_oid = e.get_role_oid, _get_language_oid = Module._get_language_oid = e.get_language_oid, _get_am_oid = Module._get_am_oid = e.get_am_oid, _get_index_am_oid = Module._get_index_am_oid = e.get_index_am_oid, _GetForeignServerByName = Module._GetForeignServerByName = e.GetForeignServerByName, _typeStringToTypeName = Module._typeStringToTypeName = e.typeStringToTypeName, _makeFloat = Module._makeFloat = e.makeFloat, _list_make2_impl = Module._list_make2_impl = e.list_make2_impl, _check_object_ownership = Module._check_object_ownership = e.check_object_ownership, _GetUserNameFromId = Module._GetUserNameFromId = e.GetUserNameFromId, _format_type_extended = Module._format_type_extended = e.format_type_extended, _quote_qualified_identifier = Module._quote_qualified_identifier = e.quote_qualified_identifier, _get_tablespace_name = Module._get_tablespace_name = e.get_tablespace_name, _GetForeignServerExtended = Module._GetForeignServerExtended = e.GetForeignServerExtended, _GetForeignServer = Module._GetForeignServer = e.GetForeignServer, _get_extension_name = Module._get_extension_name = e.get_extension_name, _construct_empty_array = Module._construct_empty_array = e.construct_empty_array, _format_type_be_qualified = Module._format_type_be_qualified = e.format_type_be_qualified, _get_namespace_name_or_temp = Module._get_namespace_name_or_temp = e.get_namespace_name_or_temp, _list_make3_impl = Module._list_make3_impl = e.list_make3_impl, _get_am_name = Module._get_am_name = e.get_am_name, _construct_md_array = Module._construct_md_array = e.construct_md_array, _pull_varattnos = Module._pull_varattnos = e.pull_varattnos, _makeBoolExpr = Module._makeBoolExpr = e.makeBoolExpr, _eval_const_expressions = Module._eval_const_expressions = e.eval_const_expressions, _get_func_name = Module._get_func_name = e.get_func_name, _construct_array_builtin = Module._construct_array_builtin = e.construct_array_builtin, _makeObjectName = Module._makeObjectName = e.makeObjectName, _get_primary_key_attnos = Module._get_primary_key_attnos = e.get_primary_key_attnos, _check_functional_grouping = Module._check_functional_grouping = e.check_functional_grouping, _bms_is_subset = Module._bms_is_subset = e.bms_is_subset, _ProcessGUCArray = Module._ProcessGUCArray = e.ProcessGUCArray, _LockHeldByMe = Module._LockHeldByMe = e.LockHeldByMe, _CheckRelationOidLockedByMe = Module._CheckRelationOidLockedByMe = e.CheckRelationOidLockedByMe, _getExtensionOfObject = Module._getExtensionOfObject = e.getExtensionOfObject, _deleteDependencyRecordsFor = Module._deleteDependencyRecordsFor = e.deleteDependencyRecordsFor, _find_inheritance_children = Module._find_inheritance_children = e.find_inheritance_children, _ActiveSnapshotSet = Module._ActiveSnapshotSet = e.ActiveSnapshotSet, _find_all_inheritors = Module._find_all_inheritors = e.find_all_inheritors, _has_superclass = Module._has_superclass = e.has_superclass, _strstr = Module._strstr = e.strstr, _memchr = Module._memchr = e.memchr, _get_opname = Module._get_opname = e.get_opname, _build_function_result_tupdesc_t = Module._build_function_result_tupdesc_t = e.build_function_result_tupdesc_t, _CheckFunctionValidatorAccess = Module._CheckFunctionValidatorAccess = e.CheckFunctionValidatorAccess, _AcquireRewriteLocks = Module._AcquireRewriteLocks = e.AcquireRewriteLocks, _pg_parse_query = Module._pg_parse_query = e.pg_parse_query, _get_func_result_type = Module._get_func_result_type = e.get_func_result_type, _function_parse_error_transpose = Module._function_parse_error_transpose = e.function_parse_error_transpose, _geterrposition = Module._geterrposition = e.geterrposition, _getinternalerrposition = Module._getinternalerrposition = e.getinternalerrposition, _pg_mblen_cstr = Module._pg_mblen_cstr = e.pg_mblen_cstr, _pg_mbstrlen_with_len = Module._pg_mbstrlen_with_len = e.pg_mbstrlen_with_len, _errposition = Module._errposition = e.errposition, _internalerrposition = Module._internalerrposition = e.internalerrposition, _internalerrquery = Module._internalerrquery = e.internalerrquery, _bms_num_members = Module._bms_num_members = e.bms_num_members, _list_concat_unique_oid = Module._list_concat_unique_oid = e.list_concat_unique_oid, _ATExecChangeOwner = Module._ATExecChangeOwner = e.ATExecChangeOwner, _quote_literal_cstr = Module._quote_literal_cstr = e.quote_literal_cstr, _get_array_type = Module._get_array_type = e.get_array_type, _pnstrdup = Module._pnstrdup = e.pnstrdup, _pg_mbcliplen = Module._pg_mbcliplen = e.pg_mbcliplen, _smgrtruncate = Module._smgrtruncate = e.smgrtruncate, _smgrreadv = Module._smgrreadv = e.smgrreadv, _NewRelationCreateToastTable = Module._NewRelationCreateToastTable = e.NewRelationCreateToastTable, _parse_analyze_fixedparams = Module._parse_analyze_fixedparams = e.parse_analyze_fixedparams, _transformStmt = Module._transformStmt = e.transformStmt, _free_parsestate = Module._free_parsestate = e.free_parsestate, _makeFromExpr = Module._makeFromExpr = e.makeFromExpr, _assign_query_collations = Module._assign_query_collations = e.assign_query_collations, _makeTargetEntry = Module._makeTargetEntry = e.makeTargetEntry, _exprCollation = Module._exprCollation = e.exprCollation, _transformSortClause = Module._transformSortClause = e.transformSortClause, _transformDistinctClause = Module._transformDistinctClause = e.transformDistinctClause, _ParseFuncOrColumn = Module._ParseFuncOrColumn = e.ParseFuncOrColumn, _select_common_type = Module._select_common_type = e.select_common_type, _coerce_to_common_type = Module._coerce_to_common_type = e.coerce_to_common_type, _select_common_collation = Module._select_common_collation = e.select_common_collation, _contain_vars_of_level = Module._contain_vars_of_level = e.contain_vars_of_level, _expandNSItemAttrs = Module._expandNSItemAttrs = e.expandNSItemAttrs, _makeAlias = Module._makeAlias = e.makeAlias, _addRangeTableEntryForSubquery = Module._addRangeTableEntryForSubquery = e.addRangeTableEntryForSubquery, _assign_list_collations = Module._assign_list_collations = e.assign_list_collations, _expandNSItemVars = Module._expandNSItemVars = e.expandNSItemVars, _markTargetListOrigins = Module._markTargetListOrigins = e.markTargetListOrigins, _addRangeTableEntryForJoin = Module._addRangeTableEntryForJoin = e.addRangeTableEntryForJoin, _list_truncate = Module._list_truncate = e.list_truncate, _makeVar = Module._makeVar = e.makeVar, _analyze_requires_snapshot = Module._analyze_requires_snapshot = e.analyze_requires_snapshot, _makeNullConst = Module._makeNullConst = e.makeNullConst, _get_sort_group_operators = Module._get_sort_group_operators = e.get_sort_group_operators, _refnameNamespaceItem = Module._refnameNamespaceItem = e.refnameNamespaceItem, _getRTEPermissionInfo = Module._getRTEPermissionInfo = e.getRTEPermissionInfo, _setup_parser_errposition_callback = Module._setup_parser_errposition_callback = e.setup_parser_errposition_callback, _cancel_parser_errposition_callback = Module._cancel_parser_errposition_callback = e.cancel_parser_errposition_callback, _locate_var_of_level = Module._locate_var_of_level = e.locate_var_of_level, _makeBoolean = Module._makeBoolean = e.makeBoolean, _makeInteger = Module._makeInteger = e.makeInteger, _makeSimpleA_Expr = Module._makeSimpleA_Expr = e.makeSimpleA_Expr, _makeTypeName = Module._makeTypeName = e.makeTypeName, _SystemTypeName = Module._SystemTypeName = e.SystemTypeName, _makeFuncCall = Module._makeFuncCall = e.makeFuncCall, _makeA_Expr = Module._makeA_Expr = e.makeA_Expr, _list_make4_impl = Module._list_make4_impl = e.list_make4_impl, _addTargetToSortList = Module._addTargetToSortList = e.addTargetToSortList, _locate_agg_of_level = Module._locate_agg_of_level = e.locate_agg_of_level, _list_intersection_int = Module._list_intersection_int = e.list_intersection_int, _get_sortgroupclause_tle = Module._get_sortgroupclause_tle = e.get_sortgroupclause_tle, _flatten_join_alias_vars = Module._flatten_join_alias_vars = e.flatten_join_alias_vars, _list_member_int = Module._list_member_int = e.list_member_int, _list_union_int = Module._list_union_int = e.list_union_int, _makeFuncExpr = Module._makeFuncExpr = e.makeFuncExpr, _get_rte_attribute_name = Module._get_rte_attribute_name = e.get_rte_attribute_name, _expression_tree_mutator_impl = Module._expression_tree_mutator_impl = e.expression_tree_mutator_impl, _checkNameSpaceConflicts = Module._checkNameSpaceConflicts = e.checkNameSpaceConflicts, _addRangeTableEntryForENR = Module._addRangeTableEntryForENR = e.addRangeTableEntryForENR, _addRangeTableEntry = Module._addRangeTableEntry = e.addRangeTableEntry, _FigureColname = Module._FigureColname = e.FigureColname, _addRangeTableEntryForFunction = Module._addRangeTableEntryForFunction = e.addRangeTableEntryForFunction, _coerce_to_specific_type = Module._coerce_to_specific_type = e.coerce_to_specific_type, _typenameTypeIdAndMod = Module._typenameTypeIdAndMod = e.typenameTypeIdAndMod, _get_typcollation = Module._get_typcollation = e.get_typcollation, _markNullableIfNeeded = Module._markNullableIfNeeded = e.markNullableIfNeeded, _markVarForSelectPriv = Module._markVarForSelectPriv = e.markVarForSelectPriv, _coerce_type = Module._coerce_type = e.coerce_type, _LookupFuncName = Module._LookupFuncName = e.LookupFuncName, _parserOpenTable = Module._parserOpenTable = e.parserOpenTable, _strip_implicit_coercions = Module._strip_implicit_coercions = e.strip_implicit_coercions, _colNameToVar = Module._colNameToVar = e.colNameToVar, _op_hashjoinable = Module._op_hashjoinable = e.op_hashjoinable, _get_commutator = Module._get_commutator = e.get_commutator, _get_ordering_op_properties = Module._get_ordering_op_properties = e.get_ordering_op_properties, _can_coerce_type = Module._can_coerce_type = e.can_coerce_type, _get_sortgroupref_tle = Module._get_sortgroupref_tle = e.get_sortgroupref_tle, _assignSortGroupRef = Module._assignSortGroupRef = e.assignSortGroupRef, _targetIsInSortList = Module._targetIsInSortList = e.targetIsInSortList, _contain_aggs_of_level = Module._contain_aggs_of_level = e.contain_aggs_of_level, _find_coercion_pathway = Module._find_coercion_pathway = e.find_coercion_pathway, _typeidType = Module._typeidType = e.typeidType, _typeTypeCollation = Module._typeTypeCollation = e.typeTypeCollation, _typeLen = Module._typeLen = e.typeLen, _typeByVal = Module._typeByVal = e.typeByVal, _get_type_category_preferred = Module._get_type_category_preferred = e.get_type_category_preferred, _makeConst = Module._makeConst = e.makeConst, _lookup_rowtype_tupdesc = Module._lookup_rowtype_tupdesc = e.lookup_rowtype_tupdesc, _type_is_enum = Module._type_is_enum = e.type_is_enum, _verify_common_type = Module._verify_common_type = e.verify_common_type, _type_is_range = Module._type_is_range = e.type_is_range, _bms_del_member = Module._bms_del_member = e.bms_del_member, _list_member = Module._list_member = e.list_member, _raw_expression_tree_walker_impl = Module._raw_expression_tree_walker_impl = e.raw_expression_tree_walker_impl, _type_is_rowtype = Module._type_is_rowtype = e.type_is_rowtype, _scanNSItemForColumn = Module._scanNSItemForColumn = e.scanNSItemForColumn, _make_op = Module._make_op = e.make_op, _make_scalar_array_op = Module._make_scalar_array_op = e.make_scalar_array_op, _count_nonjunk_tlist_entries = Module._count_nonjunk_tlist_entries = e.count_nonjunk_tlist_entries, _makeWholeRowVar = Module._makeWholeRowVar = e.makeWholeRowVar, _expandRTE = Module._expandRTE = e.expandRTE, _contain_var_clause = Module._contain_var_clause = e.contain_var_clause, _jsonb_in = Module._jsonb_in = e.jsonb_in, _get_func_prokind = Module._get_func_prokind = e.get_func_prokind, _escape_json = Module._escape_json = e.escape_json, _geterrcode = Module._geterrcode = e.geterrcode, _bit_in = Module._bit_in = e.bit_in, _repalloc0 = Module._repalloc0 = e.repalloc0, _bms_union = Module._bms_union = e.bms_union, _varstr_levenshtein_less_equal = Module._varstr_levenshtein_less_equal = e.varstr_levenshtein_less_equal, _get_atttypetypmodcoll = Module._get_atttypetypmodcoll = e.get_atttypetypmodcoll, _raw_parser = Module._raw_parser = e.raw_parser, _errsave_start = Module._errsave_start = e.errsave_start, _errsave_finish = Module._errsave_finish = e.errsave_finish, _makeColumnDef = Module._makeColumnDef = e.makeColumnDef, _GetDefaultOpClass = Module._GetDefaultOpClass = e.GetDefaultOpClass, _transformIndexStmt = Module._transformIndexStmt = e.transformIndexStmt, _ChooseRelationName = Module._ChooseRelationName = e.ChooseRelationName, _deparse_context_for = Module._deparse_context_for = e.deparse_context_for, _deparse_expression = Module._deparse_expression = e.deparse_expression, _expression_planner = Module._expression_planner = e.expression_planner, _scanner_init = Module._scanner_init = e.scanner_init, _scanner_finish = Module._scanner_finish = e.scanner_finish, _core_yylex = Module._core_yylex = e.core_yylex, _isxdigit = Module._isxdigit = e.isxdigit, _scanner_isspace = Module._scanner_isspace = e.scanner_isspace, _truncate_identifier = Module._truncate_identifier = e.truncate_identifier, _ScanKeywordLookup = Module._ScanKeywordLookup = e.ScanKeywordLookup, _pg_verifymbstr = Module._pg_verifymbstr = e.pg_verifymbstr, _downcase_truncate_identifier = Module._downcase_truncate_identifier = e.downcase_truncate_identifier, _pg_database_encoding_max_length = Module._pg_database_encoding_max_length = e.pg_database_encoding_max_length, _getTypeInputInfo = Module._getTypeInputInfo = e.getTypeInputInfo, _RenameSchema = Module._RenameSchema = e.RenameSchema, _check_can_set_role = Module._check_can_set_role = e.check_can_set_role, _namein = Module._namein = e.namein, _BlockSampler_Init = Module._BlockSampler_Init = e.BlockSampler_Init, _reservoir_init_selection_state = Module._reservoir_init_selection_state = e.reservoir_init_selection_state, _reservoir_get_next_S = Module._reservoir_get_next_S = e.reservoir_get_next_S, _sampler_random_fract = Module._sampler_random_fract = e.sampler_random_fract, _std_typanalyze = Module._std_typanalyze = e.std_typanalyze, _BlockSampler_HasMore = Module._BlockSampler_HasMore = e.BlockSampler_HasMore, _BlockSampler_Next = Module._BlockSampler_Next = e.BlockSampler_Next, _Async_Notify = Module._Async_Notify = e.Async_Notify, _RangeVarCallbackMaintainsTable = Module._RangeVarCallbackMaintainsTable = e.RangeVarCallbackMaintainsTable, _make_new_heap = Module._make_new_heap = e.make_new_heap, _finish_heap_swap = Module._finish_heap_swap = e.finish_heap_swap, _RenameRelationInternal = Module._RenameRelationInternal = e.RenameRelationInternal, _OpenPipeStream = Module._OpenPipeStream = e.OpenPipeStream, _pg_is_ascii = Module._pg_is_ascii = e.pg_is_ascii, _ClosePipeStream = Module._ClosePipeStream = e.ClosePipeStream, _PreventCommandIfReadOnly = Module._PreventCommandIfReadOnly = e.PreventCommandIfReadOnly, _BeginCopyFrom = Module._BeginCopyFrom = e.BeginCopyFrom, _EndCopyFrom = Module._EndCopyFrom = e.EndCopyFrom, _ProcessCopyOptions = Module._ProcessCopyOptions = e.ProcessCopyOptions, _pg_strtoint64 = Module._pg_strtoint64 = e.pg_strtoint64, _CopyFromErrorCallback = Module._CopyFromErrorCallback = e.CopyFromErrorCallback, _bms_make_singleton = Module._bms_make_singleton = e.bms_make_singleton, _ExecInitRangeTable = Module._ExecInitRangeTable = e.ExecInitRangeTable, _ExecInitResultRelation = Module._ExecInitResultRelation = e.ExecInitResultRelation, _ExecInitQual = Module._ExecInitQual = e.ExecInitQual, _contain_volatile_functions = Module._contain_volatile_functions = e.contain_volatile_functions, _NextCopyFrom = Module._NextCopyFrom = e.NextCopyFrom, _ExecCloseResultRelations = Module._ExecCloseResultRelations = e.ExecCloseResultRelations, _ExecCloseRangeTableRelations = Module._ExecCloseRangeTableRelations = e.ExecCloseRangeTableRelations, _ExecConstraints = Module._ExecConstraints = e.ExecConstraints, _ExecInsertIndexTuples = Module._ExecInsertIndexTuples = e.ExecInsertIndexTuples, _build_column_default = Module._build_column_default = e.build_column_default, _ExecInitExpr = Module._ExecInitExpr = e.ExecInitExpr, _fileno = Module._fileno = e.fileno, _NextCopyFromRawFields = Module._NextCopyFromRawFields = e.NextCopyFromRawFields, _resetStringInfo = Module._resetStringInfo = e.resetStringInfo, _pq_copymsgbytes = Module._pq_copymsgbytes = e.pq_copymsgbytes, _pg_encoding_max_length = Module._pg_encoding_max_length = e.pg_encoding_max_length, _tolower = Module._tolower = e.tolower, _pg_plan_query = Module._pg_plan_query = e.pg_plan_query, _PushCopiedSnapshot = Module._PushCopiedSnapshot = e.PushCopiedSnapshot, _UpdateActiveSnapshotCommandId = Module._UpdateActiveSnapshotCommandId = e.UpdateActiveSnapshotCommandId, _CreateQueryDesc = Module._CreateQueryDesc = e.CreateQueryDesc, _ExecutorStart = Module._ExecutorStart = e.ExecutorStart, _ExecutorFinish = Module._ExecutorFinish = e.ExecutorFinish, _ExecutorEnd = Module._ExecutorEnd = e.ExecutorEnd, _FreeQueryDesc = Module._FreeQueryDesc = e.FreeQueryDesc, _ExecutorRun = Module._ExecutorRun = e.ExecutorRun, _pg_server_to_any = Module._pg_server_to_any = e.pg_server_to_any, _fwrite = Module._fwrite = e.fwrite, _CreateTableAsRelExists = Module._CreateTableAsRelExists = e.CreateTableAsRelExists, _QueryRewrite = Module._QueryRewrite = e.QueryRewrite, _DefineRelation = Module._DefineRelation = e.DefineRelation, _rmdir = Module._rmdir = e.rmdir, _atof = Module._atof = e.atof, _int8in = Module._int8in = e.int8in, _oidin = Module._oidin = e.oidin, _RemoveObjects = Module._RemoveObjects = e.RemoveObjects, _GetCommandTagEnum = Module._GetCommandTagEnum = e.GetCommandTagEnum, _CreateCommandTag = Module._CreateCommandTag = e.CreateCommandTag, _GetCommandTagName = Module._GetCommandTagName = e.GetCommandTagName, _NewExplainState = Module._NewExplainState = e.NewExplainState, _ExplainBeginOutput = Module._ExplainBeginOutput = e.ExplainBeginOutput, _ExplainEndOutput = Module._ExplainEndOutput = e.ExplainEndOutput, _ExplainOpenGroup = Module._ExplainOpenGroup = e.ExplainOpenGroup, _ExplainPrintPlan = Module._ExplainPrintPlan = e.ExplainPrintPlan, _ExplainIndentText = Module._ExplainIndentText = e.ExplainIndentText, _ExplainPropertyInteger = Module._ExplainPropertyInteger = e.ExplainPropertyInteger, _ExplainCloseGroup = Module._ExplainCloseGroup = e.ExplainCloseGroup, _ExplainPropertyFloat = Module._ExplainPropertyFloat = e.ExplainPropertyFloat, _ExplainPrintTriggers = Module._ExplainPrintTriggers = e.ExplainPrintTriggers, _ExplainPropertyUInteger = Module._ExplainPropertyUInteger = e.ExplainPropertyUInteger, _ExplainPropertyText = Module._ExplainPropertyText = e.ExplainPropertyText, _GetConfigOptionByName = Module._GetConfigOptionByName = e.GetConfigOptionByName, _ExplainPrintJITSummary = Module._ExplainPrintJITSummary = e.ExplainPrintJITSummary, _ExplainPropertyBool = Module._ExplainPropertyBool = e.ExplainPropertyBool, _InstrEndLoop = Module._InstrEndLoop = e.InstrEndLoop, _appendStringInfoSpaces = Module._appendStringInfoSpaces = e.appendStringInfoSpaces, _ExplainQueryText = Module._ExplainQueryText = e.ExplainQueryText, _ExplainQueryParameters = Module._ExplainQueryParameters = e.ExplainQueryParameters, _get_func_namespace = Module._get_func_namespace = e.get_func_namespace, _escape_xml = Module._escape_xml = e.escape_xml, _GetExplainExtensionId = Module._GetExplainExtensionId = e.GetExplainExtensionId, _GetExplainExtensionState = Module._GetExplainExtensionState = e.GetExplainExtensionState, _SetExplainExtensionState = Module._SetExplainExtensionState = e.SetExplainExtensionState, _RegisterExtensionExplainOption = Module._RegisterExtensionExplainOption = e.RegisterExtensionExplainOption, _get_extension_schema = Module._get_extension_schema = e.get_extension_schema, _get_function_sibling_type = Module._get_function_sibling_type = e.get_function_sibling_type, _GetSysCacheHashValue = Module._GetSysCacheHashValue = e.GetSysCacheHashValue, _CreateSchemaCommand = Module._CreateSchemaCommand = e.CreateSchemaCommand, _get_rel_type_id = Module._get_rel_type_id = e.get_rel_type_id, _set_config_option = Module._set_config_option = e.set_config_option, _pg_any_to_server = Module._pg_any_to_server = e.pg_any_to_server, _DirectFunctionCall4Coll = Module._DirectFunctionCall4Coll = e.DirectFunctionCall4Coll, _replace_text = Module._replace_text = e.replace_text, _strpbrk = Module._strpbrk = e.strpbrk, _ProcessUtility = Module._ProcessUtility = e.ProcessUtility, _CleanQuerytext = Module._CleanQuerytext = e.CleanQuerytext, _GetForeignDataWrapper = Module._GetForeignDataWrapper = e.GetForeignDataWrapper, _CreateExprContext = Module._CreateExprContext = e.CreateExprContext, _EnsurePortalSnapshotExists = Module._EnsurePortalSnapshotExists = e.EnsurePortalSnapshotExists, _CheckIndexCompatible = Module._CheckIndexCompatible = e.CheckIndexCompatible, _op_input_types = Module._op_input_types = e.op_input_types, _ResolveOpClass = Module._ResolveOpClass = e.ResolveOpClass, _get_opclass_family = Module._get_opclass_family = e.get_opclass_family, _get_opfamily_member_for_cmptype = Module._get_opfamily_member_for_cmptype = e.get_opfamily_member_for_cmptype, _pgstat_count_truncate = Module._pgstat_count_truncate = e.pgstat_count_truncate, _SPI_connect = Module._SPI_connect = e.SPI_connect, _SPI_exec = Module._SPI_exec = e.SPI_exec, _SPI_execute = Module._SPI_execute = e.SPI_execute, _SPI_getvalue = Module._SPI_getvalue = e.SPI_getvalue, _generate_operator_clause = Module._generate_operator_clause = e.generate_operator_clause, _SPI_finish = Module._SPI_finish = e.SPI_finish, _CreateTransientRelDestReceiver = Module._CreateTransientRelDestReceiver = e.CreateTransientRelDestReceiver, _MemoryContextSetIdentifier = Module._MemoryContextSetIdentifier = e.MemoryContextSetIdentifier, _checkExprHasSubLink = Module._checkExprHasSubLink = e.checkExprHasSubLink, _MemoryContextSetParent = Module._MemoryContextSetParent = e.MemoryContextSetParent, _copyParamList = Module._copyParamList = e.copyParamList, _SetTuplestoreDestReceiverParams = Module._SetTuplestoreDestReceiverParams = e.SetTuplestoreDestReceiverParams, _tuplestore_rescan = Module._tuplestore_rescan = e.tuplestore_rescan, _MemoryContextDeleteChildren = Module._MemoryContextDeleteChildren = e.MemoryContextDeleteChildren, _GetCachedPlan = Module._GetCachedPlan = e.GetCachedPlan, _makeParamList = Module._makeParamList = e.makeParamList, _ReleaseCachedPlan = Module._ReleaseCachedPlan = e.ReleaseCachedPlan, _bms_equal = Module._bms_equal = e.bms_equal, _func_volatile = Module._func_volatile = e.func_volatile, _register_label_provider = Module._register_label_provider = e.register_label_provider, _DefineSequence = Module._DefineSequence = e.DefineSequence, _AlterSequence = Module._AlterSequence = e.AlterSequence, _RangeVarCallbackOwnsRelation = Module._RangeVarCallbackOwnsRelation = e.RangeVarCallbackOwnsRelation, _nextval = Module._nextval = e.nextval, _textToQualifiedNameList = Module._textToQualifiedNameList = e.textToQualifiedNameList, _nextval_internal = Module._nextval_internal = e.nextval_internal, _setval_oid = Module._setval_oid = e.setval_oid, _tuplestore_gettupleslot = Module._tuplestore_gettupleslot = e.tuplestore_gettupleslot, _list_delete = Module._list_delete = e.list_delete, _tuplestore_end = Module._tuplestore_end = e.tuplestore_end, _list_append_unique = Module._list_append_unique = e.list_append_unique, _get_rel_relam = Module._get_rel_relam = e.get_rel_relam, _contain_mutable_functions = Module._contain_mutable_functions = e.contain_mutable_functions, _RemoveRelations = Module._RemoveRelations = e.RemoveRelations, _ExecuteTruncateGuts = Module._ExecuteTruncateGuts = e.ExecuteTruncateGuts, _InitResultRelInfo = Module._InitResultRelInfo = e.InitResultRelInfo, _AlterTableLookupRelation = Module._AlterTableLookupRelation = e.AlterTableLookupRelation, _AlterTable = Module._AlterTable = e.AlterTable, _AlterTableInternal = Module._AlterTableInternal = e.AlterTableInternal, _AlterTableGetLockLevel = Module._AlterTableGetLockLevel = e.AlterTableGetLockLevel, _pg_get_indexdef_string = Module._pg_get_indexdef_string = e.pg_get_indexdef_string, _ExecStoreAllNullTuple = Module._ExecStoreAllNullTuple = e.ExecStoreAllNullTuple, _chmod = Module._chmod = e.chmod, _ChangeVarNodes = Module._ChangeVarNodes = e.ChangeVarNodes, _tuplestore_begin_heap = Module._tuplestore_begin_heap = e.tuplestore_begin_heap, _tuplestore_puttupleslot = Module._tuplestore_puttupleslot = e.tuplestore_puttupleslot, _ExecForceStoreHeapTuple = Module._ExecForceStoreHeapTuple = e.ExecForceStoreHeapTuple, _ExecUpdateLockMode = Module._ExecUpdateLockMode = e.ExecUpdateLockMode, _bms_copy = Module._bms_copy = e.bms_copy, _strtoint = Module._strtoint = e.strtoint, _strtod = Module._strtod = e.strtod, _plain_crypt_verify = Module._plain_crypt_verify = e.plain_crypt_verify, _ProcessConfigFile = Module._ProcessConfigFile = e.ProcessConfigFile, _pgl_exit = Module._pgl_exit = e.pgl_exit, _dsa_get_handle = Module._dsa_get_handle = e.dsa_get_handle, _pg_strncasecmp = Module._pg_strncasecmp = e.pg_strncasecmp, _guc_free = Module._guc_free = e.guc_free, _ExecReScan = Module._ExecReScan = e.ExecReScan, _ExecAsyncResponse = Module._ExecAsyncResponse = e.ExecAsyncResponse, _ExecAsyncRequestDone = Module._ExecAsyncRequestDone = e.ExecAsyncRequestDone, _ExecAsyncRequestPending = Module._ExecAsyncRequestPending = e.ExecAsyncRequestPending, _ExprEvalPushStep = Module._ExprEvalPushStep = e.ExprEvalPushStep, _lookup_rowtype_tupdesc_copy = Module._lookup_rowtype_tupdesc_copy = e.lookup_rowtype_tupdesc_copy, _ExecInitExprWithParams = Module._ExecInitExprWithParams = e.ExecInitExprWithParams, _ExecInitExprList = Module._ExecInitExprList = e.ExecInitExprList, _ExecGetResultType = Module._ExecGetResultType = e.ExecGetResultType, _ExecInitExtraTupleSlot = Module._ExecInitExtraTupleSlot = e.ExecInitExtraTupleSlot, _MakeExpandedObjectReadOnlyInternal = Module._MakeExpandedObjectReadOnlyInternal = e.MakeExpandedObjectReadOnlyInternal, _tuplesort_puttupleslot = Module._tuplesort_puttupleslot = e.tuplesort_puttupleslot, _ArrayGetNItems = Module._ArrayGetNItems = e.ArrayGetNItems, _expanded_record_fetch_tupdesc = Module._expanded_record_fetch_tupdesc = e.expanded_record_fetch_tupdesc, _expanded_record_fetch_field = Module._expanded_record_fetch_field = e.expanded_record_fetch_field, _json_validate = Module._json_validate = e.json_validate, _JsonbValueToJsonb = Module._JsonbValueToJsonb = e.JsonbValueToJsonb, _numeric_out = Module._numeric_out = e.numeric_out, _boolout = Module._boolout = e.boolout, _bool_int4 = Module._bool_int4 = e.bool_int4, _lookup_rowtype_tupdesc_domain = Module._lookup_rowtype_tupdesc_domain = e.lookup_rowtype_tupdesc_domain, _MemoryContextGetParent = Module._MemoryContextGetParent = e.MemoryContextGetParent, _DeleteExpandedObject = Module._DeleteExpandedObject = e.DeleteExpandedObject, _CreateStandaloneExprContext = Module._CreateStandaloneExprContext = e.CreateStandaloneExprContext, _ExecFindJunkAttributeInTlist = Module._ExecFindJunkAttributeInTlist = e.ExecFindJunkAttributeInTlist, _standard_ExecutorStart = Module._standard_ExecutorStart = e.standard_ExecutorStart, _ExecInitNode = Module._ExecInitNode = e.ExecInitNode, _standard_ExecutorRun = Module._standard_ExecutorRun = e.standard_ExecutorRun, _standard_ExecutorFinish = Module._standard_ExecutorFinish = e.standard_ExecutorFinish, _standard_ExecutorEnd = Module._standard_ExecutorEnd = e.standard_ExecutorEnd, _ExecEndNode = Module._ExecEndNode = e.ExecEndNode, _InstrAlloc = Module._InstrAlloc = e.InstrAlloc, _MakeTupleTableSlot = Module._MakeTupleTableSlot = e.MakeTupleTableSlot, _ExecWithCheckOptions = Module._ExecWithCheckOptions = e.ExecWithCheckOptions, _get_typlenbyval = Module._get_typlenbyval = e.get_typlenbyval, _ExecInitScanTupleSlot = Module._ExecInitScanTupleSlot = e.ExecInitScanTupleSlot, _InputFunctionCall = Module._InputFunctionCall = e.InputFunctionCall, _list_delete_ptr = Module._list_delete_ptr = e.list_delete_ptr, _FreeExprContext = Module._FreeExprContext = e.FreeExprContext, _ExecAssignExprContext = Module._ExecAssignExprContext = e.ExecAssignExprContext, _ExecAssignProjectionInfo = Module._ExecAssignProjectionInfo = e.ExecAssignProjectionInfo, _ExecOpenScanRelation = Module._ExecOpenScanRelation = e.ExecOpenScanRelation, _bms_intersect = Module._bms_intersect = e.bms_intersect, _GetAttributeByName = Module._GetAttributeByName = e.GetAttributeByName, _GetAttributeByNum = Module._GetAttributeByNum = e.GetAttributeByNum, _ExecGetReturningSlot = Module._ExecGetReturningSlot = e.ExecGetReturningSlot, _ExecGetResultRelCheckAsUser = Module._ExecGetResultRelCheckAsUser = e.ExecGetResultRelCheckAsUser, _MemoryContextRegisterResetCallback = Module._MemoryContextRegisterResetCallback = e.MemoryContextRegisterResetCallback, _cached_function_compile = Module._cached_function_compile = e.cached_function_compile, _CommandIsReadOnly = Module._CommandIsReadOnly = e.CommandIsReadOnly, _InstrUpdateTupleCount = Module._InstrUpdateTupleCount = e.InstrUpdateTupleCount, _tuplesort_begin_heap = Module._tuplesort_begin_heap = e.tuplesort_begin_heap, _AggCheckCallContext = Module._AggCheckCallContext = e.AggCheckCallContext, _tuplesort_gettupleslot = Module._tuplesort_gettupleslot = e.tuplesort_gettupleslot, _bms_del_members = Module._bms_del_members = e.bms_del_members, _AddWaitEventToSet = Module._AddWaitEventToSet = e.AddWaitEventToSet, _GetNumRegisteredWaitEvents = Module._GetNumRegisteredWaitEvents = e.GetNumRegisteredWaitEvents, _tuplestore_clear = Module._tuplestore_clear = e.tuplestore_clear, _get_attstatsslot = Module._get_attstatsslot = e.get_attstatsslot, _free_attstatsslot = Module._free_attstatsslot = e.free_attstatsslot, _SharedFileSetInit = Module._SharedFileSetInit = e.SharedFileSetInit, _SharedFileSetAttach = Module._SharedFileSetAttach = e.SharedFileSetAttach, _tuplesort_reset = Module._tuplesort_reset = e.tuplesort_reset, _pairingheap_first = Module._pairingheap_first = e.pairingheap_first, _bms_nonempty_difference = Module._bms_nonempty_difference = e.bms_nonempty_difference, _datum_image_hash = Module._datum_image_hash = e.datum_image_hash, _tuplesort_rescan = Module._tuplesort_rescan = e.tuplesort_rescan, _WinGetPartitionLocalMemory = Module._WinGetPartitionLocalMemory = e.WinGetPartitionLocalMemory, _WinGetCurrentPosition = Module._WinGetCurrentPosition = e.WinGetCurrentPosition, _WinGetPartitionRowCount = Module._WinGetPartitionRowCount = e.WinGetPartitionRowCount, _WinGetFuncArgInPartition = Module._WinGetFuncArgInPartition = e.WinGetFuncArgInPartition, _WinGetFuncArgCurrent = Module._WinGetFuncArgCurrent = e.WinGetFuncArgCurrent, _SPI_connect_ext = Module._SPI_connect_ext = e.SPI_connect_ext, _SPI_commit = Module._SPI_commit = e.SPI_commit, _CopyErrorData = Module._CopyErrorData = e.CopyErrorData, _FlushErrorState = Module._FlushErrorState = e.FlushErrorState, _ReThrowError = Module._ReThrowError = e.ReThrowError, _SPI_commit_and_chain = Module._SPI_commit_and_chain = e.SPI_commit_and_chain, _SPI_rollback = Module._SPI_rollback = e.SPI_rollback, _SPI_rollback_and_chain = Module._SPI_rollback_and_chain = e.SPI_rollback_and_chain, _SPI_freetuptable = Module._SPI_freetuptable = e.SPI_freetuptable, _SPI_execute_extended = Module._SPI_execute_extended = e.SPI_execute_extended, _SPI_execute_plan = Module._SPI_execute_plan = e.SPI_execute_plan, _SPI_execp = Module._SPI_execp = e.SPI_execp, _SPI_execute_plan_extended = Module._SPI_execute_plan_extended = e.SPI_execute_plan_extended, _SPI_execute_plan_with_paramlist = Module._SPI_execute_plan_with_paramlist = e.SPI_execute_plan_with_paramlist, _SPI_execute_with_args = Module._SPI_execute_with_args = e.SPI_execute_with_args, _SPI_prepare = Module._SPI_prepare = e.SPI_prepare, _SPI_prepare_extended = Module._SPI_prepare_extended = e.SPI_prepare_extended, _SPI_keepplan = Module._SPI_keepplan = e.SPI_keepplan, _SPI_saveplan = Module._SPI_saveplan = e.SPI_saveplan, _SPI_freeplan = Module._SPI_freeplan = e.SPI_freeplan, _SPI_copytuple = Module._SPI_copytuple = e.SPI_copytuple, _SPI_returntuple = Module._SPI_returntuple = e.SPI_returntuple, _SPI_modifytuple = Module._SPI_modifytuple = e.SPI_modifytuple, _SPI_fnumber = Module._SPI_fnumber = e.SPI_fnumber, _SPI_fname = Module._SPI_fname = e.SPI_fname, _SPI_getbinval = Module._SPI_getbinval = e.SPI_getbinval, _SPI_gettype = Module._SPI_gettype = e.SPI_gettype, _SPI_gettypeid = Module._SPI_gettypeid = e.SPI_gettypeid, _SPI_getrelname = Module._SPI_getrelname = e.SPI_getrelname, _SPI_palloc = Module._SPI_palloc = e.SPI_palloc, _SPI_repalloc = Module._SPI_repalloc = e.SPI_repalloc, _SPI_pfree = Module._SPI_pfree = e.SPI_pfree, _SPI_datumTransfer = Module._SPI_datumTransfer = e.SPI_datumTransfer, _datumTransfer = Module._datumTransfer = e.datumTransfer, _SPI_cursor_open_with_args = Module._SPI_cursor_open_with_args = e.SPI_cursor_open_with_args, _SPI_cursor_open_with_paramlist = Module._SPI_cursor_open_with_paramlist = e.SPI_cursor_open_with_paramlist, _SPI_cursor_parse_open = Module._SPI_cursor_parse_open = e.SPI_cursor_parse_open, _SPI_cursor_find = Module._SPI_cursor_find = e.SPI_cursor_find, _SPI_cursor_fetch = Module._SPI_cursor_fetch = e.SPI_cursor_fetch, _SPI_scroll_cursor_fetch = Module._SPI_scroll_cursor_fetch = e.SPI_scroll_cursor_fetch, _SPI_scroll_cursor_move = Module._SPI_scroll_cursor_move = e.SPI_scroll_cursor_move, _SPI_cursor_close = Module._SPI_cursor_close = e.SPI_cursor_close, _SPI_plan_is_valid = Module._SPI_plan_is_valid = e.SPI_plan_is_valid, _SPI_result_code_string = Module._SPI_result_code_string = e.SPI_result_code_string, _SPI_plan_get_plan_sources = Module._SPI_plan_get_plan_sources = e.SPI_plan_get_plan_sources, _SPI_plan_get_cached_plan = Module._SPI_plan_get_cached_plan = e.SPI_plan_get_cached_plan, _SPI_register_relation = Module._SPI_register_relation = e.SPI_register_relation, _create_queryEnv = Module._create_queryEnv = e.create_queryEnv, _register_ENR = Module._register_ENR = e.register_ENR, _SPI_register_trigger_data = Module._SPI_register_trigger_data = e.SPI_register_trigger_data, _tuplestore_tuple_count = Module._tuplestore_tuple_count = e.tuplestore_tuple_count, _GetUserMapping = Module._GetUserMapping = e.GetUserMapping, _GetForeignTable = Module._GetForeignTable = e.GetForeignTable, _GetForeignColumnOptions = Module._GetForeignColumnOptions = e.GetForeignColumnOptions, _initClosestMatch = Module._initClosestMatch = e.initClosestMatch, _updateClosestMatch = Module._updateClosestMatch = e.updateClosestMatch, _getClosestMatch = Module._getClosestMatch = e.getClosestMatch, _GetExistingLocalJoinPath = Module._GetExistingLocalJoinPath = e.GetExistingLocalJoinPath, _pathkeys_contained_in = Module._pathkeys_contained_in = e.pathkeys_contained_in, _bloom_create = Module._bloom_create = e.bloom_create, _bloom_free = Module._bloom_free = e.bloom_free, _bloom_add_element = Module._bloom_add_element = e.bloom_add_element, _bloom_lacks_element = Module._bloom_lacks_element = e.bloom_lacks_element, _bloom_prop_bits_set = Module._bloom_prop_bits_set = e.bloom_prop_bits_set, _dshash_create = Module._dshash_create = e.dshash_create, _dshash_attach = Module._dshash_attach = e.dshash_attach, _dshash_detach = Module._dshash_detach = e.dshash_detach, _dshash_destroy = Module._dshash_destroy = e.dshash_destroy, _dshash_get_hash_table_handle = Module._dshash_get_hash_table_handle = e.dshash_get_hash_table_handle, _dshash_find = Module._dshash_find = e.dshash_find, _dshash_find_or_insert = Module._dshash_find_or_insert = e.dshash_find_or_insert, _dshash_delete_key = Module._dshash_delete_key = e.dshash_delete_key, _dshash_release_lock = Module._dshash_release_lock = e.dshash_release_lock, _tag_hash = Module._tag_hash = e.tag_hash, _dshash_seq_init = Module._dshash_seq_init = e.dshash_seq_init, _dshash_seq_next = Module._dshash_seq_next = e.dshash_seq_next, _dshash_seq_term = Module._dshash_seq_term = e.dshash_seq_term, _dshash_delete_current = Module._dshash_delete_current = e.dshash_delete_current, _ldexp = Module._ldexp = e.ldexp, _pg_b64_enc_len = Module._pg_b64_enc_len = e.pg_b64_enc_len, _pg_b64_encode = Module._pg_b64_encode = e.pg_b64_encode, _strtol = Module._strtol = e.strtol, _gai_strerror = Module._gai_strerror = e.gai_strerror, _bind = Module._bind = e.bind, _pgl_connect = Module._pgl_connect = e.pgl_connect, _pgl_send = Module._pgl_send = e.pgl_send, _pgl_recv = Module._pgl_recv = e.pgl_recv, _sendto = Module._sendto = e.sendto, _select = Module._select = e.select, _recvfrom = Module._recvfrom = e.recvfrom, _be_lo_unlink = Module._be_lo_unlink = e.be_lo_unlink, _text_to_cstring_buffer = Module._text_to_cstring_buffer = e.text_to_cstring_buffer, _feof = Module._feof = e.feof, _pg_mb2wchar_with_len = Module._pg_mb2wchar_with_len = e.pg_mb2wchar_with_len, _pg_regcomp = Module._pg_regcomp = e.pg_regcomp, _pg_regerror = Module._pg_regerror = e.pg_regerror, _strcat = Module._strcat = e.strcat, _freeaddrinfo = Module._freeaddrinfo = e.freeaddrinfo, _pgl_getsockname = Module._pgl_getsockname = e.pgl_getsockname, _pgl_setsockopt = Module._pgl_setsockopt = e.pgl_setsockopt, _pgl_fcntl = Module._pgl_fcntl = e.pgl_fcntl, _listen = Module._listen = e.listen, _accept = Module._accept = e.accept, _utime = Module._utime = e.utime, _pq_buffer_remaining_data = Module._pq_buffer_remaining_data = e.pq_buffer_remaining_data, _pgl_getsockopt = Module._pgl_getsockopt = e.pgl_getsockopt, _pq_sendtext = Module._pq_sendtext = e.pq_sendtext, _pq_sendfloat4 = Module._pq_sendfloat4 = e.pq_sendfloat4, _pq_sendfloat8 = Module._pq_sendfloat8 = e.pq_sendfloat8, _pq_begintypsend = Module._pq_begintypsend = e.pq_begintypsend, _pq_endtypsend = Module._pq_endtypsend = e.pq_endtypsend, _pq_getmsgfloat4 = Module._pq_getmsgfloat4 = e.pq_getmsgfloat4, _pq_getmsgfloat8 = Module._pq_getmsgfloat8 = e.pq_getmsgfloat8, _pq_getmsgtext = Module._pq_getmsgtext = e.pq_getmsgtext, _pg_strtoint32 = Module._pg_strtoint32 = e.pg_strtoint32, _main = Module._main = e.__main_argc_argv, _pgl_getuid = Module._pgl_getuid = e.pgl_getuid, _getenv = Module._getenv = e.getenv, _bms_membership = Module._bms_membership = e.bms_membership, _RegisterExtensibleNodeMethods = Module._RegisterExtensibleNodeMethods = e.RegisterExtensibleNodeMethods, _list_make5_impl = Module._list_make5_impl = e.list_make5_impl, _GetMemoryChunkContext = Module._GetMemoryChunkContext = e.GetMemoryChunkContext, _list_insert_nth = Module._list_insert_nth = e.list_insert_nth, _list_member_ptr = Module._list_member_ptr = e.list_member_ptr, _list_delete_int = Module._list_delete_int = e.list_delete_int, _list_intersection = Module._list_intersection = e.list_intersection, _list_append_unique_ptr = Module._list_append_unique_ptr = e.list_append_unique_ptr, _list_append_unique_int = Module._list_append_unique_int = e.list_append_unique_int, _list_concat_unique_int = Module._list_concat_unique_int = e.list_concat_unique_int, _make_opclause = Module._make_opclause = e.make_opclause, _exprIsLengthCoercion = Module._exprIsLengthCoercion = e.exprIsLengthCoercion, _fix_opfuncids = Module._fix_opfuncids = e.fix_opfuncids, _outToken = Module._outToken = e.outToken, _outNode = Module._outNode = e.outNode, _appendStringInfoStringQuoted = Module._appendStringInfoStringQuoted = e.appendStringInfoStringQuoted, _EnableQueryId = Module._EnableQueryId = e.EnableQueryId, _nodeRead = Module._nodeRead = e.nodeRead, _pg_strtok = Module._pg_strtok = e.pg_strtok, _debackslash = Module._debackslash = e.debackslash, _exp2 = Module._exp2 = e.exp2, _find_base_rel = Module._find_base_rel = e.find_base_rel, _add_path = Module._add_path = e.add_path, _create_sort_path = Module._create_sort_path = e.create_sort_path, _set_baserel_size_estimates = Module._set_baserel_size_estimates = e.set_baserel_size_estimates, _get_func_support = Module._get_func_support = e.get_func_support, _clauselist_selectivity = Module._clauselist_selectivity = e.clauselist_selectivity, _get_tablespace_page_costs = Module._get_tablespace_page_costs = e.get_tablespace_page_costs, _cost_qual_eval = Module._cost_qual_eval = e.cost_qual_eval, _pull_varnos = Module._pull_varnos = e.pull_varnos, _estimate_num_groups = Module._estimate_num_groups = e.estimate_num_groups, _cost_sort = Module._cost_sort = e.cost_sort, _get_sortgrouplist_exprs = Module._get_sortgrouplist_exprs = e.get_sortgrouplist_exprs, _get_attavgwidth = Module._get_attavgwidth = e.get_attavgwidth, _make_restrictinfo = Module._make_restrictinfo = e.make_restrictinfo, _setup_eclass_member_iterator = Module._setup_eclass_member_iterator = e.setup_eclass_member_iterator, _eclass_member_iterator_next = Module._eclass_member_iterator_next = e.eclass_member_iterator_next, _remove_nulling_relids = Module._remove_nulling_relids = e.remove_nulling_relids, _get_mergejoin_opfamilies = Module._get_mergejoin_opfamilies = e.get_mergejoin_opfamilies, _generate_implied_equalities_for_column = Module._generate_implied_equalities_for_column = e.generate_implied_equalities_for_column, _eclass_useful_for_merging = Module._eclass_useful_for_merging = e.eclass_useful_for_merging, _join_clause_is_movable_to = Module._join_clause_is_movable_to = e.join_clause_is_movable_to, _get_plan_rowmark = Module._get_plan_rowmark = e.get_plan_rowmark, _is_pseudo_constant_for_index = Module._is_pseudo_constant_for_index = e.is_pseudo_constant_for_index, _update_mergeclause_eclasses = Module._update_mergeclause_eclasses = e.update_mergeclause_eclasses, _pull_vars_of_level = Module._pull_vars_of_level = e.pull_vars_of_level, _find_join_rel = Module._find_join_rel = e.find_join_rel, _make_canonical_pathkey = Module._make_canonical_pathkey = e.make_canonical_pathkey, _get_sortgroupref_clause_noerr = Module._get_sortgroupref_clause_noerr = e.get_sortgroupref_clause_noerr, _extract_actual_clauses = Module._extract_actual_clauses = e.extract_actual_clauses, _tlist_member = Module._tlist_member = e.tlist_member, _change_plan_targetlist = Module._change_plan_targetlist = e.change_plan_targetlist, _make_foreignscan = Module._make_foreignscan = e.make_foreignscan, _IncrementVarSublevelsUp = Module._IncrementVarSublevelsUp = e.IncrementVarSublevelsUp, _op_mergejoinable = Module._op_mergejoinable = e.op_mergejoinable, _find_nonnullable_rels = Module._find_nonnullable_rels = e.find_nonnullable_rels, _setup_simple_rel_arrays = Module._setup_simple_rel_arrays = e.setup_simple_rel_arrays, _standard_planner = Module._standard_planner = e.standard_planner, _get_relids_in_jointree = Module._get_relids_in_jointree = e.get_relids_in_jointree, _SS_process_sublinks = Module._SS_process_sublinks = e.SS_process_sublinks, _add_new_columns_to_pathtarget = Module._add_new_columns_to_pathtarget = e.add_new_columns_to_pathtarget, _get_agg_clause_costs = Module._get_agg_clause_costs = e.get_agg_clause_costs, _grouping_is_sortable = Module._grouping_is_sortable = e.grouping_is_sortable, _copy_pathtarget = Module._copy_pathtarget = e.copy_pathtarget, _create_projection_path = Module._create_projection_path = e.create_projection_path, _contain_nonstrict_functions = Module._contain_nonstrict_functions = e.contain_nonstrict_functions, _get_translated_update_targetlist = Module._get_translated_update_targetlist = e.get_translated_update_targetlist, _add_row_identity_var = Module._add_row_identity_var = e.add_row_identity_var, _get_rel_all_updated_cols = Module._get_rel_all_updated_cols = e.get_rel_all_updated_cols, _get_baserel_parampathinfo = Module._get_baserel_parampathinfo = e.get_baserel_parampathinfo, _create_foreignscan_path = Module._create_foreignscan_path = e.create_foreignscan_path, _create_foreign_join_path = Module._create_foreign_join_path = e.create_foreign_join_path, _create_foreign_upper_path = Module._create_foreign_upper_path = e.create_foreign_upper_path, _adjust_limit_rows_costs = Module._adjust_limit_rows_costs = e.adjust_limit_rows_costs, _add_to_flat_tlist = Module._add_to_flat_tlist = e.add_to_flat_tlist, _get_fn_expr_variadic = Module._get_fn_expr_variadic = e.get_fn_expr_variadic, _get_fn_expr_argtype = Module._get_fn_expr_argtype = e.get_fn_expr_argtype, _on_shmem_exit = Module._on_shmem_exit = e.on_shmem_exit, _pgl_shmdt = Module._pgl_shmdt = e.pgl_shmdt, _pgl_shmctl = Module._pgl_shmctl = e.pgl_shmctl, _pgl_shmat = Module._pgl_shmat = e.pgl_shmat, _mmap = Module._mmap = e.mmap, _pgl_shmget = Module._pgl_shmget = e.pgl_shmget, _pgl_munmap = Module._pgl_munmap = e.pgl_munmap, _SignalHandlerForConfigReload = Module._SignalHandlerForConfigReload = e.SignalHandlerForConfigReload, _SignalHandlerForShutdownRequest = Module._SignalHandlerForShutdownRequest = e.SignalHandlerForShutdownRequest, _procsignal_sigusr1_handler = Module._procsignal_sigusr1_handler = e.procsignal_sigusr1_handler, _ConditionalLockDatabaseObject = Module._ConditionalLockDatabaseObject = e.ConditionalLockDatabaseObject, _RegisterBackgroundWorker = Module._RegisterBackgroundWorker = e.RegisterBackgroundWorker, _WaitForBackgroundWorkerStartup = Module._WaitForBackgroundWorkerStartup = e.WaitForBackgroundWorkerStartup, _open = Module._open = e.open, _rename = Module._rename = e.rename, _GetConfigOption = Module._GetConfigOption = e.GetConfigOption, _puts = Module._puts = e.puts, _fopen = Module._fopen = e.fopen, _fclose = Module._fclose = e.fclose, _fputc = Module._fputc = e.fputc, _ftello = Module._ftello = e.ftello, _malloc = Module._malloc = e.malloc, _free = Module._free = e.free, _realloc = Module._realloc = e.realloc, _iswprint_l = Module._iswprint_l = e.iswprint_l, _iswalpha_l = Module._iswalpha_l = e.iswalpha_l, _iswdigit_l = Module._iswdigit_l = e.iswdigit_l, _isdigit_l = Module._isdigit_l = e.isdigit_l, _iswpunct_l = Module._iswpunct_l = e.iswpunct_l, _iswspace_l = Module._iswspace_l = e.iswspace_l, _iswlower_l = Module._iswlower_l = e.iswlower_l, _iswupper_l = Module._iswupper_l = e.iswupper_l, _pg_ascii_tolower = Module._pg_ascii_tolower = e.pg_ascii_tolower, _towlower_l = Module._towlower_l = e.towlower_l, _tolower_l = Module._tolower_l = e.tolower_l, _towupper_l = Module._towupper_l = e.towupper_l, _toupper_l = Module._toupper_l = e.toupper_l, _pg_reg_getinitialstate = Module._pg_reg_getinitialstate = e.pg_reg_getinitialstate, _pg_reg_getfinalstate = Module._pg_reg_getfinalstate = e.pg_reg_getfinalstate, _pg_reg_getnumoutarcs = Module._pg_reg_getnumoutarcs = e.pg_reg_getnumoutarcs, _pg_reg_getoutarcs = Module._pg_reg_getoutarcs = e.pg_reg_getoutarcs, _pg_reg_getnumcolors = Module._pg_reg_getnumcolors = e.pg_reg_getnumcolors, _pg_reg_colorisbegin = Module._pg_reg_colorisbegin = e.pg_reg_colorisbegin, _pg_reg_colorisend = Module._pg_reg_colorisend = e.pg_reg_colorisend, _pg_reg_getnumcharacters = Module._pg_reg_getnumcharacters = e.pg_reg_getnumcharacters, _pg_reg_getcharacters = Module._pg_reg_getcharacters = e.pg_reg_getcharacters, _dsa_pin = Module._dsa_pin = e.dsa_pin, _OutputPluginPrepareWrite = Module._OutputPluginPrepareWrite = e.OutputPluginPrepareWrite, _OutputPluginWrite = Module._OutputPluginWrite = e.OutputPluginWrite, _array_contains_nulls = Module._array_contains_nulls = e.array_contains_nulls, _CacheRegisterRelcacheCallback = Module._CacheRegisterRelcacheCallback = e.CacheRegisterRelcacheCallback, _hash_seq_term = Module._hash_seq_term = e.hash_seq_term, _FreeErrorData = Module._FreeErrorData = e.FreeErrorData, _RelidByRelfilenumber = Module._RelidByRelfilenumber = e.RelidByRelfilenumber, _SnapBuildRestoreSnapshot = Module._SnapBuildRestoreSnapshot = e.SnapBuildRestoreSnapshot, _WaitLatchOrSocket = Module._WaitLatchOrSocket = e.WaitLatchOrSocket, _BufFileCreateFileSet = Module._BufFileCreateFileSet = e.BufFileCreateFileSet, _BufFileOpenFileSet = Module._BufFileOpenFileSet = e.BufFileOpenFileSet, _BufFileTell = Module._BufFileTell = e.BufFileTell, _ConditionVariablePrepareToSleep = Module._ConditionVariablePrepareToSleep = e.ConditionVariablePrepareToSleep, _get_row_security_policies = Module._get_row_security_policies = e.get_row_security_policies, _extract_variadic_args = Module._extract_variadic_args = e.extract_variadic_args, _errhidestmt = Module._errhidestmt = e.errhidestmt, _errhidecontext = Module._errhidecontext = e.errhidecontext, _hash_estimate_size = Module._hash_estimate_size = e.hash_estimate_size, _ShmemInitHash = Module._ShmemInitHash = e.ShmemInitHash, _LockBufHdr = Module._LockBufHdr = e.LockBufHdr, _LWLockHeldByMeInMode = Module._LWLockHeldByMeInMode = e.LWLockHeldByMeInMode, _EvictUnpinnedBuffer = Module._EvictUnpinnedBuffer = e.EvictUnpinnedBuffer, _EvictAllUnpinnedBuffers = Module._EvictAllUnpinnedBuffers = e.EvictAllUnpinnedBuffers, _EvictRelUnpinnedBuffers = Module._EvictRelUnpinnedBuffers = e.EvictRelUnpinnedBuffers, _have_free_buffer = Module._have_free_buffer = e.have_free_buffer, _calloc = Module._calloc = e.calloc, _BufFileExportFileSet = Module._BufFileExportFileSet = e.BufFileExportFileSet, _BufFileRead = Module._BufFileRead = e.BufFileRead, _copy_file = Module._copy_file = e.copy_file, _fdatasync = Module._fdatasync = e.fdatasync, _truncate = Module._truncate = e.truncate, _dup = Module._dup = e.dup, _AcquireExternalFD = Module._AcquireExternalFD = e.AcquireExternalFD, _mkdir = Module._mkdir = e.mkdir, _pgl_popen = Module._pgl_popen = e.pgl_popen, _pgl_pclose = Module._pgl_pclose = e.pgl_pclose, _closedir = Module._closedir = e.closedir, _opendir = Module._opendir = e.opendir, _readdir = Module._readdir = e.readdir, _GetNamedDSMSegment = Module._GetNamedDSMSegment = e.GetNamedDSMSegment, _pgl_atexit = Module._pgl_atexit = e.pgl_atexit, _RequestAddinShmemSpace = Module._RequestAddinShmemSpace = e.RequestAddinShmemSpace, _GetRunningTransactionData = Module._GetRunningTransactionData = e.GetRunningTransactionData, _BackendXidGetPid = Module._BackendXidGetPid = e.BackendXidGetPid, _pg_numa_init = Module._pg_numa_init = e.pg_numa_init, _sysconf = Module._sysconf = e.sysconf, _pg_numa_query_pages = Module._pg_numa_query_pages = e.pg_numa_query_pages, _pg_get_shmem_pagesize = Module._pg_get_shmem_pagesize = e.pg_get_shmem_pagesize, _LockAcquire = Module._LockAcquire = e.LockAcquire, _LockRelease = Module._LockRelease = e.LockRelease, _pgl_poll = Module._pgl_poll = e.pgl_poll, _GetLockmodeName = Module._GetLockmodeName = e.GetLockmodeName, _LWLockRegisterTranche = Module._LWLockRegisterTranche = e.LWLockRegisterTranche, _GetNamedLWLockTranche = Module._GetNamedLWLockTranche = e.GetNamedLWLockTranche, _LWLockNewTrancheId = Module._LWLockNewTrancheId = e.LWLockNewTrancheId, _RequestNamedLWLockTranche = Module._RequestNamedLWLockTranche = e.RequestNamedLWLockTranche, _LWLockHeldByMe = Module._LWLockHeldByMe = e.LWLockHeldByMe, _ProcessStartupPacket = Module._ProcessStartupPacket = e.ProcessStartupPacket, _htons = e.htons, _htonl = e.htonl, _pgl_startPGlite = Module._pgl_startPGlite = e.pgl_startPGlite, _pgl_pq_flush = Module._pgl_pq_flush = e.pgl_pq_flush, _pgl_getMyProcPort = Module._pgl_getMyProcPort = e.pgl_getMyProcPort, _pgl_sendConnData = Module._pgl_sendConnData = e.pgl_sendConnData, _PostgresMainLongJmp = Module._PostgresMainLongJmp = e.PostgresMainLongJmp, _PostgresMainLoopOnce = Module._PostgresMainLoopOnce = e.PostgresMainLoopOnce, _PostgresSendReadyForQueryIfNecessary = Module._PostgresSendReadyForQueryIfNecessary = e.PostgresSendReadyForQueryIfNecessary, _GetCommandLogLevel = Module._GetCommandLogLevel = e.GetCommandLogLevel, _standard_ProcessUtility = Module._standard_ProcessUtility = e.standard_ProcessUtility, _lookup_ts_dictionary_cache = Module._lookup_ts_dictionary_cache = e.lookup_ts_dictionary_cache, _get_tsearch_config_filename = Module._get_tsearch_config_filename = e.get_tsearch_config_filename, _str_tolower = Module._str_tolower = e.str_tolower, _readstoplist = Module._readstoplist = e.readstoplist, _searchstoplist = Module._searchstoplist = e.searchstoplist, _tsearch_readline_begin = Module._tsearch_readline_begin = e.tsearch_readline_begin, _tsearch_readline = Module._tsearch_readline = e.tsearch_readline, _tsearch_readline_end = Module._tsearch_readline_end = e.tsearch_readline_end, _stringToQualifiedNameList = Module._stringToQualifiedNameList = e.stringToQualifiedNameList, _getTSCurrentConfig = Module._getTSCurrentConfig = e.getTSCurrentConfig, _to_tsvector_byid = Module._to_tsvector_byid = e.to_tsvector_byid, _t_isalnum_with_len = Module._t_isalnum_with_len = e.t_isalnum_with_len, _isalnum = Module._isalnum = e.isalnum, _t_isalnum_cstr = Module._t_isalnum_cstr = e.t_isalnum_cstr, _pg_mblen_unbounded = Module._pg_mblen_unbounded = e.pg_mblen_unbounded, _get_restriction_variable = Module._get_restriction_variable = e.get_restriction_variable, _pg_mblen_range = Module._pg_mblen_range = e.pg_mblen_range, _MemoryContextAllocHuge = Module._MemoryContextAllocHuge = e.MemoryContextAllocHuge, _fseek = Module._fseek = e.fseek, _WaitEventExtensionNew = Module._WaitEventExtensionNew = e.WaitEventExtensionNew, _regprocedurein = Module._regprocedurein = e.regprocedurein, _is_member_of_role = Module._is_member_of_role = e.is_member_of_role, _expand_array = Module._expand_array = e.expand_array, _exp = Module._exp = e.exp, _arraycontsel = Module._arraycontsel = e.arraycontsel, _arraycontjoinsel = Module._arraycontjoinsel = e.arraycontjoinsel, _initArrayResult = Module._initArrayResult = e.initArrayResult, _array_create_iterator = Module._array_create_iterator = e.array_create_iterator, _array_iterate = Module._array_iterate = e.array_iterate, _array_free_iterator = Module._array_free_iterator = e.array_free_iterator, _ArrayGetIntegerTypmods = Module._ArrayGetIntegerTypmods = e.ArrayGetIntegerTypmods, _boolin = Module._boolin = e.boolin, ___multi3 = Module.___multi3 = e.__multi3, _cash_cmp = Module._cash_cmp = e.cash_cmp, _int64_to_numeric = Module._int64_to_numeric = e.int64_to_numeric, _numeric_div = Module._numeric_div = e.numeric_div, _numeric_round = Module._numeric_round = e.numeric_round, _numeric_int8 = Module._numeric_int8 = e.numeric_int8, _numeric_mul = Module._numeric_mul = e.numeric_mul, _j2date = Module._j2date = e.j2date, _EncodeDateOnly = Module._EncodeDateOnly = e.EncodeDateOnly, _EncodeSpecialDate = Module._EncodeSpecialDate = e.EncodeSpecialDate, _date_eq = Module._date_eq = e.date_eq, _date_lt = Module._date_lt = e.date_lt, _date_le = Module._date_le = e.date_le, _date_gt = Module._date_gt = e.date_gt, _date_ge = Module._date_ge = e.date_ge, _date_cmp = Module._date_cmp = e.date_cmp, _date_mi = Module._date_mi = e.date_mi, _timestamp2tm = Module._timestamp2tm = e.timestamp2tm, _time2tm = Module._time2tm = e.time2tm, _EncodeTimeOnly = Module._EncodeTimeOnly = e.EncodeTimeOnly, _time_eq = Module._time_eq = e.time_eq, _time_lt = Module._time_lt = e.time_lt, _time_le = Module._time_le = e.time_le, _time_gt = Module._time_gt = e.time_gt, _time_ge = Module._time_ge = e.time_ge, _time_cmp = Module._time_cmp = e.time_cmp, _time_mi_time = Module._time_mi_time = e.time_mi_time, _timetz2tm = Module._timetz2tm = e.timetz2tm, _timetz_cmp = Module._timetz_cmp = e.timetz_cmp, _pg_tolower = Module._pg_tolower = e.pg_tolower, _EncodeDateTime = Module._EncodeDateTime = e.EncodeDateTime, _TransferExpandedObject = Module._TransferExpandedObject = e.TransferExpandedObject, _forkname_to_number = Module._forkname_to_number = e.forkname_to_number, _numeric_lt = Module._numeric_lt = e.numeric_lt, _numeric_abs = Module._numeric_abs = e.numeric_abs, _numeric_add = Module._numeric_add = e.numeric_add, _numeric_ge = Module._numeric_ge = e.numeric_ge, _err_generic_string = Module._err_generic_string = e.err_generic_string, _domain_check = Module._domain_check = e.domain_check, _enum_lt = Module._enum_lt = e.enum_lt, _enum_le = Module._enum_le = e.enum_le, _enum_ge = Module._enum_ge = e.enum_ge, _enum_gt = Module._enum_gt = e.enum_gt, _enum_cmp = Module._enum_cmp = e.enum_cmp, _make_expanded_record_from_typeid = Module._make_expanded_record_from_typeid = e.make_expanded_record_from_typeid, _make_expanded_record_from_tupdesc = Module._make_expanded_record_from_tupdesc = e.make_expanded_record_from_tupdesc, _make_expanded_record_from_exprecord = Module._make_expanded_record_from_exprecord = e.make_expanded_record_from_exprecord, _expanded_record_set_tuple = Module._expanded_record_set_tuple = e.expanded_record_set_tuple, _expanded_record_get_tuple = Module._expanded_record_get_tuple = e.expanded_record_get_tuple, _deconstruct_expanded_record = Module._deconstruct_expanded_record = e.deconstruct_expanded_record, _expanded_record_lookup_field = Module._expanded_record_lookup_field = e.expanded_record_lookup_field, _expanded_record_set_field_internal = Module._expanded_record_set_field_internal = e.expanded_record_set_field_internal, _expanded_record_set_fields = Module._expanded_record_set_fields = e.expanded_record_set_fields, _float4in_internal = Module._float4in_internal = e.float4in_internal, _strtof = Module._strtof = e.strtof, _float_to_shortest_decimal_buf = Module._float_to_shortest_decimal_buf = e.float_to_shortest_decimal_buf, _float8in = Module._float8in = e.float8in, _float8in_internal = Module._float8in_internal = e.float8in_internal, _float8out = Module._float8out = e.float8out, _float8out_internal = Module._float8out_internal = e.float8out_internal, _float8pl = Module._float8pl = e.float8pl, _float4_cmp_internal = Module._float4_cmp_internal = e.float4_cmp_internal, _btfloat4cmp = Module._btfloat4cmp = e.btfloat4cmp, _btfloat8cmp = Module._btfloat8cmp = e.btfloat8cmp, _dtoi4 = Module._dtoi4 = e.dtoi4, _dtoi2 = Module._dtoi2 = e.dtoi2, _cbrt = Module._cbrt = e.cbrt, _dexp = Module._dexp = e.dexp, _log10 = Module._log10 = e.log10, _dacos = Module._dacos = e.dacos, _acos = Module._acos = e.acos, _dasin = Module._dasin = e.dasin, _asin = Module._asin = e.asin, _datan = Module._datan = e.datan, _atan = Module._atan = e.atan, _datan2 = Module._datan2 = e.datan2, _atan2 = Module._atan2 = e.atan2, _dcos = Module._dcos = e.dcos, _cos = Module._cos = e.cos, _dcot = Module._dcot = e.dcot, _tan = Module._tan = e.tan, _dsin = Module._dsin = e.dsin, _sin = Module._sin = e.sin, _dtan = Module._dtan = e.dtan, _fmod = Module._fmod = e.fmod, _degrees = Module._degrees = e.degrees, _dpi = Module._dpi = e.dpi, _radians = Module._radians = e.radians, _sinh = Module._sinh = e.sinh, _cosh = Module._cosh = e.cosh, _tanh = Module._tanh = e.tanh, _asinh = Module._asinh = e.asinh, _acosh = Module._acosh = e.acosh, _atanh = Module._atanh = e.atanh, _float8_accum = Module._float8_accum = e.float8_accum, _float8_stddev_pop = Module._float8_stddev_pop = e.float8_stddev_pop, _float8_stddev_samp = Module._float8_stddev_samp = e.float8_stddev_samp, _asc_tolower = Module._asc_tolower = e.asc_tolower, _pg_strfold = Module._pg_strfold = e.pg_strfold, _numeric_power = Module._numeric_power = e.numeric_power, _dtoi8 = Module._dtoi8 = e.dtoi8, _int8out = Module._int8out = e.int8out, _fseeko = Module._fseeko = e.fseeko, _int4in = Module._int4in = e.int4in, _int4_bool = Module._int4_bool = e.int4_bool, _int8pl = Module._int8pl = e.int8pl, _int84 = Module._int84 = e.int84, _int82 = Module._int82 = e.int82, _json_in = Module._json_in = e.json_in, _EncodeSpecialTimestamp = Module._EncodeSpecialTimestamp = e.EncodeSpecialTimestamp, _pushJsonbValue = Module._pushJsonbValue = e.pushJsonbValue, _numeric_int2 = Module._numeric_int2 = e.numeric_int2, _numeric_int4 = Module._numeric_int4 = e.numeric_int4, _numeric_float4 = Module._numeric_float4 = e.numeric_float4, _numeric_normalize = Module._numeric_normalize = e.numeric_normalize, _numeric_cmp = Module._numeric_cmp = e.numeric_cmp, _numeric_eq = Module._numeric_eq = e.numeric_eq, _hash_numeric = Module._hash_numeric = e.hash_numeric, _hash_numeric_extended = Module._hash_numeric_extended = e.hash_numeric_extended, _int2_numeric = Module._int2_numeric = e.int2_numeric, _int4_numeric = Module._int4_numeric = e.int4_numeric, _int8_numeric = Module._int8_numeric = e.int8_numeric, _float4_numeric = Module._float4_numeric = e.float4_numeric, _float8_numeric = Module._float8_numeric = e.float8_numeric, _numeric_uminus = Module._numeric_uminus = e.numeric_uminus, _numeric_is_nan = Module._numeric_is_nan = e.numeric_is_nan, _numeric_ceil = Module._numeric_ceil = e.numeric_ceil, _numeric_floor = Module._numeric_floor = e.numeric_floor, _timestamp_cmp = Module._timestamp_cmp = e.timestamp_cmp, _macaddr_cmp = Module._macaddr_cmp = e.macaddr_cmp, _macaddr_lt = Module._macaddr_lt = e.macaddr_lt, _macaddr_le = Module._macaddr_le = e.macaddr_le, _macaddr_eq = Module._macaddr_eq = e.macaddr_eq, _macaddr_ge = Module._macaddr_ge = e.macaddr_ge, _macaddr_gt = Module._macaddr_gt = e.macaddr_gt, _macaddr8_cmp = Module._macaddr8_cmp = e.macaddr8_cmp, _macaddr8_lt = Module._macaddr8_lt = e.macaddr8_lt, _macaddr8_le = Module._macaddr8_le = e.macaddr8_le, _macaddr8_eq = Module._macaddr8_eq = e.macaddr8_eq, _macaddr8_ge = Module._macaddr8_ge = e.macaddr8_ge, _macaddr8_gt = Module._macaddr8_gt = e.macaddr8_gt, _current_query = Module._current_query = e.current_query, _generate_collation_name = Module._generate_collation_name = e.generate_collation_name, _get_fn_expr_arg_stable = Module._get_fn_expr_arg_stable = e.get_fn_expr_arg_stable, _unpack_sql_state = Module._unpack_sql_state = e.unpack_sql_state, _get_fn_expr_rettype = Module._get_fn_expr_rettype = e.get_fn_expr_rettype, _btnamecmp = Module._btnamecmp = e.btnamecmp, _inet_in = Module._inet_in = e.inet_in, _network_cmp = Module._network_cmp = e.network_cmp, _convert_network_to_scalar = Module._convert_network_to_scalar = e.convert_network_to_scalar, _numeric_sign = Module._numeric_sign = e.numeric_sign, _numeric_gt = Module._numeric_gt = e.numeric_gt, _numeric_le = Module._numeric_le = e.numeric_le, _numeric_mod = Module._numeric_mod = e.numeric_mod, _numeric_sqrt = Module._numeric_sqrt = e.numeric_sqrt, ___divti3 = Module.___divti3 = e.__divti3, _numeric_exp = Module._numeric_exp = e.numeric_exp, _numeric_ln = Module._numeric_ln = e.numeric_ln, _numeric_log = Module._numeric_log = e.numeric_log, _numeric_float8_no_overflow = Module._numeric_float8_no_overflow = e.numeric_float8_no_overflow, _oidout = Module._oidout = e.oidout, _btrim1 = Module._btrim1 = e.btrim1, _ltrim1 = Module._ltrim1 = e.ltrim1, _rtrim1 = Module._rtrim1 = e.rtrim1, _tuplesort_skiptuples = Module._tuplesort_skiptuples = e.tuplesort_skiptuples, _interval_mi = Module._interval_mi = e.interval_mi, _setlocale = Module._setlocale = e.setlocale, _newlocale = Module._newlocale = e.newlocale, _strftime_l = Module._strftime_l = e.strftime_l, _freelocale = Module._freelocale = e.freelocale, _pg_utf_mblen_private = Module._pg_utf_mblen_private = e.pg_utf_mblen_private, _uselocale = Module._uselocale = e.uselocale, _strcoll_l = Module._strcoll_l = e.strcoll_l, _strxfrm_l = Module._strxfrm_l = e.strxfrm_l, _drandom = Module._drandom = e.drandom, _quote_ident = Module._quote_ident = e.quote_ident, _textregexeq = Module._textregexeq = e.textregexeq, _text_substr = Module._text_substr = e.text_substr, _pg_wchar2mb_with_len = Module._pg_wchar2mb_with_len = e.pg_wchar2mb_with_len, _regexp_split_to_array = Module._regexp_split_to_array = e.regexp_split_to_array, _regclassin = Module._regclassin = e.regclassin, _regtypeout = Module._regtypeout = e.regtypeout, _regconfigout = Module._regconfigout = e.regconfigout, _pg_get_indexdef_columns_extended = Module._pg_get_indexdef_columns_extended = e.pg_get_indexdef_columns_extended, _pg_get_querydef = Module._pg_get_querydef = e.pg_get_querydef, _strcspn = Module._strcspn = e.strcspn, _generic_restriction_selectivity = Module._generic_restriction_selectivity = e.generic_restriction_selectivity, _genericcostestimate = Module._genericcostestimate = e.genericcostestimate, _tidin = Module._tidin = e.tidin, _tidout = Module._tidout = e.tidout, _timestamp_in = Module._timestamp_in = e.timestamp_in, _timestamp_eq = Module._timestamp_eq = e.timestamp_eq, _timestamp_lt = Module._timestamp_lt = e.timestamp_lt, _timestamp_gt = Module._timestamp_gt = e.timestamp_gt, _timestamp_le = Module._timestamp_le = e.timestamp_le, _timestamp_ge = Module._timestamp_ge = e.timestamp_ge, _interval_eq = Module._interval_eq = e.interval_eq, _interval_lt = Module._interval_lt = e.interval_lt, _interval_gt = Module._interval_gt = e.interval_gt, _interval_le = Module._interval_le = e.interval_le, _interval_ge = Module._interval_ge = e.interval_ge, _interval_cmp = Module._interval_cmp = e.interval_cmp, _timestamp_mi = Module._timestamp_mi = e.timestamp_mi, _interval_um = Module._interval_um = e.interval_um, _tsquery_requires_match = Module._tsquery_requires_match = e.tsquery_requires_match, _TS_execute_ternary = Module._TS_execute_ternary = e.TS_execute_ternary, _has_fn_opclass_options = Module._has_fn_opclass_options = e.has_fn_opclass_options, _uuid_in = Module._uuid_in = e.uuid_in, _uuid_out = Module._uuid_out = e.uuid_out, _uuid_cmp = Module._uuid_cmp = e.uuid_cmp, _gen_random_uuid = Module._gen_random_uuid = e.gen_random_uuid, _varbit_in = Module._varbit_in = e.varbit_in, _biteq = Module._biteq = e.biteq, _bitlt = Module._bitlt = e.bitlt, _bitle = Module._bitle = e.bitle, _bitgt = Module._bitgt = e.bitgt, _bitge = Module._bitge = e.bitge, _bitcmp = Module._bitcmp = e.bitcmp, _bitlength = Module._bitlength = e.bitlength, _bpchareq = Module._bpchareq = e.bpchareq, _bpcharlt = Module._bpcharlt = e.bpcharlt, _bpcharle = Module._bpcharle = e.bpcharle, _bpchargt = Module._bpchargt = e.bpchargt, _bpcharge = Module._bpcharge = e.bpcharge, _bpcharcmp = Module._bpcharcmp = e.bpcharcmp, _pg_detoast_datum_slice = Module._pg_detoast_datum_slice = e.pg_detoast_datum_slice, _text_substr_no_len = Module._text_substr_no_len = e.text_substr_no_len, _texteq = Module._texteq = e.texteq, _text_lt = Module._text_lt = e.text_lt, _text_le = Module._text_le = e.text_le, _text_gt = Module._text_gt = e.text_gt, _text_ge = Module._text_ge = e.text_ge, _bttextcmp = Module._bttextcmp = e.bttextcmp, _byteaeq = Module._byteaeq = e.byteaeq, _bytealt = Module._bytealt = e.bytealt, _byteale = Module._byteale = e.byteale, _byteagt = Module._byteagt = e.byteagt, _byteage = Module._byteage = e.byteage, _byteacmp = Module._byteacmp = e.byteacmp, _to_hex32 = Module._to_hex32 = e.to_hex32, _text_left = Module._text_left = e.text_left, _text_right = Module._text_right = e.text_right, _text_reverse = Module._text_reverse = e.text_reverse, _varstr_levenshtein = Module._varstr_levenshtein = e.varstr_levenshtein, _wcslen = Module._wcslen = e.wcslen, _pg_xml_init = Module._pg_xml_init = e.pg_xml_init, _xml_ereport = Module._xml_ereport = e.xml_ereport, _pg_xml_done = Module._pg_xml_done = e.pg_xml_done, _pg_do_encoding_conversion = Module._pg_do_encoding_conversion = e.pg_do_encoding_conversion, _CreateCacheMemoryContext = Module._CreateCacheMemoryContext = e.CreateCacheMemoryContext, _cfunc_resolve_polymorphic_argtypes = Module._cfunc_resolve_polymorphic_argtypes = e.cfunc_resolve_polymorphic_argtypes, _get_typsubscript = Module._get_typsubscript = e.get_typsubscript, _CachedPlanAllowsSimpleValidityCheck = Module._CachedPlanAllowsSimpleValidityCheck = e.CachedPlanAllowsSimpleValidityCheck, _CachedPlanIsSimplyValid = Module._CachedPlanIsSimplyValid = e.CachedPlanIsSimplyValid, _GetCachedExpression = Module._GetCachedExpression = e.GetCachedExpression, _FreeCachedExpression = Module._FreeCachedExpression = e.FreeCachedExpression, _ReleaseAllPlanCacheRefsInOwner = Module._ReleaseAllPlanCacheRefsInOwner = e.ReleaseAllPlanCacheRefsInOwner, _SearchSysCache = Module._SearchSysCache = e.SearchSysCache, _lookup_rowtype_tupdesc_noerror = Module._lookup_rowtype_tupdesc_noerror = e.lookup_rowtype_tupdesc_noerror, _abort = Module._abort = e.abort, _in_error_recursion_trouble = Module._in_error_recursion_trouble = e.in_error_recursion_trouble, _pg_vfprintf = Module._pg_vfprintf = e.pg_vfprintf, _pgl_longjmp = Module._pgl_longjmp = e.pgl_longjmp, _openlog = Module._openlog = e.openlog, _syslog = Module._syslog = e.syslog, _GetErrorContextStack = Module._GetErrorContextStack = e.GetErrorContextStack, _closelog = Module._closelog = e.closelog, _dlsym = Module._dlsym = e.dlsym, _dlopen = Module._dlopen = e.dlopen, _dlerror = Module._dlerror = e.dlerror, _dlclose = Module._dlclose = e.dlclose, _find_rendezvous_variable = Module._find_rendezvous_variable = e.find_rendezvous_variable, _CallerFInfoFunctionCall1 = Module._CallerFInfoFunctionCall1 = e.CallerFInfoFunctionCall1, _CallerFInfoFunctionCall2 = Module._CallerFInfoFunctionCall2 = e.CallerFInfoFunctionCall2, _FunctionCall0Coll = Module._FunctionCall0Coll = e.FunctionCall0Coll, _RelationNameGetTupleDesc = Module._RelationNameGetTupleDesc = e.RelationNameGetTupleDesc, _memcpy = Module._memcpy = e.memcpy, _hash_freeze = Module._hash_freeze = e.hash_freeze, _chdir = Module._chdir = e.chdir, _pg_bindtextdomain = Module._pg_bindtextdomain = e.pg_bindtextdomain, _pg_mblen = Module._pg_mblen = e.pg_mblen, _check_encoding_conversion_args = Module._check_encoding_conversion_args = e.check_encoding_conversion_args, _DefineCustomBoolVariable = Module._DefineCustomBoolVariable = e.DefineCustomBoolVariable, _DefineCustomIntVariable = Module._DefineCustomIntVariable = e.DefineCustomIntVariable, _DefineCustomRealVariable = Module._DefineCustomRealVariable = e.DefineCustomRealVariable, _DefineCustomStringVariable = Module._DefineCustomStringVariable = e.DefineCustomStringVariable, _DefineCustomEnumVariable = Module._DefineCustomEnumVariable = e.DefineCustomEnumVariable, _MarkGUCPrefixReserved = Module._MarkGUCPrefixReserved = e.MarkGUCPrefixReserved, _sampler_random_init_state = Module._sampler_random_init_state = e.sampler_random_init_state, _dsa_trim = Module._dsa_trim = e.dsa_trim, _pchomp = Module._pchomp = e.pchomp, _PinPortal = Module._PinPortal = e.PinPortal, _UnpinPortal = Module._UnpinPortal = e.UnpinPortal, ___lshrti3 = Module.___lshrti3 = e.__lshrti3, _realpath = Module._realpath = e.realpath, _float_to_shortest_decimal_bufn = Module._float_to_shortest_decimal_bufn = e.float_to_shortest_decimal_bufn, _IsValidJsonNumber = Module._IsValidJsonNumber = e.IsValidJsonNumber, _pg_prng_uint64 = Module._pg_prng_uint64 = e.pg_prng_uint64, _makeStringInfoExt = Module._makeStringInfoExt = e.makeStringInfoExt, _initStringInfoExt = Module._initStringInfoExt = e.initStringInfoExt, _pgl_getpwuid = Module._pgl_getpwuid = e.pgl_getpwuid, _getcwd = Module._getcwd = e.getcwd, _pthread_mutex_lock = Module._pthread_mutex_lock = e.pthread_mutex_lock, _localeconv = Module._localeconv = e.localeconv, _pthread_mutex_unlock = Module._pthread_mutex_unlock = e.pthread_mutex_unlock, _nanosleep = Module._nanosleep = e.nanosleep, _sigaction = Module._sigaction = e.sigaction, _strchrnul = Module._strchrnul = e.strchrnul, _snprintf = Module._snprintf = e.snprintf, _strerror_r = Module._strerror_r = e.strerror_r, _clear_setitimer = Module._clear_setitimer = e.clear_setitimer, _pgl_setPGliteActive = Module._pgl_setPGliteActive = e.pgl_setPGliteActive, _pgl_siglongjmp = Module._pgl_siglongjmp = e.pgl_siglongjmp, _pgl_set_system_fn = Module._pgl_set_system_fn = e.pgl_set_system_fn, _pgl_set_popen_fn = Module._pgl_set_popen_fn = e.pgl_set_popen_fn, _pgl_set_pclose_fn = Module._pgl_set_pclose_fn = e.pgl_set_pclose_fn, _pgl_run_atexit_funcs = Module._pgl_run_atexit_funcs = e.pgl_run_atexit_funcs, _pgl_freopen = Module._pgl_freopen = e.pgl_freopen, _fiprintf = Module._fiprintf = e.fiprintf, _pgl_set_rw_cbs = Module._pgl_set_rw_cbs = e.pgl_set_rw_cbs, _vfprintf = Module._vfprintf = e.vfprintf, _pthread_key_create = Module._pthread_key_create = e.pthread_key_create, _pthread_getspecific = Module._pthread_getspecific = e.pthread_getspecific, _pthread_key_delete = Module._pthread_key_delete = e.pthread_key_delete, _pthread_setspecific = Module._pthread_setspecific = e.pthread_setspecific, _toupper = Module._toupper = e.toupper, _iconv_open = Module._iconv_open = e.iconv_open, _iconv_close = Module._iconv_close = e.iconv_close, _iconv = Module._iconv = e.iconv, _pthread_mutex_init = Module._pthread_mutex_init = e.pthread_mutex_init, _pthread_mutex_destroy = Module._pthread_mutex_destroy = e.pthread_mutex_destroy, _pthread_cond_init = Module._pthread_cond_init = e.pthread_cond_init, _pthread_cond_destroy = Module._pthread_cond_destroy = e.pthread_cond_destroy, _pthread_self = Module._pthread_self = e.pthread_self, _pthread_cond_wait = Module._pthread_cond_wait = e.pthread_cond_wait, _pthread_cond_signal = Module._pthread_cond_signal = e.pthread_cond_signal, _pthread_once = Module._pthread_once = e.pthread_once, ___cxa_atexit = Module.___cxa_atexit = e.__cxa_atexit, _fputs = Module._fputs = e.fputs, _vsnprintf = Module._vsnprintf = e.vsnprintf, ___small_fprintf = Module.___small_fprintf = e.__small_fprintf, _zcalloc = Module._zcalloc = e.zcalloc, _zcfree = Module._zcfree = e.zcfree, ___dynamic_cast = Module.___dynamic_cast = e.__dynamic_cast, ___cxa_pure_virtual = Module.___cxa_pure_virtual = e.__cxa_pure_virtual, _modf = Module._modf = e.modf, _localtime_r = Module._localtime_r = e.localtime_r, _strncat = Module._strncat = e.strncat, _munmap = Module._munmap = e.munmap, ___ctype_get_mb_cur_max = Module.___ctype_get_mb_cur_max = e.__ctype_get_mb_cur_max, ___ctype_tolower_loc = Module.___ctype_tolower_loc = e.__ctype_tolower_loc, ___ctype_toupper_loc = Module.___ctype_toupper_loc = e.__ctype_toupper_loc, _fdopen = Module._fdopen = e.fdopen, _sqrt = Module._sqrt = e.sqrt, _acosl = Module._acosl = e.acosl, _aligned_alloc = Module._aligned_alloc = e.aligned_alloc, _atan2l = Module._atan2l = e.atan2l, ___funcs_on_exit = e.__funcs_on_exit, _atexit = Module._atexit = e.atexit, ___cxa_finalize = Module.___cxa_finalize = e.__cxa_finalize, _btowc = Module._btowc = e.btowc, _clock = Module._clock = e.clock, _scalbn = Module._scalbn = e.scalbn, _cosl = Module._cosl = e.cosl, _dladdr = Module._dladdr = e.dladdr, ___dl_seterr = e.__dl_seterr, _duplocale = Module._duplocale = e.duplocale, __emscripten_find_dylib = e._emscripten_find_dylib, _memmove = Module._memmove = e.memmove, _memset = Module._memset = e.memset, _fchmod = Module._fchmod = e.fchmod, _fchmodat = Module._fchmodat = e.fchmodat, _fchown = Module._fchown = e.fchown, _fcntl = Module._fcntl = e.fcntl, _fdopendir = Module._fdopendir = e.fdopendir, _fmax = Module._fmax = e.fmax, _fmin = Module._fmin = e.fmin, _fputwc = Module._fputwc = e.fputwc, _frexp = Module._frexp = e.frexp, _ftell = Module._ftell = e.ftell, _getentropy = Module._getentropy = e.getentropy, _geteuid = Module._geteuid = e.geteuid, _getgid = Module._getgid = e.getgid, _mbtowc = Module._mbtowc = e.mbtowc, _getuid = Module._getuid = e.getuid, _getwc = Module._getwc = e.getwc, _gmtime = Module._gmtime = e.gmtime, _hypot = Module._hypot = e.hypot, _mbrtowc = Module._mbrtowc = e.mbrtowc, _ioctl = Module._ioctl = e.ioctl, _isalpha = Module._isalpha = e.isalpha, _isgraph = Module._isgraph = e.isgraph, _isspace = Module._isspace = e.isspace, _iswblank_l = Module._iswblank_l = e.iswblank_l, _iswcntrl_l = Module._iswcntrl_l = e.iswcntrl_l, _iswxdigit_l = Module._iswxdigit_l = e.iswxdigit_l, _isxdigit_l = Module._isxdigit_l = e.isxdigit_l, _pthread_cond_broadcast = Module._pthread_cond_broadcast = e.pthread_cond_broadcast, _pthread_atfork = Module._pthread_atfork = e.pthread_atfork, _pthread_mutex_trylock = Module._pthread_mutex_trylock = e.pthread_mutex_trylock, _pthread_create = Module._pthread_create = e.pthread_create, _pthread_join = Module._pthread_join = e.pthread_join, _pthread_cond_timedwait = Module._pthread_cond_timedwait = e.pthread_cond_timedwait, _pthread_detach = Module._pthread_detach = e.pthread_detach, _link = Module._link = e.link, _llround = Module._llround = e.llround, _localtime = Module._localtime = e.localtime, _log2 = Module._log2 = e.log2, _logb = Module._logb = e.logb, _lround = Module._lround = e.lround, _mbrlen = Module._mbrlen = e.mbrlen, _mbsnrtowcs = Module._mbsnrtowcs = e.mbsnrtowcs, _mbsrtowcs = Module._mbsrtowcs = e.mbsrtowcs, _memmem = Module._memmem = e.memmem, _memrchr = Module._memrchr = e.memrchr, _emscripten_builtin_memalign = e.emscripten_builtin_memalign, _socket = Module._socket = e.socket, _nextafter = Module._nextafter = e.nextafter, _nextafterf = Module._nextafterf = e.nextafterf, _ntohs = e.ntohs, _openat = Module._openat = e.openat, _pathconf = Module._pathconf = e.pathconf, _perror = Module._perror = e.perror, _iprintf = Module._iprintf = e.iprintf, ___small_printf = Module.___small_printf = e.__small_printf, _pthread_mutexattr_getprotocol = Module._pthread_mutexattr_getprotocol = e.pthread_mutexattr_getprotocol, _pthread_mutexattr_getpshared = Module._pthread_mutexattr_getpshared = e.pthread_mutexattr_getpshared, _pthread_mutexattr_getrobust = Module._pthread_mutexattr_getrobust = e.pthread_mutexattr_getrobust, _pthread_mutexattr_gettype = Module._pthread_mutexattr_gettype = e.pthread_mutexattr_gettype, _pthread_mutexattr_destroy = Module._pthread_mutexattr_destroy = e.pthread_mutexattr_destroy, _pthread_mutexattr_init = Module._pthread_mutexattr_init = e.pthread_mutexattr_init, _pthread_mutexattr_setprotocol = Module._pthread_mutexattr_setprotocol = e.pthread_mutexattr_setprotocol, _pthread_mutexattr_setpshared = Module._pthread_mutexattr_setpshared = e.pthread_mutexattr_setpshared, _pthread_mutexattr_settype = Module._pthread_mutexattr_settype = e.pthread_mutexattr_settype, _putchar = Module._putchar = e.putchar, _qsort = Module._qsort = e.qsort, _srand = Module._srand = e.srand, _rand = Module._rand = e.rand, _remainder = Module._remainder = e.remainder, _remove = Module._remove = e.remove, _remquo = Module._remquo = e.remquo, _round = Module._round = e.round, _roundf = Module._roundf = e.roundf, __emscripten_timeout = e._emscripten_timeout, _sinl = Module._sinl = e.sinl, _siprintf = Module._siprintf = e.siprintf, _sqrtl = Module._sqrtl = e.sqrtl, _vsscanf = Module._vsscanf = e.vsscanf, _statvfs = Module._statvfs = e.statvfs, _strcasecmp = Module._strcasecmp = e.strcasecmp, _strerror = Module._strerror = e.strerror, _strftime = Module._strftime = e.strftime, _strncasecmp = Module._strncasecmp = e.strncasecmp, ___floatsitf = Module.___floatsitf = e.__floatsitf, ___multf3 = Module.___multf3 = e.__multf3, ___addtf3 = Module.___addtf3 = e.__addtf3, ___extenddftf2 = Module.___extenddftf2 = e.__extenddftf2, ___getf2 = Module.___getf2 = e.__getf2, ___subtf3 = Module.___subtf3 = e.__subtf3, ___divtf3 = Module.___divtf3 = e.__divtf3, ___eqtf2 = Module.___eqtf2 = e.__eqtf2, ___letf2 = Module.___letf2 = e.__letf2, ___trunctfdf2 = Module.___trunctfdf2 = e.__trunctfdf2, _strtold = Module._strtold = e.strtold, _strtof_l = Module._strtof_l = e.strtof_l, _strtod_l = Module._strtod_l = e.strtod_l, _strtold_l = Module._strtold_l = e.strtold_l, _strtok = Module._strtok = e.strtok, _strtoull_l = Module._strtoull_l = e.strtoull_l, _strtoll_l = Module._strtoll_l = e.strtoll_l, _swprintf = Module._swprintf = e.swprintf, _connect = Module._connect = e.connect, _trunc = Module._trunc = e.trunc, _ungetc = Module._ungetc = e.ungetc, _ungetwc = Module._ungetwc = e.ungetwc, _unlinkat = Module._unlinkat = e.unlinkat, _usleep = Module._usleep = e.usleep, _utimensat = Module._utimensat = e.utimensat, _vasprintf = Module._vasprintf = e.vasprintf, _wcrtomb = Module._wcrtomb = e.wcrtomb, _wcscoll_l = Module._wcscoll_l = e.wcscoll_l, _wcsnrtombs = Module._wcsnrtombs = e.wcsnrtombs, _wcstof = Module._wcstof = e.wcstof, _wcstod = Module._wcstod = e.wcstod, _wcstold = Module._wcstold = e.wcstold, _wcstoull = Module._wcstoull = e.wcstoull, _wcstoll = Module._wcstoll = e.wcstoll, _wcstoul = Module._wcstoul = e.wcstoul, _wcstol = Module._wcstol = e.wcstol, _wcsxfrm_l = Module._wcsxfrm_l = e.wcsxfrm_l, _wctob = Module._wctob = e.wctob, _wmemchr = Module._wmemchr = e.wmemchr, _wmemcmp = Module._wmemcmp = e.wmemcmp, _emscripten_get_sbrk_ptr = e.emscripten_get_sbrk_ptr, ___ashlti3 = Module.___ashlti3 = e.__ashlti3, ___lttf2 = Module.___lttf2 = e.__lttf2, _setThrew = e.setThrew, __emscripten_tempret_set = e._emscripten_tempret_set, __emscripten_tempret_get = e._emscripten_tempret_get, ___fixtfsi = Module.___fixtfsi = e.__fixtfsi, __emscripten_stack_restore = e._emscripten_stack_restore, __emscripten_stack_alloc = e._emscripten_stack_alloc, _emscripten_stack_get_current = e.emscripten_stack_get_current, ___cxa_decrement_exception_refcount = Module.___cxa_decrement_exception_refcount = e.__cxa_decrement_exception_refcount, ___cxa_increment_exception_refcount = Module.___cxa_increment_exception_refcount = e.__cxa_increment_exception_refcount, ___cxa_bad_cast = Module.___cxa_bad_cast = e.__cxa_bad_cast, ___cxa_bad_typeid = Module.___cxa_bad_typeid = e.__cxa_bad_typeid, ___cxa_allocate_exception = Module.___cxa_allocate_exception = e.__cxa_allocate_exception, ___cxa_free_exception = Module.___cxa_free_exception = e.__cxa_free_exception, ___cxa_init_primary_exception = Module.___cxa_init_primary_exception = e.__cxa_init_primary_exception, ___cxa_get_exception_ptr = Module.___cxa_get_exception_ptr = e.__cxa_get_exception_ptr, ___stack_pointer = Module.___stack_pointer = e.__stack_pointer, ___table_base = Module.___table_base = e.__table_base.value, _LocalBufferBlockPointers = Module._LocalBufferBlockPointers = e.LocalBufferBlockPointers.value, _BufferBlocks = Module._BufferBlocks = e.BufferBlocks.value, _wal_level = Module._wal_level = e.wal_level.value, _CurrentMemoryContext = Module._CurrentMemoryContext = e.CurrentMemoryContext.value, ___memory_base = Module.___memory_base = e.__memory_base.value, _SnapshotAnyData = Module._SnapshotAnyData = e.SnapshotAnyData.value, _debug_query_string = Module._debug_query_string = e.debug_query_string.value, _maintenance_work_mem = Module._maintenance_work_mem = e.maintenance_work_mem.value, __indirect_function_table = wasmTable = e.__indirect_function_table, _CritSectionCount = Module._CritSectionCount = e.CritSectionCount.value, _InterruptPending = Module._InterruptPending = e.InterruptPending.value, _ParallelWorkerNumber = Module._ParallelWorkerNumber = e.ParallelWorkerNumber.value, _pg_number_of_ones = Module._pg_number_of_ones = e.pg_number_of_ones.value, _TopMemoryContext = Module._TopMemoryContext = e.TopMemoryContext.value, _IsUnderPostmaster = Module._IsUnderPostmaster = e.IsUnderPostmaster.value, _MainLWLockArray = Module._MainLWLockArray = e.MainLWLockArray.value, _CurrentResourceOwner = Module._CurrentResourceOwner = e.CurrentResourceOwner.value, _MyBackendType = Module._MyBackendType = e.MyBackendType.value, _work_mem = Module._work_mem = e.work_mem.value, _pg_global_prng_state = Module._pg_global_prng_state = e.pg_global_prng_state.value, _NBuffers = Module._NBuffers = e.NBuffers.value, _XactIsoLevel = Module._XactIsoLevel = e.XactIsoLevel.value, _bsysscan = Module._bsysscan = e.bsysscan.value, _CheckXidAlive = Module._CheckXidAlive = e.CheckXidAlive.value, _MyProc = Module._MyProc = e.MyProc.value, _MyDatabaseId = Module._MyDatabaseId = e.MyDatabaseId.value, _MyDatabaseTableSpace = Module._MyDatabaseTableSpace = e.MyDatabaseTableSpace.value, _TTSOpsBufferHeapTuple = Module._TTSOpsBufferHeapTuple = e.TTSOpsBufferHeapTuple.value, _RecentXmin = Module._RecentXmin = e.RecentXmin.value, _TTSOpsHeapTuple = Module._TTSOpsHeapTuple = e.TTSOpsHeapTuple.value, _pgWalUsage = Module._pgWalUsage = e.pgWalUsage.value, _pgBufferUsage = Module._pgBufferUsage = e.pgBufferUsage.value, _error_context_stack = Module._error_context_stack = e.error_context_stack.value, _MyLatch = Module._MyLatch = e.MyLatch.value, _SnapshotSelfData = Module._SnapshotSelfData = e.SnapshotSelfData.value, ___THREW__ = Module.___THREW__ = e.__THREW__.value, ___threwValue = Module.___threwValue = e.__threwValue.value, _PG_exception_stack = Module._PG_exception_stack = e.PG_exception_stack.value, _TTSOpsVirtual = Module._TTSOpsVirtual = e.TTSOpsVirtual.value, _GUC_check_errdetail_string = Module._GUC_check_errdetail_string = e.GUC_check_errdetail_string.value, _TransamVariables = Module._TransamVariables = e.TransamVariables.value, _TopTransactionContext = Module._TopTransactionContext = e.TopTransactionContext.value, _InterruptHoldoffCount = Module._InterruptHoldoffCount = e.InterruptHoldoffCount.value, _MyProcPid = Module._MyProcPid = e.MyProcPid.value, _RmgrTable = Module._RmgrTable = e.RmgrTable.value, _process_shared_preload_libraries_in_progress = Module._process_shared_preload_libraries_in_progress = e.process_shared_preload_libraries_in_progress.value, _wal_segment_size = Module._wal_segment_size = e.wal_segment_size.value, _TopTransactionResourceOwner = Module._TopTransactionResourceOwner = e.TopTransactionResourceOwner.value, _arch_module_check_errdetail_string = Module._arch_module_check_errdetail_string = e.arch_module_check_errdetail_string.value, _stdout = Module._stdout = e.stdout.value, _stdin = Module._stdin = e.stdin.value, _creating_extension = Module._creating_extension = e.creating_extension.value, _object_access_hook = Module._object_access_hook = e.object_access_hook.value, _InvalidObjectAddress = Module._InvalidObjectAddress = e.InvalidObjectAddress.value, _check_function_bodies = Module._check_function_bodies = e.check_function_bodies.value, _post_parse_analyze_hook = Module._post_parse_analyze_hook = e.post_parse_analyze_hook.value, _ScanKeywordTokens = Module._ScanKeywordTokens = e.ScanKeywordTokens.value, _ScanKeywords = Module._ScanKeywords = e.ScanKeywords.value, _standard_conforming_strings = Module._standard_conforming_strings = e.standard_conforming_strings.value, _None_Receiver = Module._None_Receiver = e.None_Receiver.value, _explain_per_plan_hook = Module._explain_per_plan_hook = e.explain_per_plan_hook.value, _explain_get_index_name_hook = Module._explain_get_index_name_hook = e.explain_get_index_name_hook.value, _explain_per_node_hook = Module._explain_per_node_hook = e.explain_per_node_hook.value, _CacheMemoryContext = Module._CacheMemoryContext = e.CacheMemoryContext.value, _SPI_processed = Module._SPI_processed = e.SPI_processed.value, _SPI_tuptable = Module._SPI_tuptable = e.SPI_tuptable.value, _TTSOpsMinimalTuple = Module._TTSOpsMinimalTuple = e.TTSOpsMinimalTuple.value, _check_password_hook = Module._check_password_hook = e.check_password_hook.value, _ConfigReloadPending = Module._ConfigReloadPending = e.ConfigReloadPending.value, _max_parallel_maintenance_workers = Module._max_parallel_maintenance_workers = e.max_parallel_maintenance_workers.value, _DateStyle = Module._DateStyle = e.DateStyle.value, _ExecutorStart_hook = Module._ExecutorStart_hook = e.ExecutorStart_hook.value, _ExecutorRun_hook = Module._ExecutorRun_hook = e.ExecutorRun_hook.value, _ExecutorFinish_hook = Module._ExecutorFinish_hook = e.ExecutorFinish_hook.value, _ExecutorEnd_hook = Module._ExecutorEnd_hook = e.ExecutorEnd_hook.value, _ExecutorCheckPerms_hook = Module._ExecutorCheckPerms_hook = e.ExecutorCheckPerms_hook.value, _SPI_result = Module._SPI_result = e.SPI_result.value, _stderr = Module._stderr = e.stderr.value, _MyProcPort = Module._MyProcPort = e.MyProcPort.value, _ClientAuthentication_hook = Module._ClientAuthentication_hook = e.ClientAuthentication_hook.value, _set_rel_pathlist_hook = Module._set_rel_pathlist_hook = e.set_rel_pathlist_hook.value, _cpu_tuple_cost = Module._cpu_tuple_cost = e.cpu_tuple_cost.value, _cpu_operator_cost = Module._cpu_operator_cost = e.cpu_operator_cost.value, _seq_page_cost = Module._seq_page_cost = e.seq_page_cost.value, _planner_hook = Module._planner_hook = e.planner_hook.value, _get_relation_info_hook = Module._get_relation_info_hook = e.get_relation_info_hook.value, _QueryCancelPending = Module._QueryCancelPending = e.QueryCancelPending.value, _ShutdownRequestPending = Module._ShutdownRequestPending = e.ShutdownRequestPending.value, _MyStartTime = Module._MyStartTime = e.MyStartTime.value, _cluster_name = Module._cluster_name = e.cluster_name.value, _ProcDiePending = Module._ProcDiePending = e.ProcDiePending.value, _application_name = Module._application_name = e.application_name.value, _row_security_policy_hook_restrictive = Module._row_security_policy_hook_restrictive = e.row_security_policy_hook_restrictive.value, _row_security_policy_hook_permissive = Module._row_security_policy_hook_permissive = e.row_security_policy_hook_permissive.value, _BufferDescriptors = Module._BufferDescriptors = e.BufferDescriptors.value, _shmem_startup_hook = Module._shmem_startup_hook = e.shmem_startup_hook.value, _ProcessUtility_hook = Module._ProcessUtility_hook = e.ProcessUtility_hook.value, _IntervalStyle = Module._IntervalStyle = e.IntervalStyle.value, _extra_float_digits = Module._extra_float_digits = e.extra_float_digits.value, _ScanKeywordCategories = Module._ScanKeywordCategories = e.ScanKeywordCategories.value, _pg_crc32_table = Module._pg_crc32_table = e.pg_crc32_table.value, _shmem_request_hook = Module._shmem_request_hook = e.shmem_request_hook.value, _z_errmsg = Module._z_errmsg = e.z_errmsg.value, __length_code = Module.__length_code = e._length_code.value, __dist_code = Module.__dist_code = e._dist_code.value, ___heap_base = e.__heap_base.value;
  }
  var wasmImports = { __assert_fail: ___assert_fail, __call_sighandler: ___call_sighandler, __cxa_begin_catch: ___cxa_begin_catch, __cxa_current_primary_exception: ___cxa_current_primary_exception, __cxa_end_catch: ___cxa_end_catch, __cxa_find_matching_catch_2: ___cxa_find_matching_catch_2, __cxa_find_matching_catch_3: ___cxa_find_matching_catch_3, __cxa_rethrow: ___cxa_rethrow, __cxa_rethrow_primary_exception: ___cxa_rethrow_primary_exception, __cxa_throw: ___cxa_throw, __cxa_uncaught_exceptions: ___cxa_uncaught_exceptions, __resumeException: ___resumeException, __syscall_accept4: ___syscall_accept4, __syscall_bind: ___syscall_bind, __syscall_chdir: ___syscall_chdir, __syscall_chmod: ___syscall_chmod, __syscall_connect: ___syscall_connect, __syscall_dup: ___syscall_dup, __syscall_dup3: ___syscall_dup3, __syscall_faccessat: ___syscall_faccessat, __syscall_fadvise64: ___syscall_fadvise64, __syscall_fallocate: ___syscall_fallocate, __syscall_fchmod: ___syscall_fchmod, __syscall_fchmodat2: ___syscall_fchmodat2, __syscall_fchown32: ___syscall_fchown32, __syscall_fchownat: ___syscall_fchownat, __syscall_fcntl64: ___syscall_fcntl64, __syscall_fdatasync: ___syscall_fdatasync, __syscall_fstat64: ___syscall_fstat64, __syscall_ftruncate64: ___syscall_ftruncate64, __syscall_getcwd: ___syscall_getcwd, __syscall_getdents64: ___syscall_getdents64, __syscall_getegid32: ___syscall_getegid32, __syscall_geteuid32: ___syscall_geteuid32, __syscall_getgid32: ___syscall_getgid32, __syscall_getuid32: ___syscall_getuid32, __syscall_ioctl: ___syscall_ioctl, __syscall_linkat: ___syscall_linkat, __syscall_listen: ___syscall_listen, __syscall_lstat64: ___syscall_lstat64, __syscall_mkdirat: ___syscall_mkdirat, __syscall_newfstatat: ___syscall_newfstatat, __syscall_openat: ___syscall_openat, __syscall_pipe2: ___syscall_pipe2, __syscall_poll: ___syscall_poll, __syscall_readlinkat: ___syscall_readlinkat, __syscall_recvfrom: ___syscall_recvfrom, __syscall_renameat: ___syscall_renameat, __syscall_rmdir: ___syscall_rmdir, __syscall_sendto: ___syscall_sendto, __syscall_socket: ___syscall_socket, __syscall_stat64: ___syscall_stat64, __syscall_statfs64: ___syscall_statfs64, __syscall_symlinkat: ___syscall_symlinkat, __syscall_truncate64: ___syscall_truncate64, __syscall_umask: ___syscall_umask, __syscall_unlinkat: ___syscall_unlinkat, __syscall_utimensat: ___syscall_utimensat, _abort_js: __abort_js, _dlopen_js: __dlopen_js, _dlsym_js: __dlsym_js, _emscripten_runtime_keepalive_clear: __emscripten_runtime_keepalive_clear, _emscripten_throw_longjmp: __emscripten_throw_longjmp, _gmtime_js: __gmtime_js, _localtime_js: __localtime_js, _mmap_js: __mmap_js, _munmap_js: __munmap_js, _setitimer_js: __setitimer_js, _tzset_js: __tzset_js, clock_time_get: _clock_time_get, emscripten_date_now: _emscripten_date_now, emscripten_force_exit: _emscripten_force_exit, emscripten_get_heap_max: _emscripten_get_heap_max, emscripten_get_now: _emscripten_get_now, emscripten_resize_heap: _emscripten_resize_heap, environ_get: _environ_get, environ_sizes_get: _environ_sizes_get, exit: _exit, fd_close: _fd_close, fd_fdstat_get: _fd_fdstat_get, fd_pread: _fd_pread, fd_pwrite: _fd_pwrite, fd_read: _fd_read, fd_seek: _fd_seek, fd_sync: _fd_sync, fd_write: _fd_write, getTempRet0: _getTempRet0, getaddrinfo: _getaddrinfo, getnameinfo: _getnameinfo, invoke_di, invoke_i, invoke_id, invoke_ii, invoke_iii, invoke_iiii, invoke_iiiii, invoke_iiiiii, invoke_iiiiiii, invoke_iiiiiiii, invoke_iiiiiiiii, invoke_iiiiiiiiii, invoke_iiiiiiiiiii, invoke_iiiiiiiiiiiiii, invoke_iiiiiiiiiiiiiiiiii, invoke_iiiiiji, invoke_iiiij, invoke_iiij, invoke_iiji, invoke_iijj, invoke_ij, invoke_ijiiiii, invoke_ijiiiiii, invoke_ijji, invoke_j, invoke_ji, invoke_jii, invoke_jiiii, invoke_jiiiiii, invoke_jiiiiiiiii, invoke_jij, invoke_v, invoke_vi, invoke_vid, invoke_vii, invoke_viii, invoke_viiii, invoke_viiiii, invoke_viiiiii, invoke_viiiiiii, invoke_viiiiiiii, invoke_viiiiiiiii, invoke_viiiiiiiiiiii, invoke_viiiji, invoke_viij, invoke_viiji, invoke_viijii, invoke_viijiiii, invoke_vij, invoke_viji, invoke_vijiji, invoke_vijjii, invoke_vj, invoke_vji, invoke_vjii, invoke_vjjii, memory: wasmMemory, proc_exit: _proc_exit, random_get: _random_get, sched_yield: _sched_yield, setTempRet0: _setTempRet0 };
  function invoke_ii(e, t2) {
    var r3 = stackSave();
    try {
      return getWasmTableEntry(e)(t2);
    } catch (_3) {
      if (stackRestore(r3), !(_3 instanceof EmscriptenEH)) throw _3;
      _setThrew(1, 0);
    }
  }
  function invoke_vii(e, t2, r3) {
    var _3 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3);
    } catch (n3) {
      if (stackRestore(_3), !(n3 instanceof EmscriptenEH)) throw n3;
      _setThrew(1, 0);
    }
  }
  function invoke_viiiii(e, t2, r3, _3, n3, a3) {
    var i2 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3, _3, n3, a3);
    } catch (l2) {
      if (stackRestore(i2), !(l2 instanceof EmscriptenEH)) throw l2;
      _setThrew(1, 0);
    }
  }
  function invoke_vi(e, t2) {
    var r3 = stackSave();
    try {
      getWasmTableEntry(e)(t2);
    } catch (_3) {
      if (stackRestore(r3), !(_3 instanceof EmscriptenEH)) throw _3;
      _setThrew(1, 0);
    }
  }
  function invoke_v(e) {
    var t2 = stackSave();
    try {
      getWasmTableEntry(e)();
    } catch (r3) {
      if (stackRestore(t2), !(r3 instanceof EmscriptenEH)) throw r3;
      _setThrew(1, 0);
    }
  }
  function invoke_iii(e, t2, r3) {
    var _3 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3);
    } catch (n3) {
      if (stackRestore(_3), !(n3 instanceof EmscriptenEH)) throw n3;
      _setThrew(1, 0);
    }
  }
  function invoke_viii(e, t2, r3, _3) {
    var n3 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3, _3);
    } catch (a3) {
      if (stackRestore(n3), !(a3 instanceof EmscriptenEH)) throw a3;
      _setThrew(1, 0);
    }
  }
  function invoke_iiii(e, t2, r3, _3) {
    var n3 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3);
    } catch (a3) {
      if (stackRestore(n3), !(a3 instanceof EmscriptenEH)) throw a3;
      _setThrew(1, 0);
    }
  }
  function invoke_jii(e, t2, r3) {
    var _3 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3);
    } catch (n3) {
      if (stackRestore(_3), !(n3 instanceof EmscriptenEH)) throw n3;
      return _setThrew(1, 0), 0n;
    }
  }
  function invoke_iiiii(e, t2, r3, _3, n3) {
    var a3 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3, n3);
    } catch (i2) {
      if (stackRestore(a3), !(i2 instanceof EmscriptenEH)) throw i2;
      _setThrew(1, 0);
    }
  }
  function invoke_i(e) {
    var t2 = stackSave();
    try {
      return getWasmTableEntry(e)();
    } catch (r3) {
      if (stackRestore(t2), !(r3 instanceof EmscriptenEH)) throw r3;
      _setThrew(1, 0);
    }
  }
  function invoke_ji(e, t2) {
    var r3 = stackSave();
    try {
      return getWasmTableEntry(e)(t2);
    } catch (_3) {
      if (stackRestore(r3), !(_3 instanceof EmscriptenEH)) throw _3;
      return _setThrew(1, 0), 0n;
    }
  }
  function invoke_jiiiiiiiii(e, t2, r3, _3, n3, a3, i2, l2, o5, s4) {
    var c4 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3, n3, a3, i2, l2, o5, s4);
    } catch (p5) {
      if (stackRestore(c4), !(p5 instanceof EmscriptenEH)) throw p5;
      return _setThrew(1, 0), 0n;
    }
  }
  function invoke_jiiiiii(e, t2, r3, _3, n3, a3, i2) {
    var l2 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3, n3, a3, i2);
    } catch (o5) {
      if (stackRestore(l2), !(o5 instanceof EmscriptenEH)) throw o5;
      return _setThrew(1, 0), 0n;
    }
  }
  function invoke_viiii(e, t2, r3, _3, n3) {
    var a3 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3, _3, n3);
    } catch (i2) {
      if (stackRestore(a3), !(i2 instanceof EmscriptenEH)) throw i2;
      _setThrew(1, 0);
    }
  }
  function invoke_iiiiiiiiiiiiii(e, t2, r3, _3, n3, a3, i2, l2, o5, s4, c4, p5, d5, u3) {
    var f5 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3, n3, a3, i2, l2, o5, s4, c4, p5, d5, u3);
    } catch (m7) {
      if (stackRestore(f5), !(m7 instanceof EmscriptenEH)) throw m7;
      _setThrew(1, 0);
    }
  }
  function invoke_vji(e, t2, r3) {
    var _3 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3);
    } catch (n3) {
      if (stackRestore(_3), !(n3 instanceof EmscriptenEH)) throw n3;
      _setThrew(1, 0);
    }
  }
  function invoke_viiji(e, t2, r3, _3, n3) {
    var a3 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3, _3, n3);
    } catch (i2) {
      if (stackRestore(a3), !(i2 instanceof EmscriptenEH)) throw i2;
      _setThrew(1, 0);
    }
  }
  function invoke_iiiij(e, t2, r3, _3, n3) {
    var a3 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3, n3);
    } catch (i2) {
      if (stackRestore(a3), !(i2 instanceof EmscriptenEH)) throw i2;
      _setThrew(1, 0);
    }
  }
  function invoke_vijiji(e, t2, r3, _3, n3, a3) {
    var i2 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3, _3, n3, a3);
    } catch (l2) {
      if (stackRestore(i2), !(l2 instanceof EmscriptenEH)) throw l2;
      _setThrew(1, 0);
    }
  }
  function invoke_viji(e, t2, r3, _3) {
    var n3 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3, _3);
    } catch (a3) {
      if (stackRestore(n3), !(a3 instanceof EmscriptenEH)) throw a3;
      _setThrew(1, 0);
    }
  }
  function invoke_iiiiii(e, t2, r3, _3, n3, a3) {
    var i2 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3, n3, a3);
    } catch (l2) {
      if (stackRestore(i2), !(l2 instanceof EmscriptenEH)) throw l2;
      _setThrew(1, 0);
    }
  }
  function invoke_iiiiiiiii(e, t2, r3, _3, n3, a3, i2, l2, o5) {
    var s4 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3, n3, a3, i2, l2, o5);
    } catch (c4) {
      if (stackRestore(s4), !(c4 instanceof EmscriptenEH)) throw c4;
      _setThrew(1, 0);
    }
  }
  function invoke_iiiiiiiiiiiiiiiiii(e, t2, r3, _3, n3, a3, i2, l2, o5, s4, c4, p5, d5, u3, f5, m7, y6, b4) {
    var k4 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3, n3, a3, i2, l2, o5, s4, c4, p5, d5, u3, f5, m7, y6, b4);
    } catch (P6) {
      if (stackRestore(k4), !(P6 instanceof EmscriptenEH)) throw P6;
      _setThrew(1, 0);
    }
  }
  function invoke_iiiiiii(e, t2, r3, _3, n3, a3, i2) {
    var l2 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3, n3, a3, i2);
    } catch (o5) {
      if (stackRestore(l2), !(o5 instanceof EmscriptenEH)) throw o5;
      _setThrew(1, 0);
    }
  }
  function invoke_vj(e, t2) {
    var r3 = stackSave();
    try {
      getWasmTableEntry(e)(t2);
    } catch (_3) {
      if (stackRestore(r3), !(_3 instanceof EmscriptenEH)) throw _3;
      _setThrew(1, 0);
    }
  }
  function invoke_iiiiiiiiii(e, t2, r3, _3, n3, a3, i2, l2, o5, s4) {
    var c4 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3, n3, a3, i2, l2, o5, s4);
    } catch (p5) {
      if (stackRestore(c4), !(p5 instanceof EmscriptenEH)) throw p5;
      _setThrew(1, 0);
    }
  }
  function invoke_viij(e, t2, r3, _3) {
    var n3 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3, _3);
    } catch (a3) {
      if (stackRestore(n3), !(a3 instanceof EmscriptenEH)) throw a3;
      _setThrew(1, 0);
    }
  }
  function invoke_viiiiiiii(e, t2, r3, _3, n3, a3, i2, l2, o5) {
    var s4 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3, _3, n3, a3, i2, l2, o5);
    } catch (c4) {
      if (stackRestore(s4), !(c4 instanceof EmscriptenEH)) throw c4;
      _setThrew(1, 0);
    }
  }
  function invoke_viiiiiiiii(e, t2, r3, _3, n3, a3, i2, l2, o5, s4) {
    var c4 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3, _3, n3, a3, i2, l2, o5, s4);
    } catch (p5) {
      if (stackRestore(c4), !(p5 instanceof EmscriptenEH)) throw p5;
      _setThrew(1, 0);
    }
  }
  function invoke_vij(e, t2, r3) {
    var _3 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3);
    } catch (n3) {
      if (stackRestore(_3), !(n3 instanceof EmscriptenEH)) throw n3;
      _setThrew(1, 0);
    }
  }
  function invoke_viiiiii(e, t2, r3, _3, n3, a3, i2) {
    var l2 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3, _3, n3, a3, i2);
    } catch (o5) {
      if (stackRestore(l2), !(o5 instanceof EmscriptenEH)) throw o5;
      _setThrew(1, 0);
    }
  }
  function invoke_iiji(e, t2, r3, _3) {
    var n3 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3);
    } catch (a3) {
      if (stackRestore(n3), !(a3 instanceof EmscriptenEH)) throw a3;
      _setThrew(1, 0);
    }
  }
  function invoke_ij(e, t2) {
    var r3 = stackSave();
    try {
      return getWasmTableEntry(e)(t2);
    } catch (_3) {
      if (stackRestore(r3), !(_3 instanceof EmscriptenEH)) throw _3;
      _setThrew(1, 0);
    }
  }
  function invoke_viiiiiii(e, t2, r3, _3, n3, a3, i2, l2) {
    var o5 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3, _3, n3, a3, i2, l2);
    } catch (s4) {
      if (stackRestore(o5), !(s4 instanceof EmscriptenEH)) throw s4;
      _setThrew(1, 0);
    }
  }
  function invoke_viiiji(e, t2, r3, _3, n3, a3) {
    var i2 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3, _3, n3, a3);
    } catch (l2) {
      if (stackRestore(i2), !(l2 instanceof EmscriptenEH)) throw l2;
      _setThrew(1, 0);
    }
  }
  function invoke_iiiiiiii(e, t2, r3, _3, n3, a3, i2, l2) {
    var o5 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3, n3, a3, i2, l2);
    } catch (s4) {
      if (stackRestore(o5), !(s4 instanceof EmscriptenEH)) throw s4;
      _setThrew(1, 0);
    }
  }
  function invoke_iiij(e, t2, r3, _3) {
    var n3 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3);
    } catch (a3) {
      if (stackRestore(n3), !(a3 instanceof EmscriptenEH)) throw a3;
      _setThrew(1, 0);
    }
  }
  function invoke_vid(e, t2, r3) {
    var _3 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3);
    } catch (n3) {
      if (stackRestore(_3), !(n3 instanceof EmscriptenEH)) throw n3;
      _setThrew(1, 0);
    }
  }
  function invoke_j(e) {
    var t2 = stackSave();
    try {
      return getWasmTableEntry(e)();
    } catch (r3) {
      if (stackRestore(t2), !(r3 instanceof EmscriptenEH)) throw r3;
      return _setThrew(1, 0), 0n;
    }
  }
  function invoke_vjjii(e, t2, r3, _3, n3) {
    var a3 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3, _3, n3);
    } catch (i2) {
      if (stackRestore(a3), !(i2 instanceof EmscriptenEH)) throw i2;
      _setThrew(1, 0);
    }
  }
  function invoke_ijji(e, t2, r3, _3) {
    var n3 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3);
    } catch (a3) {
      if (stackRestore(n3), !(a3 instanceof EmscriptenEH)) throw a3;
      _setThrew(1, 0);
    }
  }
  function invoke_iijj(e, t2, r3, _3) {
    var n3 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3);
    } catch (a3) {
      if (stackRestore(n3), !(a3 instanceof EmscriptenEH)) throw a3;
      _setThrew(1, 0);
    }
  }
  function invoke_jij(e, t2, r3) {
    var _3 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3);
    } catch (n3) {
      if (stackRestore(_3), !(n3 instanceof EmscriptenEH)) throw n3;
      return _setThrew(1, 0), 0n;
    }
  }
  function invoke_ijiiiiii(e, t2, r3, _3, n3, a3, i2, l2) {
    var o5 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3, n3, a3, i2, l2);
    } catch (s4) {
      if (stackRestore(o5), !(s4 instanceof EmscriptenEH)) throw s4;
      _setThrew(1, 0);
    }
  }
  function invoke_viijii(e, t2, r3, _3, n3, a3) {
    var i2 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3, _3, n3, a3);
    } catch (l2) {
      if (stackRestore(i2), !(l2 instanceof EmscriptenEH)) throw l2;
      _setThrew(1, 0);
    }
  }
  function invoke_iiiiiji(e, t2, r3, _3, n3, a3, i2) {
    var l2 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3, n3, a3, i2);
    } catch (o5) {
      if (stackRestore(l2), !(o5 instanceof EmscriptenEH)) throw o5;
      _setThrew(1, 0);
    }
  }
  function invoke_viijiiii(e, t2, r3, _3, n3, a3, i2, l2) {
    var o5 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3, _3, n3, a3, i2, l2);
    } catch (s4) {
      if (stackRestore(o5), !(s4 instanceof EmscriptenEH)) throw s4;
      _setThrew(1, 0);
    }
  }
  function invoke_vijjii(e, t2, r3, _3, n3, a3) {
    var i2 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3, _3, n3, a3);
    } catch (l2) {
      if (stackRestore(i2), !(l2 instanceof EmscriptenEH)) throw l2;
      _setThrew(1, 0);
    }
  }
  function invoke_vjii(e, t2, r3, _3) {
    var n3 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3, _3);
    } catch (a3) {
      if (stackRestore(n3), !(a3 instanceof EmscriptenEH)) throw a3;
      _setThrew(1, 0);
    }
  }
  function invoke_jiiii(e, t2, r3, _3, n3) {
    var a3 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3, n3);
    } catch (i2) {
      if (stackRestore(a3), !(i2 instanceof EmscriptenEH)) throw i2;
      return _setThrew(1, 0), 0n;
    }
  }
  function invoke_viiiiiiiiiiii(e, t2, r3, _3, n3, a3, i2, l2, o5, s4, c4, p5, d5) {
    var u3 = stackSave();
    try {
      getWasmTableEntry(e)(t2, r3, _3, n3, a3, i2, l2, o5, s4, c4, p5, d5);
    } catch (f5) {
      if (stackRestore(u3), !(f5 instanceof EmscriptenEH)) throw f5;
      _setThrew(1, 0);
    }
  }
  function invoke_di(e, t2) {
    var r3 = stackSave();
    try {
      return getWasmTableEntry(e)(t2);
    } catch (_3) {
      if (stackRestore(r3), !(_3 instanceof EmscriptenEH)) throw _3;
      _setThrew(1, 0);
    }
  }
  function invoke_id(e, t2) {
    var r3 = stackSave();
    try {
      return getWasmTableEntry(e)(t2);
    } catch (_3) {
      if (stackRestore(r3), !(_3 instanceof EmscriptenEH)) throw _3;
      _setThrew(1, 0);
    }
  }
  function invoke_ijiiiii(e, t2, r3, _3, n3, a3, i2) {
    var l2 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3, n3, a3, i2);
    } catch (o5) {
      if (stackRestore(l2), !(o5 instanceof EmscriptenEH)) throw o5;
      _setThrew(1, 0);
    }
  }
  function invoke_iiiiiiiiiii(e, t2, r3, _3, n3, a3, i2, l2, o5, s4, c4) {
    var p5 = stackSave();
    try {
      return getWasmTableEntry(e)(t2, r3, _3, n3, a3, i2, l2, o5, s4, c4);
    } catch (d5) {
      if (stackRestore(p5), !(d5 instanceof EmscriptenEH)) throw d5;
      _setThrew(1, 0);
    }
  }
  function callMain(e = []) {
    var t2 = resolveGlobalSymbol("main").sym;
    if (t2) {
      e.unshift(thisProgram);
      var r3 = e.length, _3 = stackAlloc((r3 + 1) * 4), n3 = _3;
      for (var a3 of e) HEAPU32[n3 >> 2] = stringToUTF8OnStack(a3), n3 += 4;
      HEAPU32[n3 >> 2] = 0;
      try {
        var i2 = t2(r3, _3);
        return exitJS(i2, true), i2;
      } catch (l2) {
        return handleException(l2);
      }
    }
  }
  async function run(e = programArgs) {
    preRun(), runDependencies && await resolveRunDependencies();
    var t2 = Module.setStatus;
    if (t2 && (t2("Running..."), await new Promise((_3) => setTimeout(_3, 1)), setTimeout(t2, 1, "")), !ABORT) {
      initRuntime(), Module.onRuntimeInitialized?.();
      var r3 = Module.noInitialRun || true;
      r3 || callMain(e), postRun();
    }
  }
  var wasmExports;
  return wasmExports = await createWasm(), await run(), quit_ = (e, t2) => {
    throw t2;
  }, Module;
}
var Ue3 = it2;
var He3 = Ue3;
var Y3 = class {
  constructor(t2 = { results: [], throwOnError: false, onNotice: void 0, databaseError: null }) {
    this.results = [];
    this.throwOnError = false;
    this.databaseError = null;
    this.results = t2.results || [], this.throwOnError = t2.throwOnError || false, this.onNotice = t2.onNotice, this.databaseError = t2.databaseError === void 0 ? null : t2.databaseError;
  }
};
var G2;
var $4;
var Q3;
var J3;
var te2;
var re2;
var de;
var Me3;
var be3;
var _e2;
var ne;
var ce2;
var ae3;
var Z2;
var E4;
var z5;
var x7;
var ie3;
var A4;
var le2;
var j4;
var U6;
var D7;
var O3;
var ue2;
var pe2;
var ge2;
var oe3;
var S4;
var Te3;
var Pe3;
var Ee2;
var We2;
var Ve2;
var Xe2;
var Ke2;
var Ce3;
var Ye2;
var N4;
var $e2;
var Qe2;
var Je2;
var Ze2;
var xe3;
var q3 = class q4 extends z2 {
  constructor(r3 = {}, _3 = {}) {
    super();
    R(this, S4);
    this.POSTGRES_MAIN_LONGJMP = 100;
    this.PGLITE_EXIT_ALIVE = 99;
    R(this, G2);
    R(this, $4, false);
    R(this, Q3, false);
    R(this, J3, false);
    R(this, te2, false);
    R(this, re2, new V2());
    R(this, de, new V2());
    R(this, Me3, new V2());
    R(this, be3, new V2());
    R(this, _e2, false);
    this.debug = 0;
    R(this, ne);
    R(this, ce2, []);
    R(this, ae3, new pe());
    R(this, Z2);
    R(this, E4);
    R(this, z5, /* @__PURE__ */ new Map());
    R(this, x7, /* @__PURE__ */ new Set());
    R(this, ie3, -1);
    R(this, A4, new Y3());
    R(this, le2, -1);
    R(this, j4, []);
    R(this, U6, 0);
    R(this, D7, new Uint8Array(0));
    R(this, O3, 0);
    R(this, ue2, -1);
    R(this, pe2, -1);
    R(this, ge2, -1);
    this.externalCommandStreamFd = null;
    R(this, oe3, false);
    typeof r3 == "string" ? _3 = { dataDir: r3, ..._3 } : _3 = r3, this.dataDir = _3.dataDir, _3.parsers !== void 0 && (this.parsers = { ...this.parsers, ..._3.parsers }), _3.serializers !== void 0 && (this.serializers = { ...this.serializers, ..._3.serializers }), _3?.debug !== void 0 && (this.debug = _3.debug), _3?.relaxedDurability !== void 0 && x(this, te2, _3.relaxedDurability), x(this, ne, _3.extensions ?? {}), this.waitReady = T(this, S4, Ee2).call(this, _3 ?? {});
  }
  get ENV() {
    return this.mod?.ENV;
  }
  static async create(r3, _3) {
    let n3 = typeof r3 == "string" ? { dataDir: r3, ..._3 ?? {} } : r3 ?? _3 ?? {}, a3 = new q4(n3);
    return await a3.waitReady, a3;
  }
  handleExternalCmd(r3, _3) {
    if (r3.startsWith("locale -a") && _3 === "r") {
      let n3 = this.mod.stringToUTF8OnStack("/pglite/locale-a"), a3 = this.mod.stringToUTF8OnStack(_3);
      return this.mod._fopen(n3, a3);
    }
    throw new Error("Unhandled cmd");
  }
  get Module() {
    return this.mod;
  }
  get ready() {
    return h(this, $4) && !h(this, Q3) && !h(this, J3);
  }
  get closed() {
    return h(this, J3);
  }
  async close() {
    await this._checkReady(), await h(this, de).runExclusive(async () => {
      await h(this, re2).runExclusive(async () => {
        await this._checkReady(), x(this, Q3, true);
      });
    });
    for (let r3 of h(this, ce2)) await r3();
    try {
      this.mod._pgl_setPGliteActive(0), await this.execProtocol($e.end()), this.mod._pgl_run_atexit_funcs();
    } catch (r3) {
      let _3 = r3;
      _3.name === "ExitStatus" && _3.status === 0 || T(this, S4, N4).call(this, "An error occured while closing the db", r3.toString());
    } finally {
      this.mod.removeFunction(h(this, le2)), this.mod.removeFunction(h(this, ie3));
    }
    await this.fs.closeFs(), x(this, J3, true), x(this, Q3, false), x(this, $4, false), x(this, oe3, false);
    try {
      this.mod._emscripten_force_exit(0);
    } catch (r3) {
      T(this, S4, N4).call(this, r3), r3.status !== 0 && T(this, S4, N4).call(this, "Error when exiting", r3.toString());
    } finally {
      this.mod = void 0;
    }
  }
  async [Symbol.asyncDispose]() {
    await this.close();
  }
  async _handleBlob(r3) {
    x(this, Z2, r3 ? await r3.arrayBuffer() : void 0);
  }
  async _cleanupBlob() {
    x(this, Z2, void 0);
  }
  async _getWrittenBlob() {
    if (!h(this, E4)) return;
    let r3 = new Blob(h(this, E4));
    return x(this, E4, void 0), r3;
  }
  async _checkReady() {
    if (h(this, Q3)) throw new Error("PGlite is closing");
    if (h(this, J3)) throw new Error("PGlite is closed");
    h(this, $4) || await this.waitReady;
  }
  execProtocolRawSync(r3) {
    let _3 = this.mod;
    if (x(this, U6, 0), x(this, O3, 0), x(this, j4, r3), h(this, G2) || x(this, G2, T(this, S4, Ke2)), h(this, D7).length !== q4.DEFAULT_RECV_BUF_SIZE && x(this, D7, new Uint8Array(q4.DEFAULT_RECV_BUF_SIZE)), r3[0] === 88) return new Uint8Array(0);
    if (r3[0] === 0) return T(this, S4, xe3).call(this, r3);
    try {
      for (; h(this, U6) < r3.length || _3._pq_buffer_remaining_data() > 0; ) {
        let n3;
        try {
          n3 = _3.stackSave(), _3._PostgresMainLoopOnce();
        } catch (a3) {
          _3.stackRestore(n3), a3.status === this.POSTGRES_MAIN_LONGJMP && _3._PostgresMainLongJmp();
        }
      }
    } finally {
      _3._PostgresSendReadyForQueryIfNecessary(), _3._pgl_pq_flush();
    }
    return x(this, j4, []), h(this, O3) ? new Uint8Array(h(this, D7).subarray(0, h(this, O3))) : new Uint8Array(0);
  }
  async execProtocolRaw(r3, { syncToFs: _3 = true } = {}) {
    let n3 = this.execProtocolRawSync(r3);
    return _3 && await this.syncToFs(), n3;
  }
  async execProtocolRawStream(r3, { syncToFs: _3 = true, onRawData: n3 }) {
    x(this, G2, (a3) => (n3(a3), a3.length));
    try {
      this.execProtocolRawSync(r3);
    } finally {
      x(this, G2, void 0);
    }
    _3 && await this.syncToFs();
  }
  async execProtocol(r3, { syncToFs: _3 = true, throwOnError: n3 = true, onNotice: a3 } = {}) {
    x(this, A4, new Y3({ throwOnError: n3, onNotice: a3 }));
    let i2 = await this.execProtocolRaw(r3, { syncToFs: _3 }), l2 = h(this, A4).databaseError, o5 = { messages: h(this, A4).results, data: i2 };
    if (x(this, A4, new Y3()), x(this, G2, void 0), n3 && l2) throw x(this, ae3, new pe()), l2;
    return o5;
  }
  async execProtocolStream(r3, { syncToFs: _3, throwOnError: n3 = true, onNotice: a3 } = {}) {
    x(this, A4, new Y3({ throwOnError: n3, onNotice: a3 })), x(this, G2, T(this, S4, Ce3)), await this.execProtocolRaw(r3, { syncToFs: _3 });
    let i2 = h(this, A4).databaseError, l2 = h(this, A4).results;
    if (x(this, A4, new Y3()), x(this, G2, void 0), n3 && i2) throw x(this, ae3, new pe()), i2;
    return l2;
  }
  isInTransaction() {
    return this.mod._IsTransactionBlock() !== 0;
  }
  async syncToFs() {
    if (h(this, _e2)) return;
    x(this, _e2, true);
    let r3 = async () => {
      await h(this, be3).runExclusive(async () => {
        x(this, _e2, false), await this.fs.syncToFs(h(this, te2));
      });
    };
    h(this, te2) ? r3() : await r3();
  }
  async listen(r3, _3, n3) {
    return this._runExclusiveListen(() => T(this, S4, $e2).call(this, r3, _3, n3));
  }
  async unlisten(r3, _3, n3) {
    return this._runExclusiveListen(() => T(this, S4, Qe2).call(this, r3, _3, n3));
  }
  onNotification(r3) {
    return h(this, x7).add(r3), () => {
      h(this, x7).delete(r3);
    };
  }
  offNotification(r3) {
    h(this, x7).delete(r3);
  }
  async dumpDataDir(r3) {
    return await h(this, re2).runExclusive(async () => {
      await this._checkReady();
      let n3 = this.dataDir?.split("/").pop() ?? "pgdata";
      return this.fs.dumpTar(n3, r3);
    });
  }
  _runExclusiveQuery(r3) {
    return h(this, re2).runExclusive(r3);
  }
  _runExclusiveTransaction(r3) {
    return h(this, de).runExclusive(r3);
  }
  async clone() {
    let r3 = await this.dumpDataDir("none");
    return q4.create({ loadDataDir: r3, extensions: h(this, ne) });
  }
  _runExclusiveListen(r3) {
    return h(this, Me3).runExclusive(r3);
  }
  callMain(r3) {
    return this.mod.callMain(r3);
  }
  copyToFS(r3, _3, n3) {
    se2(this.mod.FS, r3, _3, n3);
  }
};
G2 = /* @__PURE__ */ new WeakMap(), $4 = /* @__PURE__ */ new WeakMap(), Q3 = /* @__PURE__ */ new WeakMap(), J3 = /* @__PURE__ */ new WeakMap(), te2 = /* @__PURE__ */ new WeakMap(), re2 = /* @__PURE__ */ new WeakMap(), de = /* @__PURE__ */ new WeakMap(), Me3 = /* @__PURE__ */ new WeakMap(), be3 = /* @__PURE__ */ new WeakMap(), _e2 = /* @__PURE__ */ new WeakMap(), ne = /* @__PURE__ */ new WeakMap(), ce2 = /* @__PURE__ */ new WeakMap(), ae3 = /* @__PURE__ */ new WeakMap(), Z2 = /* @__PURE__ */ new WeakMap(), E4 = /* @__PURE__ */ new WeakMap(), z5 = /* @__PURE__ */ new WeakMap(), x7 = /* @__PURE__ */ new WeakMap(), ie3 = /* @__PURE__ */ new WeakMap(), A4 = /* @__PURE__ */ new WeakMap(), le2 = /* @__PURE__ */ new WeakMap(), j4 = /* @__PURE__ */ new WeakMap(), U6 = /* @__PURE__ */ new WeakMap(), D7 = /* @__PURE__ */ new WeakMap(), O3 = /* @__PURE__ */ new WeakMap(), ue2 = /* @__PURE__ */ new WeakMap(), pe2 = /* @__PURE__ */ new WeakMap(), ge2 = /* @__PURE__ */ new WeakMap(), oe3 = /* @__PURE__ */ new WeakMap(), S4 = /* @__PURE__ */ new WeakSet(), Te3 = function(r3) {
  this.debug && console.debug(r3);
}, Pe3 = function(r3) {
  this.debug && console.error(r3);
}, Ee2 = async function(r3) {
  if (r3.fs) this.fs = r3.fs;
  else {
    let { dataDir: d5, fsType: u3 } = Be2(r3.dataDir);
    this.fs = await Ge2(d5, u3);
  }
  let _3 = {}, n3 = [], a3 = [...this.debug ? ["-d", this.debug.toString()] : []];
  r3.pgliteWasmModule || p3.startArtifactDownload(new URL("./pglite.wasm", import.meta.url)), r3.initdbWasmModule || p3.startArtifactDownload(new URL("./initdb.wasm", import.meta.url));
  let i2 = r3.fsBundle ? r3.fsBundle.arrayBuffer() : p3.getFsBundle(new URL("./pglite.data", import.meta.url)), l2;
  i2.then((d5) => {
    l2 = d5;
  });
  let o5 = new WebAssembly.Memory({ initial: r3.initialMemory ? r3.initialMemory / (64 * 1024) : 2048, maximum: 32768 }), s4 = { thisProgram: pt2, PGLITE_ENV: {}, WASM_PREFIX: p3.WASM_PREFIX, arguments: a3, noExitRuntime: true, wasmMemory: o5, stdin: () => null, print: (d5) => {
    if (r3.onStdout && r3.onStdout(d5)) return T(this, S4, Te3).call(this, d5);
    T(this, S4, Te3).call(this, d5);
  }, printErr: (d5) => {
    if (r3.onStderr && r3.onStderr(d5)) return T(this, S4, Pe3).call(this, d5);
    T(this, S4, Pe3).call(this, d5);
  }, instantiateWasm: (d5, u3) => (p3.instantiateWasm(d5, r3.pgliteWasmModule ?? (() => new URL("./pglite.wasm", import.meta.url))).then(({ instance: f5, module: m7 }) => {
    u3(f5, m7);
  }), {}), getPreloadedPackage: (d5, u3) => {
    if (d5 === "pglite.data") {
      if (l2.byteLength !== u3) throw new Error(`Invalid FS bundle size: ${l2.byteLength} !== ${u3}`);
      return l2;
    }
    throw new Error(`Unknown package: ${d5}`);
  }, preRun: [(d5) => {
    d5.onRuntimeInitialized = () => {
      T(this, S4, Xe2).call(this, d5);
    };
  }, (d5) => {
    let u3 = d5.FS.makedev(64, 0), f5 = { open: (m7) => {
    }, close: (m7) => {
    }, read: (m7, y6, b4, k4, P6) => {
      let M2 = h(this, Z2);
      if (!M2) throw new Error("No /dev/blob File or Blob provided to read from");
      let C5 = new Uint8Array(M2);
      if (P6 >= C5.length) return 0;
      let v5 = Math.min(C5.length - P6, k4);
      for (let H4 = 0; H4 < v5; H4++) y6[b4 + H4] = C5[P6 + H4];
      return v5;
    }, write: (m7, y6, b4, k4, P6) => (h(this, E4) ?? x(this, E4, []), h(this, E4).push(y6.slice(b4, b4 + k4)), k4), llseek: (m7, y6, b4) => {
      let k4 = h(this, Z2);
      if (!k4) throw new Error("No /dev/blob File or Blob provided to llseek");
      let P6 = y6;
      if (b4 === 1 ? P6 += m7.position : b4 === 2 && (P6 = new Uint8Array(k4).length), P6 < 0) throw new d5.FS.ErrnoError(28);
      return P6;
    } };
    d5.FS.registerDevice(u3, f5), d5.FS.mkdev("/dev/blob", u3);
  }, (d5) => {
    d5.ENV.HOME = "/home/postgres", d5.ENV.USER = "postgres", d5.ENV.LOGNAME = "postgres", d5.ENV.PGDATA = I, d5.ENV.PGUSER = r3.username ?? "postgres", d5.ENV.PGDATABASE = r3.database ?? "postgres", d5.ENV.LANG = d5.ENV.LC_COLLATE = d5.ENV.LC_CTYPE = "en_US.UTF-8", d5.ENV.TZ = "UTC", d5.ENV.PGTZ = "UTC", d5.ENV.PGCLIENTENCODING = "UTF8", d5.ENV.ICU_DATA = Hr, d5.PGLITE_ENV && Object.assign(d5.ENV, d5.PGLITE_ENV);
  }, (d5) => {
    r3.pgDataProxyFs && (d5.FS.mkdirTree(I), d5.FS.mount(d5.PROXYFS, { root: I, fs: r3.pgDataProxyFs }, I));
  }] }, { emscriptenOpts: c4 } = await this.fs.init(this, s4);
  s4 = c4;
  let p5 = [];
  for (let [d5, u3] of Object.entries(h(this, ne))) if (u3 instanceof URL) _3[d5] = Fe2(u3);
  else {
    let f5 = await u3.setup(this, s4);
    if (f5.emscriptenOpts && (s4 = f5.emscriptenOpts), f5.namespaceObj) {
      let m7 = this;
      m7[d5] = f5.namespaceObj;
    }
    f5.bundlePath && (_3[d5] = Fe2(f5.bundlePath)), f5.init && n3.push(f5.init), f5.close && h(this, ce2).push(f5.close), p5.push(...f5.sharedPreloadLibraries ?? []);
  }
  if (s4.pg_extensions = _3, await i2, this.mod = await He3(s4), this.mod.FS.chmod("/home/postgres/.pgpass", 384), this.mod.FS.chmod(Lr, 365), this.mod.FS.chmod(pt2, 365), await this.fs.initialSyncFs(), r3.icuDataDir && await T(this, S4, Ve2).call(this, r3.icuDataDir), !r3.noInitDb) {
    if (r3.loadDataDir) {
      if (this.mod.FS.analyzePath(I + "/PG_VERSION").exists) throw new Error("Database already exists, cannot load from tarball");
      T(this, S4, N4).call(this, "pglite: loading data from tarball"), await Jr(this.mod.FS, r3.loadDataDir, I);
    } else if (this.mod.FS.analyzePath(I + "/PG_VERSION").exists) T(this, S4, N4).call(this, "pglite: found DB, resuming");
    else {
      T(this, S4, N4).call(this, "pglite: no db in filesystem, running initdb");
      let d5 = { ...r3 };
      d5.noInitDb = true, d5.dataDir = void 0, d5.extensions = void 0, d5.loadDataDir = void 0, d5.fs = void 0;
      let u3 = this.fs instanceof ee2;
      u3 && (this.mod.FS.mkdirTree(I, 448), d5.pgDataProxyFs = this.mod.FS);
      let f5 = await q3.create(d5);
      try {
        let m7 = await St2({ pg: f5, debug: r3.debug, wasmModule: r3.initdbWasmModule, args: r3.initDbStartParams });
        if (m7.exitCode !== 0 && !m7.stderr.includes("exists but is not empty")) throw new Error("INITDB failed to initialize: " + m7.stderr);
        if (!u3) {
          let y6 = await f5.dumpDataDir("none");
          await Jr(this.mod.FS, y6, I);
        }
      } finally {
        await f5.close();
      }
      await this.syncToFs();
    }
    await Le3(this.mod, (...d5) => T(this, S4, N4).call(this, ...d5)), T(this, S4, We2).call(this, p5, r3), this.mod._pgl_setPGliteActive(1), T(this, S4, Ze2).call(this, { pgDataFolder: I, startParams: [...r3.startParams || q3.defaultStartParams, ...this.debug ? ["-d", this.debug.toString()] : []] }), T(this, S4, Je2).call(this), x(this, $4, true), r3.username && await this.exec(`SET ROLE ${r3.username};`), await this._initArrayTypes();
    for (let d5 of n3) await d5();
  }
}, We2 = function(r3, _3) {
  if (r3.length && !_3.postgresqlconf && (_3.postgresqlconf = new Array()), _3.postgresqlconf) {
    let n3 = typeof _3.postgresqlconf == "string" ? _3.postgresqlconf : _3.postgresqlconf.join(`
`);
    if (r3.length) {
      let a3 = n3.match(/^(shared_preload_libraries\s*=\s*)(.*)$/m);
      if (a3) {
        let i2 = a3[2].split(",").map((o5) => o5.trim()), l2 = [.../* @__PURE__ */ new Set([...i2, ...r3])];
        n3 = n3.replace(a3[0], `${a3[1]}${l2.join(",")}`);
      } else n3 += `
shared_preload_libraries=${r3.join(",")}`;
    }
    se2(this.mod.FS, `${I}/postgresql.conf`, new TextEncoder().encode(n3));
  }
}, Ve2 = async function(r3) {
  T(this, S4, N4).call(this, `pglite: icuDataDir specified, removing default icu data dir at ${Hr}`), p3.rmdirRecursive(this.mod.FS, Hr), T(this, S4, N4).call(this, `pglite: loading icu data from tarball ${r3}`), this.mod.FS.mkdirTree(Hr), await Jr(this.mod.FS, r3, Hr);
}, Xe2 = function(r3) {
  x(this, ue2, r3.addFunction((_3) => (T(this, S4, N4).call(this, `Postgres tried to execute ${r3.UTF8ToString(_3)}, returning 1.`), 1), "pi")), r3._pgl_set_system_fn(h(this, ue2)), x(this, pe2, r3.addFunction((_3, n3) => {
    let a3 = r3.UTF8ToString(n3), i2 = r3.UTF8ToString(_3);
    return this.externalCommandStreamFd = this.handleExternalCmd(i2, a3), this.externalCommandStreamFd;
  }, "ppp")), r3._pgl_set_popen_fn(h(this, pe2)), x(this, ge2, r3.addFunction((_3) => {
    if (_3 === this.externalCommandStreamFd) this.mod._fclose(this.externalCommandStreamFd), this.externalCommandStreamFd = null;
    else throw `Unhandled pclose ${_3}`;
    T(this, S4, N4).call(this, "pclose_fn", _3);
  }, "pi")), r3._pgl_set_pclose_fn(h(this, ge2)), x(this, ie3, r3.addFunction((_3, n3) => {
    let a3;
    try {
      a3 = this.mod.HEAPU8.subarray(_3, _3 + n3);
    } catch (i2) {
      throw console.error("error", i2), i2;
    }
    return h(this, G2).call(this, a3);
  }, "ipi")), x(this, le2, r3.addFunction((_3, n3) => {
    let a3 = h(this, j4).length - h(this, U6);
    return a3 > n3 && (a3 = n3), this.mod.HEAPU8.set(h(this, j4).subarray(h(this, U6), h(this, U6) + a3), _3), x(this, U6, h(this, U6) + a3), a3;
  }, "ipi")), r3._pgl_set_rw_cbs(h(this, le2), h(this, ie3));
}, Ke2 = function(r3) {
  let _3 = r3.slice(), n3 = h(this, O3) + _3.length;
  if (n3 > h(this, D7).length) {
    let a3 = h(this, D7).length + (h(this, D7).length >> 1) + n3;
    n3 > q3.MAX_BUFFER_SIZE && (n3 = q3.MAX_BUFFER_SIZE);
    let i2 = new Uint8Array(a3);
    i2.set(h(this, D7).subarray(0, h(this, O3))), x(this, D7, i2);
  }
  return h(this, D7).set(_3, h(this, O3)), x(this, O3, h(this, O3) + _3.length), T(this, S4, Ce3).call(this, _3);
}, Ce3 = function(r3) {
  return h(this, ae3).parse(r3, (_3) => {
    let n3 = T(this, S4, Ye2).call(this, _3);
    n3 && h(this, A4).results.push(n3);
  }), r3.length;
}, Ye2 = function(r3) {
  if (!h(this, A4).databaseError) {
    if (r3 instanceof O) h(this, A4).throwOnError && (h(this, A4).databaseError = r3);
    else if (r3 instanceof te) this.debug > 0 && console.warn(r3), h(this, A4).onNotice && h(this, A4).onNotice(r3);
    else if (r3 instanceof $) {
      let _3 = h(this, z5).get(r3.channel);
      _3 && _3.forEach((n3) => {
        queueMicrotask(() => n3(r3.payload));
      }), h(this, x7).forEach((n3) => {
        queueMicrotask(() => n3(r3.channel, r3.payload));
      });
    }
    return r3;
  }
  return null;
}, N4 = function(...r3) {
  this.debug > 0 && console.log(...r3);
}, $e2 = async function(r3, _3, n3) {
  let a3 = p3.toPostgresName(r3), i2 = n3 ?? this;
  h(this, z5).has(a3) || h(this, z5).set(a3, /* @__PURE__ */ new Set()), h(this, z5).get(a3).add(_3);
  try {
    await i2.exec(`LISTEN ${r3}`);
  } catch (l2) {
    throw h(this, z5).get(a3).delete(_3), h(this, z5).get(a3)?.size === 0 && h(this, z5).delete(a3), l2;
  }
  return async (l2) => {
    await this.unlisten(a3, _3, l2);
  };
}, Qe2 = async function(r3, _3, n3) {
  let a3 = p3.toPostgresName(r3), i2 = n3 ?? this, l2 = async () => {
    await i2.exec(`UNLISTEN ${r3}`), h(this, z5).get(a3)?.size === 0 && h(this, z5).delete(a3);
  };
  _3 ? (h(this, z5).get(a3)?.delete(_3), h(this, z5).get(a3)?.size === 0 && await l2()) : await l2();
}, Je2 = function() {
  if (h(this, oe3)) throw new Error("PGlite single mode already running");
  this.mod._pgl_startPGlite(), x(this, oe3, true);
}, Ze2 = function(r3) {
  let _3 = [...r3.startParams, "-D", r3.pgDataFolder, this.mod.ENV.PGDATABASE], n3 = -1;
  if (n3 = this.mod.callMain(_3), n3 !== this.PGLITE_EXIT_ALIVE) throw new Error("PGlite failed to initialize properly");
}, xe3 = function(r3) {
  x(this, U6, 0), x(this, O3, 0), x(this, j4, r3);
  let _3 = this.mod._pgl_getMyProcPort();
  if (this.mod._ProcessStartupPacket(_3, true, true) !== 0) throw new Error(`Cannot process startup packet + ${r3.toString()}`);
  return this.mod._pgl_sendConnData(), this.mod._pgl_pq_flush(), x(this, j4, []), h(this, O3) ? h(this, D7).subarray(0, h(this, O3)) : new Uint8Array(0);
}, q3.paths = { PG_ROOT: U3, PGDATA: I, ICU_DATA_PATH: Hr, INITDB_EXE_PATH: Lr, POSTGRES_EXE_PATH: pt2 }, q3.DEFAULT_RECV_BUF_SIZE = 1 * 1024 * 1024, q3.MAX_BUFFER_SIZE = Math.pow(2, 30), q3.defaultStartParams = ["--single", "-F", "-O", "-j", "-c", "search_path=public", "-c", "exit_on_error=false", "-c", "log_checkpoints=false", "-c", "max_worker_processes=0", "-c", "max_parallel_workers=0", "-c", "max_parallel_workers_per_gather=0", "-c", "io_method=sync", "-c", "max_parallel_maintenance_workers=0"];
var je2 = q3;

// ../../node_modules/@electric-sql/pglite/dist/index.js
init_chunk_N66TTF7B();
init_chunk_BD5WXLQO();
init_chunk_ZSOCVAT7();
u();
u();

// _probe/worker.ts
init_opfs_ahp();
onmessage = async (e) => {
  const { pool, name: name2, mode } = e.data;
  const fsOf = () => mode === "memfs2opfs" ? { dataDir: `memfs2opfs://${name2}` } : { fs: new z3(name2, { initialPoolSize: pool, maintainedPoolSize: Math.min(100, pool) }) };
  const t0 = performance.now();
  const [w6, i2, d5, tpl] = await Promise.all([WebAssembly.compileStreaming(fetch("/dist/pglite.wasm")), WebAssembly.compileStreaming(fetch("/dist/initdb.wasm")), fetch("/dist/pglite.data").then((r3) => r3.blob()), fetch("/dist/replica.tar.gz").then((r3) => r3.blob())]);
  const t1 = performance.now();
  const db = await je2.create({ ...fsOf(), pgliteWasmModule: w6, initdbWasmModule: i2, fsBundle: d5, loadDataDir: tpl });
  const t2 = performance.now();
  await db.query("select 1");
  await db.fs.syncToFs(false);
  const t3 = performance.now();
  const n3 = (await db.query("select count(*)::int n from task")).rows[0].n;
  await db.close();
  const t4 = performance.now();
  const db2 = await je2.create({ ...fsOf(), pgliteWasmModule: w6, initdbWasmModule: i2, fsBundle: d5 });
  const t5 = performance.now();
  const w0 = performance.now();
  for (let k4 = 0; k4 < 20; k4++) await db2.query("insert into workspace (name) values ($1)", ["x" + k4]);
  const write = (performance.now() - w0) / 20;
  const c0 = performance.now();
  await db2.query("select count(*) from task");
  const read = performance.now() - c0;
  await db2.close();
  postMessage({ mode, write, read, pool, files: t1 - t0, create: t2 - t1, sync: t3 - t2, reopen: t5 - t4, n: n3 });
};
