// rollup builds the VMM library (dist/libv3vee.mjs) and the bootable image once vmm/ and
// kernel/ exist (the VMM issue). Until then `npm run build` bundles the emulated machine's CPU
// as a check that the tree bundles.
import { builtinModules } from 'node:module';

export default {
  input: 'hw/cpu/index.ts',
  output: { file: 'dist/libhw.mjs', format: 'es' },
  external: [...builtinModules, /^node:/],
  plugins: [stripTypes()],
};

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
