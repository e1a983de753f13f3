import { defineConfig } from 'vitest/config';

// `npm run dev` serves the app with hot reload and sends API calls (HTTP and WebSocket) to a
// server started with `scripts/run` (or TAX_BUDGET_API, e.g. http://127.0.0.1:9000).
const api = process.env.TAX_BUDGET_API ?? 'http://127.0.0.1:8080';

export default defineConfig({
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // No source maps: GraphiQL's would make the build (and an embedding binary) four times larger.
    sourcemap: false,
    // GraphiQL's editor (Monaco) is large; it loads only on /graphiql, never with the app.
    chunkSizeWarningLimit: 4096,
    rollupOptions: {
      input: { app: 'index.html', graphiql: 'graphiql.html' },
      onwarn(warning, warn) {
        // React libraries inside GraphiQL mark modules "use client", which means nothing here.
        if (warning.code === 'MODULE_LEVEL_DIRECTIVE') return;
        warn(warning);
      },
    },
  },
  server: {
    proxy: {
      '/graphql': { target: api, ws: true },
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
  },
});
