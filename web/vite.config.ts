import { defineConfig } from 'vitest/config';

// `npm run dev` serves the app with hot reload and sends API calls (HTTP and WebSocket) to a
// server started with `scripts/run` (or TAX_BUDGET_API, e.g. http://127.0.0.1:9000).
const api = process.env.TAX_BUDGET_API ?? 'http://127.0.0.1:8080';

export default defineConfig({
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
  },
  server: {
    proxy: {
      '/graphql': { target: api, ws: true },
      '/graphiql': { target: api },
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
  },
});
