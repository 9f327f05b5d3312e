/// <reference types="vitest/config" />
import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

// The dev server proxies the API; the built app is served by the service itself at the same origin.
const api = process.env.SKILL_ADAPTER_API ?? 'http://127.0.0.1:8000'

export default defineConfig({
  plugins: [react()],
  // recharts is most of the bundle; one chunk of ~750 kB (~220 kB gzipped) is fine for a dashboard
  build: { chunkSizeWarningLimit: 1024 },
  server: {
    port: 5173,
    proxy: {
      '/api': { target: api, changeOrigin: true },
      '/v1': { target: api, changeOrigin: true },
      '/docs': { target: api, changeOrigin: true },
      '/openapi.json': { target: api, changeOrigin: true },
    },
  },
  test: {
    environment: 'jsdom',
    setupFiles: ['./src/test/setup.ts'],
    include: ['src/**/*.test.{ts,tsx}'],
    testTimeout: 20_000,
  },
})
