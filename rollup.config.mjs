// `npm run build`: the VMM as a static library and the bootable image that links it (DESIGN.md).
//
//   dist/libv3vee.mjs     vmm/index.ts and everything it needs from vmm/ and hostif/, in one ES
//                         module. hw/ (the machine: the CPU's SVM instructions, device models)
//                         stays an import: it is the hardware the library runs on, not part of it.
//   dist/v3vee-image.mjs  kernel/image.ts: the LWK, its default VM config and a bundled guest,
//                         linked with dist/libv3vee.mjs the way a static library is linked (every
//                         import of vmm/index.ts resolves to the built library, which is inlined;
//                         any other vmm/ file is refused), hw/ again an import.
//
// Feature switches (vmm/features.ts, Palacios' build options): V3_SHADOW_PAGING, V3_HASHED_NPT,
// V3_TRACE_EXITS. Their values at build time (`V3_SHADOW_PAGING=0 npm run build`) replace every
// `process.env.V3_*` in the sources with a literal, and `typeof process` in vmm/features.ts with
// "object", so each switch is a constant and tree-shaking drops the disabled code. The bundles
// do not read the environment at run time.
//
// V3_DIST=DIR writes the two files to DIR instead of dist/ (tests build there).
import { builtinModules } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = dirname(fileURLToPath(import.meta.url));
const DIST = resolve(ROOT, process.env.V3_DIST ?? 'dist');
const LIB = join(DIST, 'libv3vee.mjs');
const HW = join(ROOT, 'hw') + sep;
const VMM = join(ROOT, 'vmm') + sep;
const NODE = [...builtinModules, /^node:/];

/** The feature switches and their build-time values (undefined: on). */
const FEATURES = ['V3_SHADOW_PAGING', 'V3_HASHED_NPT', 'V3_TRACE_EXITS'];

/** node's modules are imported only for what they export (kernel/image.ts's source-mode fs). */
const TREESHAKE = { moduleSideEffects: (id, external) => !(external && (id.startsWith('node:') || builtinModules.includes(id))) };

export default [
  {
    input: join(ROOT, 'vmm/index.ts'),
    output: { file: LIB, format: 'es', paths: fromDist },
    external: nodeExternal,
    treeshake: TREESHAKE,
    onwarn,
    plugins: [hwExternal(), stripTypes(), features()],
  },
  {
    input: join(ROOT, 'kernel/image.ts'),
    output: { file: join(DIST, 'v3vee-image.mjs'), format: 'es', paths: fromDist },
    external: nodeExternal,
    treeshake: TREESHAKE,
    onwarn,
    plugins: [linkLibrary(), hwExternal(), stripTypes(), features(), embedFiles()],
  },
];

/** Import cycles inside vmm/ (vcore <-> exit handlers) are by design; every other warning is shown. */
function onwarn(w, warn) {
  if (w.code === 'CIRCULAR_DEPENDENCY') return;
  warn(w);
}

/** An external hw/ file as the bundle imports it: relative to the output directory. */
function fromDist(id) {
  if (!id.startsWith(HW)) return id;
  const r = relative(DIST, id).split(sep).join('/');
  return r.startsWith('.') ? r : `./${r}`;
}

/** node's modules stay imports. */
function nodeExternal(id) {
  return NODE.some((n) => (typeof n === 'string' ? n === id : n.test(id)));
}

/** hw/ stays an import, written relative to the output file (wherever V3_DIST puts it). */
function hwExternal() {
  return {
    name: 'hw-external',
    resolveId(id, importer) {
      if (importer === undefined || !id.startsWith('.')) return null;
      const abs = resolve(dirname(importer), id);
      return abs.startsWith(HW) ? { id: abs, external: 'absolute' } : null;
    },
  };
}

// tsx/vitest strip types; for rollup we use TypeScript's transpiler (no bundler plugin needed).
function stripTypes() {
  return {
    name: 'strip-types',
    async transform(code, id) {
      if (!id.endsWith('.ts')) return null;
      const ts = (await import('typescript')).default;
      const out = ts.transpileModule(code, {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true, sourceMap: false },
        fileName: id,
      });
      return { code: out.outputText, map: null };
    },
  };
}

/** Build-time feature switches: `process.env.V3_X` -> its value now, as a literal. */
function features() {
  return {
    name: 'v3-features',
    transform(code, id) {
      if (!/process\.env\.V3_/.test(code)) return null;
      let out = code.replace(/process\.env\.(V3_[A-Z0-9_]+)/g, (_m, name) => {
        if (!FEATURES.includes(name)) this.error(`${relative(ROOT, id)}: unknown feature switch ${name} (known: ${FEATURES.join(', ')})`);
        const v = process.env[name];
        return v === undefined ? 'undefined' : JSON.stringify(v);
      });
      if (id === join(ROOT, 'vmm/features.ts')) {
        out = out.replace(/typeof process\s*===\s*['"]undefined['"]/g, 'false');
        if (/\bprocess\b/.test(out.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, ''))) this.error('vmm/features.ts: a switch is not of the form `typeof process === \'undefined\' || process.env.V3_X !== \'0\'`; the build cannot make it a constant');
      }
      return { code: out, map: null };
    },
  };
}

/** The image links the built library: vmm/index.ts -> dist/libv3vee.mjs; no other vmm/ file. */
function linkLibrary() {
  return {
    name: 'link-libv3vee',
    resolveId(id, importer) {
      if (importer === undefined || !id.startsWith('.')) return null;
      const abs = resolve(dirname(importer), id);
      if (importer === LIB || importer.startsWith(VMM)) return null;
      if (abs === join(ROOT, 'vmm/index.ts')) {
        if (!existsSync(LIB)) this.error(`${relative(ROOT, LIB)} is missing: the library is built first`);
        return LIB;
      }
      if (abs.startsWith(VMM)) this.error(`${relative(ROOT, importer)} imports ${relative(ROOT, abs)}: the image links the VMM only through its public API (vmm/index.ts)`);
      return null;
    },
  };
}

/** `embedFile('path')` (kernel/image.ts) -> the file's bytes, base64-decoded at load. */
function embedFiles() {
  return {
    name: 'embed-files',
    transform(code, id) {
      if (!code.includes('embedFile(')) return null;
      const out = code.replace(/embedFile\((['"])([^'"]+)\1\)/g, (_m, _q, path) => {
        const file = resolve(dirname(id), path);
        this.addWatchFile(file);
        const b64 = readFileSync(file).toString('base64');
        return `Uint8Array.from(atob(${JSON.stringify(b64)}), (c) => c.charCodeAt(0))`;
      });
      return { code: out, map: null };
    },
  };
}
