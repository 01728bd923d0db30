// Builds the browser UI into web/dist (committed, so xenoded needs no build
// step at run time). Two pages: the app and the login page, which is served
// without a token and so shares no code with the app.

import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  root: here('.'),
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: here('dist'),
    emptyOutDir: true,
    manifest: true,
    // Chromium, Firefox and Safari preload modules natively; the polyfill would be one more shared file.
    modulePreload: { polyfill: false },
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
    rolldownOptions: {
      input: { index: here('index.html'), login: here('login.html') },
    },
  },
});
