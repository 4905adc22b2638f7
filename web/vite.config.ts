import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The dashboard: built into dist/web/, which `ubackup server` serves at /.
// During development `vite --config web/vite.config.ts` proxies /api to a local server.
export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  plugins: [react()],
  build: {
    outDir: '../dist/web',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    proxy: { '/api': process.env.UBACKUP_SERVER ?? 'http://127.0.0.1:8080' },
  },
});
