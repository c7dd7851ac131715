// Bundles the `cnm` command (dist/cli/main.js and the cnm modules it loads)
// into dist/cli-bundle/: a command then loads a few modules instead of about a
// hundred, which is most of what it costs over Node's own start-up. What is
// loaded on demand stays so (one chunk per dynamic import: the etcd client
// is loaded by cluster commands alone). Packages stay outside (lmdb finds its
// native addon from its own directory),
// and every `import.meta.url` keeps meaning the file it was written in, so
// that paths taken relative to it (the resolver, agent and proxy scripts, the
// native loader, package.json) still point at dist/.
import { readFile, rm } from 'node:fs/promises';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = `${root}dist`;
const outdir = `${dist}/cli-bundle`;

const keepMetaUrl = {
  name: 'keep-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\/dist\/.*\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (!source.includes('import.meta.url')) return { contents: source, loader: 'js' };
      const rel = `./${relative(outdir, args.path)}`;
      return { contents: source.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, import.meta.url).href`), loader: 'js' };
    });
  },
};

await rm(outdir, { recursive: true, force: true }); // no chunk of an older build left
await build({
  entryPoints: [`${dist}/cli/main.js`],
  outdir,
  entryNames: '[name]',
  chunkNames: '[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  plugins: [keepMetaUrl],
  legalComments: 'none',
  logLevel: 'warning',
});
